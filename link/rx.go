package link

import (
	"errors"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/stack/gro"

	"github.com/enanet/enanet/ena/spec"
	"github.com/enanet/enanet/rings"
)

// Receive, in the order a frame takes: loop polls a batch from the queue,
// receive checks and copies each frame (fragment and verify keep the Rx
// checksum promise), and deliver hands the batch to the stack.

// RxBudget is how many frames one Rx goroutine takes from its queue per
// Poll. 64 matches the usual NAPI weight: large enough that one doorbell and
// one GRO flush cover many frames, small enough that the ring is re-posted
// well before it runs dry.
const RxBudget = 64

// rxQueue is one Rx ring's goroutine state.
type rxQueue struct {
	e    *Endpoint
	idx  int
	q    Queue
	fn   func(*rings.RxPacket) // e.receive bound once: no closure per Poll
	gro  gro.GRO
	pkts [RxBudget]*stack.PacketBuffer
	n    int
	// fragReady are verified IPv4 fragments waiting for the next deliver.
	fragReady []*buffer.View

	// state is rxRunning, rxDelivering while the goroutine is inside the
	// stack (where it may wait for the stack's lock, so Wait must not wait
	// for it) or rxExited.
	state atomic.Int32
	c     rxCounters
}

// Rx goroutine states, see rxQueue.state.
const (
	rxExited int32 = iota
	rxRunning
	rxDelivering
)

// maxFrame bounds what we accept from a queue: an IP packet of 64 KiB plus
// the Ethernet header. Anything longer is a device bug.
const maxFrame = 1<<16 + header.EthernetMinimumSize

// loop is one Rx queue's goroutine: poll a batch, deliver it, and block in
// WaitRx (interrupt or short busy-poll sleep, driver's choice) when the
// queue is empty. It exits when its generation is cancelled.
func (r *rxQueue) loop(g *rxGen) {
	defer g.wg.Done()
	defer r.state.Store(rxExited)
	if g.prev != nil {
		g.prev.wg.Wait()
	}
	r.state.Store(rxRunning)
	for g.ctx.Err() == nil {
		n, err := r.q.Poll(RxBudget, r.fn)
		if r.n > 0 || len(r.fragReady) > 0 {
			r.deliver()
		}
		if err != nil {
			// The driver resets the device on a protocol error (§7.7) and
			// the queue comes back by itself; back off briefly so a broken
			// device does not make us spin.
			r.c.pollErrors.Add(1)
			var de *rings.DeviceError
			if !errors.As(err, &de) {
				r.e.log.Warn("link: Rx poll failed", "queue", r.idx, "err", err)
			}
			sleepCtx(g, time.Millisecond)
			continue
		}
		if n >= RxBudget {
			continue // more is waiting: poll again before sleeping
		}
		if n == 0 {
			if err := r.q.WaitRx(g.ctx); err != nil && g.ctx.Err() == nil {
				sleepCtx(g, time.Millisecond)
			}
		}
	}
}

func sleepCtx(g *rxGen, d time.Duration) {
	t := time.NewTimer(d)
	select {
	case <-t.C:
	case <-g.ctx.Done():
		t.Stop()
	}
}

// receive is the Poll callback: check, copy and wrap one frame. The ring
// buffers go back to the device when Poll returns, so the bytes are copied
// into a pooled view here (buffer cannot wrap DMA memory; the copy is a
// small part of the per-packet cost).
func (r *rxQueue) receive(p *rings.RxPacket) {
	e := r.e
	if r.n >= len(r.pkts) {
		r.c.malformed.Add(1) // the queue gave more than the budget
		return
	}
	nf := p.NFrags
	if nf < 0 || nf > len(p.Frags) {
		r.c.malformed.Add(1)
		return
	}
	size := 0
	for i := 0; i < nf; i++ {
		size += len(p.Frags[i])
	}
	if size < header.EthernetMinimumSize || size > maxFrame {
		r.c.malformed.Add(1)
		return
	}
	v := buffer.NewView(size)
	for i := 0; i < nf; i++ {
		v.Write(p.Frags[i])
	}
	frame := v.AsSlice()
	if e.pcap != nil {
		e.pcap.writeFrame(frame)
	}
	eth := header.Ethernet(frame)
	// The device filters on its MAC; check again, since the stack does not
	// (a multicast or broadcast destination is fine).
	dst := eth.DestinationAddress()
	if dst[0]&1 == 0 && dst != e.LinkAddress() {
		r.c.foreignMAC.Add(1)
		v.Release()
		return
	}
	proto := eth.Type()
	if e.frags != nil && proto == header.IPv4ProtocolNumber && r.fragment(v, frame[header.EthernetMinimumSize:], p) {
		return // held, dropped, or queued for delivery by the fragment verifier
	}
	if e.rxOffload && !r.verify(proto, frame[header.EthernetMinimumSize:], p) {
		v.Release()
		return
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithView(v)})
	pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	pkt.NetworkProtocolNumber = proto
	pkt.RXChecksumValidated = e.rxOffload
	r.pkts[r.n] = pkt
	r.n++
	r.c.packets.Add(1)
	r.c.bytes.Add(uint64(size))
}

// deliver hands the batch to the stack, through GRO when it is on, and
// flushes GRO at the end so coalescing never delays a packet past its batch.
func (r *rxQueue) deliver() {
	box := r.e.disp.Load()
	if box == nil {
		r.c.noDispatcher.Add(uint64(r.n))
		r.release()
		return
	}
	r.state.Store(rxDelivering)
	r.c.batches.Add(1)
	if r.e.gro {
		r.gro.Dispatcher = box.d
		for i := 0; i < r.n; i++ {
			r.gro.Enqueue(r.pkts[i])
			r.pkts[i].DecRef()
			r.pkts[i] = nil
		}
		r.gro.Flush()
		r.gro.Dispatcher = nil
	} else {
		for i := 0; i < r.n; i++ {
			box.d.DeliverNetworkPacket(r.pkts[i].NetworkProtocolNumber, r.pkts[i])
			r.pkts[i].DecRef()
			r.pkts[i] = nil
		}
	}
	r.n = 0
	// Verified fragments: one datagram's pieces, delivered one by one for
	// netstack to reassemble (GRO has nothing to merge in them).
	for i, v := range r.fragReady {
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithView(v)})
		pkt.LinkHeader().Consume(header.EthernetMinimumSize)
		pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
		pkt.RXChecksumValidated = true
		box.d.DeliverNetworkPacket(header.IPv4ProtocolNumber, pkt)
		pkt.DecRef()
		r.fragReady[i] = nil
	}
	r.fragReady = r.fragReady[:0]
	r.state.Store(rxRunning)
}

// release drops an undelivered batch.
func (r *rxQueue) release() {
	for i := 0; i < r.n; i++ {
		r.pkts[i].DecRef()
		r.pkts[i] = nil
	}
	r.n = 0
	for i, v := range r.fragReady {
		v.Release()
		r.fragReady[i] = nil
	}
	r.fragReady = r.fragReady[:0]
}

// fragment handles an IPv4 frame when Rx checksum offload is promised. It
// returns false for a frame that is not a fragment (the caller goes on
// normally); for a fragment it takes ownership of v and returns true after
// checking the header and passing it to the endpoint's fragment verifier,
// which holds it, drops it, or completes its datagram (queued in fragReady
// for deliver).
func (r *rxQueue) fragment(v *buffer.View, b []byte, p *rings.RxPacket) bool {
	if len(b) < header.IPv4MinimumSize {
		return false // verify counts it as malformed
	}
	h := header.IPv4(b)
	if !h.More() && h.FragmentOffset() == 0 {
		return false
	}
	hl, tl := int(h.HeaderLength()), int(h.TotalLength())
	if hl < header.IPv4MinimumSize || tl < hl || tl > len(b) {
		r.c.malformed.Add(1)
		v.Release()
		return true
	}
	if !(r.e.devL3OK && p.L3 == spec.L3ProtoIPv4 && !p.L3CsumErr) && checksum.Checksum(b[:hl], 0) != 0xffff {
		r.c.csumBad.Add(1)
		v.Release()
		return true
	}
	switch res, views := r.e.frags.add(v, h[:tl]); res {
	case fragDropped:
		r.c.fragDropped.Add(1)
	case fragComplete:
		r.c.fragVerified.Add(uint64(len(views)))
		r.fragReady = append(r.fragReady, views...)
	}
	return true
}

// verify keeps the promise of CapabilityRXChecksumOffload: the stack will
// trust every checksum of what we deliver. The device's verdicts are used
// where it gave one (§7.7 status bits); the rest is checked here. It
// reports whether the packet may be delivered.
func (r *rxQueue) verify(proto tcpip.NetworkProtocolNumber, b []byte, p *rings.RxPacket) bool {
	e := r.e
	var l4proto tcpip.TransportProtocolNumber
	var l4 []byte
	var src, dst tcpip.Address
	switch proto {
	case header.IPv4ProtocolNumber:
		if len(b) < header.IPv4MinimumSize {
			r.c.malformed.Add(1)
			return false
		}
		h := header.IPv4(b)
		hl := int(h.HeaderLength())
		tl := int(h.TotalLength())
		if hl < header.IPv4MinimumSize || tl < hl || tl > len(b) {
			r.c.malformed.Add(1)
			return false
		}
		// L3CsumErr means "bad or not validated"; only a device that
		// validates IPv4 headers makes a clear bit mean "good".
		if !(e.devL3OK && p.L3 == spec.L3ProtoIPv4 && !p.L3CsumErr) {
			if checksum.Checksum(b[:hl], 0) != 0xffff {
				r.c.csumBad.Add(1)
				return false
			}
		}
		if h.More() || h.FragmentOffset() != 0 {
			// Fragments go through fragment() before this; one that gets
			// here came without a verifier and cannot be verified.
			r.c.fragDropped.Add(1)
			return false
		}
		l4proto = tcpip.TransportProtocolNumber(h.Protocol())
		l4 = b[hl:tl]
		src, dst = h.SourceAddress(), h.DestinationAddress()
	case header.IPv6ProtocolNumber:
		if len(b) < header.IPv6MinimumSize {
			r.c.malformed.Add(1)
			return false
		}
		h := header.IPv6(b)
		pl := int(h.PayloadLength())
		if header.IPv6MinimumSize+pl > len(b) {
			r.c.malformed.Add(1)
			return false
		}
		src, dst = h.SourceAddress(), h.DestinationAddress()
		next := h.NextHeader()
		rest := b[header.IPv6MinimumSize : header.IPv6MinimumSize+pl]
		// Walk the simple extension headers to find TCP/UDP.
		for {
			switch tcpip.TransportProtocolNumber(next) {
			case header.TCPProtocolNumber, header.UDPProtocolNumber:
			default:
				switch next {
				case 0, 43, 60: // hop-by-hop, routing, destination options
					if len(rest) < 8 || len(rest) < (int(rest[1])+1)*8 {
						r.c.malformed.Add(1)
						return false
					}
					n := (int(rest[1]) + 1) * 8
					next, rest = rest[0], rest[n:]
					continue
				case 44: // fragment
					r.c.fragDropped.Add(1)
					return false
				}
			}
			break
		}
		l4proto = tcpip.TransportProtocolNumber(next)
		l4 = rest
	default:
		return true // ARP and others carry no checksum the stack skips
	}
	if l4proto != header.TCPProtocolNumber && l4proto != header.UDPProtocolNumber {
		return true // ICMP and the rest are always checked by the stack
	}
	if e.devL4OK && p.L4CsumChecked {
		if p.L4CsumErr {
			r.c.csumBad.Add(1)
			return false
		}
		r.c.devVerified.Add(1)
		return true
	}
	if len(l4) > 0xffff {
		r.c.malformed.Add(1)
		return false
	}
	if l4proto == header.UDPProtocolNumber {
		if len(l4) < header.UDPMinimumSize {
			r.c.malformed.Add(1)
			return false
		}
		if proto == header.IPv4ProtocolNumber && header.UDP(l4).Checksum() == 0 {
			r.c.swVerified.Add(1)
			return true // IPv4 UDP without checksum
		}
	} else if len(l4) < header.TCPMinimumSize {
		r.c.malformed.Add(1)
		return false
	}
	sum := header.PseudoHeaderChecksum(l4proto, src, dst, uint16(len(l4)))
	if checksum.Checksum(l4, sum) != 0xffff {
		r.c.csumBad.Add(1)
		return false
	}
	r.c.swVerified.Add(1)
	return true
}
