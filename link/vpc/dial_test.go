package vpc

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/link"
)

// TestDNSErrorNamesQueriedServer: a *net.DNSError from the stack's
// lookups and from Dial names the DNS server the query went through the
// stack to, not the host's /etc/resolv.conf server.
func TestDNSErrorNamesQueriedServer(t *testing.T) {
	v, st := stackOnVPC(t, Config{}, link.StackOptions{DHCP: true, DHCPv6: true})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, server := range []netip.Addr{v.Resolver(), Resolver6Addr} {
		st.SetDNSServers(server)
		want := netip.AddrPortFrom(server, 53).String()
		var de *net.DNSError
		_, err := st.LookupHost("nosuch.vpc.internal")
		require.ErrorAs(t, err, &de)
		assert.True(t, de.IsNotFound)
		assert.Equal(t, want, de.Server, "LookupHost")
		_, err = st.LookupNetIP(ctx, "ip6", "nosuch.vpc.internal")
		require.ErrorAs(t, err, &de)
		assert.Equal(t, want, de.Server, "LookupNetIP")
		_, err = st.Dial(ctx, "tcp", "nosuch.vpc.internal:80")
		require.ErrorAs(t, err, &de)
		assert.Equal(t, want, de.Server, "Dial")
		assert.Contains(t, err.Error(), "on "+want+": no such host")
		addrs, err := st.LookupContextHost(ctx, GatewayName)
		require.NoError(t, err)
		assert.ElementsMatch(t, []string{v.Router().String(), v.Router6().String()}, addrs)
	}
}

// TestDNSErrorWithoutServer: with no DNS server known nothing was
// queried, and the error says so rather than naming the host's server.
func TestDNSErrorWithoutServer(t *testing.T) {
	_, st := stackOnVPC(t, Config{NoIPv6: true}, link.StackOptions{Addr: netip.MustParsePrefix("172.31.0.99/20"), NoIPv6: true})
	_, err := st.LookupHost("anything.vpc.internal")
	var de *net.DNSError
	require.ErrorAs(t, err, &de)
	assert.Empty(t, de.Server)
	assert.Contains(t, err.Error(), "no DNS server")
}

// TestDialHappyEyeballs: a name whose IPv6 address does not answer (on
// link, but nobody has it: neighbour discovery gives up after about 3 s)
// and whose IPv4 address does is reached over IPv4 FallbackDelay after the
// IPv6 attempt started, well within a 2.5 s context that a one-by-one dial
// would spend on IPv6 alone.
func TestDialHappyEyeballs(t *testing.T) {
	v, st := stackOnVPC(t, Config{}, link.StackOptions{DHCP: true, DHCPv6: true})
	waitGateway6(t, st)
	ln, err := v.Stack.Listen("tcp", ":7001")
	require.NoError(t, err)
	defer ln.Close()
	go echoAccept(ln)
	silent6 := netip.MustParseAddr("fd00:ec2:0:1::77")
	v.AddDNSName("dual.vpc.internal", silent6, v.Router())

	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	c, err := st.Dial(ctx, "tcp", "dual.vpc.internal:7001")
	require.NoError(t, err, "the IPv4 fallback did not win the race")
	defer c.Close()
	assert.Equal(t, v.Router(), c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap())

	// tcp6 has no fallback: it waits for IPv6 and fails.
	ctx6, cancel6 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel6()
	_, err = st.Dial(ctx6, "tcp6", "dual.vpc.internal:7001")
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout(), "%v", err)
}

// TestDialHappyEyeballsBothRefused: when both families refuse, Dial
// reports the first family's error, as package net does.
func TestDialHappyEyeballsBothRefused(t *testing.T) {
	v, st := stackOnVPC(t, Config{}, link.StackOptions{DHCP: true, DHCPv6: true})
	waitGateway6(t, st)
	v.AddDNSName("closed.vpc.internal", v.Router6(), v.Router())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := st.Dial(ctx, "tcp", "closed.vpc.internal:7999")
	require.True(t, errors.Is(err, syscall.ECONNREFUSED), "%v", err)
	var oe *net.OpError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, v.Router6(), oe.Addr.(*net.TCPAddr).AddrPort().Addr(), "the IPv6 attempt's error")
}

func echoAccept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			buf := make([]byte, 1024)
			for {
				n, err := c.Read(buf)
				if err != nil {
					c.Close()
					return
				}
				c.Write(buf[:n])
			}
		}()
	}
}
