package vpc

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/enanet/enanet/link"
)

// Names the simulated VPC's DNS server knows from the start. Both resolve
// to the router's IPv4 and IPv6 addresses: "gateway" is the router itself,
// "host" the machine running the simulation, reached through the router
// (vpc.Forwarder splices the router's sockets to the host's).
const (
	GatewayName = "gateway.vpc.internal"
	HostName    = "host.vpc.internal"
)

// DNSServer answers A and AAAA queries over UDP for the names it was
// given, standing in for the VPC resolver (Route 53 Resolver at the
// subnet's base + 2 and fd00:ec2::253 on EC2; here the router's
// addresses). Unknown names get NXDOMAIN; it forwards nothing.
type DNSServer struct {
	conn net.PacketConn

	mu    sync.Mutex
	names map[string][]netip.Addr // lower case, without the final dot

	done chan struct{}
}

// ServeDNS starts a DNS server on port 53 of s, both address families.
// Close stops it.
func ServeDNS(s *link.Stack) (*DNSServer, error) {
	conn, err := s.ListenPacket("udp", ":53")
	if err != nil {
		return nil, err
	}
	d := &DNSServer{conn: conn, names: map[string][]netip.Addr{}, done: make(chan struct{})}
	go d.serve()
	return d, nil
}

// AddHost makes name resolve to addrs (added to what it had).
func (d *DNSServer) AddHost(name string, addrs ...netip.Addr) {
	key := strings.ToLower(strings.TrimSuffix(name, "."))
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range addrs {
		if a = a.Unmap(); !slices.Contains(d.names[key], a) {
			d.names[key] = append(d.names[key], a)
		}
	}
}

// Close stops the server and waits for it.
func (d *DNSServer) Close() error {
	err := d.conn.Close()
	<-d.done
	return err
}

func (d *DNSServer) serve() {
	defer close(d.done)
	buf := make([]byte, 1500)
	for {
		n, peer, err := d.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || !isTemporary(err) {
				return
			}
			continue
		}
		if resp, ok := d.answer(buf[:n]); ok {
			_, _ = d.conn.WriteTo(resp, peer)
		}
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// answer builds the response to one query; false to stay silent.
func (d *DNSServer) answer(q []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil || h.Response {
		return nil, false
	}
	qs, err := p.AllQuestions()
	if err != nil {
		return nil, false
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	if h.OpCode != 0 || len(qs) != 1 {
		rh.RCode = dnsmessage.RCodeNotImplemented
		return mustBuild(rh, qs, nil)
	}
	qn := qs[0]
	key := strings.ToLower(strings.TrimSuffix(qn.Name.String(), "."))
	d.mu.Lock()
	addrs, known := d.names[key]
	addrs = slices.Clone(addrs)
	d.mu.Unlock()
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
		return mustBuild(rh, qs, nil)
	}
	var rrs []dnsmessage.Resource
	for _, a := range addrs {
		rrh := dnsmessage.ResourceHeader{Name: qn.Name, Class: dnsmessage.ClassINET, TTL: 60}
		switch {
		case a.Is4() && qn.Type == dnsmessage.TypeA:
			rrh.Type = dnsmessage.TypeA
			rrs = append(rrs, dnsmessage.Resource{Header: rrh, Body: &dnsmessage.AResource{A: a.As4()}})
		case a.Is6() && qn.Type == dnsmessage.TypeAAAA:
			rrh.Type = dnsmessage.TypeAAAA
			rrs = append(rrs, dnsmessage.Resource{Header: rrh, Body: &dnsmessage.AAAAResource{AAAA: a.As16()}})
		}
	}
	return mustBuild(rh, qs, rrs) // no records of the type: NOERROR, empty
}

func mustBuild(h dnsmessage.Header, qs []dnsmessage.Question, answers []dnsmessage.Resource) ([]byte, bool) {
	m := dnsmessage.Message{Header: h, Questions: qs, Answers: answers}
	b, err := m.Pack()
	return b, err == nil
}
