// Package vpc is the far end of a simulated ENA's wire and the plumbing
// that connects the host to it.
//
// VPC is a small stand-in for an EC2 VPC: a second userspace stack on a
// software NIC (simnic.NIC) that answers DHCP and acts as the subnet's
// router, with the addresses a default VPC uses (a /20, the router at
// base+1, leases from .10). Forwarder splices host sockets to sockets on a
// userspace stack, TCP (with half-closes) and UDP (one flow per source), so
// host tools such as curl and iperf3 reach a server on the simulated ENA,
// and a client on the simulated ENA reaches host servers through the
// router:
//
//	near, far := enasim.NewPair()
//	v, _ := vpc.New(far, vpc.Config{})
//	// ... enasim.New(enasim.Config{Wire: near}), ena.Open, link.NewStack ...
//	f := vpc.NewForwarder(nil)
//	ln, _ := net.Listen("tcp", "127.0.0.1:8080")
//	f.TCP(ln, vpc.Dialer{Stack: v.Stack}.TCPTo(server)) // server: the ENA stack's address and port
//	ln6, _ := net.Listen("tcp", "[::1]:8080")
//	f.TCP(ln6, vpc.Dialer{Stack: v.Stack}.TCPTo6(st, 80)) // st: the ENA stack; its DHCPv6 address
//
// Nothing here knows the driver: the package depends on link and the wire
// type of enasim only.
package vpc

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/link"
	"github.com/enanet/enanet/link/simnic"
)

// The default VPC's addressing (Config.Router picks another subnet): a /20
// like a default VPC subnet, the router at base+1 as on EC2, DHCP leases
// from .10 (EC2 reserves the first four addresses of a subnet).
var (
	// RouterPrefix is the router's address and the subnet's prefix.
	RouterPrefix = netip.MustParsePrefix("172.31.0.1/20")
	// FirstLease is the first address the DHCP server hands out.
	FirstLease = netip.MustParseAddr("172.31.0.10")
	// RouterMAC is the router's locally administered MAC address.
	RouterMAC = [6]byte{0x02, 0xec, 0x2f, 0x00, 0x00, 0x01}
)

// DefaultTCPBuffer is the router stack's TCP send and receive buffer cap.
//
// The simulated wire has no line rate: the router's qdisc hands the ENA a
// whole congestion window of frames in one go, and the ENA can hold only
// what its Rx ring has posted (1024 buffers by default). gVisor's buffer
// auto-tuning grows a fast flow's window to several MiB, so one burst
// overran the ring and lost thousands of frames at once; the sender then
// fell into RTO recovery, where gVisor resends a couple of segments per
// 200 ms minimum RTO, and enaperf -c -R dropped from 1 Gbit/s to tens of
// kbit/s for seconds. Bytes in flight never exceed the sender's send
// buffer (it holds unacknowledged data) nor the receiver's window (the
// receive buffer), so 1 MiB on the router keeps one flow under 800 frames
// in flight either way: it fits the ENA's Rx ring and the router NIC's,
// and is still many round trips' worth on this path.
const DefaultTCPBuffer = 1 << 20

// Config tunes a VPC. The zero value is the default VPC.
type Config struct {
	// Router is the router's address and the subnet's prefix, e.g.
	// 10.0.1.1/24; the zero value means RouterPrefix. Like an EC2 subnet
	// the prefix is IPv4, /16 to /28. DHCP leases start at the subnet's
	// base + 10.
	Router netip.Prefix
	// MTU is the router NIC's L3 MTU; 0 means 9001, what a VPC carries.
	// Set it to the ENA's MTU when UDP datagrams larger than the ENA's
	// frames come from the host: the router then fragments them to sizes
	// the ENA accepts instead of sending frames the device drops.
	MTU int
	// Leases is the size of the DHCP pool; 0 means 100.
	Leases int
	// RxRing is the router NIC's Rx queue length in frames; 0 means the
	// simnic default (1024).
	RxRing int
	// TCPBuffer caps the router stack's TCP send and receive buffers, in
	// bytes; 0 means DefaultTCPBuffer. See DefaultTCPBuffer for why.
	TCPBuffer int
	// Router6 is the router's global IPv6 address and the subnet's IPv6
	// prefix, e.g. 2600:1f18:0:1::1/64; the zero value means
	// RouterPrefix6. Router Advertisements announce its prefix and
	// DHCPv6 leases start at the prefix's base + 0x10 (CheckSubnet6).
	Router6 netip.Prefix
	// NoIPv6 leaves the VPC IPv4-only: no Router Advertisements, no
	// DHCPv6 (see ipv6.go for what it offers otherwise).
	NoIPv6 bool
	// DHCPv6Lifetime is the preferred and valid lifetime of DHCPv6
	// addresses; 0 means 450 s, as EC2 gives (DHCPv6ServerConfig.Lifetime).
	DHCPv6Lifetime time.Duration
	// Logger receives the router stack's events; nil means slog.Default().
	Logger *slog.Logger
}

// VPC is the simulated VPC: a router stack with a DHCP server on the far
// end of a wire.
type VPC struct {
	// Stack is the router's userspace stack, at RouterPrefix. Dial or
	// listen on it to play a host elsewhere in the VPC.
	Stack *link.Stack
	// NIC is the router's software NIC (statistics, link changes).
	NIC *simnic.NIC
	// DHCP is the subnet's DHCP server (leases by MAC).
	DHCP *DHCPServer
	// RA and DHCPv6 give the subnet IPv6 as EC2 does (nil with NoIPv6):
	// Router Advertisements with the managed flag, addresses by DHCPv6.
	RA     *RouterAdvertiser
	DHCPv6 *DHCPv6Server

	router  netip.Prefix
	first   netip.Addr
	router6 netip.Prefix

	services *services // resolver and metadata (services.go)
}

// CheckSubnet says why router (address and prefix) cannot be a simulated
// VPC's router, or returns nil: the prefix must be IPv4, /16 to /28 (the
// sizes EC2 allows for a subnet), and the address neither the subnet's
// network address nor its broadcast address.
func CheckSubnet(router netip.Prefix) error {
	if !router.IsValid() || !router.Addr().Is4() {
		return fmt.Errorf("vpc: subnet %v: the simulated VPC is IPv4 only", router.Masked())
	}
	if router.Bits() < 16 || router.Bits() > 28 {
		return fmt.Errorf("vpc: subnet %v: the simulated VPC takes subnets from /16 to /28, as EC2 does", router.Masked())
	}
	a := router.Addr()
	if a == router.Masked().Addr() || a == lastAddr(router) {
		return fmt.Errorf("vpc: router address %v is the network or broadcast address of %v", a, router.Masked())
	}
	return nil
}

// CheckSubnet6 says why router6 (address and prefix) cannot be a
// simulated VPC's IPv6 router, or returns nil: the prefix must be a global
// or unique local IPv6 prefix of /64 (the size EC2 gives a subnet, and the
// one SLAAC and Router Advertisements expect), and the address not the
// prefix's base.
func CheckSubnet6(router6 netip.Prefix) error {
	a := router6.Addr()
	if !router6.IsValid() || !a.Is6() || a.Is4In6() {
		return fmt.Errorf("vpc: IPv6 subnet %v: want an IPv6 prefix", router6)
	}
	if router6.Bits() != 64 {
		return fmt.Errorf("vpc: IPv6 subnet %v: the simulated VPC takes /64 IPv6 subnets, as EC2 does", router6.Masked())
	}
	if a.IsLinkLocalUnicast() || a.IsMulticast() || a.IsLoopback() || a.IsUnspecified() {
		return fmt.Errorf("vpc: IPv6 subnet %v: want a global or unique local prefix", router6.Masked())
	}
	if a == router6.Masked().Addr() {
		return fmt.Errorf("vpc: IPv6 router address %v is the subnet's base address", a)
	}
	return nil
}

// lastAddr is the highest address of p (the broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n |= 1<<(32-p.Bits()) - 1
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// nthAddr is p's network address plus n.
func nthAddr(p netip.Prefix, n int) netip.Addr {
	a := p.Masked().Addr()
	for range n {
		a = a.Next()
	}
	return a
}

// New puts the router and DHCP server on wire, the far end of a simulated
// ENA's wire. On error, wire is closed. Close stops it all.
func New(wire enasim.Wire, cfg Config) (*VPC, error) {
	if cfg.MTU == 0 {
		cfg.MTU = 9001
	}
	if cfg.Leases <= 0 {
		cfg.Leases = 100
	}
	if cfg.TCPBuffer <= 0 {
		cfg.TCPBuffer = DefaultTCPBuffer
	}
	if cfg.MTU < 576 || cfg.MTU > 9001 {
		wire.Close()
		return nil, fmt.Errorf("vpc: MTU %d outside 576..9001", cfg.MTU)
	}
	if !cfg.Router.IsValid() {
		cfg.Router = RouterPrefix
	}
	if err := CheckSubnet(cfg.Router); err != nil {
		wire.Close()
		return nil, err
	}
	if !cfg.Router6.IsValid() {
		cfg.Router6 = RouterPrefix6
	}
	if err := CheckSubnet6(cfg.Router6); err != nil && !cfg.NoIPv6 {
		wire.Close()
		return nil, err
	}
	// Leases from base + 10 up to the address before the broadcast one.
	size := 1 << (32 - cfg.Router.Bits())
	cfg.Leases = min(cfg.Leases, size-11)
	v := &VPC{router: cfg.Router, first: nthAddr(cfg.Router, 10), router6: cfg.Router6}
	v.NIC = simnic.New(wire, simnic.Config{MAC: RouterMAC, MaxMTU: 9001, MTU: cfg.MTU, RxRing: cfg.RxRing,
		Offloads: link.Offloads{TxCsumIPv4: true, TxL4CsumIPv4Partial: true, TxL4CsumIPv6Partial: true, RxCsumIPv4: true, RxCsumL4: true}})
	var err error
	// The router resolves through the VPC resolver (services.go).
	ropts := link.StackOptions{Addr: cfg.Router, NICName: "vpc0", Logger: cfg.Logger, NoIPv6: cfg.NoIPv6, IPv6Router: true,
		DNS: []netip.Addr{nthAddr(cfg.Router, 2)}}
	if !cfg.NoIPv6 {
		ropts.Addr6 = cfg.Router6
	}
	if v.Stack, err = link.NewStack(v.NIC, ropts); err != nil {
		v.Close()
		return nil, fmt.Errorf("vpc: router stack: %w", err)
	}
	// Fixed-range buffers, see DefaultTCPBuffer: Default == Max, and a
	// buffer of the maximum from the start.
	snd := tcpip.TCPSendBufferSizeRangeOption{Min: 4096, Default: cfg.TCPBuffer, Max: cfg.TCPBuffer}
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: 4096, Default: cfg.TCPBuffer, Max: cfg.TCPBuffer}
	if terr := v.Stack.Stack.SetTransportProtocolOption(tcp.ProtocolNumber, &snd); terr != nil {
		v.Close()
		return nil, fmt.Errorf("vpc: setting the TCP send buffer to %d bytes: %s", cfg.TCPBuffer, terr)
	}
	if terr := v.Stack.Stack.SetTransportProtocolOption(tcp.ProtocolNumber, &rcv); terr != nil {
		v.Close()
		return nil, fmt.Errorf("vpc: setting the TCP receive buffer to %d bytes: %s", cfg.TCPBuffer, terr)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if v.services, err = startServices(v.Stack, cfg.Router, log); err != nil {
		v.Close()
		return nil, err
	}
	if v.DHCP, err = ServeDHCP(v.Stack, DHCPServerConfig{First: v.first, Count: cfg.Leases, Router: cfg.Router.Addr(),
		DNS: []netip.Addr{v.services.resolver}}); err != nil {
		v.Close()
		return nil, err // already says "vpc: DHCP server: ..."
	}
	if err := v.serveNames(cfg); err != nil {
		v.Close()
		return nil, err
	}
	return v, nil
}

// Router is the router's address, the default gateway DHCP hands out.
func (v *VPC) Router() netip.Addr { return v.router.Addr() }

// Subnet is the router's address with the subnet's prefix length.
func (v *VPC) Subnet() netip.Prefix { return v.router }

// FirstLease is the first address the DHCP server hands out.
func (v *VPC) FirstLease() netip.Addr { return v.first }

// MAC is the router's MAC address.
func (v *VPC) MAC() [6]byte { return RouterMAC }

// Close stops the DHCP server and the router stack and closes the wire.
// Safe on a partly built VPC.
func (v *VPC) Close() {
	v.closeIPv6()
	if v.DHCP != nil {
		v.DHCP.Close()
	}
	v.services.close()
	if v.Stack != nil {
		v.Stack.Close()
	}
	if v.NIC != nil {
		v.NIC.Close()
	}
}
