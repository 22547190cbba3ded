package link

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// barePair is the harness of the gVisor TCP reproductions: two stacks, a
// (10.n.0.1) and b (10.n.0.2), each on a channel endpoint of MTU 1500,
// joined only by the pipe goroutines a test starts, so no device or driver
// is in the way.
type barePair struct {
	a, b         *stack.Stack
	ea, eb       *channel.Endpoint
	addrA, addrB tcpip.Address
	cancel       context.CancelFunc
	wg           sync.WaitGroup
}

// newBarePair builds both stacks with mk (i is 0 for a, 1 for b).
func newBarePair(t *testing.T, n byte, mk func(i int) *stack.Stack) *barePair {
	p := &barePair{addrA: tcpip.AddrFrom4([4]byte{10, n, 0, 1}), addrB: tcpip.AddrFrom4([4]byte{10, n, 0, 2})}
	p.a, p.ea = mk(0), channel.New(4096, 1500, "")
	p.b, p.eb = mk(1), channel.New(4096, 1500, "")
	for _, s := range []struct {
		s    *stack.Stack
		ep   *channel.Endpoint
		addr tcpip.Address
	}{{p.a, p.ea, p.addrA}, {p.b, p.eb, p.addrB}} {
		require.Nil(t, s.s.CreateNIC(1, s.ep))
		require.Nil(t, s.s.AddProtocolAddress(1, tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber,
			AddressWithPrefix: s.addr.WithPrefix()}, stack.AddressProperties{}))
		s.s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: 1}})
	}
	return p
}

// start runs the pipe goroutines until close.
func (p *barePair) start(pipes ...func(ctx context.Context, wg *sync.WaitGroup)) {
	var ctx context.Context
	ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Add(len(pipes))
	for _, f := range pipes {
		go f(ctx, &p.wg)
	}
}

// close stops the pipes, then both stacks.
func (p *barePair) close() {
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
	p.a.Close()
	p.b.Close()
	p.a.Wait()
	p.b.Wait()
}

// listen listens on b's port 80.
func (p *barePair) listen(t *testing.T) *gonet.TCPListener {
	ln, err := gonet.ListenTCP(p.b, tcpip.FullAddress{NIC: 1, Addr: p.addrB, Port: 80}, ipv4.ProtocolNumber)
	require.NoError(t, err)
	return ln
}

// dial connects from a to b's port 80.
func (p *barePair) dial(t *testing.T) *gonet.TCPConn {
	c, err := gonet.DialContextTCP(context.Background(), p.a, tcpip.FullAddress{NIC: 1, Addr: p.addrB, Port: 80}, ipv4.ProtocolNumber)
	require.NoError(t, err)
	return c
}

// pipe moves every IPv4 packet from `from` to `to` until ctx ends. keep,
// if not nil, sees each packet first; when it returns true the packet is
// not forwarded and keep owns v (it drops it, or holds it for inject).
func pipe(ctx context.Context, from, to *channel.Endpoint, wg *sync.WaitGroup, keep func(v *buffer.View) bool) {
	defer wg.Done()
	for {
		pkt := from.ReadContext(ctx)
		if pkt == nil {
			return
		}
		v := pkt.ToView()
		pkt.DecRef()
		if keep != nil && keep(v) {
			continue
		}
		inject(to, v)
	}
}

// inject hands v to the stack behind to as an inbound IPv4 packet.
func inject(to *channel.Endpoint, v *buffer.View) {
	np := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithView(v)})
	to.InjectInbound(header.IPv4ProtocolNumber, np)
	np.DecRef()
}

// drainOne accepts one connection on ln and reads it to the end (or until
// the deadline); the channel gets the byte count, -1 if Accept failed.
func drainOne(ln net.Listener, deadline time.Duration) <-chan int64 {
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		c.SetDeadline(time.Now().Add(deadline))
		m, _ := io.Copy(io.Discard, c)
		c.Close()
		got <- m
	}()
	return got
}
