//go:build !linux

package main

import "net"

// listenTCPWithMSS listens; setting the MSS is Linux-only.
func listenTCPWithMSS(addr string, _ int) (net.Listener, error) {
	return net.Listen("tcp", addr)
}
