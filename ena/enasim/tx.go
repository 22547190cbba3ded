package enasim

import (
	"encoding/binary"

	"github.com/enanet/enanet/ena/hw/dmamem"
	"github.com/enanet/enanet/ena/spec"
)

// Tx data path (§7.2-§7.5, §7.8): on a doorbell the device walks the SQ from
// its head to the written tail, one packet at a time (meta descriptor,
// FIRST ... LAST data descriptors), gathers the frame (LLQ: pushed header +
// buffers; HOST: buffers), applies the checksum offloads the first data
// descriptor asks for with the header geometry of the meta descriptor or the
// queue's meta cache, enforces MTU and the ENI allowances, queues the frame
// for the wire and writes one Tx completion per packet that asked for one.
//
// Driver errors the model treats as fatal (DEV_STS FATAL_ERROR with a reason
// a person can act on): a descriptor whose phase bit does not match the lap
// (a doorbell rung before the descriptor was written, or a stale ring), a
// doorbell more than depth entries ahead of the device or moving backwards,
// a meta descriptor anywhere but first, a packet without FIRST or with FIRST
// inside it, more descriptors than max_packet_tx_descs without LAST, an LLQ
// burst over the negotiated limit, and any DMA outside the driver's memory.
// Errors a real device absorbs silently (oversize frame, missing metadata,
// an offload it cannot honour) drop the frame, count it in tx_drops and
// still complete the packet, so the driver's ring stays in step.

// CompletionFault selects how the next completion is corrupted (fault
// injection): drivers must detect each kind and reset (§2.3,
// §7.5, §7.7).
type CompletionFault int

const (
	// CompletionIntact leaves completions alone (disarms a pending fault).
	CompletionIntact CompletionFault = iota
	// CompletionBadReqID writes req_id 0xFFFF, beyond every queue depth
	// (drivers reset with INV_TX_REQ_ID / INV_RX_REQ_ID).
	CompletionBadReqID
	// CompletionMBZ sets the must-be-zero bits (Tx flags 7:6, Rx status
	// bits 7 and 17); drivers with CDESC_MBZ reset with
	// TX/RX_DESCRIPTOR_MALFORMED.
	CompletionMBZ
	// CompletionUnexpectedFirst (Rx only) sets FIRST on a completion that
	// is not the first of its packet: on the second buffer of a multi-buffer
	// frame, or, for a one-buffer frame, clears its LAST so the next frame's
	// FIRST arrives in the middle of a packet (RX_DESCRIPTOR_MALFORMED).
	CompletionUnexpectedFirst
	// CompletionOverrun (Rx only) writes the frame's last completion twice,
	// the second copy into a CQ slot the driver never made room for, as a
	// device that lost track of the CQ head would: the copy names a buffer
	// the device no longer owns (INV_RX_REQ_ID), or, for a multi-buffer
	// frame, starts a frame without FIRST (RX_DESCRIPTOR_MALFORMED).
	CompletionOverrun
)

// String names the fault for test output.
func (f CompletionFault) String() string {
	switch f {
	case CompletionIntact:
		return "intact"
	case CompletionBadReqID:
		return "bad req_id"
	case CompletionMBZ:
		return "MBZ bits set"
	case CompletionUnexpectedFirst:
		return "unexpected FIRST"
	case CompletionOverrun:
		return "CQ overrun"
	}
	return "CompletionFault(?)"
}

// ioFaults are the data-path faults armed by tests (fault injection,
// see Faults). They survive device resets so a test can arm a fault before
// the driver's recovery runs.
type ioFaults struct {
	loseTx    int
	corruptTx CompletionFault
	corruptRx CompletionFault
	stallRx   bool
	txReorder int
}

// LoseTxCompletions makes the device transmit the next n packets but never
// write their Tx completions, as a device that lost them would; drivers
// detect it with the missing-completion watchdog (§9.2 MISS_TX_CMPL).
func (f *Faults) LoseTxCompletions(n int) {
	m := f.m
	m.mu.Lock()
	m.io.faults.loseTx = max(n, 0)
	m.mu.Unlock()
}

// CorruptNextTxCompletion corrupts the next Tx completion written (kind
// CompletionBadReqID or CompletionMBZ).
func (f *Faults) CorruptNextTxCompletion(kind CompletionFault) {
	m := f.m
	m.mu.Lock()
	m.io.faults.corruptTx = kind
	m.mu.Unlock()
}

// CorruptNextRxCompletion corrupts the completions of the next received
// frame (CompletionBadReqID, CompletionMBZ or CompletionUnexpectedFirst).
func (f *Faults) CorruptNextRxCompletion(kind CompletionFault) {
	m := f.m
	m.mu.Lock()
	m.io.faults.corruptRx = kind
	m.mu.Unlock()
}

// StallRx stops (true) or restarts (false) the Rx engine: while stalled,
// every arriving frame is dropped and counted in rx_overruns, as frames
// overflow a device whose Rx path is stuck.
func (f *Faults) StallRx(stall bool) {
	m := f.m
	m.mu.Lock()
	m.io.faults.stallRx = stall
	m.mu.Unlock()
}

// ReorderTxCompletions makes the device complete Tx packets out of order:
// completions are held back in batches of n and written in reverse order
// (§7.5: completions may arrive out of order). Whatever is held when a
// doorbell has been processed is written then, reversed, so nothing waits
// for more traffic. n <= 1 restores in-order completion.
func (f *Faults) ReorderTxCompletions(n int) {
	m := f.m
	m.mu.Lock()
	m.io.faults.txReorder = max(n, 0)
	m.mu.Unlock()
}

// metaCache is the per-SQ cached Tx metadata (§7.4).
type metaCache struct {
	valid    bool
	l3HdrOff int
	l3HdrLen int
	l4HdrLen int // bytes
	mss      int
}

// txPacket is one packet as parsed from the SQ, before processing.
type txPacket struct {
	hasMeta bool
	meta    spec.TxMetaDesc
	descs   []spec.TxDesc
	header  []byte // LLQ pushed header (aliases BAR2)
	slots   int    // SQ slots (descriptors or LLQ entries) consumed
}

// txState is the Tx-specific state of an SQ.
type txState struct {
	llq          bool
	llqOff       uint32
	layout       spec.LLQLayout
	metaRequired bool // DISABLE_META_CACHING negotiated: meta on every packet
	burst        int  // LLQ entries allowed per doorbell; 0 = unlimited
	maxDescs     int

	meta     metaCache
	pkt      txPacket
	descs    []spec.TxDesc // scratch for pkt.descs
	raw      [spec.TxDescSize]byte
	cbuf     [spec.TxCompletionExtSize]byte
	maxFrame int // longest frame the queue assembles (txMaxFrame)
	pend     []uint16
	// lastDescs is the number of data descriptors of the last packet
	// processed (State).
	lastDescs int

	// LLQ decode callback state (llq.go).
	entryFn   func(i int) []byte
	llqAvail  int
	llqMiss   bool
	llqBadPos int
}

// txMaxFrame is the largest frame a Tx SQ assembles: max MTU plus an
// Ethernet header and two VLAN tags. Longer frames are dropped unread.
func (m *Model) txMaxFrame() int { return m.prof.MaxMTU + ethHeaderLen + 2*vlanTagLen }

// newTxState allocates the per-queue scratch once, at CREATE_SQ, so the
// doorbell path never allocates.
func (m *Model) newTxState(sq *ioSQ) *txState {
	t := &txState{
		maxDescs:  max(m.prof.MaxTxDescs, 2),
		maxFrame:  m.txMaxFrame(),
		pend:      make([]uint16, 0, sq.depth),
		llqBadPos: -1,
	}
	t.descs = make([]spec.TxDesc, 0, t.maxDescs)
	t.entryFn = func(i int) []byte { return m.llqEntry(sq, i) }
	return t
}

// txDoorbell handles a write of the free-running tail to a Tx SQ doorbell
// (§7.8) with mu held.
func (m *Model) txDoorbell(sq *ioSQ, tail uint16) {
	t := sq.tx
	ahead := int(tail - sq.head)
	if ahead > sq.depth {
		m.fatal("%s doorbell: tail %d is %d entries ahead of the device head %d, more than the depth %d", sq.name(), tail, ahead, sq.head, sq.depth)
		return
	}
	if ahead < int(sq.tail-sq.head) {
		m.fatal("%s doorbell: tail moved backwards from %d to %d", sq.name(), sq.tail, tail)
		return
	}
	if t.llq && t.burst > 0 {
		if n := int(tail - sq.tail); n > t.burst {
			m.fatal("%s doorbell: %d LLQ entries written since the last doorbell, more than the negotiated burst of %d (§8.1 LIMIT_TX_BURST)", sq.name(), n, t.burst)
			return
		}
	}
	sq.tail = tail
	if !t.llq {
		sq.view = m.mapRing(sq.base, sq.depth*spec.TxDescSize)
	}
	cq := sq.cq
	cq.view = m.mapRing(cq.base, cq.depth*cq.entrySize)
	for sq.head != sq.tail && m.fatalReason == "" {
		avail := int(sq.tail - sq.head)
		var ok bool
		if t.llq {
			ok = m.parseLLQPacket(sq, avail)
		} else {
			ok = m.parseHostPacket(sq, avail)
		}
		if !ok {
			break // incomplete packet (wait for the next doorbell) or fatal
		}
		sq.head += uint16(t.pkt.slots)
		m.txProcess(sq, &t.pkt)
	}
	m.flushTxPending(sq)
	sq.view, cq.view = nil, nil
	m.cqNotify(cq)
}

// parseHostPacket reads one packet's descriptors from a host-memory SQ
// starting at the head (§7.2, §7.3). It returns false if the packet is not
// complete within the doorbell (nothing consumed) or on a fatal error.
func (m *Model) parseHostPacket(sq *ioSQ, avail int) bool {
	t := sq.tx
	p := &t.pkt
	p.hasMeta, p.descs, p.header, p.slots = false, t.descs[:0], nil, 0
	for i := 0; ; i++ {
		if i >= avail {
			return false
		}
		if i >= t.maxDescs {
			m.fatal("%s: packet at SQ position %d has more than %d descriptors without LAST", sq.name(), sq.head, t.maxDescs)
			return false
		}
		pos := sq.head + uint16(i)
		off := sq.slot(pos) * spec.TxDescSize
		if sq.view != nil {
			copy(t.raw[:], sq.view[off:off+spec.TxDescSize])
		} else if err := m.mem.Read(sq.base+uint64(off), t.raw[:]); err != nil {
			m.dmaFault(sq.name()+" descriptor read", err)
			return false
		}
		w0 := binary.LittleEndian.Uint32(t.raw[:])
		if (w0&spec.TxDescPhaseMask != 0) != sq.expectPhase(pos) {
			m.fatal("%s slot %d (position %d): descriptor phase %d, expected %d: doorbell rung before the descriptor was written, or the ring is stale (§7.8)",
				sq.name(), sq.slot(pos), pos, b2i(w0&spec.TxDescPhaseMask != 0), b2i(sq.expectPhase(pos)))
			return false
		}
		if spec.IsMetaDesc(t.raw[:]) {
			if i != 0 {
				m.fatal("%s slot %d: meta descriptor inside a packet; it may only open one (§7.3)", sq.name(), sq.slot(pos))
				return false
			}
			p.hasMeta = true
			p.meta = spec.DecodeTxMetaDesc(t.raw[:])
			continue
		}
		d := spec.DecodeTxDesc(t.raw[:])
		p.descs = append(p.descs, d)
		if d.Last {
			p.slots = i + 1
			return m.checkTxChain(sq, p)
		}
	}
}

// checkTxChain applies the FIRST rules to a parsed packet (§7.2): the first
// data descriptor carries FIRST unless a meta descriptor opened the packet,
// and no later descriptor does.
func (m *Model) checkTxChain(sq *ioSQ, p *txPacket) bool {
	if len(p.descs) == 0 {
		m.fatal("%s: packet at position %d has a meta descriptor but no data descriptor", sq.name(), sq.head)
		return false
	}
	if !p.hasMeta && !p.descs[0].First {
		m.fatal("%s: packet at position %d does not start with FIRST (§7.2)", sq.name(), sq.head)
		return false
	}
	for i := 1; i < len(p.descs); i++ {
		if p.descs[i].First {
			m.fatal("%s: packet at position %d has FIRST on its descriptor %d (§7.2)", sq.name(), sq.head, i)
			return false
		}
	}
	return true
}

// txProcess assembles, checks and sends one parsed packet and completes it.
// The frame is assembled straight into the outgoing list (the "wire side" of
// the device, sent by flushOutgoing once mu is released) and only committed
// there if it is sent: one copy out of host memory, as a NIC's DMA read.
func (m *Model) txProcess(sq *ioSQ, p *txPacket) {
	t := sq.tx
	first := &p.descs[0]
	t.lastDescs = len(p.descs)
	total := len(p.header)
	for i := range p.descs {
		total += int(p.descs[i].Length)
	}
	// Meta cache update comes first: a stored meta descriptor applies to
	// this packet and the following ones (§7.4).
	if p.hasMeta && p.meta.ExtValid && p.meta.MetaStore {
		t.meta = metaCache{
			valid:    true,
			l3HdrOff: int(p.meta.L3HdrOff), l3HdrLen: int(p.meta.L3HdrLen),
			l4HdrLen: int(p.meta.L4HdrLen) * 4, mss: int(p.meta.MSS),
		}
	}
	var frame []byte
	var sum txChecksummed
	ok := m.txFits(sq, total)
	if ok {
		frame = m.ioOut().reserve(total)
		ok = m.txAssemble(sq, p, frame)
		if m.fatalReason != "" {
			return // DMA fault: the device stops; no completion
		}
	}
	if ok {
		ok = m.txOffload(sq, p, frame, &sum)
	}
	switch {
	case !ok || !m.linkUp:
		m.stats.txDrops++
	case !m.allowTx(total):
		// Shaped by the ENI allowance: counted there, not in tx_drops.
	default:
		m.ioOut().commit(total, sum)
		m.stats.txPkts++
		m.stats.txBytes += uint64(total)
	}
	if first.CompReq {
		m.txComplete(sq, first.ReqID)
	}
}

// txFits reports whether a frame of total bytes is one the device carries at
// all: at least an Ethernet header and at most the largest frame it
// assembles. Longer frames are dropped unread.
func (m *Model) txFits(sq *ioSQ, total int) bool {
	if total > sq.tx.maxFrame || total < ethHeaderLen {
		if m.tr != nil {
			m.tr.printf("%s: dropped a %d-byte frame (device limit %d, minimum %d)", sq.name(), total, sq.tx.maxFrame, ethHeaderLen)
		}
		return false
	}
	return true
}

// txAssemble copies the frame into frame (len = the packet's total): the
// pushed LLQ header, then every buffer in descriptor order (§7.2, §8.2). It
// returns false for a frame the device drops (above the MTU) or on a DMA
// fault (fatalReason set).
func (m *Model) txAssemble(sq *ioSQ, p *txPacket, frame []byte) bool {
	total := len(frame)
	n := copy(frame, p.header)
	for i := range p.descs {
		d := &p.descs[i]
		if d.Length == 0 {
			continue
		}
		if err := m.mem.Read(d.BufAddr, frame[n:n+int(d.Length)]); err != nil {
			m.dmaFault(sq.name()+" buffer read", err)
			return false
		}
		n += int(d.Length)
	}
	// MTU is an L3 limit (§4.8): frame minus Ethernet header and tags.
	vlans := 0
	for off := 12; vlans < 2 && off+2 <= total; off += vlanTagLen {
		et := binary.BigEndian.Uint16(frame[off:])
		if et != etherTypeVLAN && et != etherTypeQinQ {
			break
		}
		vlans++
	}
	if l3 := total - ethHeaderLen - vlans*vlanTagLen; l3 > m.mtu() {
		if m.tr != nil {
			m.tr.printf("%s: dropped a frame with %d L3 bytes above the MTU %d", sq.name(), l3, m.mtu())
		}
		return false
	}
	return true
}

// mtu is the configured L3 MTU (SET_FEATURE MTU, default 1500).
func (m *Model) mtu() int {
	if m.cfg.mtu <= 0 {
		return m.prof.MaxMTU
	}
	return m.cfg.mtu
}

// txOffload applies the checksum offloads of the first data descriptor
// (§7.2) using the meta descriptor's header geometry (§7.3, §7.4). It
// returns false if the packet must be dropped; sum records where it
// computed an L4 checksum (applyTxChecksums).
func (m *Model) txOffload(sq *ioSQ, p *txPacket, frame []byte, sum *txChecksummed) bool {
	t := sq.tx
	first := &p.descs[0]
	if t.metaRequired && !p.hasMeta {
		if m.tr != nil {
			m.tr.printf("%s: dropped a packet without a meta descriptor; meta caching is disabled so every packet needs one (§7.4)", sq.name())
		}
		return false
	}
	if first.TSO {
		if m.tr != nil {
			m.tr.printf("%s: dropped a TSO packet; the device offers no TSO", sq.name())
		}
		return false
	}
	if !first.L3Csum && !first.L4Csum {
		return true
	}
	var off txOffload
	switch {
	case p.hasMeta && p.meta.ExtValid:
		off.l3HdrOff, off.l3HdrLen = int(p.meta.L3HdrOff), int(p.meta.L3HdrLen)
	case t.meta.valid && !t.metaRequired:
		off.l3HdrOff, off.l3HdrLen = t.meta.l3HdrOff, t.meta.l3HdrLen
	default:
		if m.tr != nil {
			m.tr.printf("%s: dropped a checksum-offload packet with no header metadata (no meta descriptor, nothing cached)", sq.name())
		}
		return false
	}
	off.l3Proto, off.l4Proto = first.L3Proto, first.L4Proto
	off.l3Csum, off.l4Csum, off.partial = first.L3Csum, first.L4Csum, first.L4CsumPartial
	if !applyTxChecksums(frame, &off, sum) {
		if m.tr != nil {
			m.tr.printf("%s: dropped a packet whose checksum offload request does not match its headers", sq.name())
		}
		return false
	}
	return true
}

// txComplete queues or writes the Tx completion of one packet.
func (m *Model) txComplete(sq *ioSQ, reqID uint16) {
	t := sq.tx
	if n := min(m.io.faults.txReorder, sq.depth); n > 1 {
		t.pend = append(t.pend, reqID)
		if len(t.pend) >= n {
			m.flushTxPending(sq)
		}
		return
	}
	m.writeTxCompletion(sq, reqID)
}

// flushTxPending writes held-back completions in reverse order.
func (m *Model) flushTxPending(sq *ioSQ) {
	t := sq.tx
	for i := len(t.pend) - 1; i >= 0 && m.fatalReason == ""; i-- {
		m.writeTxCompletion(sq, t.pend[i])
	}
	t.pend = t.pend[:0]
}

// writeTxCompletion writes one Tx completion at the CQ tail (§7.5): every
// byte but the first word, then the word holding req_id and the phase bit
// with one atomic store, so the driver never sees the phase before the rest.
func (m *Model) writeTxCompletion(sq *ioSQ, reqID uint16) {
	f := &m.io.faults
	if f.loseTx > 0 {
		f.loseTx--
		return
	}
	cq := sq.cq
	c := spec.TxCompletion{ReqID: reqID, Phase: cq.phase(), SQHeadIdx: sq.head}
	switch f.corruptTx {
	case CompletionBadReqID:
		c.ReqID = 0xFFFF
	case CompletionMBZ:
		c.MBZ = spec.TxCdescFlagsMBZMask
	}
	f.corruptTx = CompletionIntact
	// A scratch buffer in the queue, not on the stack: it is passed to
	// Memory (an interface) and would escape.
	b := sq.tx.cbuf[:]
	clear(b)
	c.Encode(b)
	m.writeIOCompletion(cq, b[:cq.entrySize], "Tx completion")
}

// writeIOCompletion writes entry (len = the CQ's entry size) at the CQ tail,
// word 0 last and atomically (§7.8), and advances the tail. When the entry
// is in this process's memory it is written through one zero-copy view (one
// IOMMU lookup instead of two); otherwise through Memory.Write and
// publish32.
func (m *Model) writeIOCompletion(cq *ioCQ, entry []byte, what string) {
	addr := cq.slotAddr()
	var s []byte
	if cq.view != nil {
		off := int(cq.tail&uint32(cq.depth-1)) * cq.entrySize
		s = cq.view[off : off+len(entry)]
	} else if v, err := m.mem.Slice(addr, len(entry)); err == nil && len(v) == len(entry) {
		s = v
	}
	if dmamem.Aligned32(s, 0) {
		copy(s[4:], entry[4:])
		dmamem.Publish32(s, 0, binary.LittleEndian.Uint32(entry))
		cq.tail++
		cq.dirty = true
		return
	}
	if err := m.mem.Write(addr+4, entry[4:]); err != nil {
		m.dmaFault(what+" write", err)
		return
	}
	if err := m.publish32(addr, binary.LittleEndian.Uint32(entry)); err != nil {
		m.dmaFault(what+" write", err)
		return
	}
	cq.tail++
	cq.dirty = true
}
