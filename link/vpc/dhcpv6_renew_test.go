package vpc

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/link"
)

// shortLease is the DHCPv6 lifetime of these tests: T1 2 s, T2 3 s (the
// wire carries whole seconds).
const shortLease = 4 * time.Second

// hasAddr reports whether the stack's NIC carries a.
func hasAddr(st *link.Stack, a netip.Addr) bool {
	for _, pa := range st.Stack.AllAddresses()[st.NICID] {
		if pa.AddressWithPrefix.Address.Len() == 16 && netip.AddrFrom16(pa.AddressWithPrefix.Address.As16()) == a {
			return true
		}
	}
	return false
}

// TestDHCPv6Renew: the client renews with its server at T1, before the
// valid lifetime ends, and keeps its address past several lifetimes.
func TestDHCPv6Renew(t *testing.T) {
	v, st := stackOnVPC(t, Config{DHCPv6Lifetime: shortLease}, link.StackOptions{DHCP: true, DHCPv6: true})
	l := st.Lease6()
	require.NotNil(t, l)
	assert.Equal(t, FirstLease6, l.Addr)
	assert.Equal(t, 2*time.Second, l.T1)
	assert.Equal(t, 3*time.Second, l.T2)
	assert.Equal(t, shortLease, l.Valid)
	assert.Equal(t, v.Stack.LinkLocal(), l.Server, "the server's address")

	deadline := time.Now().Add(2*shortLease + time.Second)
	for time.Now().Before(deadline) {
		require.True(t, hasAddr(st, FirstLease6), "address lost at %v", time.Since(l.Acquired))
		time.Sleep(50 * time.Millisecond)
	}
	assert.GreaterOrEqual(t, v.DHCPv6.Received(dhcpv6.MessageTypeRenew), uint64(3), "one Renew per T1")
	assert.Zero(t, v.DHCPv6.Received(dhcpv6.MessageTypeRebind), "the server answered every Renew")
	assert.Equal(t, uint64(1), v.DHCPv6.Received(dhcpv6.MessageTypeSolicit))
	nl := st.Lease6()
	assert.True(t, nl.Acquired.After(l.Acquired.Add(shortLease)), "lease extended")
}

// TestDHCPv6Rebind: the server that gave the lease is replaced by one
// with another DUID. The client's Renews name the old server and go
// unanswered; from T2 it rebinds with any server, the new one answers,
// and the address stays.
func TestDHCPv6Rebind(t *testing.T) {
	v, st := stackOnVPC(t, Config{DHCPv6Lifetime: shortLease}, link.StackOptions{DHCP: true, DHCPv6: true})
	require.NoError(t, v.DHCPv6.Close())
	other := &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{2, 0xec, 0x2f, 0, 0, 2}}
	srv, err := ServeDHCPv6(v.Stack, DHCPv6ServerConfig{First: FirstLease6, Count: 10, Lifetime: shortLease, ServerID: other,
		DNS: []netip.Addr{Resolver6Addr}})
	require.NoError(t, err)
	v.DHCPv6 = srv // closed with the VPC

	require.Eventually(t, func() bool { return srv.Received(dhcpv6.MessageTypeRebind) > 0 }, 2*shortLease, 20*time.Millisecond)
	assert.Positive(t, srv.Received(dhcpv6.MessageTypeRenew), "Renews reached the new server, which left them alone")
	acquired := st.Lease6().Acquired
	deadline := time.Now().Add(2 * shortLease)
	for time.Now().Before(deadline) {
		require.True(t, hasAddr(st, FirstLease6), "address lost")
		time.Sleep(50 * time.Millisecond)
	}
	assert.True(t, st.Lease6().Acquired.After(acquired), "rebound lease extended again")
	assert.Zero(t, srv.Received(dhcpv6.MessageTypeSolicit), "no new Solicit: the lease was kept")
}

// TestDHCPv6LeaseExpiry: with no server answering, the address goes when
// its valid lifetime ends (and with it the global IPv6 address), and
// comes back by Solicit once a server answers again.
func TestDHCPv6LeaseExpiry(t *testing.T) {
	v, st := stackOnVPC(t, Config{DHCPv6Lifetime: shortLease}, link.StackOptions{DHCP: true, DHCPv6: true})
	l := st.Lease6()
	require.NotNil(t, l)
	require.NoError(t, v.DHCPv6.Close())
	v.DHCPv6 = nil

	require.Eventually(t, func() bool { return !hasAddr(st, FirstLease6) }, 2*shortLease, 20*time.Millisecond)
	gone := time.Since(l.Acquired)
	assert.GreaterOrEqual(t, gone, shortLease-100*time.Millisecond, "removed before the valid lifetime ended")
	assert.Nil(t, st.Lease6())
	addr6, _ := st.Addr6()
	assert.False(t, addr6.IsValid())

	srv, err := ServeDHCPv6(v.Stack, DHCPv6ServerConfig{First: FirstLease6, Count: 10, Lifetime: shortLease})
	require.NoError(t, err)
	v.DHCPv6 = srv
	require.Eventually(t, func() bool { return hasAddr(st, FirstLease6) }, 10*time.Second, 20*time.Millisecond)
	assert.Positive(t, srv.Received(dhcpv6.MessageTypeSolicit))
}

// TestDHCPv6ServerDropsForeignAddress: a Renew for an address that is not
// the client's lease gets it back with lifetimes 0 next to the lease.
func TestDHCPv6ServerDropsForeignAddress(t *testing.T) {
	d := &DHCPv6Server{cfg: DHCPv6ServerConfig{Lifetime: shortLease}, duid: &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr(RouterMAC[:])},
		pool: newLeasePool(FirstLease6, 10)}
	m, err := dhcpv6.NewMessage()
	require.NoError(t, err)
	m.MessageType = dhcpv6.MessageTypeRebind
	m.AddOption(dhcpv6.OptClientID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{2, 0, 0, 0, 0, 9}}))
	stale := netip.MustParseAddr("fd00:ec2:0:1::99")
	m.AddOption(&dhcpv6.OptIANA{IaId: [4]byte{1}, Options: dhcpv6.IdentityOptions{Options: dhcpv6.Options{&dhcpv6.OptIAAddress{IPv6Addr: net.IP(stale.AsSlice())}}}})
	r := d.answer(m)
	require.NotNil(t, r)
	require.Equal(t, dhcpv6.MessageTypeReply, r.MessageType)
	got := map[netip.Addr]time.Duration{}
	for _, a := range r.Options.OneIANA().Options.Addresses() {
		x, _ := netip.AddrFromSlice(a.IPv6Addr)
		got[x] = a.ValidLifetime
	}
	assert.Equal(t, map[netip.Addr]time.Duration{FirstLease6: shortLease, stale: 0}, got)
}

func TestDHCPv6ServerLifetimeTooShort(t *testing.T) {
	v, _ := stackOnVPC(t, Config{NoIPv6: true}, link.StackOptions{DHCP: true, NoIPv6: true})
	_, err := ServeDHCPv6(v.Stack, DHCPv6ServerConfig{First: FirstLease6, Count: 1, Lifetime: 500 * time.Millisecond})
	assert.ErrorContains(t, err, "want at least 1 s")
}
