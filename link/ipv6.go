package link

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// IPv6 as EC2 gives it: the NIC has a link-local address from its MAC
// (EUI-64) as soon as it is up; the VPC router sends Router Advertisements
// with the managed flag, so the address comes from DHCPv6 (IA_NA, a /128)
// and the default route from the advertisement (via the router's
// link-local address); the advertised prefix is on-link. A static address
// (StackOptions.Addr6, Configure6) replaces DHCPv6.
//
// netstack's NDP does the protocol work (solicitations, lifetimes); it
// reports what it learned through an NDPDispatcher, whose callbacks must
// not call into the stack. ndpEvents queues them for the stack's event
// goroutine (runNDP), which updates routes and starts DHCPv6.

// ipv6State is what the stack knows about IPv6, guarded by Stack.mu.
type ipv6State struct {
	static  netip.Prefix   // Configure6's address
	gw      netip.Addr     // Configure6's gateway
	lease   *Lease6        // DHCPv6's address
	routers []netip.Addr   // default routers from RAs, link-local
	onLink  []netip.Prefix // on-link prefixes from RAs
	rdnss   []netip.Addr   // DNS servers from RAs (RFC 8106)
	// managed: an RA asked for DHCPv6; dhcp6Running: a client runs.
	managed, dhcp6Running bool
}

// ndpEvent is one thing netstack's NDP learned.
type ndpEvent struct {
	kind    ndpKind
	subnet  tcpip.Subnet
	router  tcpip.Address
	addrs   []tcpip.Address
	life    time.Duration
	managed bool
}

type ndpKind int

const (
	ndpRouter ndpKind = iota
	ndpRouterGone
	ndpPrefix
	ndpPrefixGone
	ndpRDNSS
	ndpDHCPv6
)

// ndpEvents implements ipv6.NDPDispatcher by queueing events. A full queue
// drops the event; RAs repeat, so the state catches up with the next one.
type ndpEvents struct{ ch chan ndpEvent }

var _ ipv6.NDPDispatcher = (*ndpEvents)(nil)

func (d *ndpEvents) post(e ndpEvent) {
	select {
	case d.ch <- e:
	default:
	}
}

func (d *ndpEvents) OnDuplicateAddressDetectionResult(tcpip.NICID, tcpip.Address, stack.DADResult) {}
func (d *ndpEvents) OnOffLinkRouteUpdated(_ tcpip.NICID, sn tcpip.Subnet, r tcpip.Address, _ header.NDPRoutePreference) {
	d.post(ndpEvent{kind: ndpRouter, subnet: sn, router: r})
}
func (d *ndpEvents) OnOffLinkRouteInvalidated(_ tcpip.NICID, sn tcpip.Subnet, r tcpip.Address) {
	d.post(ndpEvent{kind: ndpRouterGone, subnet: sn, router: r})
}
func (d *ndpEvents) OnOnLinkPrefixDiscovered(_ tcpip.NICID, sn tcpip.Subnet) {
	d.post(ndpEvent{kind: ndpPrefix, subnet: sn})
}
func (d *ndpEvents) OnOnLinkPrefixInvalidated(_ tcpip.NICID, sn tcpip.Subnet) {
	d.post(ndpEvent{kind: ndpPrefixGone, subnet: sn})
}
func (d *ndpEvents) OnAutoGenAddress(tcpip.NICID, tcpip.AddressWithPrefix) stack.AddressDispatcher {
	return nil
}
func (d *ndpEvents) OnAutoGenAddressDeprecated(tcpip.NICID, tcpip.AddressWithPrefix)  {}
func (d *ndpEvents) OnAutoGenAddressInvalidated(tcpip.NICID, tcpip.AddressWithPrefix) {}
func (d *ndpEvents) OnRecursiveDNSServerOption(_ tcpip.NICID, addrs []tcpip.Address, life time.Duration) {
	d.post(ndpEvent{kind: ndpRDNSS, addrs: slices.Clone(addrs), life: life})
}
func (d *ndpEvents) OnDNSSearchListOption(tcpip.NICID, []string, time.Duration) {}
func (d *ndpEvents) OnDHCPv6Configuration(_ tcpip.NICID, c ipv6.DHCPv6ConfigurationFromNDPRA) {
	d.post(ndpEvent{kind: ndpDHCPv6, managed: c == ipv6.DHCPv6ManagedAddress})
}

// ipv6Options are the IPv6 protocol settings of a NewStack stack. DAD is
// off: on a VPC the addresses are assigned by the VPC, and DAD would hold
// every new address back for a second. A router neither solicits nor
// follows advertisements.
func ipv6Options(disp *ndpEvents, off, router bool) ipv6.Options {
	if off {
		return ipv6.Options{NDPConfigs: ipv6.NDPConfigurations{HandleRAs: ipv6.HandlingRAsDisabled}}
	}
	ndp := ipv6.DefaultNDPConfigurations()
	if router {
		return ipv6.Options{
			NDPConfigs:       ipv6.NDPConfigurations{HandleRAs: ipv6.HandlingRAsDisabled},
			AutoGenLinkLocal: true,
			NDPDisp:          disp,
			DADConfigs:       stack.DADConfigurations{DupAddrDetectTransmits: 0},
		}
	}
	ndp.HandleRAs = ipv6.HandlingRAsEnabledWhenForwardingDisabled
	ndp.DiscoverDefaultRouters = true
	ndp.DiscoverOnLinkPrefixes = true
	ndp.AutoGenGlobalAddresses = true // SLAAC where the RA allows it (not on EC2)
	ndp.MaxRtrSolicitationDelay = 100 * time.Millisecond
	ndp.RtrSolicitationInterval = time.Second
	return ipv6.Options{
		NDPConfigs:       ndp,
		AutoGenLinkLocal: true,
		NDPDisp:          disp,
		DADConfigs:       stack.DADConfigurations{DupAddrDetectTransmits: 0},
	}
}

// runNDP applies NDP events until the stack stops.
func (s *Stack) runNDP() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case e := <-s.ndp.ch:
			s.applyNDP(e)
		}
	}
}

func (s *Stack) applyNDP(e ndpEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := &s.v6
	switch e.kind {
	case ndpRouter:
		r := netip.AddrFrom16(e.router.As16())
		if e.subnet.Prefix() == 0 && !slices.Contains(v.routers, r) {
			v.routers = append(v.routers, r)
			s.log.Info("link: IPv6 default router", "router", r)
		}
	case ndpRouterGone:
		r := netip.AddrFrom16(e.router.As16())
		v.routers = slices.DeleteFunc(v.routers, func(a netip.Addr) bool { return a == r })
	case ndpPrefix:
		p := subnetPrefix(e.subnet)
		if !slices.Contains(v.onLink, p) {
			v.onLink = append(v.onLink, p)
		}
	case ndpPrefixGone:
		p := subnetPrefix(e.subnet)
		v.onLink = slices.DeleteFunc(v.onLink, func(a netip.Prefix) bool { return a == p })
	case ndpRDNSS:
		for _, a := range e.addrs {
			d := netip.AddrFrom16(a.As16())
			v.rdnss = slices.DeleteFunc(v.rdnss, func(x netip.Addr) bool { return x == d })
			if e.life > 0 {
				v.rdnss = append(v.rdnss, d)
			}
		}
	case ndpDHCPv6:
		v.managed = e.managed
		if e.managed && s.dhcp6Auto && !v.dhcp6Running && !v.static.IsValid() {
			v.dhcp6Running = true
			s.wg.Add(1)
			go s.dhcp6Loop(nil)
		}
		return
	}
	s.installRoutesLocked()
}

func subnetPrefix(sn tcpip.Subnet) netip.Prefix {
	a := netip.AddrFrom16(sn.ID().As16())
	return netip.PrefixFrom(a, sn.Prefix())
}

func prefixSubnet(p netip.Prefix) tcpip.Subnet {
	p = p.Masked()
	return tcpip.AddressWithPrefix{Address: tcpipAddr(p.Addr()), PrefixLen: p.Bits()}.Subnet()
}

// installRoutesLocked sets the route table from the IPv4 routes
// (Configure, DHCP) and the IPv6 state: link-local, static and advertised
// prefixes on-link, and a default route through the static gateway or the
// first advertised router. s.mu is held.
func (s *Stack) installRoutesLocked() {
	routes := slices.Clone(s.routes4)
	v := &s.v6
	onLink := []netip.Prefix{netip.MustParsePrefix("fe80::/64")}
	if v.static.IsValid() {
		onLink = append(onLink, v.static.Masked())
	}
	for _, p := range v.onLink {
		if !slices.Contains(onLink, p) {
			onLink = append(onLink, p)
		}
	}
	for _, p := range onLink {
		routes = append(routes, tcpip.Route{Destination: prefixSubnet(p), NIC: s.NICID})
	}
	gw := v.gw
	if !gw.IsValid() && len(v.routers) > 0 {
		gw = v.routers[0]
	}
	if gw.IsValid() {
		routes = append(routes, tcpip.Route{Destination: header.IPv6EmptySubnet, Gateway: tcpipAddr(gw), NIC: s.NICID})
	}
	s.Stack.SetRouteTable(routes)
}

// Configure6 sets a static IPv6 address (with its on-link prefix, e.g.
// 2600:1f18:aaaa:bbbb::5/64) and, if gw is valid, a default route through
// it; with gw zero the default route comes from Router Advertisements. It
// replaces the previous static or DHCPv6 address.
func (s *Stack) Configure6(addr netip.Prefix, gw netip.Addr) error {
	if !addr.Addr().Is6() || addr.Addr().Is4In6() {
		return fmt.Errorf("link: address %v is not IPv6", addr)
	}
	if gw.IsValid() && (!gw.Is6() || gw.Is4In6()) {
		return fmt.Errorf("link: IPv6 gateway %v is not IPv6", gw)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.setAddr6Locked(addr); err != nil {
		return err
	}
	s.v6.static, s.v6.gw, s.v6.lease = addr, gw.WithZone(""), nil
	s.installRoutesLocked()
	return nil
}

// setAddr6Locked replaces the NIC's global IPv6 address (static or DHCPv6)
// with addr. s.mu is held.
func (s *Stack) setAddr6Locked(addr netip.Prefix) error {
	old := s.v6.static
	if s.v6.lease != nil {
		old = netip.PrefixFrom(s.v6.lease.Addr, 128)
	}
	if old == addr {
		return nil
	}
	if old.IsValid() {
		s.Stack.RemoveAddress(s.NICID, tcpipAddr(old.Addr()))
	}
	pa := tcpip.ProtocolAddress{
		Protocol:          ipv6.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpipAddr(addr.Addr()), PrefixLen: addr.Bits()},
	}
	if err := s.Stack.AddProtocolAddress(s.NICID, pa, stack.AddressProperties{}); err != nil {
		return fmt.Errorf("link: adding address %v: %s", addr, err)
	}
	return nil
}

// Addr6 returns the NIC's global IPv6 address (static, or the DHCPv6
// lease's as a /128) and the IPv6 default router (static or advertised);
// zero values where there is none yet.
func (s *Stack) Addr6() (netip.Prefix, netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	addr := s.v6.static
	if s.v6.lease != nil {
		addr = netip.PrefixFrom(s.v6.lease.Addr, 128)
	}
	gw := s.v6.gw
	if !gw.IsValid() && len(s.v6.routers) > 0 {
		gw = s.v6.routers[0]
	}
	return addr, gw
}

// LinkLocal returns the NIC's IPv6 link-local address (fe80::/64 from the
// MAC), zero when IPv6 is off.
func (s *Stack) LinkLocal() netip.Addr {
	for _, pa := range s.Stack.AllAddresses()[s.NICID] {
		a := pa.AddressWithPrefix.Address
		if a.Len() == 16 {
			if ip := netip.AddrFrom16(a.As16()); ip.IsLinkLocalUnicast() {
				return ip
			}
		}
	}
	return netip.Addr{}
}

// waitRouter6 waits for a Router Advertisement's default router: a DHCPv6
// address (a /128) reaches nothing without the route the RA brings.
func (s *Stack) waitRouter6(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if _, gw := s.Addr6(); gw.IsValid() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("link: IPv6: DHCPv6 gave an address but no Router Advertisement came with a default route: %w", ctx.Err())
		case <-t.C:
		}
	}
}
