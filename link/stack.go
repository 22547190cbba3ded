package link

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// StackOptions configure NewStack. Give an IPv4 address (Addr, static,
// with Gateway for a default route, or DHCP), an IPv6 address (Addr6 or
// DHCPv6), or both.
type StackOptions struct {
	Addr    netip.Prefix // e.g. 10.0.1.5/24
	Gateway netip.Addr   // default route; zero means on-link only
	// DHCP obtains address, mask and router from a DHCP server (as an ENI
	// does on EC2) and renews the lease in the background.
	DHCP        bool
	DHCPTimeout time.Duration // whole acquisition; 0 means 30 s
	// Addr6 is a static IPv6 address with its on-link prefix, e.g.
	// 2600:1f18:aaaa:bbbb::5/64; Gateway6 its default route (zero: the
	// router from Router Advertisements). See ipv6.go.
	Addr6    netip.Prefix
	Gateway6 netip.Addr
	// DHCPv6 makes NewStack wait (DHCPTimeout) for a DHCPv6 address.
	// Without it and without Addr6 the stack still follows Router
	// Advertisements and, when one has the managed flag (as on EC2),
	// gets its IPv6 address by DHCPv6 in the background: dual stack
	// wherever the VPC offers IPv6.
	DHCPv6 bool
	// NoIPv6 leaves IPv6 off: no link-local address, RAs ignored.
	NoIPv6 bool
	// IPv6Router is for a stack that is itself the link's IPv6 router
	// (the simulated VPC's): it neither solicits nor follows Router
	// Advertisements.
	IPv6Router bool
	// DNS names the DNS servers Resolver and Dial use, replacing those
	// from DHCP, DHCPv6 and Router Advertisements.
	DNS []netip.Addr
	// Endpoint tunes the link endpoint (GSO, GRO, offloads, pcap).
	Endpoint Options
	// QueueLen is the qdisc length per Tx queue; 0 means
	// DefaultQueueLen.
	QueueLen int
	// NoQDisc writes from the sending goroutine instead of through the
	// queueing discipline.
	NoQDisc bool
	// NoTxBypass sends every frame through the queueing discipline's
	// goroutines, as gVisor's fifo does; by default a frame shorter than
	// a full-sized one that finds its queue idle is written by the sender
	// itself (see txQDisc).
	NoTxBypass bool
	// NICName names the NIC in the stack; "" means "ena0".
	NICName string
	Logger  *slog.Logger
}

// Stack is a gVisor network stack with one NIC over a device. Use Stack
// (the gVisor stack) directly, or the Listen/Dial helpers.
type Stack struct {
	Stack    *stack.Stack
	NICID    tcpip.NICID
	Endpoint *Endpoint

	qdisc *txQDisc // nil with StackOptions.NoQDisc
	log   *slog.Logger

	mu    sync.Mutex
	addr  netip.Prefix
	gw    netip.Addr
	lease *Lease
	// routes4 are Configure's IPv4 routes; installRoutesLocked merges
	// them with the IPv6 ones.
	routes4   []tcpip.Route
	v6        ipv6State
	dhcp6Auto bool // start DHCPv6 when an RA has the managed flag
	dnsStatic []netip.Addr
	dnsNext   atomic.Uint32
	ndp       *ndpEvents

	stop chan struct{}
	wg   sync.WaitGroup // DHCP and DHCPv6 clients, the NDP event goroutine
	once sync.Once
}

// NewNetstack returns a gVisor stack with the protocols and TCP settings
// NewStack uses (IPv4 with ARP, IPv6, TCP, UDP, ICMP, HandleLocal, TCP
// buffers of 1 MiB by default and 8 MiB at most, SACK loss recovery without
// RACK), without a NIC. The
// benchmarks build their baselines on it so they differ from a NewStack
// stack only in the link.
func NewNetstack() *stack.Stack {
	return newNetstack(ipv6.NewProtocol)
}

func newNetstack(v6 stack.NetworkProtocolFactory) *stack.Stack {
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, v6, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
		HandleLocal:        true,
	})
	setTCPOptions(s)
	return s
}

// setTCPOptions gives s NewNetstack's TCP settings (also used by tests that
// build a stack with gVisor's TCP probe).
func setTCPOptions(s *stack.Stack) {
	// Room for one flow's bandwidth-delay product at a few Gbit/s.
	sndOpt := tcpip.TCPSendBufferSizeRangeOption{Min: 4096, Default: 1 << 20, Max: 8 << 20}
	rcvOpt := tcpip.TCPReceiveBufferSizeRangeOption{Min: 4096, Default: 1 << 20, Max: 8 << 20}
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &sndOpt)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &rcvOpt)
	// Loss recovery by SACK (RFC 6675) without RACK loss detection, chosen
	// by measurement (README, "TCP loss recovery"): with gVisor's RACK a
	// hole of a few hundred segments or more (what a device reset costs
	// the frames in flight to it) fell back to retransmission timeouts that
	// repaired about one segment per 200 ms, for minutes; RFC 6675 repairs
	// it in one round of recovery. SACK and Reno stay gVisor's defaults.
	// Reordering costs every setting measured alike: gVisor takes each
	// late segment for a loss and never undoes the cut
	// (TestGVisorReorderingCutsCwnd).
	recovery := tcpip.TCPRecovery(0)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &recovery)
}

// DefaultQueueLen is the default qdisc length per Tx queue, in packets.
// It covers a TCP send buffer's worth of MTU-sized segments (gVisor's 8 MiB
// maximum / ~1 KiB): with 1000, GSO bursts overflowed the qdisc, each drop
// also abandoned the rest of that batch, and TCP crawled through hundreds of
// retransmissions (seen in the kernel-peer e2e tests).
const DefaultQueueLen = 8192

// NewStack builds a stack on nic: IPv4 (+ARP), IPv6, TCP, UDP and ICMP, one
// NIC with a fifo qdisc of one queue per Tx ring (so each ring has a
// single feeder and frames are batched per doorbell; a short frame that
// finds its queue idle is written by its sender, see txQDisc), and the
// address from o. The device stays the caller's to close, after Stack.Close.
func NewStack(nic NIC, o StackOptions) (*Stack, error) {
	if !o.DHCP && !o.Addr.IsValid() && !o.DHCPv6 && !o.Addr6.IsValid() {
		return nil, fmt.Errorf("link: NewStack: no address given: set Addr, DHCP, Addr6 or DHCPv6")
	}
	if o.NoIPv6 && (o.DHCPv6 || o.Addr6.IsValid()) {
		return nil, fmt.Errorf("link: NewStack: NoIPv6 excludes Addr6 and DHCPv6")
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if o.Endpoint.Logger == nil {
		o.Endpoint.Logger = log
	}
	ep, err := New(nic, o.Endpoint)
	if err != nil {
		return nil, err
	}
	ndp := &ndpEvents{ch: make(chan ndpEvent, 64)}
	s := newNetstack(ipv6.NewProtocolWithOptions(ipv6Options(ndp, o.NoIPv6, o.IPv6Router)))

	name := o.NICName
	if name == "" {
		name = "ena0"
	}
	nicOpts := stack.NICOptions{Name: name}
	var qd *txQDisc
	if !o.NoQDisc {
		ql := o.QueueLen
		if ql <= 0 {
			ql = DefaultQueueLen
		}
		qd = newTxQDisc(ep, ep.NumQueues(), ql, !o.NoTxBypass)
		nicOpts.QDisc = qd
	}
	const id tcpip.NICID = 1
	if err := s.CreateNICWithOptions(id, ep, nicOpts); err != nil {
		if nicOpts.QDisc != nil {
			nicOpts.QDisc.Close()
		}
		s.Destroy()
		return nil, fmt.Errorf("link: creating NIC %s: %s", name, err)
	}
	st := &Stack{Stack: s, NICID: id, Endpoint: ep, qdisc: qd, log: log, stop: make(chan struct{}), ndp: ndp,
		dnsStatic: o.DNS, dhcp6Auto: !o.NoIPv6 && !o.DHCPv6 && !o.Addr6.IsValid()}
	st.wg.Add(1)
	go st.runNDP()
	if err := st.configure(o); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// configure sets NewStack's addresses: IPv4 first, then IPv6.
func (st *Stack) configure(o StackOptions) error {
	if err := st.configure4(o); err != nil {
		return err
	}
	switch {
	case o.Addr6.IsValid():
		return st.Configure6(o.Addr6, o.Gateway6)
	case o.DHCPv6:
		to := o.DHCPTimeout
		if to == 0 {
			to = 30 * time.Second
		}
		ctx, cancel := context.WithTimeout(context.Background(), to)
		l, err := st.acquire6(ctx)
		if err == nil {
			err = st.waitRouter6(ctx)
		}
		cancel()
		if err != nil {
			return err
		}
		st.mu.Lock()
		st.v6.dhcp6Running = true
		st.mu.Unlock()
		st.wg.Add(1)
		go st.dhcp6Loop(l)
	}
	return nil
}

func (st *Stack) configure4(o StackOptions) error {
	if o.DHCP {
		to := o.DHCPTimeout
		if to == 0 {
			to = 30 * time.Second
		}
		ctx, cancel := context.WithTimeout(context.Background(), to)
		lease, err := st.acquire(ctx)
		cancel()
		if err != nil {
			return err
		}
		st.wg.Add(1)
		go st.renewLoop(lease)
		return nil
	}
	if o.Addr.IsValid() {
		return st.Configure(o.Addr, o.Gateway)
	}
	return nil
}

// Configure sets the NIC's IPv4 address and routes: the subnet on-link and,
// if gw is valid, a default route through it. It replaces any previous
// address set by Configure or DHCP.
func (s *Stack) Configure(addr netip.Prefix, gw netip.Addr) error {
	if !addr.Addr().Is4() {
		return fmt.Errorf("link: address %v is not IPv4", addr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addr.IsValid() && s.addr != addr {
		s.Stack.RemoveAddress(s.NICID, tcpip.AddrFrom4(s.addr.Addr().As4()))
	}
	if s.addr != addr {
		pa := tcpip.ProtocolAddress{
			Protocol: ipv4.ProtocolNumber,
			AddressWithPrefix: tcpip.AddressWithPrefix{
				Address:   tcpip.AddrFrom4(addr.Addr().As4()),
				PrefixLen: addr.Bits(),
			},
		}
		if err := s.Stack.AddProtocolAddress(s.NICID, pa, stack.AddressProperties{}); err != nil {
			return fmt.Errorf("link: adding address %v: %s", addr, err)
		}
	}
	subnet := tcpip.AddressWithPrefix{Address: tcpip.AddrFrom4(addr.Masked().Addr().As4()), PrefixLen: addr.Bits()}.Subnet()
	routes := []tcpip.Route{{Destination: subnet, NIC: s.NICID}}
	if gw.IsValid() {
		if !gw.Is4() {
			return fmt.Errorf("link: gateway %v is not IPv4", gw)
		}
		routes = append(routes, tcpip.Route{Destination: header.IPv4EmptySubnet, Gateway: tcpip.AddrFrom4(gw.As4()), NIC: s.NICID})
	}
	s.routes4 = routes
	s.installRoutesLocked()
	s.addr, s.gw = addr, gw
	return nil
}

// Addr returns the configured address and gateway.
func (s *Stack) Addr() (netip.Prefix, netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr, s.gw
}

// Lease returns the current DHCP lease, nil without DHCP.
func (s *Stack) Lease() *Lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lease
}

// ListenTCP listens on the NIC's IPv4 addresses at port. Listen("tcp",
// ":port") takes IPv6 too.
func (s *Stack) ListenTCP(port uint16) (*gonet.TCPListener, error) {
	ln, err := gonet.ListenTCP(s.Stack, tcpip.FullAddress{NIC: s.NICID, Port: port}, ipv4.ProtocolNumber)
	if err != nil {
		return nil, fmt.Errorf("link: listening on TCP port %d: %w", port, err)
	}
	return ln, nil
}

// DialTCP connects to addr through the stack.
func (s *Stack) DialTCP(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	fa := tcpip.FullAddress{NIC: s.NICID, Addr: tcpip.AddrFromSlice(addr.Addr().Unmap().AsSlice()), Port: addr.Port()}
	proto := ipv4.ProtocolNumber
	if addr.Addr().Unmap().Is6() {
		proto = ipv6.ProtocolNumber
	}
	c, err := gonet.DialContextTCP(ctx, s.Stack, fa, proto)
	if err != nil {
		return nil, fmt.Errorf("link: dialing %v: %w", addr, err)
	}
	return c, nil
}

// TxQDiscStats counts how frames left the stack's queueing discipline
// (zero with StackOptions.NoQDisc).
func (s *Stack) TxQDiscStats() TxQDiscStats {
	if s.qdisc == nil {
		return TxQDiscStats{}
	}
	return s.qdisc.stats()
}

// Close stops DHCP renewal and tears the stack down (endpoint included).
// It does not close the device. Stop the application's writers first
// (close listeners and connections, or at least stop writing): gVisor's
// Stack.Destroy holds the stack lock while it waits for the Tx qdisc, and a
// writer still inside the stack can deadlock with it. Incoming traffic
// during Close is fine.
func (s *Stack) Close() {
	s.once.Do(func() {
		close(s.stop)
		s.wg.Wait()
		s.Stack.Destroy()
	})
}
