// Package gvstack opens iperf3 connections on a userspace (gVisor)
// stack so that iperf3 sees the TCP statistics and socket options the
// kernel gives it: each TCP connection keeps its endpoint, which reports
// retransmits, congestion window and RTT (iperf3.TCPInfoer) and takes -w,
// -M, -N, -C and -S (iperf3.OptionSetter, iperf3.OptionDialer).
package gvstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/enanet/enanet/internal/iperf3"
	"github.com/enanet/enanet/link"
	"github.com/enanet/enanet/link/vpc"
)

// stackConn is a TCP connection on the userspace stack that keeps its
// endpoint, so iperf3 can read gVisor's TCP statistics (retransmits,
// congestion window, RTT) and set -w, -M, -N, -C and -S on it.
type stackConn struct {
	*gonet.TCPConn
	ep   tcpip.Endpoint
	pmtu int
	// segsAtOpen is the count of segments received when the
	// connection was established (the SYN-ACK, for a dialed one).
	segsAtOpen uint64
}

func newStackConn(wq *waiter.Queue, ep tcpip.Endpoint, pmtu int) *stackConn {
	c := &stackConn{TCPConn: gonet.NewTCPConn(wq, ep), ep: ep, pmtu: pmtu}
	c.segsAtOpen = c.segmentsReceived()
	return c
}

func (c *stackConn) segmentsReceived() uint64 {
	if st, ok := c.ep.Stats().(*tcp.Stats); ok {
		return st.SegmentsReceived.Value()
	}
	return 0
}

// WaitAcked waits until the peer has sent a segment since the connection
// was established: for a dialed connection whose peer speaks only when
// spoken to (iperf3's server, before a test starts), that is its
// acknowledgement of the first bytes written, which its TCP sends only
// once the connection is in its accept queue. gVisor's tcpip.Endpoint
// reports no count of unacknowledged bytes (TIOCOUTQ), hence the segment
// count; a retransmitted SYN-ACK would count too.
func (c *stackConn) WaitAcked(ctx context.Context) error {
	return iperf3.PollUntil(ctx, func() bool { return c.segmentsReceived() > c.segsAtOpen })
}

// TCPInfo reads gVisor's per-endpoint TCP state and counters. SndWnd
// stays 0: gVisor keeps the peer's window in its sender state, which its
// API shows only to a TCP probe (tcp.NewProtocolProbe) that is fixed at
// stack creation and copies every endpoint's whole state, allocating, on
// every segment received; tcpip.TCPInfoOption has no window.
func (c *stackConn) TCPInfo() (iperf3.TCPInfo, error) {
	var ti tcpip.TCPInfoOption
	if err := c.ep.GetSockOpt(&ti); err != nil {
		return iperf3.TCPInfo{}, errors.New(err.String())
	}
	info := iperf3.TCPInfo{RTT: ti.RTT, RTTVar: ti.RTTVar, PMTU: c.pmtu}
	if mss, err := c.ep.GetSockOptInt(tcpip.MaxSegOption); err == nil {
		info.SndCwnd = int64(ti.SndCwnd) * int64(mss)
	}
	if st, ok := c.ep.Stats().(*tcp.Stats); ok {
		info.Retransmits = st.SendErrors.Retransmits.Value()
	}
	var cc tcpip.CongestionControlOption
	if err := c.ep.GetSockOpt(&cc); err == nil {
		info.Congestion = string(cc)
	}
	return info, nil
}

// SetSocketOptions applies options to an open connection.
func (c *stackConn) SetSocketOptions(o iperf3.SocketOptions) error {
	return setEndpointOptions(c.ep, o)
}

// BufferSizes reports the endpoint's send and receive buffer sizes.
func (c *stackConn) BufferSizes() (int, int) {
	so := c.ep.SocketOptions()
	return int(so.GetSendBufferSize()), int(so.GetReceiveBufferSize())
}

// MSS reports the endpoint's maximum segment size.
func (c *stackConn) MSS() int {
	mss, err := c.ep.GetSockOptInt(tcpip.MaxSegOption)
	if err != nil {
		return 0
	}
	return mss
}

// setEndpointOptions is iperf3's set-socket-options step on gVisor.
func setEndpointOptions(ep tcpip.Endpoint, o iperf3.SocketOptions) error {
	so := ep.SocketOptions()
	if o.Window > 0 {
		so.SetSendBufferSize(int64(o.Window), true)
		so.SetReceiveBufferSize(int64(o.Window), true)
	}
	if o.MSS > 0 {
		if err := ep.SetSockOptInt(tcpip.MaxSegOption, o.MSS); err != nil {
			return fmt.Errorf("-M %d: %s", o.MSS, err)
		}
	}
	if o.NoDelay {
		so.SetDelayOption(false)
	}
	if o.Congestion != "" {
		cc := tcpip.CongestionControlOption(o.Congestion)
		if err := ep.SetSockOpt(&cc); err != nil {
			return fmt.Errorf("-C %s: the userspace stack has reno and cubic", o.Congestion)
		}
	}
	if o.TOS != 0 {
		if err := ep.SetSockOptInt(tcpip.IPv4TOSOption, o.TOS); err != nil {
			return fmt.Errorf("-S %#x: %s", o.TOS, err)
		}
	}
	return nil
}

// Dialer dials the iperf3 connections on a userspace stack: TCP with
// its endpoint kept (stackConn), UDP through vpc.Dialer.
type Dialer struct {
	// Stack is the userspace stack to dial from.
	Stack *link.Stack
}

// DialContext dials with no options.
func (d Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return d.DialOptions(ctx, network, "", address, iperf3.SocketOptions{})
}

// DialOptions binds local (-B, --cport), applies o and connects.
func (d Dialer) DialOptions(ctx context.Context, network, local, address string, o iperf3.SocketOptions) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("the userspace stack dials IP:port only, not %q", address)
	}
	if want := network[len(network)-1]; (want == '4' || want == '6') && ap.Addr().Unmap().Is4() != (want == '4') {
		return nil, fmt.Errorf("-%c: %v is not an IPv%c address", want, ap.Addr(), want)
	}
	remote, proto := vpc.FullAddress(d.Stack, ap)
	var bind tcpip.FullAddress
	if local != "" {
		if bind, err = localAddress(d.Stack, local); err != nil {
			return nil, err
		}
	}
	switch network {
	case "udp", "udp4", "udp6":
		var lp *tcpip.FullAddress
		if local != "" {
			lp = &bind
		}
		c, err := gonet.DialUDP(d.Stack.Stack, lp, &remote, proto)
		if err != nil {
			return nil, fmt.Errorf("dialing UDP %v: %w", ap, err)
		}
		if o.TOS != 0 {
			c.Close()
			return nil, errors.New("-S applies to TCP only on the userspace stack")
		}
		return c, nil
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("network %q not supported", network)
	}
	var wq waiter.Queue
	ep, terr := d.Stack.Stack.NewEndpoint(tcp.ProtocolNumber, proto, &wq)
	if terr != nil {
		return nil, fmt.Errorf("opening a TCP endpoint: %s", terr)
	}
	if err := setEndpointOptions(ep, o); err != nil {
		ep.Close()
		return nil, err
	}
	if local != "" {
		if terr := ep.Bind(bind); terr != nil {
			ep.Close()
			return nil, fmt.Errorf("binding %s: %s", local, terr)
		}
	}
	cerr, terr := link.Connect(ctx, ep, &wq, remote)
	if cerr != nil {
		ep.Close()
		return nil, cerr
	}
	if terr != nil {
		ep.Close()
		if _, ok := terr.(*tcpip.ErrConnectionRefused); ok {
			return nil, fmt.Errorf("connect %v: %w", ap, ErrConnRefused)
		}
		return nil, fmt.Errorf("connect %v: %s", ap, terr)
	}
	return newStackConn(&wq, ep, int(d.Stack.Endpoint.MTU())), nil
}

// ErrConnRefused is the cause of a dial the peer refused.
var ErrConnRefused = errors.New("connection refused")

// localAddress parses -B/--cport's host:port for the stack: the host, if
// given, must be an address of this stack's NIC.
func localAddress(st *link.Stack, hostport string) (tcpip.FullAddress, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return tcpip.FullAddress{}, fmt.Errorf("local address %q: want HOST:PORT", hostport)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return tcpip.FullAddress{}, fmt.Errorf("local port %q: want 0..65535", port)
	}
	fa := tcpip.FullAddress{NIC: st.NICID, Port: uint16(p)}
	if host != "" {
		a, err := netip.ParseAddr(host)
		if err != nil {
			return fa, fmt.Errorf("-B %q: want an IP address of the userspace stack", host)
		}
		if !hasAddress(st, a) {
			return fa, noSuchAddress(st, a)
		}
		fa.Addr = tcpipAddr(a)
	}
	return fa, nil
}

// noSuchAddress is -B's error for an address the stack does not have,
// naming the ones it has.
func noSuchAddress(st *link.Stack, a netip.Addr) error {
	var have []string
	for _, p := range []func() (netip.Prefix, netip.Addr){st.Addr, st.Addr6} {
		if pfx, _ := p(); pfx.IsValid() {
			have = append(have, pfx.Addr().String())
		}
	}
	return fmt.Errorf("-B %s: the userspace stack has no such address (it has %s)", a, strings.Join(have, " and "))
}

func hasAddress(st *link.Stack, a netip.Addr) bool {
	addrs := st.Stack.AllAddresses()[st.NICID]
	want := tcpipAddr(a)
	for _, pa := range addrs {
		if pa.AddressWithPrefix.Address == want {
			return true
		}
	}
	return false
}

// Listener accepts TCP connections on the userspace stack as
// stackConns. It is link.Stack.Listen's listener (one IPv4 and one
// IPv6-only endpoint behind ":port") with each accepted connection's
// endpoint looked up, so iperf3 sees its TCP statistics.
type Listener struct {
	st *link.Stack
	net.Listener
}

// Listen listens on port as iperf3 -s does: on every address of both
// families when bind and family are empty, of one family with family "4"
// or "6" (-4, -6: IPv6 only, as iperf3's IPV6_V6ONLY), or on bind's
// address only (-B, an address of this stack).
func Listen(st *link.Stack, bind, family string, port int) (*Listener, error) {
	network := "tcp"
	switch family {
	case "", "4", "6":
		network += family
	default:
		return nil, fmt.Errorf("address family %q: want 4 or 6", family)
	}
	if bind != "" {
		a, err := netip.ParseAddr(bind)
		if err != nil {
			return nil, fmt.Errorf("-B %q: want an IP address of the userspace stack", bind)
		}
		if (family == "4" && !a.Unmap().Is4()) || (family == "6" && a.Unmap().Is4()) {
			return nil, fmt.Errorf("-B %s is not an IPv%s address", a, family)
		}
		if !hasAddress(st, a) {
			return nil, noSuchAddress(st, a)
		}
	}
	ln, err := st.Listen(network, net.JoinHostPort(bind, strconv.Itoa(port)))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("port %d on the userspace stack is taken (%w); pick another with -p", port, err)
		}
		return nil, err
	}
	return &Listener{st: st, Listener: ln}, nil
}

// Accept waits for the next connection.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*gonet.TCPConn)
	if !ok {
		return c, nil
	}
	ep := endpointOf(l.st, tc)
	if ep == nil {
		// Reset and removed from the stack already: the connection
		// fails on first use, without TCP statistics.
		return c, nil
	}
	c2 := &stackConn{TCPConn: tc, ep: ep, pmtu: int(l.st.Endpoint.MTU())}
	c2.segsAtOpen = c2.segmentsReceived()
	return c2, nil
}

// endpointOf finds the endpoint of c among the stack's registered
// endpoints by its four-tuple: gonet keeps its endpoint private, and
// link's listeners hand out gonet connections.
func endpointOf(st *link.Stack, c *gonet.TCPConn) tcpip.Endpoint {
	local, ok1 := c.LocalAddr().(*net.TCPAddr)
	remote, ok2 := c.RemoteAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return nil
	}
	want := stack.TransportEndpointID{
		LocalPort: uint16(local.Port), LocalAddress: tcpipAddr(local.AddrPort().Addr()),
		RemotePort: uint16(remote.Port), RemoteAddress: tcpipAddr(remote.AddrPort().Addr()),
	}
	for _, te := range st.Stack.RegisteredEndpoints() {
		ep, ok := te.(tcpip.Endpoint)
		if !ok {
			continue
		}
		if info, ok := ep.Info().(*stack.TransportEndpointInfo); ok && info.TransProto == tcp.ProtocolNumber && info.ID == want {
			return ep
		}
	}
	return nil
}

// tcpipAddr is a as netstack spells it; an IPv4-mapped IPv6 address (as
// net.TCPAddr.AddrPort gives for a 16-byte IPv4 net.IP) becomes IPv4.
func tcpipAddr(a netip.Addr) tcpip.Address { return tcpip.AddrFromSlice(a.Unmap().AsSlice()) }
