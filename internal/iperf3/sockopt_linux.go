//go:build linux

package iperf3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// kernelTCPInfo reads getsockopt(TCP_INFO) from a kernel TCP socket.
func kernelTCPInfo(c net.Conn) (TCPInfo, bool) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return TCPInfo{}, false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return TCPInfo{}, false
	}
	var info *unix.TCPInfo
	var cc string
	var serr error
	if err := rc.Control(func(fd uintptr) {
		info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		cc, _ = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION)
	}); err != nil || serr != nil {
		return TCPInfo{}, false
	}
	return TCPInfo{
		Retransmits: uint64(info.Total_retrans),
		SndCwnd:     int64(info.Snd_cwnd) * int64(info.Snd_mss),
		SndWnd:      int64(info.Snd_wnd),
		RTT:         time.Duration(info.Rtt) * time.Microsecond,
		RTTVar:      time.Duration(info.Rttvar) * time.Microsecond,
		PMTU:        int(info.Pmtu),
		Congestion:  cc,
	}, true
}

// kernelWaitAcked waits until a kernel TCP socket's send queue, sent and
// unacknowledged bytes included (SIOCOUTQ), is empty.
func kernelWaitAcked(ctx context.Context, c net.Conn) (bool, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return false, nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return false, nil
	}
	return true, PollUntil(ctx, func() bool {
		n, serr := 0, error(nil)
		if err := rc.Control(func(fd uintptr) { n, serr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil || serr != nil {
			return true // closed: nothing more to wait for
		}
		return n == 0
	})
}

// kernelControl sets o on a kernel socket.
func kernelControl(fd int, o SocketOptions, ipv6 bool) error {
	if o.Window > 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, o.Window); err != nil {
			return fmt.Errorf("setting the send buffer to %d bytes: %w", o.Window, err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, o.Window); err != nil {
			return fmt.Errorf("setting the receive buffer to %d bytes: %w", o.Window, err)
		}
	}
	if o.MSS > 0 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_MAXSEG, o.MSS); err != nil {
			return fmt.Errorf("setting the MSS to %d: %w", o.MSS, err)
		}
	}
	if o.NoDelay {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
			return fmt.Errorf("setting TCP_NODELAY: %w", err)
		}
	}
	if o.Congestion != "" {
		if err := unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, o.Congestion); err != nil {
			return fmt.Errorf("congestion control %q: %w (see /proc/sys/net/ipv4/tcp_available_congestion_control)", o.Congestion, err)
		}
	}
	if o.TOS != 0 {
		var err error
		if ipv6 {
			err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_TCLASS, o.TOS)
		} else {
			err = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TOS, o.TOS)
		}
		if err != nil {
			return fmt.Errorf("setting the TOS to %#x: %w", o.TOS, err)
		}
	}
	return nil
}

func kernelSetOptions(c net.Conn, o SocketOptions) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return errors.New("this connection takes no socket options")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	ipv6 := false
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok && a.IP.To4() == nil {
		ipv6 = true
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = kernelControl(int(fd), o, ipv6) }); err != nil {
		return err
	}
	return serr
}

func kernelBufferSizes(c net.Conn) (int, int) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, 0
	}
	var snd, rcv int
	rc.Control(func(fd uintptr) {
		snd, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
		rcv, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	})
	return snd, rcv
}

func kernelMSS(c net.Conn) int {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return 0
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0
	}
	var mss int
	rc.Control(func(fd uintptr) { mss, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG) })
	return mss
}

// KernelDialer dials with the kernel's sockets, applying SocketOptions
// before connecting.
type KernelDialer struct{}

// DialContext dials with no options.
func (KernelDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}

// DialOptions binds local (if set), applies o and connects.
func (KernelDialer) DialOptions(ctx context.Context, network, local, address string, o SocketOptions) (net.Conn, error) {
	d := net.Dialer{Control: func(netw, _ string, c syscall.RawConn) error {
		if netw[:3] != "tcp" {
			if o.TOS == 0 {
				return nil
			}
			o = SocketOptions{TOS: o.TOS}
		}
		var serr error
		if err := c.Control(func(fd uintptr) { serr = kernelControl(int(fd), o, netw == "tcp6" || netw == "udp6") }); err != nil {
			return err
		}
		return serr
	}}
	if local != "" {
		var err error
		if network[:3] == "udp" {
			d.LocalAddr, err = net.ResolveUDPAddr(network, local)
		} else {
			d.LocalAddr, err = net.ResolveTCPAddr(network, local)
		}
		if err != nil {
			return nil, fmt.Errorf("local address %q: %w", local, err)
		}
	}
	return d.DialContext(ctx, network, address)
}
