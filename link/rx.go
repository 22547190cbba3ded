package link

import (
	"encoding/binary"
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
	"github.com/enanet/enanet/internal/frame"
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
	e   *Endpoint
	idx int
	q   Queue
	fn  func(*rings.RxPacket) // e.receive bound once: no closure per Poll
	gro gro.GRO
	// groOut is gro's Dispatcher: it passes packets to the stack and
	// counts them, for flushGRO.
	groOut groCounter
	pkts   [RxBudget]*stack.PacketBuffer
	n      int
	// views holds the frame being received, copied out of the DMA buffers
	// in np pieces (copyIn); parts are their bytes.
	views [rxMaxParts]*buffer.View
	parts [rxMaxParts][]byte
	np    int
	// fragReady are verified fragments waiting for the next deliver.
	fragReady []readyFrag

	// state is rxRunning, rxDelivering while the goroutine is inside the
	// stack (where it may wait for the stack's lock, so Wait must not wait
	// for it) or rxExited.
	state atomic.Int32
	c     rxCounters
}

// readyFrag is a verified fragment's frame and its network protocol.
type readyFrag struct {
	v     *buffer.View
	proto tcpip.NetworkProtocolNumber
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

// receive is the Poll callback: copy, check and wrap one frame. The ring
// buffers go back to the device when Poll returns, so the bytes are copied
// into pooled views here (buffer cannot wrap DMA memory; the copy is a
// small part of the per-packet cost), and checked in the copy, where the
// device can no longer change them.
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
	r.copyIn(p, size, rxSplitGuess(p, size))
	if e.pcap != nil {
		e.pcap.write(r.parts[:r.np], size)
	}
	eth := header.Ethernet(r.parts[0])
	// The device filters on its MAC; check again, since the stack does not
	// (a multicast or broadcast destination is fine).
	dst := eth.DestinationAddress()
	if dst[0]&1 == 0 && dst != e.LinkAddress() {
		r.c.foreignMAC.Add(1)
		r.releaseParts()
		return
	}
	proto := eth.Type()
	if r.np > 1 && !splitOK(proto, r.parts[0][header.EthernetMinimumSize:]) {
		r.join(size)
	}
	var pkt *stack.PacketBuffer
	if r.np > 1 {
		// A long TCP or UDP frame (splitOK), kept in its views.
		if e.rxOffload && !r.verify(proto, r.parts[0][header.EthernetMinimumSize:], size-header.EthernetMinimumSize, p) {
			r.releaseParts()
			return
		}
		pkt = stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: r.payload()})
	} else {
		v, frame := r.views[0], r.parts[0]
		r.views[0], r.parts[0], r.np = nil, nil, 0
		b := frame[header.EthernetMinimumSize:]
		if e.frags != nil && proto == header.IPv4ProtocolNumber && r.fragment(v, b, p) {
			return // held, dropped, or queued for delivery by the fragment verifier
		}
		if e.frags != nil && proto == header.IPv6ProtocolNumber && r.fragment6(v, b) {
			return
		}
		if e.rxOffload && !r.verify(proto, b, len(b), p) {
			v.Release()
			return
		}
		pkt = stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithView(v)})
	}
	pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	pkt.NetworkProtocolNumber = proto
	pkt.RXChecksumValidated = e.rxOffload
	if e.rxHash {
		// The device's RSS hash of the flow (§10): gVisor keeps it in
		// PacketBuffer.Hash, the field its queueing disciplines and
		// endpoints read for flow affinity.
		pkt.Hash = p.Hash
	}
	r.pkts[r.n] = pkt
	r.n++
	addOwned(&r.c.packets, 1)
	addOwned(&r.c.bytes, uint64(size))
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
		r.groOut.d = box.d
		for i := 0; i < r.n; i++ {
			r.gro.Enqueue(r.pkts[i])
			r.pkts[i].DecRef()
			r.pkts[i] = nil
		}
		r.flushGRO()
		r.groOut.d = nil
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
	for i, f := range r.fragReady {
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithView(f.v)})
		pkt.LinkHeader().Consume(header.EthernetMinimumSize)
		pkt.NetworkProtocolNumber = f.proto
		pkt.RXChecksumValidated = true
		box.d.DeliverNetworkPacket(f.proto, pkt)
		pkt.DecRef()
		r.fragReady[i] = readyFrag{}
	}
	r.fragReady = r.fragReady[:0]
	r.state.Store(rxRunning)
}

// groCounter is a stack.NetworkDispatcher that passes packets on to d and
// counts them.
type groCounter struct {
	d stack.NetworkDispatcher
	n int
}

func (c *groCounter) DeliverNetworkPacket(p tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	c.n++
	c.d.DeliverNetworkPacket(p, pkt)
}

func (c *groCounter) DeliverLinkPacket(p tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	c.d.DeliverLinkPacket(p, pkt)
}

// flushGRO hands every packet GRO holds to the stack. gVisor's GRO.Flush
// hands up only the first held packet of each of its buckets (it walks a
// bucket's list with Next after unlinking the element), so a segment of a
// second flow in the same bucket would wait for the queue's next batch,
// for good if none comes (TestGVisorGROFlushLeavesPackets). Flush is
// repeated until one delivers nothing: usually twice, since one TCP flow
// holds at most one packet.
func (r *rxQueue) flushGRO() {
	for {
		r.groOut.n = 0
		r.gro.Flush()
		if r.groOut.n == 0 {
			return
		}
	}
}

// release drops an undelivered batch.
func (r *rxQueue) release() {
	for i := 0; i < r.n; i++ {
		r.pkts[i].DecRef()
		r.pkts[i] = nil
	}
	r.n = 0
	for i, f := range r.fragReady {
		f.v.Release()
		r.fragReady[i] = readyFrag{}
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
	ip, ok := frame.ParseIPv4(b)
	if !ok || !ip.Fragment {
		return false // verify counts a bad header as malformed
	}
	if ip.Len < ip.HeaderLen || ip.Len > len(b) {
		r.c.malformed.Add(1)
		v.Release()
		return true
	}
	if !r.ipv4HeaderOK(b[:ip.HeaderLen], p) {
		r.c.csumBad.Add(1)
		v.Release()
		return true
	}
	switch res, views := r.e.frags.add(v, header.IPv4(b[:ip.Len])); res {
	case fragDropped:
		r.c.fragDropped.Add(1)
	case fragComplete:
		r.c.fragVerified.Add(uint64(len(views)))
		for _, fv := range views {
			r.fragReady = append(r.fragReady, readyFrag{fv, header.IPv4ProtocolNumber})
		}
	}
	return true
}

// fragment6 is fragment for IPv6: a packet with a Fragment header (RFC
// 8200 section 4.5), found after the hop-by-hop, routing and destination options
// headers that may precede it, goes to the fragment verifier. Fragments
// whose upper-layer header is not directly TCP, UDP or ICMPv6 are dropped:
// their checksum could not be checked before the stack trusts it.
func (r *rxQueue) fragment6(v *buffer.View, b []byte) bool {
	ip, ok := frame.ParseIPv6(b)
	if !ok || ip.Len > len(b) {
		return false // verify counts it as malformed
	}
	next, rest := ip.Proto, b[ip.HeaderLen:ip.Len]
	for next != ipv6FragmentHeader {
		if next != ipv6HopByHop && next != ipv6Routing && next != ipv6DestOptions {
			return false // not a fragment
		}
		if len(rest) < 8 || len(rest) < (int(rest[1])+1)*8 {
			return false
		}
		next, rest = rest[0], rest[(int(rest[1])+1)*8:]
	}
	if len(rest) < 8 {
		r.c.malformed.Add(1)
		v.Release()
		return true
	}
	inner := rest[0]
	if inner != frame.ProtoTCP && inner != frame.ProtoUDP && inner != ipv6ICMP {
		r.c.fragDropped.Add(1)
		v.Release()
		return true
	}
	offFlags := binary.BigEndian.Uint16(rest[2:])
	key := fragKey{src: tcpip.AddrFromSlice(ip.Src), dst: tcpip.AddrFromSlice(ip.Dst),
		id: binary.BigEndian.Uint32(rest[4:]), proto: inner, v6: true}
	switch res, views := r.e.frags.addPiece(v, key, int(offFlags>>3)*8, offFlags&1 != 0, rest[8:]); res {
	case fragDropped:
		r.c.fragDropped.Add(1)
	case fragComplete:
		r.c.fragVerified.Add(uint64(len(views)))
		for _, fv := range views {
			r.fragReady = append(r.fragReady, readyFrag{fv, header.IPv6ProtocolNumber})
		}
	}
	return true
}

// IPv6 next-header values of the extension headers fragment6 walks.
const (
	ipv6HopByHop       = 0
	ipv6Routing        = 43
	ipv6FragmentHeader = 44
	ipv6ICMP           = 58
	ipv6DestOptions    = 60
)

// ipv4HeaderOK checks an IPv4 header's checksum, trusting the device's
// verdict where it gave one: L3CsumErr means "bad or not validated", so
// only a device that validates IPv4 headers makes a clear bit mean "good".
func (r *rxQueue) ipv4HeaderOK(h []byte, p *rings.RxPacket) bool {
	if r.e.devL3OK && p.L3 == spec.L3ProtoIPv4 && !p.L3CsumErr {
		return true
	}
	return checksum.Checksum(h, 0) == 0xffff
}

// verify keeps the promise of CapabilityRXChecksumOffload: the stack will
// trust every checksum of what we deliver. The device's verdicts are used
// where it gave one (§7.7 status bits); the rest is checked here. It
// reports whether the packet may be delivered.
//
// b starts at the IP header; l3Len is the bytes from there to the end of
// the frame. b is all of them, or, for a frame split into views (splitOK),
// the first view's part, which holds the headers.
func (r *rxQueue) verify(proto tcpip.NetworkProtocolNumber, b []byte, l3Len int, p *rings.RxPacket) bool {
	var ip frame.IP
	var ok bool
	var l4 []byte // the L4 segment, or its first part for a split frame
	var l4Len int // the whole segment's length
	switch proto {
	case header.IPv4ProtocolNumber:
		ip, ok = frame.ParseIPv4(b)
		if !ok || ip.Len < ip.HeaderLen || ip.Len > l3Len {
			r.c.malformed.Add(1)
			return false
		}
		if !r.ipv4HeaderOK(b[:ip.HeaderLen], p) {
			r.c.csumBad.Add(1)
			return false
		}
		if ip.Fragment {
			// Fragments go through fragment() before this; one that gets
			// here came without a verifier and cannot be verified.
			r.c.fragDropped.Add(1)
			return false
		}
		l4Len = ip.Len - ip.HeaderLen
		l4 = b[ip.HeaderLen:min(ip.Len, len(b))]
	case header.IPv6ProtocolNumber:
		ip, ok = frame.ParseIPv6(b)
		if !ok || ip.Len > l3Len {
			r.c.malformed.Add(1)
			return false
		}
		// Walk the simple extension headers to find TCP/UDP (a split frame
		// has none: splitOK).
		next, rest := ip.Proto, b[ip.HeaderLen:min(ip.Len, len(b))]
		for next != frame.ProtoTCP && next != frame.ProtoUDP {
			if next == 44 { // fragment
				r.c.fragDropped.Add(1)
				return false
			}
			if next != 0 && next != 43 && next != 60 { // hop-by-hop, routing, destination options
				break
			}
			if len(rest) < 8 || len(rest) < (int(rest[1])+1)*8 {
				r.c.malformed.Add(1)
				return false
			}
			next, rest = rest[0], rest[(int(rest[1])+1)*8:]
		}
		ip.Proto, l4 = next, rest
		l4Len = len(rest) + max(ip.Len-len(b), 0)
	default:
		return true // ARP and others carry no checksum the stack skips
	}
	if ip.Proto != frame.ProtoTCP && ip.Proto != frame.ProtoUDP {
		return true // ICMP and the rest are always checked by the stack
	}
	if r.e.devL4OK && p.L4CsumChecked {
		if p.L4CsumErr {
			r.c.csumBad.Add(1)
			return false
		}
		addOwned(&r.c.devVerified, 1)
		return true
	}
	minLen := frame.TCPMinHeaderLen
	if ip.Proto == frame.ProtoUDP {
		minLen = frame.UDPHeaderLen
	}
	if len(l4) < minLen || l4Len > 0xffff {
		r.c.malformed.Add(1)
		return false
	}
	if ip.Proto == frame.ProtoUDP && proto == header.IPv4ProtocolNumber && binary.BigEndian.Uint16(l4[frame.UDPChecksumOffset:]) == 0 {
		r.c.swVerified.Add(1)
		return true // IPv4 UDP without checksum
	}
	pseudo := frame.PseudoHeaderSum(ip.Src, ip.Dst, ip.Proto, l4Len)
	var sum uint16
	if len(l4) == l4Len {
		sum = checksum.Checksum(l4, pseudo)
	} else {
		sum = checksum.Combine(pseudo, r.l4Sum(l4, l4Len))
	}
	if sum != 0xffff {
		r.c.csumBad.Add(1)
		return false
	}
	addOwned(&r.c.swVerified, 1)
	return true
}
