package link_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/enanet/enanet/link"
)

// echoMessage marshals an echo request of the family of to.
func echoMessage(t *testing.T, to netip.Addr, seq int, data []byte) []byte {
	t.Helper()
	typ := icmp.Type(ipv4.ICMPTypeEcho)
	if to.Is6() {
		typ = ipv6.ICMPTypeEchoRequest
	}
	b, err := (&icmp.Message{Type: typ, Body: &icmp.Echo{Seq: seq, Data: data}}).Marshal(nil)
	require.NoError(t, err)
	return b
}

// parseEchoReply parses an echo reply of the family of from.
func parseEchoReply(t *testing.T, from netip.Addr, b []byte) *icmp.Echo {
	t.Helper()
	proto, want := 1, icmp.Type(ipv4.ICMPTypeEchoReply)
	if from.Is6() {
		proto, want = 58, ipv6.ICMPTypeEchoReply
	}
	m, err := icmp.ParseMessage(proto, b)
	require.NoError(t, err)
	require.Equal(t, want, m.Type)
	e, ok := m.Body.(*icmp.Echo)
	require.True(t, ok, "%T", m.Body)
	return e
}

// TestListenPingBothFamilies: a listening echo socket of each family
// sends requests with WriteTo and reads the replies with their sources,
// to the global and the link-local IPv6 address too.
func TestListenPingBothFamilies(t *testing.T) {
	r := newDualRig(t, fullOffloads, link.Options{})
	for _, to := range []netip.Addr{addrB.Addr(), addr6B.Addr(), r.b.LinkLocal()} {
		var laddr netip.Addr
		if to.Is6() {
			laddr = netip.IPv6Unspecified()
		}
		pc, err := r.a.ListenPingAddr(laddr)
		require.NoError(t, err)
		assert.Equal(t, map[bool]string{true: "ping4", false: "ping6"}[to.Is4()], pc.LocalAddr().Network())
		assert.Nil(t, pc.RemoteAddr())
		require.NoError(t, pc.SetReadDeadline(time.Now().Add(10*time.Second)))
		data := []byte("health check " + to.String())
		for seq := 1; seq <= 3; seq++ {
			_, err := pc.WriteTo(echoMessage(t, to, seq, data), link.PingAddrFromAddr(to))
			require.NoError(t, err, "to %v", to)
			buf := make([]byte, 1500)
			n, from, err := pc.ReadFrom(buf)
			require.NoError(t, err, "from %v", to)
			assert.Equal(t, to, from.(*link.PingAddr).Addr())
			e := parseEchoReply(t, to, buf[:n])
			assert.Equal(t, seq, e.Seq)
			assert.Equal(t, data, e.Data)
		}
		require.NoError(t, pc.Close())
	}
}

// TestDialPing: a connected echo socket writes to its peer with Write, as
// wireguard-go's ping example does, on both families; *net.IPAddr works
// as a destination too.
func TestDialPing(t *testing.T) {
	r := newDualRig(t, fullOffloads, link.Options{})
	for _, to := range []netip.Addr{addrB.Addr(), addr6B.Addr()} {
		c, err := r.a.DialPing(nil, link.PingAddrFromAddr(to))
		require.NoError(t, err)
		var conn net.Conn = c // a net.Conn like any other
		assert.Equal(t, to.String(), conn.RemoteAddr().String())
		require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
		_, err = conn.Write(echoMessage(t, to, 7, []byte("gopher burrow")))
		require.NoError(t, err)
		buf := make([]byte, 1500)
		n, err := conn.Read(buf)
		require.NoError(t, err)
		e := parseEchoReply(t, to, buf[:n])
		assert.Equal(t, 7, e.Seq)
		assert.Equal(t, []byte("gopher burrow"), e.Data)

		_, err = c.WriteTo(echoMessage(t, to, 8, nil), &net.IPAddr{IP: to.AsSlice()})
		require.NoError(t, err)
		n, err = c.Read(buf)
		require.NoError(t, err)
		assert.Equal(t, 8, parseEchoReply(t, to, buf[:n]).Seq)
		c.Close()
	}
}

// TestPingConnErrors: timeouts, Close under a blocked read, bad messages
// and wrong-family addresses fail as package net's conns do.
func TestPingConnErrors(t *testing.T) {
	r := newDualRig(t, fullOffloads, link.Options{})

	// Nobody answers at an unused on-link address: the read deadline ends
	// the wait with a net.Error whose Timeout() is true.
	c, err := r.a.DialPingAddr(netip.Addr{}, netip.MustParseAddr("10.0.0.77"))
	require.NoError(t, err)
	_, err = c.Write(echoMessage(t, addrB.Addr(), 1, nil))
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
	_, err = c.Read(make([]byte, 100))
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	var oe *net.OpError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, "read", oe.Op)

	// A deadline moved into the future unblocks reads again; Close ends
	// a blocked read with net.ErrClosed.
	require.NoError(t, c.SetReadDeadline(time.Time{}))
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 100))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, net.ErrClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end the blocked Read")
	}
	_, err = c.Write(echoMessage(t, addrB.Addr(), 1, nil))
	assert.ErrorIs(t, err, net.ErrClosed)

	pc, err := r.a.ListenPing(nil)
	require.NoError(t, err)
	defer pc.Close()
	_, err = pc.WriteTo([]byte("not icmp"), link.PingAddrFromAddr(addrB.Addr()))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not an ICMP echo request")
	_, err = pc.WriteTo(echoMessage(t, addr6B.Addr(), 1, nil), link.PingAddrFromAddr(addr6B.Addr()))
	assert.ErrorContains(t, err, "wrong family")
	_, err = pc.WriteTo(echoMessage(t, addrB.Addr(), 1, nil), &net.UDPAddr{IP: net.IPv4(10, 0, 0, 2)})
	assert.ErrorContains(t, err, "want a *link.PingAddr")
	_, err = pc.Write(echoMessage(t, addrB.Addr(), 1, nil))
	assert.ErrorContains(t, err, "no destination")

	_, err = r.a.DialPingAddr(netip.MustParseAddr("10.0.0.1"), addr6B.Addr())
	assert.ErrorContains(t, err, "different families")
	_, err = r.a.DialPing(nil, nil)
	assert.ErrorContains(t, err, "no address given")
	_, err = r.a.ListenPingAddr(netip.MustParseAddr("10.9.9.9"))
	assert.ErrorIs(t, err, syscall.EADDRNOTAVAIL)
}

// TestDialPingNetworks: Dial takes ping, ping4 and ping6 with a bare host,
// as wireguard-go's netstack does, and refuses the wrong family.
func TestDialPingNetworks(t *testing.T) {
	r := newDualRig(t, fullOffloads, link.Options{})
	ctx := context.Background()
	for network, to := range map[string]netip.Addr{"ping4": addrB.Addr(), "ping6": addr6B.Addr(), "ping": addr6B.Addr()} {
		c, err := r.a.Dial(ctx, network, to.String())
		require.NoError(t, err, network)
		require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
		_, err = c.Write(echoMessage(t, to, 3, []byte("x")))
		require.NoError(t, err, network)
		buf := make([]byte, 100)
		n, err := c.Read(buf)
		require.NoError(t, err, network)
		assert.Equal(t, 3, parseEchoReply(t, to, buf[:n]).Seq, network)
		c.Close()
	}
	_, err := r.a.Dial(ctx, "ping4", addr6B.Addr().String())
	assert.ErrorContains(t, err, "no suitable address")
	_, err = r.a.Dial(ctx, "pingx", addrB.Addr().String())
	var une net.UnknownNetworkError
	assert.ErrorAs(t, err, &une)
}

// TestPingConnDeadlineWhileBlocked: a deadline set while a Read waits
// applies to that Read, as with package net's conns, and a deadline
// moved later before it passes does not fire at the earlier time.
func TestPingConnDeadlineWhileBlocked(t *testing.T) {
	r := newDualRig(t, fullOffloads, link.Options{})
	c, err := r.a.DialPingAddr(netip.Addr{}, addrB.Addr())
	require.NoError(t, err)
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 100))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	select {
	case err := <-done:
		assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	case <-time.After(5 * time.Second):
		t.Fatal("a deadline set during Read did not end it")
	}

	// Earlier deadline replaced by a later one: a reply sent after the
	// earlier one still arrives.
	require.NoError(t, c.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	req := echoMessage(t, addrB.Addr(), 5, nil)
	go func() {
		time.Sleep(150 * time.Millisecond)
		c.Write(req)
	}()
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, 5, parseEchoReply(t, addrB.Addr(), buf[:n]).Seq)
}
