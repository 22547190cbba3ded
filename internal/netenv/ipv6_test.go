package netenv

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/link/vpc"
)

// TestOpenSimulatedDualStack: on the simulated VPC the stack is dual stack
// by default, its IPv6 address from DHCPv6.
func TestOpenSimulatedDualStack(t *testing.T) {
	h, err := Open(Config{Queues: 1})
	require.NoError(t, err)
	defer h.Close()
	addr6, gw6 := h.Stack.Addr6()
	assert.Equal(t, netip.PrefixFrom(vpc.FirstLease6, 128), addr6)
	assert.Equal(t, h.VPC.Stack.LinkLocal(), gw6)
}

func TestOpenStaticIPv6(t *testing.T) {
	var c Config
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	AddFlags(fs, &c)
	require.NoError(t, fs.Parse([]string{"--queues", "1", "--ip6", "fd00:ec2:0:1::99/64", "--gw6", "fe80::ec:2fff:fe00:1"}))
	h, err := Open(c)
	require.NoError(t, err)
	defer h.Close()
	addr6, gw6 := h.Stack.Addr6()
	assert.Equal(t, "fd00:ec2:0:1::99/64", addr6.String())
	assert.Equal(t, "fe80::ec:2fff:fe00:1", gw6.String())
	assert.Nil(t, h.Stack.Lease6())
}

func TestIPv6FlagErrors(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{IP6: "fd00::1/64", DHCP6: true}, "--ip6 and --dhcp6 exclude each other"},
		{Config{IP6: "10.0.0.1/24"}, "--ip6 \"10.0.0.1/24\": want an IPv6 address with prefix"},
		{Config{IP6: "fd00::1"}, "want an IPv6 address with prefix"},
		{Config{Gateway6: "fe80::1"}, "--gw6 needs --ip6"},
		{Config{IP6: "fd00::1/64", Gateway6: "10.0.0.1"}, "--gw6 \"10.0.0.1\": want an IPv6 address"},
	} {
		_, err := Open(tc.c)
		assert.ErrorContains(t, err, tc.want, "%+v", tc.c)
	}
}

// TestOpenSimulatedVPCFollowsIP6: the simulated VPC takes --ip6's prefix,
// so its router reaches the address (port forwarding dials it from there)
// however the prefix differs from the default VPC's.
func TestOpenSimulatedVPCFollowsIP6(t *testing.T) {
	h, err := Open(Config{Queues: 1, IP6: "2600:1f18::5/64"})
	require.NoError(t, err)
	defer h.Close()
	assert.Equal(t, netip.MustParsePrefix("2600:1f18::1/64"), h.VPC.Subnet6())
	ln, err := h.Stack.Listen("tcp6", ":80")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := h.VPC.Stack.Dial(ctx, "tcp", "[2600:1f18::5]:80")
	require.NoError(t, err, "the VPC router reaches --ip6")
	c.Close()

	for ip6, want := range map[string]string{
		"2600:1f18::5/56": "the simulated VPC takes /64 IPv6 subnets",
		"2600:1f18::1/64": "is the simulated VPC router's address",
	} {
		_, err := Open(Config{Queues: 1, IP6: ip6})
		assert.ErrorContains(t, err, want, ip6)
	}
}
