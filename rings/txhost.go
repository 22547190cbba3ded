package rings

import (
	"encoding/binary"

	"github.com/enanet/enanet/ena/spec"
)

// Send copies one frame, given as the concatenation of segs, into the queue's
// buffers and writes its descriptors: in host mode into the SQ, in LLQ mode
// as entries pushed to BAR2 (§7.2–§7.4, §8.2, §8.3). It does not ring the
// doorbell (Flush does), except in LLQ mode when the burst limit would
// otherwise be exceeded (§8.1).
//
// It returns ErrNoSpace when the ring or buffers are full (reclaim and retry),
// ErrFrameTooLong or ErrEmptyFrame for frames no queue can carry.
//
// Send itself is the path for the most common frame in host placement, one
// that fits one Tx buffer; send does the rest. It does what plan, build and
// writeHost do for such a frame (a meta descriptor when §7.4 needs one,
// then one data descriptor with FIRST/LAST, req_id, offload bits and the
// header_length hint, §7.2, §7.3) with the queue's state in locals and the
// descriptors stored straight into the SQ instead of through q.descs: the
// general path costs about three times the instructions for this frame.
//
// In LLQ placement, sendLLQOne is the path for a frame pushed whole in one
// entry.
func (q *TxQueue) Send(segs [][]byte, off TxOffload) error {
	if !q.bound {
		return q.send(segs, &off)
	}
	var total int
	if len(segs) == 2 { // header + payload, as link hands most frames over
		total = len(segs[0]) + len(segs[1])
	} else {
		for _, s := range segs {
			total += len(s)
		}
	}
	if q.llq != nil {
		if uint(total-1) < uint(q.llqOneMax) {
			return q.sendLLQOne(segs, total, &off)
		}
		return q.send(segs, &off)
	}
	// 1 <= total <= hostOneMax: one buffer holds it.
	if uint(total-1) >= uint(q.hostOneMax) {
		return q.send(segs, &off)
	}
	e := &q.offEnc // offloadEnc, inlined by hand
	if k0, k1 := txOffloadKey(&off); k0 != e.k0 || k1 != e.k1 {
		q.setOffloadEnc(&off, k0, k1)
	}
	meta := e.meta
	slots := uint32(1)
	if meta {
		slots = 2
	}
	tail := q.tail
	reqFree, bufFree := q.reqFree, q.bufFree
	if tail-q.head+slots > q.mask || len(reqFree) == 0 || len(bufFree) == 0 {
		q.pend.noSpace++
		return ErrNoSpace
	}
	id := reqFree[len(reqFree)-1]
	q.reqFree = reqFree[:len(reqFree)-1]
	b := bufFree[len(bufFree)-1]
	q.bufFree = bufFree[:len(bufFree)-1]

	in := &q.info[id]
	in.inflight, in.missed, in.linear = true, false, false
	in.nbufs, in.slots = 1, uint16(slots)
	in.tick = q.now.Load()
	in.bufs[0] = b

	pool := q.pool
	dst := pool.mem[b][:total]
	sq, mask, shift := q.sqe, q.mask, q.shift
	w0 := uint32(id>>10)<<spec.TxDescReqIDHiShift | spec.TxDescCompReqMask | spec.TxDescLastMask | uint32(total)
	if meta {
		putTxDesc(sq, tail&mask, uint64(txMetaW0)|uint64(phaseBit(tail, shift))<<24, uint64(e.metaW2))
		if e.active {
			q.metaStored(e.metaW2)
		}
		tail++
		q.pend.metaDescs++
	} else {
		w0 |= spec.TxDescFirstMask
	}
	w1 := uint32(id&0x3FF)<<spec.TxDescReqIDLoShift | e.w1
	hdrLen := uint32(min(total, q.maxHeader))
	putTxDesc(sq, tail&mask, uint64(w0)|uint64(w1)<<32|uint64(phaseBit(tail, shift))<<24,
		txAddrWord(pool.addr[b], hdrLen))
	q.tail = tail + 1
	q.pend.packets++
	q.pend.bytes += uint64(total)
	// The frame is copied last, so nothing is kept across the memmove
	// calls: the device reads buffer and descriptors only after Flush's
	// barrier and doorbell, so their order here does not matter.
	if len(segs) == 2 {
		n := copyHeader(dst, segs[0])
		copy(dst[n:], segs[1])
	} else {
		copySegs(dst, segs)
	}
	return nil
}

// putTxDesc stores one 16-byte descriptor in SQ slot slot: one bounds check
// for both words.
func putTxDesc(sq [][spec.TxDescSize]byte, slot uint32, lo, hi uint64) {
	d := &sq[slot]
	store64((*[8]byte)(d[0:8]), lo)
	store64((*[8]byte)(d[8:16]), hi)
}

// copyHeader is copy(dst, h) for a frame's first segment, which is usually
// an Ethernet header of 14 to 16 bytes: 8 to 16 bytes move as two
// overlapping 64-bit words, without a memmove call.
func copyHeader(dst, h []byte) int {
	n := len(h)
	if n < 8 || n > 16 || len(dst) < n {
		return copy(dst, h)
	}
	lo, hi := binary.LittleEndian.Uint64(h[:8]), binary.LittleEndian.Uint64(h[n-8:n])
	binary.LittleEndian.PutUint64(dst[:8], lo)
	binary.LittleEndian.PutUint64(dst[n-8:n], hi)
	return n
}
