package vpc

import (
	"fmt"
	"net/netip"
)

// serveNames starts the VPC's DNS server and, unless cfg.NoIPv6, its IPv6
// services: Router Advertisements (managed flag, the subnet's /64
// on-link) and DHCPv6 leases from FirstLease6.
func (v *VPC) serveNames(cfg Config) error {
	var err error
	if v.DNS, err = ServeDNS(v.Stack); err != nil {
		return fmt.Errorf("vpc: DNS server: %w", err)
	}
	router := []netip.Addr{v.Router()}
	if !cfg.NoIPv6 {
		router = append(router, RouterPrefix6.Addr())
	}
	v.DNS.AddHost(GatewayName, router...)
	v.DNS.AddHost(HostName, router...)
	if cfg.NoIPv6 {
		return nil
	}
	if v.RA, err = AdvertiseRouter(v.Stack, RAConfig{Prefix: RouterPrefix6, Managed: true, MTU: cfg.MTU}); err != nil {
		return err
	}
	if v.DHCPv6, err = ServeDHCPv6(v.Stack, DHCPv6ServerConfig{First: FirstLease6, Count: cfg.Leases,
		DNS: []netip.Addr{RouterPrefix6.Addr()}}); err != nil {
		return err
	}
	return nil
}

// Router6 is the router's global IPv6 address; zero with Config.NoIPv6.
func (v *VPC) Router6() netip.Addr {
	if v.RA == nil {
		return netip.Addr{}
	}
	return RouterPrefix6.Addr()
}

// AddHost makes name resolve to addrs in the VPC's DNS, e.g. to give the
// ENA stack's address a name.
func (v *VPC) AddHost(name string, addrs ...netip.Addr) { v.DNS.AddHost(name, addrs...) }

func (v *VPC) closeIPv6AndDNS() {
	if v.DHCPv6 != nil {
		v.DHCPv6.Close()
	}
	if v.RA != nil {
		v.RA.Close()
	}
	if v.DNS != nil {
		v.DNS.Close()
	}
}
