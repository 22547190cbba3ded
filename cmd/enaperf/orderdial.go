package main

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/enanet/enanet/internal/iperf3"
	"github.com/enanet/enanet/internal/iperf3/gvstack"
	"github.com/enanet/enanet/link/vpc"
)

// ackWaitBound bounds how long a forwarded connection's far side waits for
// the previous one's first bytes to be acknowledged: a host client that
// opens a connection and says nothing holds the next one up this long.
const ackWaitBound = 2 * time.Second

// orderedDialer opens the far sides of the connections the forwarder
// brings from the host to the server on the simulated ENA, through the
// VPC's stack, in an order the server's accept order follows.
//
// The forwarder dials one far side after another, but an iperf3 server
// tells a test's streams apart only by the order it accepts them, and the
// simulated ENA has several queues: one connection's last handshake ACK
// and the next one's SYN can land on different queues, and the server may
// complete the later handshake first (with --bidir both ends then wait for
// data on the streams the other reads). So each dial waits until the
// server has acknowledged the previous connection's first bytes (the
// iperf3 cookie, which every iperf3 connection starts with): by then the
// previous connection is in the server's accept queue.
type orderedDialer struct {
	d gvstack.Dialer
	// target is the server's address, read at each dial (as
	// vpc.Dialer.TCPTo6 does): a DHCP(v6) lease may change it.
	target func() (netip.AddrPort, error)

	mu   sync.Mutex // the forwarder dials one at a time; this keeps prev consistent
	prev iperf3.AckWaiter
}

func (o *orderedDialer) dial(ctx context.Context) (net.Conn, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.prev != nil {
		wctx, cancel := context.WithTimeout(ctx, ackWaitBound)
		o.prev.WaitAcked(wctx) // a silent or failed connection only delays this one
		cancel()
		o.prev = nil
	}
	target, err := o.target()
	if err != nil {
		return nil, err
	}
	// The buffers as vpc.Dialer.TCPTo sets them, before the handshake.
	c, err := o.d.DialOptions(ctx, "tcp", "", target.String(), iperf3.SocketOptions{Window: vpc.ForwardTCPBuffer})
	if err != nil {
		return nil, err
	}
	o.prev, _ = c.(iperf3.AckWaiter)
	return c, nil
}
