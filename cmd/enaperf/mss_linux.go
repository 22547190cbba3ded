//go:build linux

package main

import (
	"context"
	"net"
	"syscall"
)

// listenTCPWithMSS listens with TCP_MAXSEG set, so host clients see the
// simulated ENA's MSS rather than loopback's 32 KB or more. iperf3 sizes
// its default UDP datagrams from the control connection's MSS, and the
// link endpoint drops IP fragments, so this keeps a plain `iperf3 -u`
// through the forwarder working.
func listenTCPWithMSS(addr string, mss int) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, mss)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(context.Background(), "tcp", addr)
}
