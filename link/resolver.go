package link

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
)

// errNoDNS is what a query fails with when no DNS server is known.
var errNoDNS = errors.New("link: no DNS server (none from DHCP, DHCPv6 or Router Advertisements, and StackOptions.DNS is empty)")

// Resolver returns a resolver whose queries go through the userspace
// stack to the DNS servers of DNSServers (on EC2, the VPC resolver), never
// to the host's. It is Go's own resolver (PreferGo) with only its Dial
// replaced, so LookupHost, LookupIP, LookupNetIP and the rest behave as in
// package net: an unknown name is a *net.DNSError with IsNotFound set.
// As in package net, names in the host's /etc/hosts are answered from it.
// Successive queries (the resolver's retries) walk the server list, so a
// dead first server is skipped as with several nameservers.
//
// One difference cannot be helped: Go's resolver fills a *net.DNSError's
// Server from the host's /etc/resolv.conf, which the query never went to.
// Stack.LookupNetIP, LookupHost and LookupContextHost, and Dial, name the
// server actually queried.
func (s *Stack) Resolver() *net.Resolver {
	return s.newLookup().resolver()
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

// lookup is one name lookup through the stack: a resolver like
// Resolver's that remembers the server it queried last, so that a
// *net.DNSError can name it. Go's resolver names the server it took from
// the host's /etc/resolv.conf, which the query never went to; a
// *net.Resolver gives no way to change that, hence one per lookup.
type lookup struct {
	s    *Stack
	last atomic.Pointer[netip.AddrPort]
}

func (s *Stack) newLookup() *lookup { return &lookup{s: s} }

func (l *lookup) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, StrictErrors: true, Dial: l.dial}
}

func (l *lookup) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	servers := l.s.DNSServers()
	if len(servers) == 0 {
		return nil, opError("dial", network, nil, errNoDNS)
	}
	ap := netip.AddrPortFrom(servers[int(l.s.dnsNext.Add(1)-1)%len(servers)], 53)
	l.last.Store(&ap)
	f, ok := parseNetwork(network)
	if !ok {
		return nil, opError("dial", network, nil, net.UnknownNetworkError(network))
	}
	return l.s.dialAddr(ctx, f, ap)
}

// netIP resolves host (network "ip", "ip4" or "ip6") and names the
// queried server in a *net.DNSError.
func (l *lookup) netIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	ips, err := l.resolver().LookupNetIP(ctx, network, host)
	return ips, l.fixServer(err)
}

// fixServer replaces the Server of a *net.DNSError with the server the
// lookup queried last ("" when it queried none, as when no DNS server is
// known).
func (l *lookup) fixServer(err error) error {
	var de *net.DNSError
	if !errors.As(err, &de) {
		return err
	}
	c := *de
	c.Server = ""
	if ap := l.last.Load(); ap != nil {
		c.Server = ap.String()
	}
	return &c
}

// LookupNetIP resolves host through the stack, as Resolver().LookupNetIP
// does (network "ip", "ip4" or "ip6"), except that a *net.DNSError names
// the DNS server the query went to.
func (s *Stack) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	return s.newLookup().netIP(ctx, network, host)
}

// LookupContextHost returns host's addresses, resolved through the stack,
// as strings (wireguard-go's netstack has the same method); a
// *net.DNSError names the DNS server the query went to.
func (s *Stack) LookupContextHost(ctx context.Context, host string) ([]string, error) {
	l := s.newLookup()
	addrs, err := l.resolver().LookupHost(ctx, host)
	return addrs, l.fixServer(err)
}

// LookupHost is LookupContextHost without a context.
func (s *Stack) LookupHost(host string) ([]string, error) {
	return s.LookupContextHost(context.Background(), host)
}

// SetDNSServers replaces the DNS servers Resolver and Dial use, as
// StackOptions.DNS does at start; with none, those from DHCP, DHCPv6 and
// Router Advertisements apply again.
func (s *Stack) SetDNSServers(addrs ...netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dnsStatic = slices.Clone(addrs)
}
