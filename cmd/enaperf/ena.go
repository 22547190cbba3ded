package main

// The device, stack and simulated-VPC bring-up below mirrors
// cmd/enahttp/app.go (same flags, same VPC addresses). It is deliberately
// thin glue: it should move, with enahttp's copy, into a shared package
// (e.g. link/vpc) owned by the link engineer.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/ena/hw"
	"github.com/enanet/enanet/internal/iperf3"
	"github.com/enanet/enanet/link"
	"github.com/enanet/enanet/link/enanic"
	"github.com/enanet/enanet/vfio"
)

// The simulated VPC, as in enahttp: a /20 like a default VPC subnet, the
// router at base+1 as on EC2, DHCP leases from .10.
var (
	vpcRouter    = netip.MustParsePrefix("172.31.0.1/20")
	vpcFirstDHCP = netip.MustParseAddr("172.31.0.10")
	vpcMAC       = [6]byte{0x02, 0xec, 0x2f, 0x00, 0x00, 0x01}
)

// enaNet is the userspace stack on an ENA, simulated or real.
type enaNet struct {
	c    config
	sim  bool
	kind string

	closer io.Closer // the hw backend
	dev    *ena.Device
	st     *link.Stack
	pcap   *os.File

	vpc     *link.Stack
	vpcNIC  *link.WireNIC
	dhcpSrv *link.DHCPServer
	fwd     *forwarder

	fatal chan error
}

func parseLLQ(s string) (ena.LLQPolicy, error) {
	switch strings.ToLower(s) {
	case "", "default":
		return ena.LLQDefault, nil
	case "normal", "128":
		return ena.LLQNormal, nil
	case "large", "256":
		return ena.LLQLarge, nil
	case "off", "none", "host":
		return ena.LLQOff, nil
	}
	return 0, fmt.Errorf("--llq %q: want default, normal, large or off", s)
}

func openENA(_ context.Context, c config, sim bool) (_ *enaNet, err error) {
	llq, err := parseLLQ(c.llq)
	if err != nil {
		return nil, err
	}
	n := &enaNet{c: c, sim: sim, fatal: make(chan error, 1), fwd: newForwarder(c.log)}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	mtu := c.mtu
	if mtu == 0 {
		mtu = 1500
	}
	var hwdev hw.Device
	if sim {
		prof, err := enasim.ProfileByName(c.profile)
		if err != nil {
			return nil, err
		}
		wire, far := enasim.NewPair()
		// The VPC side uses the ENA's MTU so that large UDP datagrams
		// from the host are fragmented to frames the ENA accepts.
		n.vpcNIC = link.NewWireNIC(far, link.WireNICConfig{MAC: vpcMAC, MaxMTU: 9001, MTU: mtu,
			Offloads: link.Offloads{TxCsumIPv4: true, TxL4CsumIPv4Partial: true, TxL4CsumIPv6Partial: true, RxCsumIPv4: true, RxCsumL4: true}})
		if n.vpc, err = link.NewStack(n.vpcNIC, link.StackOptions{Addr: vpcRouter, NICName: "vpc0", Logger: c.log}); err != nil {
			wire.Close()
			return nil, fmt.Errorf("simulated VPC: %w", err)
		}
		if n.dhcpSrv, err = n.vpc.ServeDHCP(link.DHCPServerConfig{First: vpcFirstDHCP, Count: 100, Router: vpcRouter.Addr()}); err != nil {
			wire.Close()
			return nil, fmt.Errorf("simulated VPC: %w", err)
		}
		s, err := enasim.New(enasim.Config{Profile: prof, Wire: wire, Logger: c.log})
		if err != nil {
			wire.Close()
			return nil, fmt.Errorf("simulated device: %w", err)
		}
		hwdev, n.closer = s, s
		n.kind = "userspace stack on a simulated ENA, profile " + prof.Name
	} else {
		if c.profile != "" {
			return nil, errors.New("--profile applies to the simulated device only")
		}
		d, err := vfio.Open(c.device, vfio.Options{Logger: c.log})
		if err != nil {
			return nil, fmt.Errorf("opening %s through VFIO: %w", c.device, err)
		}
		hwdev, n.closer = d, d
		n.kind = "userspace stack on ENA " + c.device
	}
	if n.dev, err = ena.Open(hwdev, ena.Config{Queues: c.queues, LLQ: llq, MTU: c.mtu, Logger: c.log}); err != nil {
		return nil, err
	}
	opts := link.StackOptions{Logger: c.log}
	switch {
	case c.ip != "":
		if c.dhcp {
			return nil, errors.New("--ip and --dhcp exclude each other")
		}
		if opts.Addr, err = netip.ParsePrefix(c.ip); err != nil {
			return nil, fmt.Errorf("--ip: %w", err)
		}
		if c.gw != "" {
			if opts.Gateway, err = netip.ParseAddr(c.gw); err != nil {
				return nil, fmt.Errorf("--gw: %w", err)
			}
		}
	case !sim && !c.dhcp:
		return nil, errors.New("a real device needs --ip or --dhcp")
	default:
		opts.DHCP = true
		opts.DHCPTimeout = 20 * time.Second
	}
	if c.pcap != "" {
		if n.pcap, err = os.Create(c.pcap); err != nil {
			return nil, fmt.Errorf("--pcap: %w", err)
		}
		opts.Endpoint.Pcap = n.pcap
	}
	opts.Endpoint.OnFatal = func(err error) {
		select {
		case n.fatal <- fmt.Errorf("device failed: %w", err):
		default:
		}
	}
	if n.st, err = link.NewStack(enanic.New(n.dev), opts); err != nil {
		return nil, err
	}
	return n, nil
}

func (n *enaNet) Kind() string        { return n.kind }
func (n *enaNet) Fatal() <-chan error { return n.fatal }

// Close stops everything in reverse order; safe on a partly opened net.
func (n *enaNet) Close() {
	n.fwd.Close()
	if n.st != nil {
		n.st.Close()
	}
	if n.dev != nil {
		n.dev.Close()
	}
	if n.closer != nil {
		n.closer.Close()
	}
	if n.dhcpSrv != nil {
		n.dhcpSrv.Close()
	}
	if n.vpc != nil {
		n.vpc.Close()
	}
	if n.vpcNIC != nil {
		n.vpcNIC.Close()
	}
	if n.pcap != nil {
		n.pcap.Close()
	}
}

// stackDialer dials through a userspace stack.
type stackDialer struct{ st *link.Stack }

func fullAddr(st *link.Stack, ap netip.AddrPort) (tcpip.FullAddress, tcpip.NetworkProtocolNumber) {
	a := ap.Addr().Unmap()
	proto := ipv4.ProtocolNumber
	if a.Is6() {
		proto = ipv6.ProtocolNumber
	}
	return tcpip.FullAddress{NIC: st.NICID, Addr: tcpip.AddrFromSlice(a.AsSlice()), Port: ap.Port()}, proto
}

// DialContext implements iperf3.Dialer: "tcp" and "udp" to an IP:port.
func (d stackDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("the userspace stack dials IP:port only: %w", err)
	}
	switch network {
	case "tcp", "tcp4", "tcp6":
		return d.st.DialTCP(ctx, ap)
	case "udp", "udp4", "udp6":
		fa, proto := fullAddr(d.st, ap)
		c, err := gonet.DialUDP(d.st.Stack, nil, &fa, proto)
		if err != nil {
			return nil, fmt.Errorf("dialing UDP %v: %w", ap, err)
		}
		return c, nil
	}
	return nil, fmt.Errorf("network %q not supported", network)
}

func (n *enaNet) Dialer() iperf3.Dialer { return stackDialer{n.st} }

func (n *enaNet) Listen(port int) (net.Listener, error) { return n.st.ListenTCP(uint16(port)) }

func (n *enaNet) ListenUDP(port int) (net.PacketConn, error) {
	c, err := gonet.DialUDP(n.st.Stack, &tcpip.FullAddress{NIC: n.st.NICID, Port: uint16(port)}, nil, ipv4.ProtocolNumber)
	if err != nil {
		return nil, fmt.Errorf("binding UDP port %d: %w", port, err)
	}
	return c, nil
}

func (n *enaNet) serverAddr(port int) netip.AddrPort {
	addr, _ := n.st.Addr()
	return netip.AddrPortFrom(addr.Addr(), uint16(port))
}

// Expose forwards listen (TCP and UDP) on the host through the VPC to the
// server on the simulated ENA. A real device is reached directly.
func (n *enaNet) Expose(_ context.Context, listen string, port int) (string, error) {
	srv := n.serverAddr(port)
	if !n.sim {
		return srv.String(), nil
	}
	ln, err := listenTCPWithMSS(listen, int(n.st.Endpoint.MTU())-40)
	if err != nil {
		return "", fmt.Errorf("--listen: %w", err)
	}
	pc, err := net.ListenPacket("udp", ln.Addr().String())
	if err != nil {
		ln.Close()
		return "", fmt.Errorf("--listen (UDP): %w", err)
	}
	vpcDial := stackDialer{n.vpc}
	n.fwd.TCP(ln, func(ctx context.Context) (net.Conn, error) { return vpcDial.DialContext(ctx, "tcp", srv.String()) })
	n.fwd.UDP(pc, func() (net.Conn, error) { return vpcDial.DialContext(context.Background(), "udp", srv.String()) })
	n.c.log.Debug("enaperf: forwarding the host to the simulated ENA", "host", ln.Addr(), "server", srv)
	return ln.Addr().String(), nil
}

// ClientTarget: on the simulated device, HOST is on the host network, so
// the VPC router forwards the port (TCP and UDP) to HOST:PORT and the
// client dials the router. On a real device HOST must be reachable from
// the ENA's subnet.
func (n *enaNet) ClientTarget(host string, port int) (string, error) {
	ip, err := resolve(host)
	if err != nil {
		return "", err
	}
	target := net.JoinHostPort(ip.String(), strconv.Itoa(port))
	if !n.sim {
		return target, nil
	}
	ln, err := gonet.ListenTCP(n.vpc.Stack, tcpip.FullAddress{NIC: n.vpc.NICID, Port: uint16(port)}, ipv4.ProtocolNumber)
	if err != nil {
		return "", fmt.Errorf("VPC forwarder: listening on TCP port %d: %w", port, err)
	}
	pc, err := gonet.DialUDP(n.vpc.Stack, &tcpip.FullAddress{NIC: n.vpc.NICID, Port: uint16(port)}, nil, ipv4.ProtocolNumber)
	if err != nil {
		ln.Close()
		return "", fmt.Errorf("VPC forwarder: binding UDP port %d: %w", port, err)
	}
	var d net.Dialer
	n.fwd.TCP(ln, func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", target) })
	n.fwd.UDP(pc, func() (net.Conn, error) { return d.Dial("udp", target) })
	via := netip.AddrPortFrom(vpcRouter.Addr(), uint16(port)).String()
	n.c.log.Debug("enaperf: the VPC router forwards to the host", "via", via, "target", target)
	return via, nil
}

func resolve(host string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	as, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", host)
	if err != nil || len(as) == 0 {
		return netip.Addr{}, fmt.Errorf("resolving %q: %v", host, err)
	}
	return as[0], nil
}
