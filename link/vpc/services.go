package vpc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/enanet/enanet/link"
)

// The link-local services of a VPC, as EC2 places them: the Amazon DNS
// resolver at the VPC's base address + 2 and at 169.254.169.253, and the
// instance metadata service at 169.254.169.254. The simulated VPC answers
// at the same addresses, with a small resolver that knows only the VPC's
// own names and a metadata service with a few keys, so that tools (enactl
// doctor) can check name resolution and metadata access through the
// userspace stack without the internet.
var (
	// ResolverAddr is the default VPC's resolver (base + 2 of
	// RouterPrefix); VPC.Resolver is the one of any subnet. DHCP hands it
	// out.
	ResolverAddr = netip.MustParseAddr("172.31.0.2")
	// LinkLocalResolverAddr is the resolver's link-local address.
	LinkLocalResolverAddr = netip.MustParseAddr("169.254.169.253")
	// MetadataAddr is the instance metadata service (IMDS).
	MetadataAddr = netip.MustParseAddr("169.254.169.254")
	// Resolver6Addr is the resolver's IPv6 address, EC2's on Nitro
	// (reached through the router); DHCPv6 hands it out.
	Resolver6Addr = netip.MustParseAddr("fd00:ec2::253")
)

// Names the simulated VPC's resolver knows besides the EC2-style ones.
// Both resolve to the router's IPv4 and IPv6 addresses: "gateway" is the
// router itself, "host" the machine running the simulation, reached
// through the router (Forwarder splices the router's sockets to the
// host's).
const (
	GatewayName = "gateway.vpc.internal"
	HostName    = "host.vpc.internal"
)

// MetadataInstanceID is the instance id the simulated metadata service
// reports.
const MetadataInstanceID = "i-0e0a5e1a0000000001"

// services are the resolver and metadata service on the router stack.
type services struct {
	log      *slog.Logger
	subnet   netip.Prefix // the VPC's, for EC2-style private DNS names
	resolver netip.Addr   // subnet base + 2
	dns      []net.PacketConn
	ln       net.Listener
	http     *http.Server
	names    sync.Map // lower-case name without trailing dot -> []netip.Addr
	wg       sync.WaitGroup

	tokMu  sync.Mutex
	tokens map[string]time.Time // IMDSv2 session tokens and their expiry
}

// startServices adds the service addresses to the router's NIC and starts
// answering on them. router is the router's address in its subnet.
func startServices(st *link.Stack, router netip.Prefix, log *slog.Logger) (*services, error) {
	s := &services{log: log, subnet: router.Masked(), resolver: nthAddr(router, 2), tokens: map[string]time.Time{}}
	for _, a := range []netip.Addr{s.resolver, LinkLocalResolverAddr, MetadataAddr} {
		if a == router.Addr() {
			continue // the router sits at base + 2 itself and answers there
		}
		pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber,
			AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpip.AddrFrom4(a.As4()), PrefixLen: 32}}
		if err := st.Stack.AddProtocolAddress(st.NICID, pa, stack.AddressProperties{}); err != nil {
			return nil, fmt.Errorf("vpc: adding service address %s: %s", a, err)
		}
	}
	s.names.Store("instance-data", []netip.Addr{MetadataAddr})
	s.names.Store("instance-data.ec2.internal", []netip.Addr{MetadataAddr})
	for _, a := range []netip.Addr{s.resolver, LinkLocalResolverAddr} {
		if err := s.listenDNS(st, a); err != nil {
			s.close()
			return nil, err
		}
	}
	ln, err := gonet.ListenTCP(st.Stack, tcpip.FullAddress{NIC: st.NICID, Addr: tcpip.AddrFrom4(MetadataAddr.As4()), Port: 80}, ipv4.ProtocolNumber)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("vpc: metadata service on %s:80: %s", MetadataAddr, err)
	}
	s.ln = ln
	s.http = &http.Server{Handler: http.HandlerFunc(s.metadata), ReadHeaderTimeout: 5 * time.Second}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Debug("vpc: metadata service stopped", "err", err)
		}
	}()
	return s, nil
}

// listenDNS answers queries to a (an address of st's NIC) on port 53,
// from a socket bound to it so that replies come from where the query
// went.
func (s *services) listenDNS(st *link.Stack, a netip.Addr) error {
	proto := ipv4.ProtocolNumber
	if a.Is6() {
		proto = ipv6.ProtocolNumber
	}
	c, err := gonet.DialUDP(st.Stack, &tcpip.FullAddress{NIC: st.NICID, Addr: tcpip.AddrFromSlice(a.AsSlice()), Port: 53}, nil, proto)
	if err != nil {
		return fmt.Errorf("vpc: resolver on %s: %s", netip.AddrPortFrom(a, 53), err)
	}
	s.dns = append(s.dns, c)
	s.wg.Add(1)
	go s.serveDNS(c)
	return nil
}

func (s *services) close() {
	if s == nil {
		return
	}
	for _, c := range s.dns {
		c.Close()
	}
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		s.http.Shutdown(ctx)
		cancel()
		s.http.Close()
	}
	s.wg.Wait()
}

// Resolver is the VPC resolver's address in the VPC's subnet (base + 2),
// which DHCP hands out; it also answers at LinkLocalResolverAddr.
func (v *VPC) Resolver() netip.Addr { return v.services.resolver }

// AddDNSName makes the VPC resolver answer name with addrs, IPv4 (A)
// and IPv6 (AAAA) alike, replacing what it answered before.
func (v *VPC) AddDNSName(name string, addrs ...netip.Addr) {
	if v.services != nil {
		as := make([]netip.Addr, 0, len(addrs))
		for _, a := range addrs {
			as = append(as, a.Unmap())
		}
		v.services.names.Store(normName(name), as)
	}
}

func normName(n string) string { return strings.ToLower(strings.TrimSuffix(n, ".")) }

// ec2Hostname matches EC2's private DNS names: ip-172-31-0-10.ec2.internal
// (us-east-1) and ip-172-31-0-10.<region>.compute.internal.
var ec2Hostname = regexp.MustCompile(`^ip-(\d+)-(\d+)-(\d+)-(\d+)\.(ec2\.internal|[a-z0-9-]+\.compute\.internal)$`)

// lookup resolves a name: the names added, and the private DNS name of
// any address in the VPC.
func (s *services) lookup(name string) ([]netip.Addr, bool) {
	name = normName(name)
	if a, ok := s.names.Load(name); ok {
		return a.([]netip.Addr), true
	}
	m := ec2Hostname.FindStringSubmatch(name)
	if m == nil {
		return nil, false
	}
	a, err := netip.ParseAddr(strings.Join(m[1:5], "."))
	if err != nil || !s.subnet.Contains(a) {
		return nil, false
	}
	return []netip.Addr{a}, true
}

func (s *services) serveDNS(c net.PacketConn) {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp := s.answer(buf[:n]); resp != nil {
			c.WriteTo(resp, from)
		}
	}
}

// answer builds the response to one query; nil drops a datagram that is
// not a DNS query at all.
func (s *services) answer(q []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil || h.Response {
		return nil
	}
	resp := dnsmessage.Message{Header: dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true}}
	qs, err := p.AllQuestions()
	switch {
	case err != nil || len(qs) != 1:
		resp.RCode = dnsmessage.RCodeFormatError
	case h.OpCode != 0:
		resp.RCode = dnsmessage.RCodeNotImplemented
	default:
		q := qs[0]
		resp.Questions = qs
		addrs, ok := s.lookup(q.Name.String())
		if !ok {
			resp.RCode = dnsmessage.RCodeNameError
			resp.Authoritative = true
			break
		}
		// A name without a record of the type gets an empty answer.
		for _, a := range addrs {
			rh := dnsmessage.ResourceHeader{Name: q.Name, Type: q.Type, Class: dnsmessage.ClassINET, TTL: 60}
			switch {
			case q.Class != dnsmessage.ClassINET:
			case q.Type == dnsmessage.TypeA && a.Is4():
				resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: rh, Body: &dnsmessage.AResource{A: a.As4()}})
			case q.Type == dnsmessage.TypeAAAA && a.Is6():
				resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: rh, Body: &dnsmessage.AAAAResource{AAAA: a.As16()}})
			}
		}
	}
	b, err := resp.Pack()
	if err != nil {
		return nil
	}
	return b
}

// Instance metadata (IMDS): IMDSv2 session tokens (PUT /latest/api/token)
// and IMDSv1 requests both work, as on an instance with the default
// "optional" token setting; a request with an invalid token gets 401.
const metadataTokenTTLHeader = "X-aws-ec2-metadata-token-ttl-seconds"
const metadataTokenHeader = "X-aws-ec2-metadata-token"

func (s *services) metadata(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/latest/api/token" {
		s.metadataToken(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if tok := r.Header.Get(metadataTokenHeader); tok != "" {
		s.tokMu.Lock()
		exp, ok := s.tokens[tok]
		s.tokMu.Unlock()
		if !ok || time.Now().After(exp) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	values := map[string]string{
		"/latest/meta-data/":                            "instance-id\ninstance-type\nlocal-hostname\nlocal-ipv4\nplacement/\n",
		"/latest/meta-data/local-hostname":              "ip-" + strings.ReplaceAll(host, ".", "-") + ".sim-1.compute.internal",
		"/latest/meta-data/instance-id":                 MetadataInstanceID,
		"/latest/meta-data/instance-type":               "enasim.large",
		"/latest/meta-data/local-ipv4":                  host,
		"/latest/meta-data/placement/":                  "availability-zone\nregion\n",
		"/latest/meta-data/placement/availability-zone": "sim-1a",
		"/latest/meta-data/placement/region":            "sim-1",
	}
	v, ok := values[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", strconv.Itoa(len(v)))
	w.Write([]byte(v))
}

func (s *services) metadataToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get(metadataTokenTTLHeader))
	if err != nil || ttl < 1 || ttl > 21600 {
		http.Error(w, "bad request: "+metadataTokenTTLHeader+" must be 1..21600", http.StatusBadRequest)
		return
	}
	var b [16]byte
	rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	s.tokMu.Lock()
	now := time.Now()
	for t, exp := range s.tokens {
		if now.After(exp) {
			delete(s.tokens, t)
		}
	}
	s.tokens[tok] = now.Add(time.Duration(ttl) * time.Second)
	s.tokMu.Unlock()
	w.Header().Set(metadataTokenTTLHeader, strconv.Itoa(ttl))
	w.Write([]byte(tok))
}
