package link

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// family is what a network name ("tcp4", "udp", ...) allows.
type family struct {
	udp      bool // else TCP
	v4, v6   bool
	fullName string
}

// parseNetwork reads a network name as package net does for Dial and
// Listen: tcp, tcp4, tcp6, udp, udp4 or udp6.
func parseNetwork(network string) (family, bool) {
	f := family{fullName: network}
	switch network {
	case "tcp", "udp":
		f.v4, f.v6 = true, true
	case "tcp4", "udp4":
		f.v4 = true
	case "tcp6", "udp6":
		f.v6 = true
	default:
		return f, false
	}
	f.udp = strings.HasPrefix(network, "udp")
	return f, true
}

func (f family) allows(a netip.Addr) bool {
	if a.Is4() {
		return f.v4
	}
	return f.v6
}

// Dial connects to address on the named network through the userspace
// stack, as net.Dialer.DialContext does: network is tcp, tcp4, tcp6, udp,
// udp4 or udp6; address is "host:port", where host is an IP literal or a
// name resolved by Resolver (through the stack, never by the host's
// resolver). With several addresses for a name, those of a family the
// stack has an address in come first, IPv6 before IPv4 (RFC 6724), and
// each is tried in turn until one connects; with "tcp" and addresses of
// both families, the second family races the first after FallbackDelay
// (Happy Eyeballs, as net.Dialer). Errors are *net.OpError as package net
// returns them, naming the DNS server queried for a name that failed;
// ctx bounds the whole dial.
//
// As in wireguard-go's netstack, network may also be ping, ping4 or ping6
// with address a bare host (no port): the result is a *PingConn connected
// to it (see DialPing).
func (s *Stack) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	if strings.HasPrefix(network, "ping") {
		return s.dialPingHost(ctx, network, address)
	}
	f, ok := parseNetwork(network)
	if !ok {
		return nil, opError("dial", network, nil, net.UnknownNetworkError(network))
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, opError("dial", network, nil, err)
	}
	port, err := lookupPort(network, portStr)
	if err != nil {
		return nil, opError("dial", network, nil, err)
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a.Unmap().WithZone("")}
	} else if host == "" {
		return nil, opError("dial", network, nil, &net.AddrError{Err: "missing host in address", Addr: address})
	} else {
		ips, err := s.LookupNetIP(ctx, lookupNetwork(f), host)
		if err != nil {
			return nil, opError("dial", network, nil, err)
		}
		addrs = s.sortForDial(ips)
	}
	var usable []netip.Addr
	for _, a := range addrs {
		if f.allows(a) {
			usable = append(usable, a)
		}
	}
	if len(usable) == 0 {
		return nil, opError("dial", network, nil, &net.AddrError{Err: "no suitable address found", Addr: host})
	}
	if network != "tcp" {
		return s.dialSerial(ctx, f, usable, port)
	}
	// Happy Eyeballs, as net.Dialer does for "tcp".
	var primaries, fallbacks []netip.Addr
	for _, a := range usable {
		if a.Is4() == usable[0].Is4() {
			primaries = append(primaries, a)
		} else {
			fallbacks = append(fallbacks, a)
		}
	}
	return s.dialParallel(ctx, f, primaries, fallbacks, port)
}

// FallbackDelay is how long Dial gives the first address family of a
// dual-stack name (IPv6 where the stack has an IPv6 address) before it
// races a connection over the other family: net.Dialer's default, Happy
// Eyeballs (RFC 8305) as package net does it.
const FallbackDelay = 300 * time.Millisecond

// dialSerial tries addrs in turn until one connects; the first error if
// none does.
func (s *Stack) dialSerial(ctx context.Context, f family, addrs []netip.Addr, port uint16) (net.Conn, error) {
	var first error
	for _, a := range addrs {
		c, err := s.dialAddr(ctx, f, netip.AddrPortFrom(a, port))
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// dialParallel races the primary family against the fallback family,
// started FallbackDelay later or as soon as the primaries have all
// failed. The first connection wins; the other attempt is cancelled, and
// a connection it still makes is closed. With both failing, the error is
// the primaries' (as package net reports it).
func (s *Stack) dialParallel(ctx context.Context, f family, primaries, fallbacks []netip.Addr, port uint16) (net.Conn, error) {
	if len(fallbacks) == 0 {
		return s.dialSerial(ctx, f, primaries, port)
	}
	type result struct {
		c       net.Conn
		err     error
		primary bool
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan result, 2) // never blocks a racer
	race := func(primary bool, addrs []netip.Addr) {
		go func() {
			c, err := s.dialSerial(ctx, f, addrs, port)
			results <- result{c, err, primary}
		}()
	}
	race(true, primaries)
	pending, fallbackStarted := 1, false
	startFallback := func() {
		if !fallbackStarted {
			fallbackStarted = true
			pending++
			race(false, fallbacks)
		}
	}
	timer := time.NewTimer(FallbackDelay)
	defer timer.Stop()
	var primaryErr, fallbackErr error
	for {
		select {
		case <-timer.C:
			startFallback()
		case r := <-results:
			pending--
			if r.err == nil {
				if pending > 0 {
					// The loser ends promptly: cancel (deferred) ends its
					// dial.
					go func(n int) {
						for range n {
							if l := <-results; l.c != nil {
								l.c.Close()
							}
						}
					}(pending)
				}
				return r.c, nil
			}
			if r.primary {
				primaryErr = r.err
				startFallback()
			} else {
				fallbackErr = r.err
			}
			if pending == 0 && fallbackStarted {
				if primaryErr != nil {
					return nil, primaryErr
				}
				return nil, fallbackErr
			}
		}
	}
}

// DialContext is Dial, under the name http.Transport.DialContext and
// wireguard-go's netstack use.
func (s *Stack) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return s.Dial(ctx, network, address)
}

// HTTPClient returns an HTTP client whose connections go through the
// userspace stack (host names resolved by Resolver), with
// http.DefaultTransport's other settings.
func (s *Stack) HTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // a proxy from the host's environment is not on this network
	tr.DialContext = s.Dial
	return &http.Client{Transport: tr}
}

func lookupNetwork(f family) string {
	switch {
	case f.v4 && !f.v6:
		return "ip4"
	case f.v6 && !f.v4:
		return "ip6"
	}
	return "ip"
}

// lookupPort reads a port number or a service name (from the host's
// services database, as package net does).
func lookupPort(network, s string) (uint16, error) {
	if n, err := strconv.ParseUint(s, 10, 16); err == nil {
		return uint16(n), nil
	}
	n, err := net.LookupPort(network, s)
	if err != nil {
		return 0, err
	}
	return uint16(n), nil
}

// sortForDial orders a name's addresses: families the stack has a usable
// (non-link-local) address in first, IPv6 before IPv4 within them.
func (s *Stack) sortForDial(ips []netip.Addr) []netip.Addr {
	has4, has6 := s.hasFamily()
	rank := func(a netip.Addr) int {
		switch {
		case a.Is6() && has6:
			return 0
		case a.Is4() && has4:
			return 1
		case a.Is6():
			return 2
		}
		return 3
	}
	out := make([]netip.Addr, 0, len(ips))
	for r := 0; r < 4; r++ {
		for _, a := range ips {
			if a = a.Unmap(); rank(a) == r {
				out = append(out, a)
			}
		}
	}
	return out
}

// hasFamily reports whether the NIC has an IPv4 address and a global
// (not link-local) IPv6 address.
func (s *Stack) hasFamily() (v4, v6 bool) {
	for _, pa := range s.Stack.AllAddresses()[s.NICID] {
		a := pa.AddressWithPrefix.Address
		switch {
		case a.Len() == 4 && a != (tcpip.Address{}) && !a.Unspecified():
			v4 = true
		case a.Len() == 16 && !a.Unspecified() && !netip.AddrFrom16(a.As16()).IsLinkLocalUnicast():
			v6 = true
		}
	}
	return v4, v6
}

func protoOf(a netip.Addr) tcpip.NetworkProtocolNumber {
	if a.Is4() {
		return ipv4.ProtocolNumber
	}
	return ipv6.ProtocolNumber
}

func tcpipAddr(a netip.Addr) tcpip.Address {
	if a.Is4() {
		return tcpip.AddrFrom4(a.As4())
	}
	return tcpip.AddrFrom16(a.As16())
}

// dialAddr connects one endpoint to ap. The NIC is named in the address so
// that link-local destinations (fe80::/10) work without a zone.
func (s *Stack) dialAddr(ctx context.Context, f family, ap netip.AddrPort) (net.Conn, error) {
	network := f.fullName
	var raddr net.Addr = net.TCPAddrFromAddrPort(ap)
	trans := tcp.ProtocolNumber
	if f.udp {
		raddr, trans = net.UDPAddrFromAddrPort(ap), udp.ProtocolNumber
	}
	if err := ctx.Err(); err != nil {
		return nil, opError("dial", network, raddr, ctxError(err))
	}
	var wq waiter.Queue
	ep, terr := s.Stack.NewEndpoint(trans, protoOf(ap.Addr()), &wq)
	if terr != nil {
		return nil, opError("dial", network, raddr, sysError("socket", terr))
	}
	fa := tcpip.FullAddress{NIC: s.NICID, Addr: tcpipAddr(ap.Addr()), Port: ap.Port()}
	if f.udp {
		if terr := ep.Connect(fa); terr != nil {
			ep.Close()
			return nil, opError("dial", network, raddr, sysError("connect", terr))
		}
		return gonet.NewUDPConn(&wq, ep), nil
	}
	// ctx's deadline ends the wait, so the error is the timeout package
	// net gives.
	cerr, terr := Connect(ctx, ep, &wq, fa)
	if cerr != nil {
		ep.Close()
		return nil, opError("dial", network, raddr, ctxError(cerr))
	}
	if terr != nil {
		ep.Close()
		return nil, opError("dial", network, raddr, sysError("connect", terr))
	}
	return gonet.NewTCPConn(&wq, ep), nil
}

// dialPingHost is Dial for ping, ping4 and ping6: a PingConn connected to
// host, an IP literal or a name resolved through the stack.
func (s *Stack) dialPingHost(ctx context.Context, network, host string) (net.Conn, error) {
	var f family
	switch network {
	case "ping":
		f.v4, f.v6 = true, true
	case "ping4":
		f.v4 = true
	case "ping6":
		f.v6 = true
	default:
		return nil, opError("dial", network, nil, net.UnknownNetworkError(network))
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a.Unmap().WithZone("")}
	} else {
		ips, err := s.LookupNetIP(ctx, lookupNetwork(f), host)
		if err != nil {
			return nil, opError("dial", network, nil, err)
		}
		addrs = s.sortForDial(ips)
	}
	for _, a := range addrs {
		if f.allows(a) {
			return s.DialPingAddr(netip.Addr{}, a)
		}
	}
	return nil, opError("dial", network, nil, &net.AddrError{Err: "no suitable address found", Addr: host})
}
