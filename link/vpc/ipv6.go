package vpc

import (
	"fmt"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// serveNames gives the VPC's resolver the router's names (GatewayName,
// HostName) and, unless cfg.NoIPv6, starts the VPC's IPv6 services:
// Router Advertisements (managed flag, the subnet's /64 on-link), DHCPv6
// leases from the subnet's base + 0x10 (FirstLease6 in the default
// subnet), and the resolver at Resolver6Addr.
func (v *VPC) serveNames(cfg Config) error {
	router := []netip.Addr{v.Router()}
	if !cfg.NoIPv6 {
		router = append(router, v.router6.Addr())
	}
	v.AddDNSName(GatewayName, router...)
	v.AddDNSName(HostName, router...)
	if cfg.NoIPv6 {
		return nil
	}
	pa := tcpip.ProtocolAddress{Protocol: ipv6.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpip.AddrFrom16(Resolver6Addr.As16()), PrefixLen: 128}}
	if err := v.Stack.Stack.AddProtocolAddress(v.Stack.NICID, pa, stack.AddressProperties{}); err != nil {
		return fmt.Errorf("vpc: adding the resolver's address %v: %s", Resolver6Addr, err)
	}
	if err := v.services.listenDNS(v.Stack, Resolver6Addr); err != nil {
		return err
	}
	var err error
	if v.RA, err = AdvertiseRouter(v.Stack, RAConfig{Prefix: v.router6, Managed: true, MTU: cfg.MTU}); err != nil {
		return err
	}
	if v.DHCPv6, err = ServeDHCPv6(v.Stack, DHCPv6ServerConfig{First: v.FirstLease6(), Count: cfg.Leases,
		DNS: []netip.Addr{Resolver6Addr}, Lifetime: cfg.DHCPv6Lifetime}); err != nil {
		return err
	}
	return nil
}

// Router6 is the router's global IPv6 address; zero with Config.NoIPv6.
func (v *VPC) Router6() netip.Addr {
	if v.RA == nil {
		return netip.Addr{}
	}
	return v.router6.Addr()
}

// Subnet6 is the router's IPv6 address with the subnet's prefix length
// (Config.Router6).
func (v *VPC) Subnet6() netip.Prefix { return v.router6 }

// FirstLease6 is the first address the DHCPv6 server hands out: the
// subnet's base + 0x10 (the package's FirstLease6 in the default subnet).
func (v *VPC) FirstLease6() netip.Addr {
	b := v.router6.Masked().Addr().As16()
	b[15] = 0x10
	return netip.AddrFrom16(b)
}

func (v *VPC) closeIPv6() {
	if v.DHCPv6 != nil {
		v.DHCPv6.Close()
	}
	if v.RA != nil {
		v.RA.Close()
	}
}
