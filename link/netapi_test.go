package link_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/enanet/enanet/link"
	"github.com/enanet/enanet/link/simnic"
)

var (
	addr6A = netip.MustParsePrefix("fd00:99::1/64")
	addr6B = netip.MustParsePrefix("fd00:99::2/64")
)

// dualRig is two dual-stack stacks (static IPv4 and IPv6) on a pipe.
type dualRig struct {
	a, b   *link.Stack
	na, nb *simnic.NIC
	wa, wb simnic.Wire
}

func newDualRig(t *testing.T, offloads link.Offloads, opts link.Options, dnsA ...netip.Addr) *dualRig {
	t.Helper()
	wa, wb := simnic.NewPipe()
	r := &dualRig{wa: wa, wb: wb}
	r.na = simnic.New(wa, simnic.Config{MAC: macA, Offloads: offloads})
	r.nb = simnic.New(wb, simnic.Config{MAC: macB, Offloads: offloads})
	var err error
	r.a, err = link.NewStack(r.na, link.StackOptions{Addr: addrA, Addr6: addr6A, Endpoint: opts, DNS: dnsA})
	require.NoError(t, err)
	t.Cleanup(func() { r.a.Close(); r.na.Close() })
	r.b, err = link.NewStack(r.nb, link.StackOptions{Addr: addrB, Addr6: addr6B, Endpoint: opts})
	require.NoError(t, err)
	t.Cleanup(func() { r.b.Close(); r.nb.Close() })
	return r
}

// echoServe echoes every connection of ln until ln closes.
func echoServe(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() { io.Copy(c, c); c.Close() }()
	}
}

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	_, err := c.Write([]byte(msg))
	require.NoError(t, err)
	buf := make([]byte, len(msg))
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	assert.Equal(t, msg, string(buf))
}

func TestDialListenBothFamilies(t *testing.T) {
	r := newDualRig(t, fullOffloads, link.Options{})
	ln, err := r.b.Listen("tcp", ":0") // dual stack
	require.NoError(t, err)
	defer ln.Close()
	go echoServe(ln)
	port := netip.MustParseAddrPort(ln.Addr().String()).Port()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct{ network, host string }{
		{"tcp", addrB.Addr().String()}, {"tcp4", addrB.Addr().String()},
		{"tcp", addr6B.Addr().String()}, {"tcp6", addr6B.Addr().String()},
		{"tcp6", r.b.LinkLocal().String()},
	} {
		c, err := r.a.Dial(ctx, tc.network, net.JoinHostPort(tc.host, fmt.Sprint(port)))
		require.NoError(t, err, "%s %s", tc.network, tc.host)
		roundTrip(t, c, "hello "+tc.network)
		c.Close()
	}

	// tcp6 on a wildcard takes IPv6 only; tcp4 IPv4 only.
	ln6, err := r.b.Listen("tcp6", ":0")
	require.NoError(t, err)
	defer ln6.Close()
	p6 := netip.MustParseAddrPort(ln6.Addr().String()).Port()
	_, err = r.a.Dial(ctx, "tcp4", net.JoinHostPort(addrB.Addr().String(), fmt.Sprint(p6)))
	assert.ErrorIs(t, err, syscall.ECONNREFUSED)

	// A dialled UDP socket, both families.
	pc, err := r.b.ListenPacket("udp", ":0")
	require.NoError(t, err)
	defer pc.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	up := netip.MustParseAddrPort(pc.LocalAddr().String()).Port()
	for _, host := range []string{addrB.Addr().String(), addr6B.Addr().String()} {
		c, err := r.a.Dial(ctx, "udp", net.JoinHostPort(host, fmt.Sprint(up)))
		require.NoError(t, err)
		roundTrip(t, c, "datagram to "+host)
		c.Close()
	}
	// WriteTo with a 4-byte IPv4 address on a dual-stack socket.
	cpc, err := r.a.ListenPacket("udp", ":0")
	require.NoError(t, err)
	defer cpc.Close()
	_, err = cpc.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(netip.AddrPortFrom(addrB.Addr(), up)))
	require.NoError(t, err)
	require.NoError(t, cpc.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 16)
	n, from, err := cpc.ReadFrom(buf)
	require.NoError(t, err)
	assert.Equal(t, "x", string(buf[:n]))
	assert.Equal(t, addrB.Addr(), netip.MustParseAddrPort(from.String()).Addr().Unmap())
}

func TestNetErrors(t *testing.T) {
	r := newDualRig(t, fullOffloads, link.Options{})
	ctx := context.Background()

	t.Run("connection refused", func(t *testing.T) {
		for _, host := range []string{addrB.Addr().String(), addr6B.Addr().String()} {
			_, err := r.a.Dial(ctx, "tcp", net.JoinHostPort(host, "9"))
			var oe *net.OpError
			require.ErrorAs(t, err, &oe)
			assert.Equal(t, "dial", oe.Op)
			assert.ErrorIs(t, err, syscall.ECONNREFUSED)
			assert.Contains(t, err.Error(), "connect: connection refused")
		}
	})
	t.Run("dial timeout", func(t *testing.T) {
		// Nobody answers ARP for .99: the context's deadline ends it.
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := r.a.Dial(ctx, "tcp", "10.0.0.99:80")
		var ne net.Error
		require.ErrorAs(t, err, &ne)
		assert.True(t, ne.Timeout(), "%v", err)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
		assert.Contains(t, err.Error(), "i/o timeout")
	})
	t.Run("dial cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := r.a.Dial(ctx, "tcp6", "[fd00:99::99]:80")
		assert.ErrorIs(t, err, context.Canceled)
	})
	t.Run("read deadline", func(t *testing.T) {
		ln, err := r.b.Listen("tcp", ":0")
		require.NoError(t, err)
		defer ln.Close()
		go echoServe(ln)
		c, err := r.a.Dial(ctx, "tcp", net.JoinHostPort(addrB.Addr().String(), fmt.Sprint(netip.MustParseAddrPort(ln.Addr().String()).Port())))
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
		_, err = c.Read(make([]byte, 1))
		var ne net.Error
		require.ErrorAs(t, err, &ne)
		assert.True(t, ne.Timeout())
	})
	t.Run("address already in use", func(t *testing.T) {
		ln, err := r.b.Listen("tcp", ":8080")
		require.NoError(t, err)
		defer ln.Close()
		for _, network := range []string{"tcp", "tcp4", "tcp6"} {
			_, err = r.b.Listen(network, ":8080")
			assert.ErrorIs(t, err, syscall.EADDRINUSE, network)
			// Package net's wording: the network and address asked for.
			assert.EqualError(t, err, "listen "+network+" :8080: bind: address already in use")
		}
		_, err = r.b.Listen("tcp", "[::]:8080")
		assert.EqualError(t, err, "listen tcp [::]:8080: bind: address already in use")
		pc, err := r.b.ListenPacket("udp", ":5353")
		require.NoError(t, err)
		defer pc.Close()
		_, err = r.b.ListenPacket("udp4", ":5353")
		assert.ErrorIs(t, err, syscall.EADDRINUSE)
	})
	t.Run("unknown network", func(t *testing.T) {
		_, err := r.a.Dial(ctx, "sctp", "10.0.0.2:80")
		var une net.UnknownNetworkError
		assert.ErrorAs(t, err, &une)
		assert.EqualError(t, err, "dial sctp: unknown network sctp")
		_, err = r.a.Listen("udp", ":80")
		assert.ErrorAs(t, err, &une)
		_, err = r.a.ListenPacket("tcp", ":80")
		assert.ErrorAs(t, err, &une)
	})
	t.Run("bad address", func(t *testing.T) {
		_, err := r.a.Dial(ctx, "tcp", "10.0.0.2")
		var ae *net.AddrError
		assert.ErrorAs(t, err, &ae)
		_, err = r.a.Listen("tcp4", "[fd00:99::2]:80")
		assert.ErrorAs(t, err, &ae)
	})
	t.Run("no DNS server", func(t *testing.T) {
		_, err := r.a.Dial(ctx, "tcp", "example.internal:80")
		var de *net.DNSError
		require.ErrorAs(t, err, &de)
		assert.Contains(t, err.Error(), "no DNS server")
	})
	t.Run("ping timeout", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, err := r.a.Ping(ctx, netip.MustParseAddr("fd00:99::99"))
		var ne net.Error
		require.ErrorAs(t, err, &ne)
		assert.True(t, ne.Timeout())
	})
	t.Run("closed listener", func(t *testing.T) {
		ln, err := r.b.Listen("tcp", ":0")
		require.NoError(t, err)
		done := make(chan error)
		go func() { _, err := ln.Accept(); done <- err }()
		time.Sleep(20 * time.Millisecond)
		ln.Close()
		assert.ErrorIs(t, <-done, net.ErrClosed)
	})
}

func TestPingBothFamilies(t *testing.T) {
	r := newDualRig(t, fullOffloads, link.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, a := range []netip.Addr{addrB.Addr(), addr6B.Addr(), r.b.LinkLocal()} {
		rtt, err := r.a.Ping(ctx, a)
		require.NoError(t, err, "ping %v", a)
		assert.Positive(t, rtt)
	}
}

// TestIPv6Fragments sends UDP datagrams larger than the MTU over IPv6 both
// ways: the sender fragments them; under Rx checksum offload the endpoint's
// verifier checks the reassembled UDP checksum before delivery, without it
// the stack does. Either way they arrive intact.
func TestIPv6Fragments(t *testing.T) {
	for _, offload := range []bool{true, false} {
		t.Run(fmt.Sprintf("rx-offload=%v", offload), func(t *testing.T) {
			r := newDualRig(t, fullOffloads, link.Options{NoRxChecksumOffload: !offload})
			for _, dir := range []struct {
				from, to *link.Stack
				toAddr   netip.Addr
			}{{r.a, r.b, addr6B.Addr()}, {r.b, r.a, addr6A.Addr()}} {
				srv, err := dir.to.ListenPacket("udp6", ":7001")
				require.NoError(t, err)
				cli, err := dir.from.Dial(context.Background(), "udp6", net.JoinHostPort(dir.toAddr.String(), "7001"))
				require.NoError(t, err)
				msg := make([]byte, 4000)
				rand.Read(msg)
				_, err = cli.Write(msg)
				require.NoError(t, err)
				require.NoError(t, srv.SetReadDeadline(time.Now().Add(3*time.Second)))
				buf := make([]byte, 8000)
				n, _, err := srv.ReadFrom(buf)
				require.NoError(t, err)
				assert.True(t, bytes.Equal(buf[:n], msg), "datagram corrupted")
				st := dir.to.Endpoint.Stats().Rx[0]
				if offload {
					assert.GreaterOrEqual(t, st.FragmentsVerified, uint64(3))
					assert.Zero(t, st.FragmentsDropped)
				}
				cli.Close()
				srv.Close()
			}
		})
	}
}

// ipv6UDPFragments builds the frames of one UDP datagram from src to dst
// split in two IPv6 fragments; bad spoils the UDP checksum.
func ipv6UDPFragments(src, dst netip.Addr, port uint16, payload []byte, bad bool) [][]byte {
	udp := make([]byte, header.UDPMinimumSize+len(payload))
	copy(udp[header.UDPMinimumSize:], payload)
	u := header.UDP(udp)
	u.Encode(&header.UDPFields{SrcPort: 40000, DstPort: port, Length: uint16(len(udp))})
	s, d := tcpip.AddrFrom16(src.As16()), tcpip.AddrFrom16(dst.As16())
	sum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, s, d, uint16(len(udp)))
	u.SetChecksum(^checksum.Checksum(udp, sum))
	if bad {
		u.SetChecksum(u.Checksum() + 1)
	}
	half := (len(udp) / 2) &^ 7
	var frames [][]byte
	for i, piece := range [][]byte{udp[:half], udp[half:]} {
		f := make([]byte, header.EthernetMinimumSize+header.IPv6MinimumSize+8+len(piece))
		header.Ethernet(f).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(macA[:]), DstAddr: tcpip.LinkAddress(macB[:]), Type: header.IPv6ProtocolNumber})
		ip := f[header.EthernetMinimumSize:]
		header.IPv6(ip).Encode(&header.IPv6Fields{PayloadLength: uint16(8 + len(piece)), TransportProtocol: 44, HopLimit: 64, SrcAddr: s, DstAddr: d})
		fh := ip[header.IPv6MinimumSize:]
		fh[0] = uint8(header.UDPProtocolNumber)
		off := uint16(i*half/8) << 3
		if i == 0 {
			off |= 1 // more fragments
		}
		binary.BigEndian.PutUint16(fh[2:], off)
		binary.BigEndian.PutUint32(fh[4:], 0x1234)
		copy(fh[8:], piece)
		frames = append(frames, f)
	}
	return frames
}

// TestIPv6FragmentBadChecksumDropped: under Rx offload, a fragmented
// datagram whose UDP checksum is wrong never reaches the socket (the stack
// would trust it), and a good one does.
func TestIPv6FragmentBadChecksumDropped(t *testing.T) {
	wa, wb := simnic.NewPipe()
	defer wa.Close()
	nb := simnic.New(wb, simnic.Config{MAC: macB, Offloads: fullOffloads})
	b, err := link.NewStack(nb, link.StackOptions{Addr6: addr6B})
	require.NoError(t, err)
	defer b.Close()
	pc, err := b.ListenPacket("udp6", ":7002")
	require.NoError(t, err)
	defer pc.Close()
	msg := []byte(strings.Repeat("fragmented ", 200))
	for _, f := range ipv6UDPFragments(addr6A.Addr(), addr6B.Addr(), 7002, msg, true) {
		wa.Send(f)
	}
	require.NoError(t, pc.SetReadDeadline(time.Now().Add(200*time.Millisecond)))
	_, _, err = pc.ReadFrom(make([]byte, 4000))
	require.Error(t, err, "a datagram with a bad checksum was delivered")
	assert.Equal(t, uint64(1), b.Endpoint.Stats().Rx[0].FragmentsDropped)
	for _, f := range ipv6UDPFragments(addr6A.Addr(), addr6B.Addr(), 7002, msg, false) {
		wa.Send(f)
	}
	require.NoError(t, pc.SetReadDeadline(time.Now().Add(2*time.Second)))
	buf := make([]byte, 4000)
	n, _, err := pc.ReadFrom(buf)
	require.NoError(t, err)
	assert.Equal(t, msg, buf[:n])
}

func TestNewStackOptionErrors(t *testing.T) {
	wa, wb := simnic.NewPipe()
	defer wa.Close()
	defer wb.Close()
	_, err := link.NewStack(simnic.New(wb, simnic.Config{MAC: macB}), link.StackOptions{})
	assert.ErrorContains(t, err, "no address given")
	_, err = link.NewStack(simnic.New(wb, simnic.Config{MAC: macB}), link.StackOptions{Addr6: addr6B, NoIPv6: true})
	assert.ErrorContains(t, err, "NoIPv6 excludes")
	_ = errors.New
}
