package gvstack_test

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/internal/iperf3"
	"github.com/enanet/enanet/internal/iperf3/gvstack"
	"github.com/enanet/enanet/internal/netenv"
)

// openSim brings up the simulated ENA's stack (IPv4 by DHCP, IPv6 by
// DHCPv6) and its VPC, whose stack is the peer.
func openSim(t *testing.T) *netenv.Host {
	t.Helper()
	h, err := netenv.Open(netenv.Config{Queues: 1})
	require.NoError(t, err)
	t.Cleanup(h.Close)
	return h
}

func addrs(t *testing.T, h *netenv.Host) (v4, v6 netip.Addr) {
	t.Helper()
	p4, _ := h.Stack.Addr()
	p6, _ := h.Stack.Addr6()
	require.True(t, p4.IsValid() && p6.IsValid(), "the simulated stack has %v and %v", p4, p6)
	return p4.Addr(), p6.Addr()
}

// TestListenFamilies: with no family the listener takes IPv4 and IPv6
// connections, each with its endpoint's TCP statistics; -6 takes IPv6
// only, as iperf3's IPV6_V6ONLY.
func TestListenFamilies(t *testing.T) {
	h := openSim(t)
	v4, v6 := addrs(t, h)
	peer := gvstack.Dialer{Stack: h.VPC.Stack}
	const port = 5399

	ln, err := gvstack.Listen(h.Stack, "", "", port)
	require.NoError(t, err)
	for _, a := range []netip.Addr{v4, v6} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := peer.DialContext(ctx, "tcp", netip.AddrPortFrom(a, port).String())
		cancel()
		require.NoError(t, err, "dialing %v", a)
		s, err := ln.Accept()
		require.NoError(t, err)
		assert.Equal(t, a.String(), s.LocalAddr().(*net.TCPAddr).AddrPort().Addr().String())
		ti, ok := s.(iperf3.TCPInfoer)
		require.True(t, ok, "the accepted %v connection has no TCP statistics", a)
		info, err := ti.TCPInfo()
		require.NoError(t, err)
		assert.NotZero(t, info.SndCwnd)
		s.Close()
		c.Close()
	}
	require.NoError(t, ln.Close())

	// Another port: the closed connections' TIME_WAIT holds this one.
	ln, err = gvstack.Listen(h.Stack, "", "6", port+1)
	require.NoError(t, err)
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = peer.DialContext(ctx, "tcp", netip.AddrPortFrom(v4, port+1).String())
	require.ErrorIs(t, err, gvstack.ErrConnRefused, "-6 listens on IPv6 only")
	c, err := peer.DialContext(ctx, "tcp", netip.AddrPortFrom(v6, port+1).String())
	require.NoError(t, err)
	c.Close()
}

func TestListenErrors(t *testing.T) {
	h := openSim(t)
	v4, _ := addrs(t, h)
	_, err := gvstack.Listen(h.Stack, "10.9.9.9", "", 5398)
	require.ErrorContains(t, err, "-B 10.9.9.9: the userspace stack has no such address")
	_, err = gvstack.Listen(h.Stack, v4.String(), "6", 5398)
	require.ErrorContains(t, err, "is not an IPv6 address")
	ln, err := gvstack.Listen(h.Stack, "", "", 5398)
	require.NoError(t, err)
	defer ln.Close()
	_, err = gvstack.Listen(h.Stack, "", "4", 5398)
	require.ErrorContains(t, err, "port 5398 on the userspace stack is taken")
	_, err = gvstack.Dialer{Stack: h.Stack}.DialContext(context.Background(), "tcp6", net.JoinHostPort(v4.String(), "1"))
	require.ErrorContains(t, err, "is not an IPv6 address")
}

// TestWaitAcked: a dialed connection's WaitAcked returns once the peer
// has acknowledged what was written, and not before anything was.
func TestWaitAcked(t *testing.T) {
	h := openSim(t)
	const port = 5397
	ln, err := h.VPC.Stack.Listen("tcp", ":"+strconv.Itoa(port))
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var held []net.Conn // accepted, read from by no one
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	defer func() {
		ln.Close()
		<-done
	}()
	router := netip.AddrPortFrom(h.VPC.Router(), port).String()
	d := gvstack.Dialer{Stack: h.Stack}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	silent, err := d.DialContext(ctx, "tcp", router)
	require.NoError(t, err)
	defer silent.Close()
	wctx, wcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer wcancel()
	require.ErrorIs(t, silent.(iperf3.AckWaiter).WaitAcked(wctx), context.DeadlineExceeded, "nothing written, nothing acknowledged")

	c, err := d.DialContext(ctx, "tcp", router)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write(make([]byte, iperf3.CookieSize))
	require.NoError(t, err)
	require.NoError(t, c.(iperf3.AckWaiter).WaitAcked(ctx))
}
