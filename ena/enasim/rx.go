package enasim

import (
	"github.com/enanet/enanet/ena/spec"
)

// Rx data path (§7.6, §7.7, §10): a frame from the wire is checked against
// the MTU and the ENI allowance, parsed, hashed (RSS), steered to an Rx SQ
// through the indirection table, and written into that SQ's posted buffers
// in order, one Rx completion per buffer: FIRST on the first, LAST on the
// last, and on the last the L3/L4 protocols, checksum results and the hash.
// A frame that does not fit the posted buffers is dropped whole (nothing is
// consumed) and counted in rx_overruns; other drops count in rx_drops. Both
// are reported in the keep-alive (§5.3).

// rxState is the Rx-specific state of an SQ.
type rxState struct {
	descs []spec.RxDesc // scratch: the descriptors of the frame being written
	raw   [spec.RxDescSize]byte
	cbuf  [spec.RxCompletionExtSize]byte
	// lastBufLen is the length of the last Rx buffer used (State).
	lastBufLen int
}

func (m *Model) newRxState() *rxState {
	return &rxState{descs: make([]spec.RxDesc, 0, max(m.prof.MaxRxDescs, 1))}
}

// rxDoorbell handles a write of the free-running tail to an Rx SQ doorbell
// (§7.8) with mu held: it makes the posted buffers available. Descriptors
// are read when a frame needs them.
func (m *Model) rxDoorbell(sq *ioSQ, tail uint16) {
	ahead := int(tail - sq.head)
	if ahead > sq.depth {
		m.fatal("%s doorbell: tail %d is %d entries ahead of the device head %d, more than the depth %d", sq.name(), tail, ahead, sq.head, sq.depth)
		return
	}
	if ahead < int(sq.tail-sq.head) {
		m.fatal("%s doorbell: tail moved backwards from %d to %d", sq.name(), sq.tail, tail)
		return
	}
	sq.tail = tail
}

// receive is the wire's receiver: one frame arrives. It takes mu itself and
// raises interrupts after releasing it.
func (m *Model) receive(frame []byte) { m.receiveSent(frame, nil) }

// receiveSent is receive for a frame from a model on an in-process wire,
// with where that model computed its L4 checksum (csum_carry.go; nil: it
// computed none).
func (m *Model) receiveSent(frame []byte, sum *txChecksummed) {
	m.mu.Lock()
	if m.fatalReason != "" || m.resetting || m.closed || !m.linkUp {
		m.mu.Unlock()
		return
	}
	m.rxFrame(frame, sum)
	if bw, ok := m.wire.(burstWire); ok {
		if b := bw.rxBurst(); b.active() {
			// One frame of a burst on an in-process cable: the
			// interrupt waits for the end of the burst (flushRaises).
			if b.owner.Load() != m {
				b.owner.Store(m)
			}
			m.mu.Unlock()
			return
		}
	}
	r := m.takeRaises()
	m.mu.Unlock()
	m.deliverRaises(&r)
}

// flushRaises delivers the interrupts left pending by a burst of received
// frames (see burst); called without mu by the wire that delivered them.
func (m *Model) flushRaises() {
	m.mu.Lock()
	r := m.takeRaises()
	m.mu.Unlock()
	m.deliverRaises(&r)
}

// rxFrame processes one received frame with mu held; sum is what the
// sending model checksummed, or nil.
func (m *Model) rxFrame(f []byte, sum *txChecksummed) {
	if m.io.faults.stallRx {
		m.stats.rxOverruns++
		return
	}
	if len(f) < ethHeaderLen {
		m.stats.rxDrops++
		return
	}
	fi := &m.io.fi
	parseFrame(f, fi)
	if len(f)-ethHeaderLen-fi.vlans*vlanTagLen > m.mtu() {
		m.stats.rxDrops++
		return
	}
	if !m.allowRx(len(f)) {
		return // counted in the ENI allowance counters
	}
	var fields *[16]uint16 = &m.cfg.rssInputs
	if *fields == ([16]uint16{}) {
		fields = &rssDefaultFields
	}
	_, n := rssInput(f, fi, fields, m.cfg.rssInputSort&0x2 != 0, m.cfg.rssInputSort&0x4 != 0, &m.io.rssBuf)
	hash := m.rssHashFrame(m.io.rssBuf[:n])
	sq := m.rxSteer(hash)
	if sq == nil {
		m.stats.rxDrops++
		return
	}
	// One IOMMU lookup per ring for the frame instead of one per
	// descriptor and completion (a 9001-byte frame spans five buffers).
	sq.view = m.mapRing(sq.base, sq.depth*spec.RxDescSize)
	sq.cq.view = m.mapRing(sq.cq.base, sq.cq.depth*sq.cq.entrySize)
	m.rxDeliver(sq, f, fi, hash, sum)
	sq.view, sq.cq.view = nil, nil
}

// rxSteer picks the Rx SQ for a hash: the indirection-table entry
// hash & (size-1) names an Rx sq_idx (§10). Before a table is programmed
// every frame goes to the lowest-numbered Rx SQ. A table entry naming an Rx
// SQ that does not exist drops the frame (nil).
func (m *Model) rxSteer(hash uint32) *ioSQ {
	t := m.cfg.rssTable
	if len(t) > 0 && isPow2(len(t)) {
		idx := t[int(hash)&(len(t)-1)]
		if int(idx) >= maxQueueIdx {
			return nil
		}
		return m.io.rxSQs[idx]
	}
	if m.io.nRx == 0 {
		return nil
	}
	for _, sq := range m.io.rxSQs {
		if sq != nil {
			return sq
		}
	}
	return nil
}

// rxDeliver writes frame f into sq's posted buffers and completions.
func (m *Model) rxDeliver(sq *ioSQ, f []byte, fi *frameInfo, hash uint32, sum *txChecksummed) {
	rs := sq.rx
	maxDescs := cap(rs.descs)
	avail := int(sq.tail - sq.head)
	rs.descs = rs.descs[:0]
	// Step 1: find enough posted buffers for the whole frame.
	for got := 0; got < len(f); {
		i := len(rs.descs)
		if i >= avail {
			m.stats.rxOverruns++ // no (or not enough) buffers posted
			return
		}
		if i >= maxDescs {
			m.stats.rxDrops++ // needs more buffers than max_packet_rx_descs
			return
		}
		pos := sq.head + uint16(i)
		off := sq.slot(pos) * spec.RxDescSize
		if sq.view != nil {
			copy(rs.raw[:], sq.view[off:off+spec.RxDescSize])
		} else if err := m.mem.Read(sq.base+uint64(off), rs.raw[:]); err != nil {
			m.dmaFault(sq.name()+" descriptor read", err)
			return
		}
		d := spec.DecodeRxDesc(rs.raw[:])
		if d.Phase != sq.expectPhase(pos) {
			m.fatal("%s slot %d (position %d): descriptor phase %d, expected %d: doorbell rung before the descriptor was written, or the ring is stale (§7.8)",
				sq.name(), sq.slot(pos), pos, b2i(d.Phase), b2i(sq.expectPhase(pos)))
			return
		}
		rs.descs = append(rs.descs, d)
		rs.lastBufLen = d.BufferLen()
		got += d.BufferLen()
	}
	// Step 2: the parse results that go into the LAST completion (§7.7).
	var last spec.RxCompletion
	m.rxParseResults(f, fi, hash, sum, &last)
	// Step 3: copy the data and write one completion per buffer.
	cq := sq.cq
	corrupt := m.io.faults.corruptRx
	m.io.faults.corruptRx = CompletionIntact
	nd := len(rs.descs)
	off := 0
	for i := range rs.descs {
		d := &rs.descs[i]
		chunk := min(d.BufferLen(), len(f)-off)
		if err := m.mem.Write(d.BufAddr, f[off:off+chunk]); err != nil {
			m.dmaFault(sq.name()+" buffer write", err)
			return
		}
		var c spec.RxCompletion
		if i == nd-1 {
			c = last
		}
		c.Phase, c.Buffer = cq.phase(), true
		c.First, c.Last = i == 0, i == nd-1
		c.Length, c.ReqID = uint16(chunk), d.ReqID
		c.SubQID = sq.idx
		switch corrupt {
		case CompletionBadReqID:
			if i == 0 {
				c.ReqID = 0xFFFF
			}
		case CompletionMBZ:
			if i == 0 {
				c.MBZ = spec.RxCdescMBZMask
			}
		case CompletionUnexpectedFirst:
			if nd == 1 {
				c.Last = false
			} else if i == 1 {
				c.First = true
			}
		}
		size := cq.entrySize
		if size == spec.RxCompletionExtSize {
			e := spec.RxCompletionExt{RxCompletion: c, BufAddr: d.BufAddr}
			e.Encode(rs.cbuf[:])
		} else {
			c.Encode(rs.cbuf[:])
		}
		m.writeIOCompletion(cq, rs.cbuf[:size], "Rx completion")
		if corrupt == CompletionOverrun && i == nd-1 {
			c.Phase = cq.phase() // the copy is valid in its own slot
			if size == spec.RxCompletionExtSize {
				e := spec.RxCompletionExt{RxCompletion: c, BufAddr: d.BufAddr}
				e.Encode(rs.cbuf[:])
			} else {
				c.Encode(rs.cbuf[:])
			}
			m.writeIOCompletion(cq, rs.cbuf[:size], "Rx completion (overrun copy)")
		}
		if m.fatalReason != "" {
			return
		}
		off += chunk
	}
	sq.head += uint16(nd)
	m.stats.rxPkts++
	m.stats.rxBytes += uint64(len(f))
	m.cqNotify(cq)
}

// rxParseResults fills the protocol, checksum and hash fields of the LAST
// Rx completion (§7.7) from the device's own parse and checksum checks,
// within the offloads the profile advertises (STATELESS_OFFLOAD_CONFIG
// rx_supported: bit 0 IPv4 header, bit 1 L4 over IPv4, bit 2 L4 over IPv6,
// bit 3 hash). A checksum the sending model computed over exactly the
// segment this parse finds (sum.covers) verifies without summing it again.
func (m *Model) rxParseResults(f []byte, fi *frameInfo, hash uint32, sum *txChecksummed, c *spec.RxCompletion) {
	rxo := m.prof.RxOffloads
	c.L3Proto = fi.l3
	c.SrcVlanCnt = uint8(min(fi.vlans, 3))
	if rxo&(1<<3) != 0 {
		c.Hash = hash
	}
	switch fi.l3 {
	case spec.L3ProtoIPv4:
		c.IPv4Frag = fi.frag
		// L3_CSUM_ERR means "bad or not validated" (§7.7).
		c.L3CsumErr = rxo&(1<<0) == 0 || !ipv4HeaderOK(f, fi)
	case spec.L3ProtoIPv6:
	default:
		return
	}
	if fi.frag || (fi.l4 != spec.L4ProtoTCP && fi.l4 != spec.L4ProtoUDP) {
		return
	}
	c.L4Proto = fi.l4
	supported := (fi.l3 == spec.L3ProtoIPv4 && rxo&(1<<1) != 0) || (fi.l3 == spec.L3ProtoIPv6 && rxo&(1<<2) != 0)
	if !supported {
		return
	}
	c.L4CsumChecked = true
	c.L4CsumErr = !fi.l4Valid || !(sum.covers(fi) || l4ChecksumOK(f, fi))
}
