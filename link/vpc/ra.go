package vpc

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"

	"github.com/enanet/enanet/link"
)

// The simulated VPC's IPv6 addressing. EC2 gives a subnet a /64 of the
// VPC's /56, advertises it on-link with the managed flag, and hands each
// ENI a /128 of it by DHCPv6; the default router is the router's
// link-local address. A unique local prefix stands in for Amazon's.
var (
	// RouterPrefix6 is the router's global IPv6 address and the subnet's
	// /64 (also where the VPC's DNS answers over IPv6).
	RouterPrefix6 = netip.MustParsePrefix("fd00:ec2:0:1::1/64")
	// FirstLease6 is the first address the DHCPv6 server hands out.
	FirstLease6 = netip.MustParseAddr("fd00:ec2:0:1::10")
)

// RAConfig tunes a RouterAdvertiser.
type RAConfig struct {
	// Prefix is advertised on-link (L flag), without autonomous
	// configuration (A clear): addresses come from DHCPv6.
	Prefix netip.Prefix
	// Managed sets the M flag (use DHCPv6 for addresses), as on EC2.
	Managed bool
	// MTU is advertised in an MTU option; 0 leaves it out.
	MTU int
	// Interval between unsolicited advertisements; 0 means 10 s. A Router
	// Solicitation is answered within SolicitPoll.
	Interval time.Duration
}

// SolicitPoll is how often the advertiser looks for Router Solicitations.
const SolicitPoll = 50 * time.Millisecond

// RouterAdvertiser sends ICMPv6 Router Advertisements (RFC 4861 section 4.2)
// from a router stack's link-local address to all nodes: periodically and
// soon after a host solicits one. netstack does not send advertisements
// itself, and a host stack drops solicitations without telling anyone but
// its counters, so the advertiser watches the count of received Router
// Solicitations and answers when it moves.
type RouterAdvertiser struct {
	s   *link.Stack
	cfg RAConfig
	ra  []byte // the IPv6 packet, built once

	stop chan struct{}
	wg   sync.WaitGroup
	sent uint64
	mu   sync.Mutex
}

// AdvertiseRouter starts sending advertisements on s, whose NIC must have
// its link-local address (IPv6 on). Close stops it.
func AdvertiseRouter(s *link.Stack, cfg RAConfig) (*RouterAdvertiser, error) {
	if cfg.Interval == 0 {
		cfg.Interval = 10 * time.Second
	}
	if !cfg.Prefix.Addr().Is6() || cfg.Prefix.Bits() > 64 {
		return nil, fmt.Errorf("vpc: router advertisements: prefix %v is not an IPv6 prefix of /64 or shorter", cfg.Prefix)
	}
	ll := s.LinkLocal()
	if !ll.IsValid() {
		return nil, fmt.Errorf("vpc: router advertisements: the router has no IPv6 link-local address")
	}
	// Solicitations go to all-routers (ff02::2), which a stack that does
	// not forward has not joined.
	allRouters := tcpip.AddrFrom16(netip.MustParseAddr("ff02::2").As16())
	if terr := s.Stack.JoinGroup(ipv6.ProtocolNumber, s.NICID, allRouters); terr != nil {
		return nil, fmt.Errorf("vpc: router advertisements: joining ff02::2: %s", terr)
	}
	r := &RouterAdvertiser{s: s, cfg: cfg, ra: buildRA(ll, [6]byte([]byte(s.Endpoint.LinkAddress())), cfg), stop: make(chan struct{})}
	r.wg.Add(1)
	go r.run()
	return r, nil
}

// Sent reports how many advertisements went out.
func (r *RouterAdvertiser) Sent() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent
}

// Close stops the advertiser and waits for it.
func (r *RouterAdvertiser) Close() {
	close(r.stop)
	r.wg.Wait()
}

func (r *RouterAdvertiser) run() {
	defer r.wg.Done()
	rs := r.s.Stack.Stats().ICMP.V6.PacketsReceived.RouterSolicit
	seen := rs.Value()
	// No advertisement at start: the host's NIC is rarely up yet (a
	// device without Rx buffers counts the frame as dropped), and it
	// solicits one as soon as it is.
	poll := time.NewTicker(SolicitPoll)
	defer poll.Stop()
	last := time.Now()
	for {
		select {
		case <-r.stop:
			return
		case <-poll.C:
		}
		if n := rs.Value(); n != seen || time.Since(last) >= r.cfg.Interval {
			seen, last = n, time.Now()
			r.send()
		}
	}
}

// allNodesMAC is ff02::1's Ethernet multicast address (RFC 2464 section 7).
const allNodesMAC = tcpip.LinkAddress("\x33\x33\x00\x00\x00\x01")

func (r *RouterAdvertiser) send() {
	if terr := r.s.Stack.WritePacketToRemote(r.s.NICID, allNodesMAC, ipv6.ProtocolNumber, buffer.MakeWithData(r.ra)); terr == nil {
		r.mu.Lock()
		r.sent++
		r.mu.Unlock()
	}
}

// buildRA lays out the advertisement: IPv6 header (hop limit 255, as RFC
// 4861 section 6.1.2 requires), the RA body and its options: source link-layer
// address, MTU, and prefix information.
func buildRA(src netip.Addr, mac [6]byte, cfg RAConfig) []byte {
	body := make([]byte, 0, 64)
	body = append(body, 134, 0, 0, 0) // type, code, checksum
	flags := byte(0)
	if cfg.Managed {
		flags |= 0x80 | 0x40 // M and O: addresses and other settings by DHCPv6
	}
	body = append(body, 64, flags)                   // cur hop limit, flags
	body = binary.BigEndian.AppendUint16(body, 1800) // router lifetime (s)
	body = binary.BigEndian.AppendUint32(body, 0)    // reachable time
	body = binary.BigEndian.AppendUint32(body, 0)    // retrans timer
	body = append(body, 1, 1, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5])
	if cfg.MTU > 0 {
		body = append(body, 5, 1, 0, 0)
		body = binary.BigEndian.AppendUint32(body, uint32(cfg.MTU))
	}
	p := cfg.Prefix.Masked()
	body = append(body, 3, 4, byte(p.Bits()), 0x80)     // on-link, not autonomous
	body = binary.BigEndian.AppendUint32(body, 2592000) // valid lifetime (30 days)
	body = binary.BigEndian.AppendUint32(body, 604800)  // preferred lifetime (7 days)
	body = binary.BigEndian.AppendUint32(body, 0)
	a16 := p.Addr().As16()
	body = append(body, a16[:]...)

	pkt := make([]byte, header.IPv6MinimumSize+len(body))
	dst := tcpip.AddrFrom16(netip.MustParseAddr("ff02::1").As16())
	srcA := tcpip.AddrFrom16(src.As16())
	header.IPv6(pkt).Encode(&header.IPv6Fields{
		PayloadLength:     uint16(len(body)),
		TransportProtocol: header.ICMPv6ProtocolNumber,
		HopLimit:          255,
		SrcAddr:           srcA,
		DstAddr:           dst,
	})
	copy(pkt[header.IPv6MinimumSize:], body)
	icmp := header.ICMPv6(pkt[header.IPv6MinimumSize:])
	icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{
		Header: icmp, Src: srcA, Dst: dst, PayloadCsum: 0, PayloadLen: 0,
	}))
	return pkt
}
