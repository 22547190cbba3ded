package rings

import (
	"github.com/enanet/enanet/ena/spec"
)

// sendHostOne is Send's path for the most common frame in host placement:
// one that fits one Tx buffer. It does what plan, build and writeHost do for
// such a frame (a meta descriptor when §7.4 needs one, then one data
// descriptor with FIRST/LAST, req_id, offload bits and the header_length
// hint, §7.2, §7.3) with the queue's state in locals and the descriptors
// stored straight into the SQ instead of through q.descs: the general path
// costs about three times the instructions for this frame. total is the
// frame's length, already checked against maxFrame and bufSize.
func (q *TxQueue) sendHostOne(segs [][]byte, total int, off *TxOffload) error {
	metaW2, meta := q.metaFor(off)
	active := off.Active()
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
	sq, mask, shift := q.sq, q.mask, q.shift
	w0 := uint32(id>>10)<<spec.TxDescReqIDHiShift | spec.TxDescCompReqMask | spec.TxDescLastMask | uint32(total)
	if meta {
		putTxDesc(sq, tail&mask, uint64(txMetaW0)|uint64(phaseBit(tail, shift))<<24, uint64(metaW2))
		if active {
			q.metaValid, q.metaW2 = true, metaW2
		}
		tail++
		q.pend.metaDescs++
	} else {
		w0 |= spec.TxDescFirstMask
	}
	w1 := uint32(id&0x3FF)<<spec.TxDescReqIDLoShift | txOffloadBits(off)
	hdrLen := uint32(min(total, q.maxHeader))
	putTxDesc(sq, tail&mask, uint64(w0)|uint64(w1)<<32|uint64(phaseBit(tail, shift))<<24,
		txAddrWord(pool.addr[b], hdrLen))
	q.tail = tail + 1
	q.pend.packets++
	q.pend.bytes += uint64(total)
	// The frame is copied last, so nothing is kept across the memmove
	// calls: the device reads buffer and descriptors only after Flush's
	// barrier and doorbell, so their order here does not matter.
	if len(segs) == 2 { // header + payload, as link hands most frames over
		n := copy(dst, segs[0])
		copy(dst[n:], segs[1])
	} else {
		copySegs(dst, segs)
	}
	return nil
}

// putTxDesc stores one 16-byte descriptor in SQ slot slot: one bounds check
// for both words.
func putTxDesc(sq []byte, slot uint32, lo, hi uint64) {
	d := (*[spec.TxDescSize]byte)(sq[slot*spec.TxDescSize:])
	store64((*[8]byte)(d[0:8]), lo)
	store64((*[8]byte)(d[8:16]), hi)
}
