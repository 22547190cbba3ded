package vpc

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/dns/dnsmessage"
)

// resolver resolves through the VPC resolver at addr, over the ENA stack.
func (e *enaOnVPC) resolver(addr netip.Addr) *net.Resolver {
	d := Dialer{Stack: e.st}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, "udp", netip.AddrPortFrom(addr, 53).String())
	}}
}

func TestVPCResolver(t *testing.T) {
	e := newENAOnVPC(t, Config{})
	require.Equal(t, ResolverAddr, e.vpc.Resolver())
	require.Equal(t, []netip.Addr{ResolverAddr}, e.st.Lease().DNS, "DHCP hands out the VPC resolver")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, srv := range []netip.Addr{ResolverAddr, LinkLocalResolverAddr} {
		r := e.resolver(srv)
		addrs, err := r.LookupNetIP(ctx, "ip4", "instance-data.ec2.internal")
		require.NoError(t, err, "via %s", srv)
		require.Equal(t, []netip.Addr{MetadataAddr}, addrs)
		addrs, err = r.LookupNetIP(ctx, "ip4", "ip-172-31-0-10.us-west-2.compute.internal")
		require.NoError(t, err)
		require.Equal(t, []netip.Addr{FirstLease}, addrs)
		_, err = r.LookupNetIP(ctx, "ip4", "example.com")
		var dnsErr *net.DNSError
		require.ErrorAs(t, err, &dnsErr)
		require.True(t, dnsErr.IsNotFound, "unknown names are NXDOMAIN: %v", err)
	}
	e.vpc.AddDNSName("db.internal.", netip.MustParseAddr("172.31.5.5"))
	addrs, err := e.resolver(ResolverAddr).LookupNetIP(ctx, "ip4", "DB.internal")
	require.NoError(t, err)
	require.Equal(t, "172.31.5.5", addrs[0].String())
}

func TestVPCResolverBadQueries(t *testing.T) {
	s := &services{subnet: RouterPrefix.Masked()}
	require.Nil(t, s.answer([]byte{1, 2, 3}), "not DNS: dropped")
	q := dnsmessage.Message{Header: dnsmessage.Header{ID: 7, OpCode: 2}, Questions: []dnsmessage.Question{
		{Name: dnsmessage.MustNewName("instance-data."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}}}
	b, _ := q.Pack()
	var m dnsmessage.Message
	require.NoError(t, m.Unpack(s.answer(b)))
	require.Equal(t, dnsmessage.RCodeNotImplemented, m.RCode)
	q.Header.OpCode = 0
	q.Questions = append(q.Questions, q.Questions[0])
	b, _ = q.Pack()
	require.NoError(t, m.Unpack(s.answer(b)))
	require.Equal(t, dnsmessage.RCodeFormatError, m.RCode)
}

func TestVPCMetadata(t *testing.T) {
	e := newENAOnVPC(t, Config{})
	d := Dialer{Stack: e.st}
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	base := "http://" + MetadataAddr.String()
	get := func(path, token string) (int, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if token != "" {
			req.Header.Set("X-aws-ec2-metadata-token", token)
		}
		resp, err := c.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/latest/meta-data/instance-id", "")
	require.Equal(t, 200, code)
	require.Equal(t, MetadataInstanceID, body)
	code, body = get("/latest/meta-data/local-ipv4", "")
	require.Equal(t, 200, code)
	require.Equal(t, FirstLease.String(), body)
	code, body = get("/latest/meta-data/local-hostname", "")
	require.Equal(t, 200, code)
	require.Equal(t, "ip-172-31-0-10.sim-1.compute.internal", body)
	addrs, err := e.resolver(ResolverAddr).LookupNetIP(context.Background(), "ip4", body)
	require.NoError(t, err)
	require.Equal(t, []netip.Addr{FirstLease}, addrs)

	req, _ := http.NewRequest("PUT", base+"/latest/api/token", nil)
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	resp, err := c.Do(req)
	require.NoError(t, err)
	tok, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	code, _ = get("/latest/meta-data/instance-id", strings.TrimSpace(string(tok)))
	require.Equal(t, 200, code)
	code, _ = get("/latest/meta-data/instance-id", "forged")
	require.Equal(t, 401, code)
	code, _ = get("/latest/meta-data/nope", "")
	require.Equal(t, 404, code)
}

// TestVPCResolverOtherSubnet: the resolver follows a configured subnet.
func TestVPCResolverOtherSubnet(t *testing.T) {
	e := newENAOnVPC(t, Config{Router: netip.MustParsePrefix("10.0.1.1/24")})
	want := netip.MustParseAddr("10.0.1.2")
	require.Equal(t, want, e.vpc.Resolver())
	require.Equal(t, []netip.Addr{want}, e.st.Lease().DNS)
	addr, _ := e.st.Addr()
	name := "ip-" + strings.ReplaceAll(addr.Addr().String(), ".", "-") + ".ec2.internal"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := e.resolver(want).LookupNetIP(ctx, "ip4", name)
	require.NoError(t, err)
	require.Equal(t, []netip.Addr{addr.Addr()}, got)
	_, err = e.resolver(want).LookupNetIP(ctx, "ip4", "ip-172-31-0-10.ec2.internal")
	require.Error(t, err, "names outside the subnet are unknown")
}
