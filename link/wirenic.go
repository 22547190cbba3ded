package link

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/enanet/enanet/ena/spec"
	"github.com/enanet/enanet/rings"
)

// Wire carries Ethernet frames; it has the method set of enasim.Wire, so
// any enasim wire (pair, TAP, UDP) can also back a WireNIC. Send must not
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

// WireNICConfig describes a software NIC.
type WireNICConfig struct {
	MAC    [6]byte
	MTU    int // L3 MTU; 0 means 1500
	MaxMTU int // 0 means 9001
	Queues int // 0 means 1
	// Offloads is what the NIC does like a device would: with the Tx bits
	// it completes partial checksums; with the Rx bits it validates and
	// reports checksums, otherwise it reports "not validated".
	Offloads Offloads
	RxRing   int // frames buffered per Rx queue; 0 means 1024
	// RxBufSize splits received frames into buffers of this size, like
	// device Rx descriptors; 0 means 2048.
	RxBufSize int
}

// WireNIC is a NIC in software over a Wire: the far side of the simulated
// VPC in enahttp, and the fake device of this package's tests. Received
// frames are spread over the queues by a flow hash, as RSS would.
type WireNIC struct {
	cfg    WireNICConfig
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

// NewWireNIC makes a NIC on w and installs itself as w's receiver.
func NewWireNIC(w Wire, cfg WireNICConfig) *WireNIC {
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
	n := &WireNIC{cfg: cfg, wire: w}
	n.mtu.Store(int64(cfg.MTU))
	n.up.Store(true)
	for i := 0; i < cfg.Queues; i++ {
		n.queues = append(n.queues, &wireQueue{nic: n, idx: i, wake: make(chan struct{}, 1)})
	}
	w.SetReceiver(n.receive)
	return n
}

// MAC implements NIC.
func (n *WireNIC) MAC() [6]byte { return n.cfg.MAC }

// MTU implements NIC.
func (n *WireNIC) MTU() int { return int(n.mtu.Load()) }

// MaxMTU implements NIC.
func (n *WireNIC) MaxMTU() int { return n.cfg.MaxMTU }

// SetMTU implements NIC.
func (n *WireNIC) SetMTU(mtu int) error {
	if mtu < 68 || mtu > n.cfg.MaxMTU {
		return fmt.Errorf("link: MTU %d outside 68..%d", mtu, n.cfg.MaxMTU)
	}
	n.mtu.Store(int64(mtu))
	return nil
}

// Offloads implements NIC.
func (n *WireNIC) Offloads() Offloads { return n.cfg.Offloads }

// NumQueues implements NIC.
func (n *WireNIC) NumQueues() int { return len(n.queues) }

// Queue implements NIC.
func (n *WireNIC) Queue(i int) Queue { return n.queues[i] }

// LinkUp implements NIC.
func (n *WireNIC) LinkUp() bool { return n.up.Load() }

// SetLinkHandler implements NIC.
func (n *WireNIC) SetLinkHandler(f func(bool)) { n.mu.Lock(); n.onLink = f; n.mu.Unlock() }

// SetFatalHandler implements NIC.
func (n *WireNIC) SetFatalHandler(f func(error)) { n.mu.Lock(); n.onFatal = f; n.mu.Unlock() }

// SetLink changes the link state (frames are dropped both ways while down)
// and tells the handler, like an AENQ LINK_CHANGE event (§6).
func (n *WireNIC) SetLink(up bool) {
	n.up.Store(up)
	n.mu.Lock()
	f := n.onLink
	n.mu.Unlock()
	if f != nil {
		f(up)
	}
}

// Fail reports a fatal device error to the handler.
func (n *WireNIC) Fail(err error) {
	n.up.Store(false)
	n.mu.Lock()
	f := n.onFatal
	n.mu.Unlock()
	if f != nil {
		f(err)
	}
}

// Close detaches from the wire and closes it.
func (n *WireNIC) Close() error {
	n.wire.SetReceiver(nil)
	return n.wire.Close()
}

// QueueStats are one WireNIC queue's counters.
type QueueStats struct {
	TxPackets, TxBytes, RxPackets, RxBytes, RxDropped uint64
}

// Stats returns per-queue counters.
func (n *WireNIC) Stats() []QueueStats {
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
func (n *WireNIC) receive(frame []byte) {
	if !n.up.Load() || len(frame) < header.EthernetMinimumSize || len(frame) > n.MTU()+header.EthernetMinimumSize+4 {
		n.RxDropped.Add(1)
		return
	}
	h := flowHash(frame)
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
	b = append(b, frame...)
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
	nic  *WireNIC
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

// Send implements Queue: gather the frame, finish requested checksums the
// way the device does (§7.2), and put it on the wire.
func (q *wireQueue) Send(segs [][]byte, off rings.TxOffload) error {
	n := q.nic
	b := q.txbuf[:0]
	for _, s := range segs {
		b = append(b, s...)
	}
	q.txbuf = b[:0]
	if len(b) > n.MTU()+header.EthernetMinimumSize {
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
func (n *WireNIC) deviceChecksum(b []byte, off rings.TxOffload) error {
	o := n.cfg.Offloads
	l3 := int(off.L3HdrOff)
	if l3+int(off.L3HdrLen) > len(b) {
		return errors.New("link: Tx offload: L3 header beyond the frame")
	}
	if off.L3Csum {
		if off.L3 != spec.L3ProtoIPv4 || !o.TxCsumIPv4 {
			return errors.New("link: Tx offload: IPv4 checksum not negotiated")
		}
		ip := b[l3 : l3+int(off.L3HdrLen)]
		ip[10], ip[11] = 0, 0
		c := ^checksum.Checksum(ip, 0)
		ip[10], ip[11] = byte(c>>8), byte(c)
	}
	if !off.L4Csum {
		return nil
	}
	if !off.L4Partial {
		return errors.New("link: Tx offload: only partial L4 checksums are modelled")
	}
	switch off.L3 {
	case spec.L3ProtoIPv4:
		if !o.TxL4CsumIPv4Partial {
			return errors.New("link: Tx offload: IPv4 L4 partial checksum not negotiated")
		}
	case spec.L3ProtoIPv6:
		if !o.TxL4CsumIPv6Partial {
			return errors.New("link: Tx offload: IPv6 L4 partial checksum not negotiated")
		}
	default:
		return fmt.Errorf("link: Tx offload: L3 protocol %v", off.L3)
	}
	l4 := l3 + int(off.L3HdrLen)
	var end int
	if off.L3 == spec.L3ProtoIPv4 {
		end = l3 + int(header.IPv4(b[l3:]).TotalLength())
	} else {
		end = l3 + header.IPv6MinimumSize + int(header.IPv6(b[l3:]).PayloadLength())
	}
	if end > len(b) || l4 > end {
		return errors.New("link: Tx offload: L4 beyond the frame")
	}
	var co int
	switch off.L4 {
	case spec.L4ProtoTCP:
		co = l4 + header.TCPChecksumOffset
	case spec.L4ProtoUDP:
		co = l4 + udpChecksumOffset
	default:
		return fmt.Errorf("link: Tx offload: L4 protocol %v", off.L4)
	}
	if co+2 > end {
		return errors.New("link: Tx offload: checksum field beyond the frame")
	}
	c := ^checksum.Checksum(b[l4:end], 0)
	if off.L4 == spec.L4ProtoUDP && c == 0 {
		c = 0xffff
	}
	b[co], b[co+1] = byte(c>>8), byte(c)
	return nil
}

// Flush implements Queue; frames leave in Send.
func (q *wireQueue) Flush() {}

// Poll implements Queue: hand out up to budget frames, split into RxBufSize
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

// rxStatus sets the protocol and checksum bits of p from the frame.
func (n *WireNIC) rxStatus(b []byte, p *rings.RxPacket) {
	o := n.cfg.Offloads
	p.L3CsumErr = true // "bad or not validated" until shown good
	eth := header.Ethernet(b)
	ip := b[header.EthernetMinimumSize:]
	var l4proto uint8
	var l4 []byte
	var pseudo uint16
	switch eth.Type() {
	case header.IPv4ProtocolNumber:
		if len(ip) < header.IPv4MinimumSize {
			return
		}
		h := header.IPv4(ip)
		hl, tl := int(h.HeaderLength()), int(h.TotalLength())
		if hl < header.IPv4MinimumSize || tl < hl || tl > len(ip) {
			return
		}
		p.L3 = spec.L3ProtoIPv4
		if o.RxCsumIPv4 {
			p.L3CsumErr = checksum.Checksum(ip[:hl], 0) != 0xffff
		}
		if h.More() || h.FragmentOffset() != 0 {
			p.IPv4Frag = true
			return
		}
		l4proto, l4 = h.Protocol(), ip[hl:tl]
		pseudo = header.PseudoHeaderChecksum(h.TransportProtocol(), h.SourceAddress(), h.DestinationAddress(), uint16(len(l4)))
	case header.IPv6ProtocolNumber:
		if len(ip) < header.IPv6MinimumSize {
			return
		}
		h := header.IPv6(ip)
		pl := int(h.PayloadLength())
		if header.IPv6MinimumSize+pl > len(ip) {
			return
		}
		p.L3 = spec.L3ProtoIPv6
		l4proto, l4 = h.NextHeader(), ip[header.IPv6MinimumSize:header.IPv6MinimumSize+pl]
		pseudo = header.PseudoHeaderChecksum(h.TransportProtocol(), h.SourceAddress(), h.DestinationAddress(), uint16(len(l4)))
	default:
		return
	}
	switch l4proto {
	case uint8(header.TCPProtocolNumber):
		p.L4 = spec.L4ProtoTCP
	case uint8(header.UDPProtocolNumber):
		p.L4 = spec.L4ProtoUDP
	default:
		return
	}
	if !o.RxCsumL4 {
		return
	}
	p.L4CsumChecked = true
	if p.L4 == spec.L4ProtoUDP && p.L3 == spec.L3ProtoIPv4 && len(l4) >= 8 && l4[6] == 0 && l4[7] == 0 {
		return // no checksum to check
	}
	p.L4CsumErr = checksum.Checksum(l4, pseudo) != 0xffff
}

// WaitRx implements Queue.
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

// Wake implements Queue.
func (q *wireQueue) Wake() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// flowHash spreads frames over queues by IPv4/IPv6 addresses and ports, the
// fields RSS hashes (§8); anything else goes to queue 0.
func flowHash(b []byte) uint32 {
	ip := b[header.EthernetMinimumSize:]
	var key []byte
	var l4 []byte
	switch header.Ethernet(b).Type() {
	case header.IPv4ProtocolNumber:
		if len(ip) < header.IPv4MinimumSize {
			return 0
		}
		h := header.IPv4(ip)
		hl := int(h.HeaderLength())
		key = ip[12:20]
		if hl <= len(ip) && !h.More() && h.FragmentOffset() == 0 {
			l4 = ip[hl:]
		}
		if h.Protocol() != uint8(header.TCPProtocolNumber) && h.Protocol() != uint8(header.UDPProtocolNumber) {
			l4 = nil
		}
	case header.IPv6ProtocolNumber:
		if len(ip) < header.IPv6MinimumSize {
			return 0
		}
		key = ip[8:40]
		if nh := ip[6]; nh == uint8(header.TCPProtocolNumber) || nh == uint8(header.UDPProtocolNumber) {
			l4 = ip[header.IPv6MinimumSize:]
		}
	default:
		return 0
	}
	h := uint32(2166136261)
	for _, c := range key {
		h = (h ^ uint32(c)) * 16777619
	}
	if len(l4) >= 4 {
		for _, c := range l4[:4] {
			h = (h ^ uint32(c)) * 16777619
		}
	}
	return h
}

// udpChecksumOffset is where the UDP checksum sits in its header (RFC 768).
const udpChecksumOffset = 6
