package vpc

import (
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/internal/testenv"
	"github.com/enanet/enanet/link"
)

// listenLoopback6 listens on the host's [::1], or skips the test on a host
// without IPv6 loopback.
func listenLoopback6(t *testing.T, network string) (net.Listener, net.PacketConn) {
	t.Helper()
	if network == "udp" {
		pc, err := net.ListenPacket("udp6", "[::1]:0")
		if err != nil {
			testenv.Missing(t, "IPv6 loopback ([::1]): %v", err)
		}
		return nil, pc
	}
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		testenv.Missing(t, "IPv6 loopback ([::1]): %v", err)
	}
	return ln, nil
}

// TestForwarderTCPToIPv6: the host's [::1] is forwarded through the VPC
// router to the server stack's DHCPv6 address. Several connections in a
// row each carry 1 MiB each way, checked by SHA-256, and the server sees
// them in the order the host opened them and from the router's IPv6
// address, so the path was IPv6 end to end.
func TestForwarderTCPToIPv6(t *testing.T) {
	v, st := stackOnVPC(t, Config{}, link.StackOptions{DHCP: true, DHCPv6: true})
	srv, err := st.Listen("tcp6", ":8080")
	require.NoError(t, err)
	defer srv.Close()
	type seen struct {
		first  byte
		remote netip.Addr
	}
	accepted := make(chan seen, 8)
	go func() {
		for {
			c, err := srv.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				h := sha256.New()
				b, _ := io.ReadAll(io.TeeReader(c, h))
				accepted <- seen{b[0], c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr()}
				c.Write(h.Sum(nil))
				c.Write(b)
			}()
		}
	}()

	ln, _ := listenLoopback6(t, "tcp")
	f := NewForwarder(quiet)
	defer f.Close()
	f.TCP(ln, Dialer{Stack: v.Stack}.TCPTo6(st, 8080))

	for i := range 3 {
		c, err := net.Dial("tcp6", ln.Addr().String())
		require.NoError(t, err)
		c.SetDeadline(time.Now().Add(20 * time.Second))
		msg := make([]byte, 1<<20)
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		for j := range msg {
			msg[j] = byte(rng.Uint32())
		}
		msg[0] = byte(i)
		_, err = c.Write(msg)
		require.NoError(t, err)
		c.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(c)
		c.Close()
		require.NoError(t, err)
		sum := sha256.Sum256(msg)
		require.Len(t, got, 32+len(msg))
		assert.Equal(t, sum[:], got[:32], "the server's hash of what the host sent")
		assert.Equal(t, sum, sha256.Sum256(got[32:]), "what came back")
		s := <-accepted
		assert.Equal(t, byte(i), s.first, "connection order")
		assert.Equal(t, v.Router6(), s.remote, "the server saw an IPv4 peer: the path was not IPv6")
	}
}

// TestForwarderUDPToIPv6: a host datagram to [::1] reaches the server
// stack's IPv6 address and the answer comes back.
func TestForwarderUDPToIPv6(t *testing.T) {
	v, st := stackOnVPC(t, Config{}, link.StackOptions{DHCP: true, DHCPv6: true})
	srv, err := st.ListenPacket("udp6", ":5353")
	require.NoError(t, err)
	defer srv.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			srv.WriteTo(append([]byte(from.(*net.UDPAddr).AddrPort().Addr().String()+" "), buf[:n]...), from)
		}
	}()
	_, pc := listenLoopback6(t, "udp")
	f := NewForwarder(quiet)
	defer f.Close()
	f.UDP(pc, Dialer{Stack: v.Stack}.UDPTo6(st, 5353))

	c, err := net.Dial("udp6", pc.LocalAddr().String())
	require.NoError(t, err)
	defer c.Close()
	buf := make([]byte, 2048)
	want := v.Router6().String() + " hello"
	// UDP may lose the first datagram while neighbours are resolved.
	require.Eventually(t, func() bool {
		c.Write([]byte("hello"))
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Read(buf)
		return err == nil && string(buf[:n]) == want
	}, 10*time.Second, 10*time.Millisecond)
}

// TestTCPTo6WithoutAddress: forwarding to a server without IPv6 fails the
// dial with an error that says why, rather than dialing the zero address.
func TestTCPTo6WithoutAddress(t *testing.T) {
	v, st := stackOnVPC(t, Config{}, link.StackOptions{DHCP: true, NoIPv6: true})
	_, err := Dialer{Stack: v.Stack}.TCPTo6(st, 80)(context.Background())
	require.ErrorIs(t, err, errNoAddr6)
	assert.Contains(t, err.Error(), "no global IPv6 address")
	_, err = Dialer{Stack: v.Stack}.UDPTo6(st, 80)()
	require.ErrorIs(t, err, errNoAddr6)
}
