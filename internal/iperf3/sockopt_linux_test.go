//go:build linux

package iperf3

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestKernelWaitAcked: a kernel socket's written bytes count as
// acknowledged once its send queue (SIOCOUTQ) is empty, which the peer's
// TCP makes so without reading them.
func TestKernelWaitAcked(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	s, err := ln.Accept() // never read
	require.NoError(t, err)
	defer s.Close()
	_, err = c.Write(make([]byte, CookieSize))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ok, err := waitAcked(ctx, c)
	require.True(t, ok, "a kernel TCP socket can tell")
	require.NoError(t, err)

	ok, _ = waitAcked(ctx, &net.UDPConn{})
	require.False(t, ok, "not a TCP socket: cannot tell")
}
