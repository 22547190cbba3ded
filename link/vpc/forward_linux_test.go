//go:build linux

package vpc

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/internal/testenv"
)

// TestForwarderBoundsHostBuffers: the kernel sockets the forwarder
// splices have fixed buffers, so a host sender is held back by the far
// side rather than filling an auto-tuned 32 MiB receive buffer, which
// made the sender's byte count fiction.
func TestForwarderBoundsHostBuffers(t *testing.T) {
	for _, loopback := range []string{"127.0.0.1", "[::1]"} {
		t.Run(loopback, func(t *testing.T) { testForwarderBoundsHostBuffers(t, loopback) })
	}
}

func testForwarderBoundsHostBuffers(t *testing.T, loopback string) {
	target, err := net.Listen("tcp", loopback+":0")
	if err != nil && loopback == "[::1]" {
		testenv.Missing(t, "IPv6 loopback ([::1]): %v", err)
	}
	require.NoError(t, err)
	defer target.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := target.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	f, ln := forwardFrom(t, loopback, target.Addr().String())
	defer f.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	far := <-accepted
	defer far.Close()

	var socks []*net.TCPConn
	require.Eventually(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		socks = socks[:0]
		for cl := range f.closers {
			if tc, ok := cl.(*net.TCPConn); ok {
				socks = append(socks, tc)
			}
		}
		return len(socks) == 2 // the accepted host socket and the dialed one
	}, 5*time.Second, 10*time.Millisecond)
	for _, s := range socks {
		rc, err := s.SyscallConn()
		require.NoError(t, err)
		var rcv, snd int
		require.NoError(t, rc.Control(func(fd uintptr) {
			rcv, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
			snd, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
		}))
		// Linux reports twice the size set (it counts its bookkeeping);
		// a set size also turns auto-tuning off.
		assert.Equal(t, 2*HostSocketBuffer, rcv, "receive buffer of %v", s.LocalAddr())
		assert.Equal(t, 2*HostSocketBuffer, snd, "send buffer of %v", s.LocalAddr())
	}
}
