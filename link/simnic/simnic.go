// Package simnic is a NIC in software for simulations and tests: NIC
// implements link.NIC over a Wire that carries Ethernet frames, doing what
// a device would with them (checksum offloads, RSS-like spreading over
// queues, Rx buffers of a fixed size). The simulated VPC (link/vpc) runs on
// one, and link's tests join two stacks through a pair of them on NewPipe.
// Production code uses link/enanic instead.
//
// In comments, "§n.m" refers to that section of docs/protocol.md.
package simnic

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"

	"github.com/enanet/enanet/ena/spec"
	"github.com/enanet/enanet/internal/frame"
	"github.com/enanet/enanet/link"
	"github.com/enanet/enanet/rings"
)

// Wire carries Ethernet frames; it has the method set of enasim.Wire, so
// any enasim wire (pair, TAP, UDP) can also back a NIC. Send must not
// retain frame; receivers get frames valid only during the call.
type Wire interface {
	Send(frame []byte)
	SetReceiver(func(frame []byte))
	Close() error
}

// NewPipe returns two in-memory wires joined back to back: a frame sent on
// one is handed synchronously to the other's receiver.
func NewPipe() (Wire, Wire) {
	a, b := &pipeEnd{}, &pipeEnd{}
	a.peer, b.peer = b, a
	return a, b
}

type pipeEnd struct {
	peer   *pipeEnd
	recv   atomic.Pointer[func([]byte)]
	closed atomic.Bool
}

func (p *pipeEnd) Send(frame []byte) {
	if p.closed.Load() || p.peer.closed.Load() {
		return
	}
	if f := p.peer.recv.Load(); f != nil {
		(*f)(frame)
	}
}

func (p *pipeEnd) SetReceiver(f func([]byte)) {
	if f == nil {
		p.recv.Store(nil)
		return
	}
	p.recv.Store(&f)
}

func (p *pipeEnd) Close() error {
	p.closed.Store(true)
	p.recv.Store(nil)
	return nil
}

// Config describes a software NIC.
type Config struct {
	MAC    [6]byte
	MTU    int // L3 MTU; 0 means 1500
	MaxMTU int // 0 means 9001
	Queues int // 0 means 1
	// Offloads is what the NIC does like a device would: with the Tx bits
	// it completes partial checksums; with the Rx bits it validates and
	// reports checksums, otherwise it reports "not validated".
	Offloads link.Offloads
	RxRing   int // frames buffered per Rx queue; 0 means 1024
	// RxBufSize splits received frames into buffers of this size, like
	// device Rx descriptors; 0 means 2048.
	RxBufSize int
}

// NIC is a link.NIC in software over a Wire: the far side of the simulated
// VPC in enahttp, and the fake device of link's tests. Received frames are
// spread over the queues by a flow hash, as RSS would.
type NIC struct {
	cfg    Config
	wire   Wire
	mtu    atomic.Int64
	up     atomic.Bool
	queues []*wireQueue

	mu      sync.Mutex
	onLink  func(bool)
	onFatal func(error)

	// RxDropped counts frames lost for lack of Rx ring room or link.
	RxDropped atomic.Uint64
}

// New makes a NIC on w and installs itself as w's receiver.
func New(w Wire, cfg Config) *NIC {
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if cfg.MaxMTU == 0 {
		cfg.MaxMTU = 9001
	}
	if cfg.Queues <= 0 {
		cfg.Queues = 1
	}
	if cfg.RxRing <= 0 {
		cfg.RxRing = 1024
	}
	if cfg.RxBufSize <= 0 {
		cfg.RxBufSize = 2048
	}
	n := &NIC{cfg: cfg, wire: w}
	n.mtu.Store(int64(cfg.MTU))
	n.up.Store(true)
	for i := 0; i < cfg.Queues; i++ {
		n.queues = append(n.queues, &wireQueue{nic: n, idx: i, wake: make(chan struct{}, 1)})
	}
	w.SetReceiver(n.receive)
	return n
}

// MAC implements link.NIC.
func (n *NIC) MAC() [6]byte { return n.cfg.MAC }

// MTU implements link.NIC.
func (n *NIC) MTU() int { return int(n.mtu.Load()) }

// MaxMTU implements link.NIC.
func (n *NIC) MaxMTU() int { return n.cfg.MaxMTU }

// SetMTU implements link.NIC.
func (n *NIC) SetMTU(mtu int) error {
	if mtu < 68 || mtu > n.cfg.MaxMTU {
		return fmt.Errorf("simnic: MTU %d outside 68..%d", mtu, n.cfg.MaxMTU)
	}
	n.mtu.Store(int64(mtu))
	return nil
}

// Offloads implements link.NIC.
func (n *NIC) Offloads() link.Offloads { return n.cfg.Offloads }

// NumQueues implements link.NIC.
func (n *NIC) NumQueues() int { return len(n.queues) }

// Queue implements link.NIC.
func (n *NIC) Queue(i int) link.Queue { return n.queues[i] }

// LinkUp implements link.NIC.
func (n *NIC) LinkUp() bool { return n.up.Load() }

// SetLinkHandler implements link.NIC.
func (n *NIC) SetLinkHandler(f func(bool)) { n.mu.Lock(); n.onLink = f; n.mu.Unlock() }

// SetFatalHandler implements link.NIC.
func (n *NIC) SetFatalHandler(f func(error)) { n.mu.Lock(); n.onFatal = f; n.mu.Unlock() }

// SetLink changes the link state (frames are dropped both ways while down)
// and tells the handler, like an AENQ LINK_CHANGE event (§5.2).
func (n *NIC) SetLink(up bool) {
	n.up.Store(up)
	n.mu.Lock()
	f := n.onLink
	n.mu.Unlock()
	if f != nil {
		f(up)
	}
}

// Fail reports a fatal device error to the handler.
func (n *NIC) Fail(err error) {
	n.up.Store(false)
	n.mu.Lock()
	f := n.onFatal
	n.mu.Unlock()
	if f != nil {
		f(err)
	}
}

// Close detaches from the wire and closes it.
func (n *NIC) Close() error {
	n.wire.SetReceiver(nil)
	return n.wire.Close()
}

// QueueStats are one NIC queue's counters.
type QueueStats struct {
	TxPackets, TxBytes, RxPackets, RxBytes, RxDropped uint64
}

// Stats returns per-queue counters.
func (n *NIC) Stats() []QueueStats {
	out := make([]QueueStats, len(n.queues))
	for i, q := range n.queues {
		out[i] = QueueStats{
			TxPackets: q.txPackets.Load(), TxBytes: q.txBytes.Load(),
			RxPackets: q.rxPackets.Load(), RxBytes: q.rxBytes.Load(), RxDropped: q.rxDropped.Load(),
		}
	}
	return out
}

// receive is the wire's receiver: copy the frame into the queue its flow
// hashes to.
func (n *NIC) receive(f []byte) {
	if !n.up.Load() || len(f) < frame.EthernetHeaderLen || len(f) > n.MTU()+frame.EthernetHeaderLen+4 {
		n.RxDropped.Add(1)
		return
	}
	h := flowHash(f)
	q := n.queues[int(h%uint32(len(n.queues)))]
	q.mu.Lock()
	if len(q.ring) >= n.cfg.RxRing {
		q.mu.Unlock()
		q.rxDropped.Add(1)
		n.RxDropped.Add(1)
		return
	}
	var b []byte
	if k := len(q.free); k > 0 {
		b, q.free = q.free[k-1][:0], q.free[:k-1]
	}
	b = append(b, f...)
	q.ring = append(q.ring, rxFrame{b: b, hash: h})
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

type rxFrame struct {
	b    []byte
	hash uint32
}

type wireQueue struct {
	nic  *NIC
	idx  int
	wake chan struct{}

	mu   sync.Mutex
	ring []rxFrame
	free [][]byte

	// owned by the Rx goroutine
	batch []rxFrame
	pkt   rings.RxPacket

	// owned by the (serialised) Tx caller
	txbuf []byte

	txPackets, txBytes, rxPackets, rxBytes, rxDropped atomic.Uint64
}

// Send implements link.Queue: gather the frame, finish requested checksums the
// way the device does (§7.2), and put it on the wire.
func (q *wireQueue) Send(segs [][]byte, off rings.TxOffload) error {
	n := q.nic
	b := q.txbuf[:0]
	for _, s := range segs {
		b = append(b, s...)
	}
	q.txbuf = b[:0]
	if len(b) > n.MTU()+frame.EthernetHeaderLen {
		return rings.ErrFrameTooLong
	}
	if off.Active() {
		if err := n.deviceChecksum(b, off); err != nil {
			return err
		}
	}
	if !n.up.Load() {
		return nil
	}
	q.txPackets.Add(1)
	q.txBytes.Add(uint64(len(b)))
	n.wire.Send(b)
	return nil
}

// deviceChecksum fills checksums the way an ENA computes them: IPv4 header
// checksum, and with partial mode the L4 checksum over a field that
// already holds the pseudo-header sum.
func (n *NIC) deviceChecksum(b []byte, off rings.TxOffload) error {
	o := n.cfg.Offloads
	l3 := int(off.L3HdrOff)
	if l3+int(off.L3HdrLen) > len(b) {
		return errors.New("simnic: Tx offload: L3 header beyond the frame")
	}
	if off.L3Csum {
		if off.L3 != spec.L3ProtoIPv4 || !o.TxCsumIPv4 {
			return errors.New("simnic: Tx offload: IPv4 checksum not negotiated")
		}
		h := b[l3 : l3+int(off.L3HdrLen)]
		if len(h) < frame.IPv4MinHeaderLen {
			return errors.New("simnic: Tx offload: IPv4 header shorter than 20 bytes")
		}
		h[frame.IPv4ChecksumOffset], h[frame.IPv4ChecksumOffset+1] = 0, 0
		c := ^checksum.Checksum(h, 0)
		binary.BigEndian.PutUint16(h[frame.IPv4ChecksumOffset:], c)
	}
	if !off.L4Csum {
		return nil
	}
	if !off.L4Partial {
		return errors.New("simnic: Tx offload: only partial L4 checksums are modelled")
	}
	switch off.L3 {
	case spec.L3ProtoIPv4:
		if !o.TxL4CsumIPv4Partial {
			return errors.New("simnic: Tx offload: IPv4 L4 partial checksum not negotiated")
		}
	case spec.L3ProtoIPv6:
		if !o.TxL4CsumIPv6Partial {
			return errors.New("simnic: Tx offload: IPv6 L4 partial checksum not negotiated")
		}
	default:
		return fmt.Errorf("simnic: Tx offload: L3 protocol %v", off.L3)
	}
	l4 := l3 + int(off.L3HdrLen)
	parse := frame.ParseIPv4
	if off.L3 == spec.L3ProtoIPv6 {
		parse = frame.ParseIPv6
	}
	ip, ok := parse(b[l3:])
	if !ok {
		return errors.New("simnic: Tx offload: no IP header at the L3 offset")
	}
	end := l3 + ip.Len
	if end > len(b) || l4 > end {
		return errors.New("simnic: Tx offload: L4 beyond the frame")
	}
	var co int
	switch off.L4 {
	case spec.L4ProtoTCP:
		co = l4 + frame.TCPChecksumOffset
	case spec.L4ProtoUDP:
		co = l4 + frame.UDPChecksumOffset
	default:
		return fmt.Errorf("simnic: Tx offload: L4 protocol %v", off.L4)
	}
	if co+2 > end {
		return errors.New("simnic: Tx offload: checksum field beyond the frame")
	}
	c := ^checksum.Checksum(b[l4:end], 0)
	if off.L4 == spec.L4ProtoUDP && c == 0 {
		c = 0xffff
	}
	b[co], b[co+1] = byte(c>>8), byte(c)
	return nil
}

// Flush implements link.Queue; frames leave in Send.
func (q *wireQueue) Flush() {}

// Poll implements link.Queue: hand out up to budget frames, split into RxBufSize
// fragments, with the checksum status a device reports (§7.7).
func (q *wireQueue) Poll(budget int, fn func(*rings.RxPacket)) (int, error) {
	q.mu.Lock()
	k := min(budget, len(q.ring))
	q.batch = append(q.batch[:0], q.ring[:k]...)
	copy(q.ring, q.ring[k:])
	for i := len(q.ring) - k; i < len(q.ring); i++ {
		q.ring[i] = rxFrame{}
	}
	q.ring = q.ring[:len(q.ring)-k]
	q.mu.Unlock()
	bs := q.nic.cfg.RxBufSize
	for _, f := range q.batch {
		p := &q.pkt
		*p = rings.RxPacket{}
		rest := f.b
		for len(rest) > 0 && p.NFrags < rings.MaxRxFrags {
			c := min(bs, len(rest))
			p.Frags[p.NFrags] = rest[:c]
			p.NFrags++
			rest = rest[c:]
		}
		p.Len = len(f.b)
		p.Hash = f.hash
		q.nic.rxStatus(f.b, p)
		q.rxPackets.Add(1)
		q.rxBytes.Add(uint64(len(f.b)))
		fn(p)
	}
	q.mu.Lock()
	for i := range q.batch {
		q.free = append(q.free, q.batch[i].b)
		q.batch[i] = rxFrame{}
	}
	q.mu.Unlock()
	return k, nil
}

// rxStatus sets the protocol and checksum bits of p from the frame, as a
// device reports them in its Rx completion (§7.7).
func (n *NIC) rxStatus(b []byte, p *rings.RxPacket) {
	o := n.cfg.Offloads
	p.L3CsumErr = true // "bad or not validated" until shown good
	et, l3, _, _ := frame.EtherType(b, 0)
	var ip frame.IP
	var ok bool
	switch et {
	case frame.EtherTypeIPv4:
		if ip, ok = frame.ParseIPv4(b[l3:]); !ok || ip.Len < ip.HeaderLen || l3+ip.Len > len(b) {
			return
		}
		p.L3 = spec.L3ProtoIPv4
		if o.RxCsumIPv4 {
			p.L3CsumErr = checksum.Checksum(b[l3:l3+ip.HeaderLen], 0) != 0xffff
		}
		if ip.Fragment {
			p.IPv4Frag = true
			return
		}
	case frame.EtherTypeIPv6:
		if ip, ok = frame.ParseIPv6(b[l3:]); !ok || l3+ip.Len > len(b) {
			return
		}
		p.L3 = spec.L3ProtoIPv6
	default:
		return
	}
	switch ip.Proto {
	case frame.ProtoTCP:
		p.L4 = spec.L4ProtoTCP
	case frame.ProtoUDP:
		p.L4 = spec.L4ProtoUDP
	default:
		return
	}
	if !o.RxCsumL4 {
		return
	}
	p.L4CsumChecked = true
	l4 := b[l3+ip.HeaderLen : l3+ip.Len]
	if p.L4 == spec.L4ProtoUDP && p.L3 == spec.L3ProtoIPv4 && len(l4) >= frame.UDPHeaderLen &&
		binary.BigEndian.Uint16(l4[frame.UDPChecksumOffset:]) == 0 {
		return // no checksum to check
	}
	p.L4CsumErr = checksum.Checksum(l4, frame.PseudoHeaderSum(ip.Src, ip.Dst, ip.Proto, len(l4))) != 0xffff
}

// WaitRx implements link.Queue.
func (q *wireQueue) WaitRx(ctx context.Context) error {
	q.mu.Lock()
	ready := len(q.ring) > 0
	q.mu.Unlock()
	if ready {
		return nil
	}
	select {
	case <-q.wake:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Wake implements link.Queue.
func (q *wireQueue) Wake() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// flowHash spreads frames over queues by IPv4/IPv6 addresses and ports, the
// fields RSS hashes (§10); anything else goes to queue 0.
func flowHash(b []byte) uint32 {
	et, l3, _, _ := frame.EtherType(b, 0)
	var ip frame.IP
	var ok bool
	switch et {
	case frame.EtherTypeIPv4:
		ip, ok = frame.ParseIPv4(b[l3:])
	case frame.EtherTypeIPv6:
		ip, ok = frame.ParseIPv6(b[l3:])
	}
	if !ok {
		return 0
	}
	var ports []byte
	if !ip.Fragment && (ip.Proto == frame.ProtoTCP || ip.Proto == frame.ProtoUDP) {
		ports = b[l3+ip.HeaderLen:]
	}
	h := uint32(2166136261)
	for _, key := range [][]byte{ip.Src, ip.Dst} {
		for _, c := range key {
			h = (h ^ uint32(c)) * 16777619
		}
	}
	if len(ports) >= 4 {
		for _, c := range ports[:4] {
			h = (h ^ uint32(c)) * 16777619
		}
	}
	return h
}
