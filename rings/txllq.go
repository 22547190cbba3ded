package rings

import (
	"github.com/enanet/enanet/ena/spec"
)

// sendLLQOne is Send's path for the most common frame in LLQ placement: one
// pushed whole in the first entry's header area, whose descriptors (a meta
// descriptor when §7.4 needs one, then one data descriptor without a
// buffer) fit the entry's descriptors-before-header slots (§8.2). It builds
// that one entry in the bounce buffer and pushes it, as plan, build and
// writeLLQ do for such a frame, without q.descs and the general layout
// loop; a frame whose descriptors would spill into a continuation entry
// goes to send. total is the frame's length, already checked against
// llqOneMax.
func (q *TxQueue) sendLLQOne(segs [][]byte, total int, off *TxOffload) error {
	e := &q.offEnc // offloadEnc, inlined by hand
	if k0, k1 := txOffloadKey(off); k0 != e.k0 || k1 != e.k1 {
		q.setOffloadEnc(off, k0, k1)
	}
	meta := e.meta
	ndescs := 1
	if meta {
		ndescs = 2
	}
	if q.entries[ndescs] != 1 {
		return q.send(segs, off)
	}
	// At most depth-1 slots are ever outstanding, so the CQ can never
	// overflow (§7.8).
	if q.tail-q.head+1 > q.mask || len(q.reqFree) == 0 {
		q.pend.noSpace++
		return ErrNoSpace
	}
	if q.burst != 0 && q.tail-q.rung+1 > q.burst {
		q.Flush()
	}
	id := pop(&q.reqFree)
	in := &q.info[id]
	in.inflight, in.missed, in.linear = true, false, false
	in.nbufs, in.slots = 0, 1
	in.tick = q.now.Load()

	tail, es := q.tail, q.entrySize
	b := q.bounce[:es]
	clear(b)
	hdr := b[q.hdrOff : q.hdrOff+total]
	if len(segs) == 2 {
		n := copyHeader(hdr, segs[0])
		copy(hdr[n:], segs[1])
	} else {
		copySegs(hdr, segs)
	}
	phase := uint64(phaseBit(tail, q.shift)) << 24
	slot := uint32(0)
	w0 := uint32(id>>10)<<spec.TxDescReqIDHiShift | spec.TxDescCompReqMask | spec.TxDescLastMask
	if meta {
		put64(b, 0, uint64(txMetaW0)|phase)
		put64(b, 8, uint64(e.metaW2))
		if e.active {
			q.metaStored(e.metaW2)
		}
		slot = spec.LLQDescSlotSize
		q.pend.metaDescs++
	} else {
		w0 |= spec.TxDescFirstMask
	}
	// The data descriptor carries no buffer: length 0, header_length the
	// bytes pushed (§8.2).
	w1 := uint32(id&0x3FF)<<spec.TxDescReqIDLoShift | e.w1
	put64(b, slot, uint64(w0)|uint64(w1)<<32|phase)
	put64(b, slot+8, txAddrWord(0, uint32(total)))
	q.llq.WriteBlock(q.llqOff+(tail&q.mask)*es, b)
	q.tail = tail + 1
	q.pend.packets++
	q.pend.bytes += uint64(total)
	q.pend.llqEntries++
	return nil
}
