package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/enanet/enanet/internal/iperf3"
	"github.com/enanet/enanet/internal/iperf3/gvstack"
	"github.com/enanet/enanet/internal/netenv"
	"github.com/enanet/enanet/link/vpc"
)

// enaNet is the userspace stack on an ENA, simulated or real.
type enaNet struct {
	c    config
	host *netenv.Host
	fwd  *vpc.Forwarder
}

func openENA(_ context.Context, c config) (*enaNet, error) {
	c.Logger = c.log
	h, err := netenv.Open(c.Config)
	if err != nil {
		return nil, err
	}
	// A failed forward reaches the user through ForwardError, as the
	// cause of the test's failure; the forwarder's own warning about it
	// is for -d.
	fwdLog := c.log
	if !c.debug {
		fwdLog = slog.New(slog.DiscardHandler)
	}
	return &enaNet{c: c, host: h, fwd: vpc.NewForwarder(fwdLog)}, nil
}

func (n *enaNet) Kind() string        { return "userspace stack on " + n.host.Kind }
func (n *enaNet) Fatal() <-chan error { return n.host.Fatal() }

// Close stops the forwarders, then the device and stack.
func (n *enaNet) Close() {
	n.fwd.Close()
	n.host.Close()
}

func (n *enaNet) ForwardError() error { return n.fwd.LastDialError() }

func (n *enaNet) Dialer() iperf3.Dialer { return gvstack.Dialer{Stack: n.host.Stack} }

func (n *enaNet) Listen(port int) (net.Listener, error) {
	return gvstack.Listen(n.host.Stack, n.c.bind, n.c.family, port)
}

// ListenUDP binds the server's UDP port: both families unless -4 or -6
// (or -B) narrow it, as the TCP listener.
func (n *enaNet) ListenUDP(port int) (net.PacketConn, error) {
	return n.host.Stack.ListenPacket("udp"+n.c.family, net.JoinHostPort(n.c.bind, strconv.Itoa(port)))
}

// serverAddr is the stack's address of the family v6 with port, if it
// has one.
func (n *enaNet) serverAddr(v6 bool, port int) (netip.AddrPort, bool) {
	var p netip.Prefix
	if v6 {
		p, _ = n.host.Stack.Addr6()
	} else {
		p, _ = n.host.Stack.Addr()
	}
	return netip.AddrPortFrom(p.Addr(), uint16(port)), p.IsValid()
}

// Expose forwards listen (TCP and UDP) on the host through the VPC to the
// server on the simulated ENA, to the stack's address of listen's family.
// With no --listen it forwards 127.0.0.1:PORT to the stack's IPv4 address
// and [::1]:PORT to its IPv6 address (one of them with -4 or -6; the IPv6
// one only where the host and the stack have IPv6), so iperf3 -c ::1
// tests over IPv6 end to end. A real device is reached directly.
func (n *enaNet) Expose(_ context.Context, listen string, port int) ([]string, error) {
	if !n.host.Simulated() {
		var addrs []string
		for _, v6 := range []bool{false, true} {
			if (v6 && n.c.family == "4") || (!v6 && n.c.family == "6") {
				continue
			}
			if srv, ok := n.serverAddr(v6, port); ok {
				addrs = append(addrs, srv.String())
			}
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("-%s: the userspace stack has no IPv%s address", n.c.family, n.c.family)
		}
		return addrs, nil
	}
	one := func(listen string) ([]string, error) {
		a, err := n.expose(listen, port)
		if err != nil {
			return nil, err
		}
		return []string{a}, nil
	}
	if listen != "" {
		return one(listen)
	}
	p := strconv.Itoa(port)
	switch n.c.family {
	case "4":
		return one(net.JoinHostPort("127.0.0.1", p))
	case "6":
		return one(net.JoinHostPort("::1", p))
	}
	addrs, err := one(net.JoinHostPort("127.0.0.1", p))
	if err != nil {
		return nil, err
	}
	if _, ok := n.serverAddr(true, port); ok {
		if a, err := n.expose(net.JoinHostPort("::1", p), port); err != nil {
			n.c.log.Debug("enaperf: no IPv6 forward from the host", "err", err)
		} else {
			addrs = append(addrs, a)
		}
	}
	return addrs, nil
}

// expose forwards one host address to the server.
func (n *enaNet) expose(listen string, port int) (string, error) {
	ap, err := netip.ParseAddrPort(listen)
	if err != nil {
		return "", fmt.Errorf("--listen %q: want IP:PORT, e.g. 127.0.0.1:5201 or [::1]:5201", listen)
	}
	v6 := ap.Addr().Unmap().Is6()
	srv, ok := n.serverAddr(v6, port)
	if !ok {
		if srv, ok = n.serverAddr(!v6, port); !ok {
			return "", errors.New("the userspace stack has no address yet")
		}
	}
	if (n.c.family == "6" && !srv.Addr().Is6()) || (n.c.family == "4" && srv.Addr().Is6()) {
		return "", fmt.Errorf("-%s: the userspace stack has no IPv%s address", n.c.family, n.c.family)
	}
	// The family the server is reached over, for the MSS and the dials.
	v6 = srv.Addr().Is6()
	family := "4"
	hdr := 40
	if v6 {
		family, hdr = "6", 60
	}
	ln, err := listenTCPWithMSS(listen, int(n.host.Stack.Endpoint.MTU())-hdr)
	if err != nil {
		return "", fmt.Errorf("--listen: %w", err)
	}
	pc, err := net.ListenPacket("udp", ln.Addr().String())
	if err != nil {
		ln.Close()
		return "", fmt.Errorf("--listen (UDP): %w", err)
	}
	od := &orderedDialer{d: gvstack.Dialer{Stack: n.host.VPC.Stack}, target: func() (netip.AddrPort, error) {
		if a, ok := n.serverAddr(v6, port); ok {
			return a, nil
		}
		return netip.AddrPort{}, fmt.Errorf("the userspace stack has no IPv%s address now", family)
	}}
	n.fwd.TCP(ln, od.dial)
	vd := vpc.Dialer{Stack: n.host.VPC.Stack}
	if v6 {
		n.fwd.UDP(pc, vd.UDPTo6(n.host.Stack, uint16(port)))
	} else {
		n.fwd.UDP(pc, vd.UDPTo(srv))
	}
	n.c.log.Debug("enaperf: forwarding the host to the simulated ENA", "host", ln.Addr(), "server", srv)
	return ln.Addr().String(), nil
}

// ClientTarget: on the simulated device, HOST is on the host network, so
// the VPC router forwards the port (TCP and UDP) on its address of HOST's
// family to HOST:PORT and the client dials the router. On a real device
// HOST must be reachable from the ENA's subnet.
func (n *enaNet) ClientTarget(host string, port int) (string, error) {
	ip, err := resolve(host, n.c.family)
	if err != nil {
		return "", err
	}
	target := net.JoinHostPort(ip.String(), strconv.Itoa(port))
	if !n.host.Simulated() {
		return target, nil
	}
	router := n.host.VPC.Stack
	via := netip.AddrPortFrom(n.host.VPC.Router(), uint16(port))
	if ip.Is6() {
		if !n.host.VPC.Router6().IsValid() {
			return "", fmt.Errorf("%s is an IPv6 address and the simulated VPC has no IPv6", ip)
		}
		via = netip.AddrPortFrom(n.host.VPC.Router6(), uint16(port))
	}
	ln, err := router.Listen("tcp", via.String())
	if err != nil {
		return "", fmt.Errorf("VPC forwarder: %w", err)
	}
	pc, err := router.ListenPacket("udp", via.String())
	if err != nil {
		ln.Close()
		return "", fmt.Errorf("VPC forwarder: %w", err)
	}
	var d net.Dialer
	n.fwd.TCP(ln, func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", target) })
	n.fwd.UDP(pc, func() (net.Conn, error) { return d.Dial("udp", target) })
	n.c.log.Debug("enaperf: the VPC router forwards to the host", "via", via, "target", target)
	return via.String(), nil
}

// resolve turns -c HOST into an address of the family -4/-6 asks for
// (IPv4 first when neither is given), as iperf3's getaddrinfo.
func resolve(host, family string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		if (family == "4" && !a.Is4()) || (family == "6" && a.Is4()) {
			return a, fmt.Errorf("-%s: %s is not an IPv%s address", family, a, family)
		}
		return a, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	networks := map[string][]string{"": {"ip4", "ip6"}, "4": {"ip4"}, "6": {"ip6"}}[family]
	var err error
	for _, nw := range networks {
		var as []netip.Addr
		if as, err = net.DefaultResolver.LookupNetIP(ctx, nw, host); err == nil && len(as) > 0 {
			return as[0].Unmap(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("resolving %q: %v", host, err)
}
