package link

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
)

// errNoDNS is what a query fails with when no DNS server is known.
var errNoDNS = errors.New("link: no DNS server (none from DHCP, DHCPv6 or Router Advertisements, and StackOptions.DNS is empty)")

// Resolver returns a resolver whose queries go through the userspace
// stack to the DNS servers of DNSServers (on EC2, the VPC resolver), never
// to the host's. It is Go's own resolver (PreferGo) with only its Dial
// replaced, so LookupHost, LookupIP, LookupNetIP and the rest behave as in
// package net: an unknown name is a *net.DNSError with IsNotFound set.
// As in package net, names in the host's /etc/hosts are answered from it.
func (s *Stack) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, StrictErrors: true, Dial: s.dialDNS}
}

// dialDNS replaces the server the Go resolver took from /etc/resolv.conf
// with one of ours: successive dials (the resolver's retries) walk the
// list, so a dead first server is skipped as with several nameservers.
func (s *Stack) dialDNS(ctx context.Context, network, _ string) (net.Conn, error) {
	servers := s.DNSServers()
	if len(servers) == 0 {
		return nil, opError("dial", network, nil, errNoDNS)
	}
	i := int(s.dnsNext.Add(1)-1) % len(servers)
	f, ok := parseNetwork(network)
	if !ok {
		return nil, opError("dial", network, nil, net.UnknownNetworkError(network))
	}
	return s.dialAddr(ctx, f, netip.AddrPortFrom(servers[i], 53))
}

// DNSServers returns the DNS servers queries go to: StackOptions.DNS when
// given, else those of the DHCP lease, the DHCPv6 lease and Router
// Advertisements (RDNSS), in that order, without duplicates.
func (s *Stack) DNSServers() []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.dnsStatic) > 0 {
		return slices.Clone(s.dnsStatic)
	}
	var out []netip.Addr
	add := func(as []netip.Addr) {
		for _, a := range as {
			if a.IsValid() && !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	if s.lease != nil {
		add(s.lease.DNS)
	}
	if s.v6.lease != nil {
		add(s.v6.lease.DNS)
	}
	add(s.v6.rdnss)
	return out
}

// dnsErrorServer names our DNS server in a *net.DNSError: Go's resolver
// fills in the server it read from the host's /etc/resolv.conf, which the
// query never went to.
func (s *Stack) dnsErrorServer(err error) error {
	var de *net.DNSError
	if !errors.As(err, &de) || de.Server == "" {
		return err
	}
	servers := s.DNSServers()
	if len(servers) == 0 {
		return err
	}
	c := *de
	c.Server = netip.AddrPortFrom(servers[0], 53).String()
	return &c
}

// SetDNSServers replaces the DNS servers Resolver and Dial use, as
// StackOptions.DNS does at start; with none, those from DHCP, DHCPv6 and
// Router Advertisements apply again.
func (s *Stack) SetDNSServers(addrs ...netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dnsStatic = slices.Clone(addrs)
}
