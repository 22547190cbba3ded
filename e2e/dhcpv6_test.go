//go:build linux

package e2e

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestKernelDHCPv6: IPv6 the way EC2 gives it, from a real server: Debian's
// dnsmasq on the kernel side sends Router Advertisements with the managed
// flag and leases addresses by DHCPv6. The stack, configured with IPv4
// only, follows the advertisement, takes an address by DHCPv6, is reached
// at it by the kernel's ping6 and reaches the kernel from it over TCP; then
// (unless -short) it renews the lease with dnsmasq at T1 and keeps the
// address. dnsmasq's shortest lease is 2 minutes, so T1 is a minute away.
func TestKernelDHCPv6(t *testing.T) {
	p := startKernelPeer(t, peerOptions{})
	require.NoError(t, ipCmd("-n", p.NS, "addr", "add", kernelPrefix6.String(), "dev", p.TAP, "nodad"))
	pool := netip.MustParsePrefix("fd99:e2e::100/120")
	log := startDnsmasq(t, p, "--port=0", "--interface="+p.TAP, "--enable-ra", "--log-dhcp",
		"--dhcp-range=fd99:e2e::100,fd99:e2e::1ff,64,2m")

	// The stack solicits a router at start, perhaps before dnsmasq runs:
	// dnsmasq advertises on its own when it starts, and every few seconds
	// in its first minute.
	var got bool
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && !got {
		got = p.Stack.Lease6() != nil
		time.Sleep(50 * time.Millisecond)
	}
	require.True(t, got, "no DHCPv6 lease from dnsmasq in 30 s")
	l := p.Stack.Lease6()
	t.Logf("lease %v from %v: preferred %v, valid %v, T1 %v, T2 %v, DNS %v", l.Addr, l.Server, l.Preferred, l.Valid, l.T1, l.T2, l.DNS)
	assert.True(t, pool.Contains(l.Addr), "%v outside dnsmasq's range", l.Addr)
	assert.True(t, l.Server.IsLinkLocalUnicast(), "server address %v", l.Server)
	assert.Equal(t, 2*time.Minute, l.Valid)
	assert.True(t, 0 < l.T1 && l.T1 < l.T2 && l.T2 <= l.Valid, "T1 %v, T2 %v", l.T1, l.T2)
	addr6, _ := p.Stack.Addr6()
	assert.Equal(t, netip.PrefixFrom(l.Addr, 128), addr6)

	out, err := p.Run(20*time.Second, "ping", "-6", "-n", "-q", "-c", "3", "-W", "2", "-w", "15", l.Addr.String())
	require.NoError(t, err, out)
	assert.Contains(t, out, " 3 received")

	// A connection from the stack leaves from the lease's address.
	ln, err := p.Listen("tcp6", "["+kernelPrefix6.Addr().String()+"]:0")
	require.NoError(t, err)
	defer ln.Close()
	from := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		from <- c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().String()
		c.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := p.Stack.Dial(ctx, "tcp6", ln.Addr().String())
	require.NoError(t, err)
	io.Copy(io.Discard, c)
	c.Close()
	assert.Equal(t, l.Addr.String(), <-from)

	if testing.Short() {
		t.Log("-short: not waiting for the renewal at T1")
		return
	}
	deadline = l.Acquired.Add(l.T1 + 20*time.Second)
	for time.Now().Before(deadline) {
		if nl := p.Stack.Lease6(); nl != nil && nl.Acquired.After(l.Acquired) {
			assert.Equal(t, l.Addr, nl.Addr, "renewed with another address")
			assert.Contains(t, log.String(), "DHCPRENEW", "renewed without a Renew")
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no renewal by T1 + 20 s; dnsmasq log:\n%s", strings.TrimSpace(log.String()))
}
