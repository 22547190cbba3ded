package link

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// listenBacklog is the accept queue length, Linux's default somaxconn.
const listenBacklog = 4096

// Listen announces on the stack as net.Listen does: network is tcp, tcp4
// or tcp6; address is "host:port" where an empty host (or 0.0.0.0 or ::
// with "tcp") means every address of both families, so ":80" takes IPv4
// and IPv6 connections alike (IPv4 peers show as their IPv4 address).
// "tcp6" with an empty host takes IPv6 only. Port 0 picks a free port;
// Addr tells which. Errors are *net.OpError, "bind: address already in
// use" for a taken port.
func (s *Stack) Listen(network, address string) (net.Listener, error) {
	f, ok := parseNetwork(network)
	if !ok || f.udp {
		return nil, opError("listen", network, nil, net.UnknownNetworkError(network))
	}
	if f.v4 && f.v6 {
		if host, port, err := net.SplitHostPort(address); err == nil && (host == "" || host == "::" || host == "0.0.0.0") {
			return s.listenBoth(network, host, port)
		}
	}
	wq := new(waiter.Queue)
	ep, laddr, proto, err := s.bindEndpoint("listen", f, address, tcp.ProtocolNumber, wq)
	if err != nil {
		return nil, err
	}
	if terr := ep.Listen(listenBacklog); terr != nil {
		ep.Close()
		return nil, opError("listen", network, laddr, sysError("listen", terr))
	}
	return &listener{TCPListener: gonet.NewTCPListener(s.Stack, wq, ep), network: network, v6: proto == ipv6.ProtocolNumber}, nil
}

// ListenPacket announces a UDP socket as net.ListenPacket does: network is
// udp, udp4 or udp6 and address follows Listen's rules (":53" receives
// both families). WriteTo takes IPv4 and IPv6 addresses in any of the
// forms package net produces.
func (s *Stack) ListenPacket(network, address string) (net.PacketConn, error) {
	f, ok := parseNetwork(network)
	if !ok || !f.udp {
		return nil, opError("listen", network, nil, net.UnknownNetworkError(network))
	}
	wq := new(waiter.Queue)
	ep, _, proto, err := s.bindEndpoint("listen", f, address, udp.ProtocolNumber, wq)
	if err != nil {
		return nil, err
	}
	return &packetConn{UDPConn: gonet.NewUDPConn(wq, ep), v6: proto == ipv6.ProtocolNumber}, nil
}

// bindEndpoint makes and binds the endpoint of a Listen or ListenPacket.
func (s *Stack) bindEndpoint(op string, f family, address string, trans tcpip.TransportProtocolNumber, wq *waiter.Queue) (tcpip.Endpoint, net.Addr, tcpip.NetworkProtocolNumber, error) {
	network := f.fullName
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, nil, 0, opError(op, network, nil, err)
	}
	port, err := lookupPort(network, portStr)
	if err != nil {
		return nil, nil, 0, opError(op, network, nil, err)
	}
	var ip netip.Addr
	if host != "" {
		if ip, err = netip.ParseAddr(host); err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			ips, lerr := s.LookupNetIP(ctx, lookupNetwork(f), host)
			cancel()
			if lerr != nil {
				return nil, nil, 0, opError(op, network, nil, lerr)
			}
			ip = s.sortForDial(ips)[0]
		}
		ip = ip.Unmap().WithZone("")
		if !f.allows(ip) {
			return nil, nil, 0, opError(op, network, nil, &net.AddrError{Err: "address family mismatch", Addr: host})
		}
	}
	laddr := addrOf(f.udp, netip.AddrPortFrom(ip, port))
	// Package net makes "tcp" on a wildcard address dual stack; so do we.
	dual := f.v4 && f.v6 && (!ip.IsValid() || ip.IsUnspecified())
	proto := ipv4.ProtocolNumber
	switch {
	case dual, f.v6 && !f.v4, ip.Is6():
		proto = ipv6.ProtocolNumber
	}
	ep, terr := s.Stack.NewEndpoint(trans, proto, wq)
	if terr != nil {
		return nil, laddr, 0, opError(op, network, laddr, sysError("socket", terr))
	}
	if proto == ipv6.ProtocolNumber {
		ep.SocketOptions().SetV6Only(!dual)
	}
	fa := tcpip.FullAddress{Port: port}
	if ip.IsValid() && !ip.IsUnspecified() {
		fa.Addr = tcpipAddr(ip)
	}
	if terr := ep.Bind(fa); terr != nil {
		ep.Close()
		return nil, laddr, 0, opError(op, network, laddr, sysError("bind", terr))
	}
	return ep, laddr, proto, nil
}

func addrOf(udp bool, ap netip.AddrPort) net.Addr {
	if udp {
		return net.UDPAddrFromAddrPort(ap)
	}
	return net.TCPAddrFromAddrPort(ap)
}

// listener reports Accept on a closed listener as package net does
// (net.ErrClosed), which servers test for.
type listener struct {
	*gonet.TCPListener
	network string
	v6      bool
	closed  atomic.Bool
}

// Addr is the listening address; a wildcard shows as [::] or 0.0.0.0,
// as with package net, rather than without a host.
func (l *listener) Addr() net.Addr {
	a := l.TCPListener.Addr()
	if ta, ok := a.(*net.TCPAddr); ok && len(ta.IP) == 0 {
		return &net.TCPAddr{IP: wildcard(l.v6), Port: ta.Port}
	}
	return a
}

func wildcard(v6 bool) net.IP {
	if v6 {
		return net.IPv6unspecified
	}
	return net.IPv4zero.To4()
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.TCPListener.Accept()
	if err != nil && l.closed.Load() {
		return nil, opError("accept", l.network, l.Addr(), net.ErrClosed)
	}
	return c, err
}

func (l *listener) Close() error {
	if l.closed.Swap(true) {
		return opError("close", l.network, l.Addr(), net.ErrClosed)
	}
	return l.TCPListener.Close()
}

// packetConn converts WriteTo addresses to the endpoint's family: package
// net hands out IPv4 addresses in 4- and 16-byte forms alike, netstack
// wants IPv4-mapped ones on a dual-stack IPv6 endpoint.
type packetConn struct {
	*gonet.UDPConn
	v6 bool
}

// LocalAddr is the bound address, a wildcard as [::] or 0.0.0.0.
func (c *packetConn) LocalAddr() net.Addr {
	a := c.UDPConn.LocalAddr()
	if ua, ok := a.(*net.UDPAddr); ok && len(ua.IP) == 0 {
		return &net.UDPAddr{IP: wildcard(c.v6), Port: ua.Port}
	}
	return a
}

func (c *packetConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if ua, ok := addr.(*net.UDPAddr); ok && ua != nil {
		ip := ua.IP
		if c.v6 {
			ip = ip.To16()
		} else if ip4 := ip.To4(); ip4 != nil {
			ip = ip4
		}
		if ip != nil && len(ip) != len(ua.IP) {
			addr = &net.UDPAddr{IP: ip, Port: ua.Port}
		}
	}
	return c.UDPConn.WriteTo(b, addr)
}
