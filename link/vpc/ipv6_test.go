package vpc

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/link"
	"github.com/enanet/enanet/link/simnic"
)

// stackOnVPC is a software NIC on a VPC, with a stack configured by o.
func stackOnVPC(t *testing.T, cfg Config, o link.StackOptions) (*VPC, *link.Stack) {
	t.Helper()
	cfg.Logger = quiet
	near, far := enasim.NewPair()
	v, err := New(far, cfg)
	require.NoError(t, err)
	t.Cleanup(v.Close)
	o.Logger = quiet
	if o.DHCPTimeout == 0 {
		o.DHCPTimeout = 10 * time.Second
	}
	st, err := link.NewStack(simnic.New(near, simnic.Config{MAC: [6]byte{2, 0, 0, 0, 0, 0x10}}), o)
	require.NoError(t, err)
	t.Cleanup(st.Close)
	return v, st
}

// waitGateway6 waits for the default router a Router Advertisement gives.
func waitGateway6(t *testing.T, st *link.Stack) netip.Addr {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, gw := st.Addr6(); gw.IsValid() {
			return gw
		}
		time.Sleep(20 * time.Millisecond)
	}
	rx := st.Stack.Stats().ICMP.V6.PacketsReceived
	tx := st.Stack.Stats().ICMP.V6.PacketsSent
	t.Fatalf("no IPv6 default router from Router Advertisements (received %d RAs, sent %d RSs, invalid %d)",
		rx.RouterAdvert.Value(), tx.RouterSolicit.Value(), rx.Invalid.Value())
	return netip.Addr{}
}

func TestVPCDualStackByDHCPv6AndRA(t *testing.T) {
	v, st := stackOnVPC(t, Config{}, link.StackOptions{DHCP: true, DHCPv6: true})
	addr6, _ := st.Addr6()
	assert.Equal(t, netip.PrefixFrom(FirstLease6, 128), addr6)
	assert.True(t, st.LinkLocal().IsLinkLocalUnicast())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("router: RS received %d, RA sent %d, invalid %d", v.Stack.Stack.Stats().ICMP.V6.PacketsReceived.RouterSolicit.Value(), v.RA.Sent(), v.Stack.Stack.Stats().ICMP.V6.PacketsReceived.Invalid.Value())
		}
	})
	gw := waitGateway6(t, st)
	assert.Equal(t, v.Stack.LinkLocal(), gw, "the default router is the router's link-local address")
	assert.Equal(t, []netip.Addr{v.Resolver(), Resolver6Addr}, st.DNSServers())
	assert.Len(t, v.DHCPv6.Leases(), 1)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, a := range []netip.Addr{v.Router(), v.Router6(), gw} {
		_, err := st.Ping(ctx, a)
		assert.NoError(t, err, "ping %v", a)
	}
	// By name, both families, through the VPC's DNS.
	ips, err := st.Resolver().LookupNetIP(ctx, "ip", GatewayName)
	require.NoError(t, err)
	assert.ElementsMatch(t, []netip.Addr{v.Router(), v.Router6()}, ips)
	_, err = st.Resolver().LookupHost(ctx, "nosuch.vpc.internal")
	var dnsErr *net.DNSError
	require.ErrorAs(t, err, &dnsErr)
	assert.True(t, dnsErr.IsNotFound, "%v", err)

	// TCP over IPv6 both ways, by name.
	ln, err := v.Stack.Listen("tcp", ":7000")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	for _, network := range []string{"tcp6", "tcp4", "tcp"} {
		c, err := st.Dial(ctx, network, net.JoinHostPort(GatewayName, "7000"))
		require.NoError(t, err, network)
		_, err = c.Write([]byte("ping"))
		require.NoError(t, err)
		buf := make([]byte, 4)
		_, err = io.ReadFull(c, buf)
		require.NoError(t, err)
		assert.Equal(t, "ping", string(buf))
		ra := netip.MustParseAddrPort(c.RemoteAddr().String())
		assert.Equal(t, network == "tcp4", ra.Addr().Is4(), "%s went to %v", network, ra)
		c.Close()
	}
}

func TestVPCAutoIPv6FromManagedRA(t *testing.T) {
	// DHCP only: IPv6 follows because the RA has the managed flag.
	_, st := stackOnVPC(t, Config{}, link.StackOptions{DHCP: true})
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if a, _ := st.Addr6(); a.IsValid() {
			assert.Equal(t, FirstLease6, a.Addr())
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no IPv6 address by DHCPv6 after a managed RA")
}

func TestVPCNoIPv6(t *testing.T) {
	v, st := stackOnVPC(t, Config{NoIPv6: true}, link.StackOptions{DHCP: true})
	assert.Nil(t, v.RA)
	assert.False(t, v.Router6().IsValid())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ips, err := st.Resolver().LookupNetIP(ctx, "ip", HostName)
	require.NoError(t, err)
	assert.Equal(t, []netip.Addr{v.Router()}, ips)
	// No AAAA record: as package net says it, "no such host".
	_, err = st.Dial(ctx, "tcp6", net.JoinHostPort(HostName, "80"))
	var de *net.DNSError
	require.True(t, errors.As(err, &de), "%v", err)
	assert.True(t, de.IsNotFound)
	assert.Equal(t, net.JoinHostPort(v.Resolver().String(), "53"), de.Server)
}

// TestVPCFollowsIPv6Subnet: a VPC given another IPv6 subnet routes to a
// static address in it (the router dials the host, as port forwarding
// does), advertises it and leases from it.
func TestVPCFollowsIPv6Subnet(t *testing.T) {
	router6 := netip.MustParsePrefix("2600:1f18::1/64")
	static := netip.MustParsePrefix("2600:1f18::5/64")
	v, st := stackOnVPC(t, Config{Router6: router6}, link.StackOptions{DHCP: true, Addr6: static})
	assert.Equal(t, router6.Addr(), v.Router6())
	assert.Equal(t, router6, v.Subnet6())
	assert.Equal(t, netip.MustParseAddr("2600:1f18::10"), v.FirstLease6())

	ln, err := st.Listen("tcp6", ":80")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Write([]byte("ok"))
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := v.Stack.Dial(ctx, "tcp", netip.AddrPortFrom(static.Addr(), 80).String())
	require.NoError(t, err, "the router reaches an address in its IPv6 subnet")
	b, err := io.ReadAll(c)
	c.Close()
	require.NoError(t, err)
	assert.Equal(t, "ok", string(b))
	_, err = st.Ping(ctx, v.Router6())
	assert.NoError(t, err)

	// A DHCPv6 client on the same VPC gets an address in the subnet.
	_, st2 := stackOnVPC(t, Config{Router6: router6}, link.StackOptions{DHCP: true, DHCPv6: true})
	a, _ := st2.Addr6()
	assert.Equal(t, netip.PrefixFrom(netip.MustParseAddr("2600:1f18::10"), 128), a)
}

func TestCheckSubnet6(t *testing.T) {
	require.NoError(t, CheckSubnet6(RouterPrefix6))
	for p, want := range map[string]string{
		"2600:1f18::1/56":    "takes /64",
		"10.0.0.1/24":        "want an IPv6 prefix",
		"fe80::1/64":         "global or unique local",
		"2600:1f18::/64":     "base address",
		"::ffff:10.0.0.1/64": "want an IPv6 prefix",
	} {
		err := CheckSubnet6(netip.MustParsePrefix(p))
		require.Error(t, err, p)
		assert.Contains(t, err.Error(), want, p)
	}
}
