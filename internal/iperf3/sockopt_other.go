//go:build !linux

package iperf3

import (
	"context"
	"errors"
	"net"
)

func kernelTCPInfo(net.Conn) (TCPInfo, bool)                  { return TCPInfo{}, false }
func kernelBufferSizes(net.Conn) (int, int)                   { return 0, 0 }
func kernelMSS(net.Conn) int                                  { return 0 }
func kernelSetOptions(net.Conn, SocketOptions) error          { return errors.New("socket options need Linux") }
func kernelWaitAcked(context.Context, net.Conn) (bool, error) { return false, nil }

// KernelDialer dials with the kernel's sockets; options need Linux.
type KernelDialer struct{}

// DialContext dials with no options.
func (KernelDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}

// DialOptions refuses options other platforms cannot set.
func (k KernelDialer) DialOptions(ctx context.Context, network, local, address string, o SocketOptions) (net.Conn, error) {
	if o != (SocketOptions{}) {
		return nil, errors.New("socket options need Linux")
	}
	d := net.Dialer{}
	if local != "" {
		a, err := net.ResolveTCPAddr("tcp", local)
		if err != nil {
			return nil, err
		}
		d.LocalAddr = a
	}
	return d.DialContext(ctx, network, address)
}
