package main

import (
	"context"
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
	return gvstack.Listen(n.host.Stack, n.c.bind, port)
}

func (n *enaNet) ListenUDP(port int) (net.PacketConn, error) {
	return n.host.Stack.ListenPacket("udp", ":"+strconv.Itoa(port)) // IPv4 and IPv6
}

// Expose forwards listen (TCP and UDP) on the host through the VPC to the
// server on the simulated ENA. A real device is reached directly.
func (n *enaNet) Expose(_ context.Context, listen string, port int) (string, error) {
	srv := n.host.Addr(uint16(port))
	if !n.host.Simulated() {
		return srv.String(), nil
	}
	ln, err := listenTCPWithMSS(listen, int(n.host.Stack.Endpoint.MTU())-40)
	if err != nil {
		return "", fmt.Errorf("--listen: %w", err)
	}
	pc, err := net.ListenPacket("udp", ln.Addr().String())
	if err != nil {
		ln.Close()
		return "", fmt.Errorf("--listen (UDP): %w", err)
	}
	d := vpc.Dialer{Stack: n.host.VPC.Stack}
	n.fwd.TCP(ln, d.TCPTo(srv))
	n.fwd.UDP(pc, d.UDPTo(srv))
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
	if !n.host.Simulated() {
		return target, nil
	}
	router := n.host.VPC.Stack
	ln, err := router.ListenTCP(uint16(port))
	if err != nil {
		return "", fmt.Errorf("VPC forwarder: %w", err)
	}
	pc, err := vpc.ListenUDP(router, uint16(port))
	if err != nil {
		ln.Close()
		return "", fmt.Errorf("VPC forwarder: %w", err)
	}
	var d net.Dialer
	n.fwd.TCP(ln, func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", target) })
	n.fwd.UDP(pc, func() (net.Conn, error) { return d.Dial("udp", target) })
	via := netip.AddrPortFrom(n.host.VPC.Router(), uint16(port)).String()
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
