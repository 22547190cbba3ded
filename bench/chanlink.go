package bench

import (
	"context"
	"sync"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/stack/gro"
)

// StackSettings are the stack-facing link settings a row runs with; (a)
// uses the same ones as the (b) row it is compared with.
type StackSettings struct {
	GSO       bool // gVisor GSO (TCP hands down 64 KiB segments, split before the link)
	GRO       bool // receive coalescing before the stack (needs RxCsum)
	TxCsum    bool // CapabilityTXChecksumOffload
	RxCsum    bool // CapabilityRXChecksumOffload
	MTU       int  // IP MTU
	ChanDepth int  // channel endpoint queue length; 0 means 4096
}

// chanEndpoint is gVisor's channel endpoint, unchanged, plus the two things
// the copier needs: the dispatcher (so that it can run GRO in front of the
// stack as link's Rx path does) and the same GSO size link advertises
// (channel's own is 32 KiB).
type chanEndpoint struct {
	*channel.Endpoint
	gso bool
	mu  sync.Mutex
	d   stack.NetworkDispatcher
}

func (e *chanEndpoint) Attach(d stack.NetworkDispatcher) {
	e.mu.Lock()
	e.d = d
	e.mu.Unlock()
	e.Endpoint.Attach(d)
}

func (e *chanEndpoint) dispatcher() stack.NetworkDispatcher {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.d
}

func (e *chanEndpoint) GSOMaxSize() uint32 {
	if e.gso {
		return stack.GVisorGSOMaxSize
	}
	return 0
}

// NewChannelPair links two stacks by gVisor channel endpoints and two
// copier goroutines, one per direction: each takes what one endpoint's
// stack wrote (up to a batch of 64), copies it into a fresh packet (as a
// NIC would) and hands it to the other stack, through GRO when s.GRO.
// This is link (a): all the stack's cost, none of a device's.
func NewChannelPair(s StackSettings) (Pair, error) {
	depth := s.ChanDepth
	if depth == 0 {
		depth = 4096
	}
	var caps stack.LinkEndpointCapabilities
	if s.TxCsum {
		caps |= stack.CapabilityTXChecksumOffload
	}
	if s.RxCsum {
		caps |= stack.CapabilityRXChecksumOffload
	}
	mk := func() *chanEndpoint {
		e := &chanEndpoint{Endpoint: channel.New(depth, uint32(s.MTU), ""), gso: s.GSO}
		e.LinkEPCapabilities = caps
		if s.GSO {
			e.SupportedGSOKind = stack.GVisorGSOSupported
		}
		return e
	}
	ea, eb := mk(), mk()
	srv, err := newGStack(ea, serverAddr)
	if err != nil {
		return nil, err
	}
	cli, err := newGStack(eb, clientAddr)
	if err != nil {
		srv.Destroy()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); copier(ctx, ea, eb, s.GRO && s.RxCsum, s.RxCsum) }()
	go func() { defer wg.Done(); copier(ctx, eb, ea, s.GRO && s.RxCsum, s.RxCsum) }()
	return &stackPair{srv: srv, cli: cli, closeFn: func() error {
		cancel()
		wg.Wait()
		cli.Destroy()
		srv.Destroy()
		return nil
	}}, nil
}

// copier moves packets written to from into to's stack until ctx ends.
func copier(ctx context.Context, from, to *chanEndpoint, useGRO, rxValidated bool) {
	var g gro.GRO
	g.Init(useGRO)
	batch := make([]*stack.PacketBuffer, 0, 64)
	for {
		pkt := from.ReadContext(ctx)
		if pkt == nil {
			return
		}
		batch = append(batch[:0], pkt)
		for len(batch) < cap(batch) {
			p := from.Read()
			if p == nil {
				break
			}
			batch = append(batch, p)
		}
		d := to.dispatcher()
		g.Dispatcher = d
		for i, p := range batch {
			v := p.ToView() // the copy a NIC makes
			proto := p.NetworkProtocolNumber
			p.DecRef()
			batch[i] = nil
			if d == nil {
				v.Release()
				continue
			}
			np := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithView(v)})
			np.NetworkProtocolNumber = proto
			np.RXChecksumValidated = rxValidated
			if useGRO {
				g.Enqueue(np)
			} else {
				d.DeliverNetworkPacket(proto, np)
			}
			np.DecRef()
		}
		if useGRO && d != nil {
			g.Flush()
		}
		g.Dispatcher = nil
	}
}
