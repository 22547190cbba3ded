//go:build linux

package e2e

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/enanet/enanet/link"
)

// TestKernelPingConn: the stack's ping sockets (DialPing, ListenPing) get
// the Linux kernel's echo replies over IPv4 and IPv6, large requests
// (fragmented over IPv6) included.
func TestKernelPingConn(t *testing.T) {
	p := startDualPeer(t, peerOptions{})
	for _, to := range []netip.Addr{p.KernelAddr, kernelPrefix6.Addr()} {
		typ, proto := icmp.Type(ipv4.ICMPTypeEcho), 1
		if to.Is6() {
			typ, proto = ipv6.ICMPTypeEchoRequest, 58
		}
		c, err := p.Stack.DialPing(nil, link.PingAddrFromAddr(to))
		require.NoError(t, err)
		pc, err := p.Stack.ListenPing(link.PingAddrFromAddr(netip.IPv6Unspecified()))
		if to.Is4() {
			pc.Close()
			pc, err = p.Stack.ListenPing(nil)
		}
		require.NoError(t, err)
		for i, size := range []int{0, 56, 1400, 4000} {
			data := make([]byte, size)
			for j := range data {
				data[j] = byte(i + j)
			}
			req, err := (&icmp.Message{Type: typ, Body: &icmp.Echo{Seq: i + 1, Data: data}}).Marshal(nil)
			require.NoError(t, err)
			buf := make([]byte, 8192)

			require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
			_, err = c.Write(req)
			require.NoError(t, err, "to %v, %d bytes", to, size)
			n, err := c.Read(buf)
			require.NoError(t, err, "from %v, %d bytes", to, size)
			checkEchoReply(t, proto, buf[:n], i+1, data)

			require.NoError(t, pc.SetDeadline(time.Now().Add(5*time.Second)))
			_, err = pc.WriteTo(req, link.PingAddrFromAddr(to))
			require.NoError(t, err)
			n, from, err := pc.ReadFrom(buf)
			require.NoError(t, err)
			assert.Equal(t, to, from.(*link.PingAddr).Addr())
			checkEchoReply(t, proto, buf[:n], i+1, data)
		}
		c.Close()
		pc.Close()
	}
}

func checkEchoReply(t *testing.T, proto int, b []byte, seq int, data []byte) {
	t.Helper()
	m, err := icmp.ParseMessage(proto, b)
	require.NoError(t, err)
	e, ok := m.Body.(*icmp.Echo)
	require.True(t, ok, "%v", m.Type)
	assert.Equal(t, seq, e.Seq)
	assert.Equal(t, len(data), len(e.Data))
	if len(data) > 0 {
		assert.Equal(t, data, e.Data)
	}
}
