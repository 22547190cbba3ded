package iperf3

import (
	"context"
	"net"
	"time"
)

// SocketOptions are the per-connection TCP options a test asks for with
// iperf3's -w, -M, -N, -C and -S. The zero value leaves the stack's
// defaults.
type SocketOptions struct {
	// Window is the send and receive buffer size in bytes (-w); 0 keeps
	// the stack's default (and its auto-tuning).
	Window int
	// MSS is the maximum segment size (-M); 0 keeps the default.
	MSS int
	// NoDelay disables Nagle's algorithm (-N).
	NoDelay bool
	// Congestion names the congestion control algorithm (-C).
	Congestion string
	// TOS is the IP type-of-service byte (-S).
	TOS int
}

// TCPInfo is what iperf3 samples from a TCP sender once per interval
// (Linux's struct tcp_info, the fields iperf3 reads).
type TCPInfo struct {
	// Retransmits counts the segments retransmitted since the connection
	// opened.
	Retransmits uint64
	// SndCwnd is the congestion window in bytes.
	SndCwnd int64
	// SndWnd is the peer's advertised receive window in bytes; 0 when the
	// stack does not export it (gVisor's endpoints do not: see gvstack).
	SndWnd int64
	// RTT and RTTVar are the smoothed round-trip time and its variation.
	RTT, RTTVar time.Duration
	// PMTU is the path MTU in bytes; 0 when unknown.
	PMTU int
	// Congestion is the congestion control algorithm in use.
	Congestion string
}

// AckWaiter is a connection that can wait until its peer's TCP has
// acknowledged what was written to it: proof that the peer's stack has
// completed the handshake and put the connection in its accept queue.
type AckWaiter interface {
	WaitAcked(ctx context.Context) error
}

// waitAcked waits (until ctx ends) for c's peer to acknowledge what was
// written to c; it reports whether it could tell.
func waitAcked(ctx context.Context, c net.Conn) (bool, error) {
	if a, ok := c.(AckWaiter); ok {
		return true, a.WaitAcked(ctx)
	}
	return kernelWaitAcked(ctx, c)
}

// PollUntil calls done every few tens of microseconds, backing off to a
// millisecond, until it returns true or ctx ends. Only connection setup
// polls: the stacks notify nothing when an acknowledgement arrives.
func PollUntil(ctx context.Context, done func() bool) error {
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for d := 50 * time.Microsecond; !done(); d = min(2*d, time.Millisecond) {
		t.Reset(d)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// TCPInfoer is a connection that reports its TCP statistics. gVisor
// connections do so through the adapters in cmd/enaperf; the kernel's
// *net.TCPConn is read with getsockopt(TCP_INFO) on Linux.
type TCPInfoer interface {
	TCPInfo() (TCPInfo, error)
}

// OptionSetter is a connection that applies SocketOptions after it exists
// (the server side, which learns them in PARAM_EXCHANGE).
type OptionSetter interface {
	SetSocketOptions(SocketOptions) error
}

// OptionDialer is a Dialer that applies SocketOptions before connecting
// (so -w and -M shape the handshake) and binds local, a host:port that may
// be empty or have an empty host or port 0 (-B, --cport).
type OptionDialer interface {
	Dialer
	DialOptions(ctx context.Context, network, local, address string, o SocketOptions) (net.Conn, error)
}

// tcpInfo samples c's TCP statistics, if its stack reports them.
func tcpInfo(c net.Conn) (TCPInfo, bool) {
	if ti, ok := c.(TCPInfoer); ok {
		info, err := ti.TCPInfo()
		return info, err == nil
	}
	return kernelTCPInfo(c)
}

// applyOptions sets o on an existing connection.
func applyOptions(c net.Conn, o SocketOptions) error {
	if o == (SocketOptions{}) {
		return nil
	}
	if s, ok := c.(OptionSetter); ok {
		return s.SetSocketOptions(o)
	}
	return kernelSetOptions(c, o)
}

// socketBuffers reports c's send and receive buffer sizes, if known.
type bufferSizer interface {
	BufferSizes() (snd, rcv int)
}

func bufferSizes(c net.Conn) (int, int) {
	if b, ok := c.(bufferSizer); ok {
		return b.BufferSizes()
	}
	return kernelBufferSizes(c)
}

// mssOf reports c's maximum segment size, or 0.
type msser interface{ MSS() int }

func mssOf(c net.Conn) int {
	if m, ok := c.(msser); ok {
		return m.MSS()
	}
	return kernelMSS(c)
}
