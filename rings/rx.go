package rings

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"

	"github.com/enanet/enanet/ena/hw"
	"github.com/enanet/enanet/ena/hw/dmamem"
	"github.com/enanet/enanet/ena/hw/mmio"
	"github.com/enanet/enanet/ena/spec"
)

// DefaultRxBufSize is the size of one Rx buffer when RxConfig.BufSize is 0.
// Linux posts at least 2 KiB (§7.9); a 9001-byte MTU frame then spans five.
const DefaultRxBufSize = 2048

// RxConfig describes one Rx queue.
type RxConfig struct {
	// Name prefixes errors and DeviceError.Queue, e.g. "rx 0".
	Name string
	// Depth is the SQ and CQ depth, a power of two (§7.1).
	Depth int
	// DMA allocates the rings and buffers.
	DMA hw.DMA
	// Regs is BAR0, where the SQ doorbell lives.
	Regs hw.RegisterBAR
	// BufSize is the size of each Rx buffer (0 = DefaultRxBufSize, at most
	// 65536, which the descriptor encodes as 0, §7.6).
	BufSize int
	// MaxDescs is the device's limit of buffers per received packet
	// (max_packet_rx_descs, §7.9); 0 or values above MaxRxFrags mean
	// MaxRxFrags. A longer chain is a device error (TOO_MANY_RX_DESCS).
	MaxDescs int
	// CheckMBZ makes Poll reject completions with must-be-zero bits set
	// (capability CDESC_MBZ, §7.7).
	CheckMBZ bool
}

// rxCounters are the RxStats counters, added once per call by the Rx
// goroutine and read by Stats from any goroutine.
type rxCounters struct {
	packets, bytes, doorbells, refills, refillPartial, noBuffer,
	l3Bad, l3Good, l4Bad, l4Good, l4Unchecked,
	badReqID, tooMany, malformed atomic.Uint64
}

// rxPending accumulates one Poll's per-packet counts. Frames are counted in
// runs of the same parse result (cls, the completion status bits the
// checksum counters depend on): a Poll's frames mostly share one, so a
// frame costs a compare and an increment, and the run is sorted into the
// checksum counters when it ends (endRun).
type rxPending struct {
	packets, bytes, l3Bad, l3Good, l4Bad, l4Good, l4Unchecked uint64

	cls uint32 // status bits (rxCountMask) of the frames in the current run
	run uint64 // frames in the current run, not yet in the counters above
}

// rxCountMask selects the completion status bits count classifies by.
const rxCountMask = spec.RxCdescL3ProtoMask | spec.RxCdescL4ProtoMask | spec.RxCdescL3CsumErrMask |
	spec.RxCdescL4CsumErrMask | spec.RxCdescL4CsumCheckedMask | spec.RxCdescIPv4FragMask

// RxQueue is one ENA Rx queue: a submission ring of empty buffers, the
// completion ring the device fills, and the buffers (one per req_id).
//
// Who writes what: the driver writes SQ descriptors and the doorbell; the
// device writes the buffers and the CQ. Every other field is the Rx
// goroutine's, except stats (atomic).
type RxQueue struct {
	name string

	// Fixed at NewRx.
	depth    uint32
	mask     uint32
	shift    uint
	regs     hw.RegisterBAR
	bufSize  int
	descLen  uint16 // length field of every descriptor (0 = 64 KiB)
	maxDescs int
	checkMBZ bool

	// DMA memory.
	sqRegion, cqRegion *hw.Region
	pool               *bufPool // device writes, driver reads during the callback

	sq  []byte                  // driver writes, device reads
	cq  []byte                  // device writes, driver reads
	sqe [][spec.RxDescSize]byte // sq's descriptors
	cqe [][RxCQEntrySize]byte   // cq's completions

	bound    bool
	doorbell uint32

	// Driver state, Rx goroutine only.
	tail   uint32   // free-running SQ tail: descriptors posted
	head   uint32   // free-running count of descriptors consumed
	cqHead uint32   // free-running CQ position of the next completion
	free   []uint16 // buffers (req_ids) not posted
	posted []bool   // posted[id]: the device owns buffer id
	ids    [MaxRxFrags]uint16
	pkt    RxPacket
	broken error
	// singles holds the frames pollSingles claimed and has yet to
	// deliver.
	singles [rxSinglesMax]rxSingle

	pend  rxPending
	stats rxCounters
}

// NewRx allocates an Rx queue's rings and buffers. The caller creates the
// device-side CQ then SQ with CQAddr and SQAddr, calls Bind, then Refill.
func NewRx(cfg RxConfig) (*RxQueue, error) {
	name := cfg.Name
	if name == "" {
		name = "rx"
	}
	mask, shift, err := checkDepth(name, cfg.Depth)
	if err != nil {
		return nil, err
	}
	if cfg.DMA == nil || cfg.Regs == nil {
		return nil, fmt.Errorf("rings: %s: config needs DMA and Regs", name)
	}
	q := &RxQueue{
		name:     name,
		depth:    uint32(cfg.Depth),
		mask:     mask,
		shift:    shift,
		regs:     cfg.Regs,
		bufSize:  cfg.BufSize,
		maxDescs: cfg.MaxDescs,
		checkMBZ: cfg.CheckMBZ,
	}
	if q.bufSize == 0 {
		q.bufSize = DefaultRxBufSize
	}
	if q.bufSize < 128 || q.bufSize > spec.RxMaxBufferLength {
		return nil, fmt.Errorf("rings: %s: buffer size %d is not in [128, 65536] (§7.6)", name, q.bufSize)
	}
	q.descLen = uint16(q.bufSize) // 65536 wraps to 0, which means 64 KiB
	if q.maxDescs <= 0 || q.maxDescs > MaxRxFrags {
		q.maxDescs = MaxRxFrags
	}
	ok := false
	defer func() {
		if !ok {
			q.Close()
		}
	}()
	if q.cqRegion, err = alloc(cfg.DMA, name, "completion ring", cfg.Depth*RxCQEntrySize, ringAlign); err != nil {
		return nil, err
	}
	q.cq = q.cqRegion.Bytes[:cfg.Depth*RxCQEntrySize]
	if q.sqRegion, err = alloc(cfg.DMA, name, "submission ring", cfg.Depth*spec.RxDescSize, ringAlign); err != nil {
		return nil, err
	}
	q.sq = q.sqRegion.Bytes[:cfg.Depth*spec.RxDescSize]
	q.sqe, q.cqe = entries16(q.sq), entries16(q.cq)
	if q.pool, err = newBufPool(cfg.DMA, name, "Rx buffers", cfg.Depth, q.bufSize); err != nil {
		return nil, err
	}
	q.free = make([]uint16, 0, cfg.Depth)
	q.posted = make([]bool, cfg.Depth)
	q.resetState()
	ok = true
	return q, nil
}

// resetState returns every buffer to the free list, positions to 0 and the
// phase to 1 (§7.8).
func (q *RxQueue) resetState() {
	q.free = q.free[:0]
	for i := int(q.depth) - 1; i >= 0; i-- {
		q.free = append(q.free, uint16(i))
	}
	clear(q.posted)
	q.tail, q.head, q.cqHead = 0, 0, 0
	q.broken = nil
	q.pend = rxPending{}
}

// SQAddr is the SQ ring's device address for CREATE_SQ.
func (q *RxQueue) SQAddr() uint64 {
	if q.sqRegion == nil {
		return 0
	}
	return q.sqRegion.Addr
}

// CQAddr is the CQ ring's device address for CREATE_CQ (entries of
// RxCQEntrySize bytes).
func (q *RxQueue) CQAddr() uint64 {
	if q.cqRegion == nil {
		return 0
	}
	return q.cqRegion.Addr
}

// Depth is the ring depth.
func (q *RxQueue) Depth() int { return int(q.depth) }

// Bind records the SQ doorbell offset from the CREATE_SQ response (§4.7).
// Nothing is posted until the queue is bound; Reset unbinds it.
func (q *RxQueue) Bind(doorbellOff uint32) {
	q.doorbell = doorbellOff
	q.bound = true
}

// Refill posts free buffers until depth-1 are with the device and rings the
// doorbell once if it posted any (§7.8, §7.9). It returns how many it
// posted.
func (q *RxQueue) Refill() int {
	n := q.post()
	q.ring(n)
	return n
}

// post writes descriptors for free buffers, without a doorbell.
func (q *RxQueue) post() int {
	if !q.bound {
		return 0
	}
	// The loop keeps the queue's state in locals and stores it back once.
	// It posts the last n free buffers, last first: at most depth-1 are
	// with the device (§7.8). Each buffer is a one-descriptor "packet":
	// FIRST|LAST|COMP_REQ and the slot's phase (§7.6). The slots are
	// written in runs that do not wrap around the ring, so a run's phase
	// is computed once and its slots are indexed without the mask.
	tail, head, mask, shift := q.tail, q.head, q.mask, q.shift
	free := q.free
	n := min(int(mask)-int(tail-head), len(free))
	if n <= 0 {
		return 0
	}
	posted, addr, sqe := q.posted, q.pool.addr, q.sqe
	descLen := uint64(q.descLen) | uint64(spec.RxDescCtrlPosted0)<<24
	ids := free[len(free)-n:]
	for len(ids) > 0 {
		slot := tail & mask
		run := sqe[slot:min(uint32(len(sqe)), slot+uint32(len(ids)))]
		lo := descLen | uint64(phaseBit(tail, shift))<<24
		postRun(run, ids[len(ids)-len(run):], posted, addr, lo)
		ids = ids[:len(ids)-len(run)]
		tail += uint32(len(run))
	}
	q.tail, q.free = tail, free[:len(free)-n]
	q.stats.refills.Add(uint64(n))
	if tail-head < mask {
		q.stats.refillPartial.Add(1)
	}
	return n
}

// postRun writes one descriptor per slot of run: buffer ids[len(ids)-1]
// in the first slot, then backwards (the free list's last buffers, which
// were freed last, go first). lo is word 0-1 with the run's phase; word
// 2-3 is the buffer's address. A leaf function, so the loop keeps its
// state in registers (inlined into post, it was not).
//
//go:noinline
func postRun(run [][spec.RxDescSize]byte, ids []uint16, posted []bool, addr []uint64, lo uint64) {
	ids = ids[:len(run)]
	for j := range run {
		id := ids[len(ids)-1-j]
		posted[id] = true
		d := &run[j]
		store64((*[8]byte)(d[0:8]), lo|uint64(id)<<32)
		store64((*[8]byte)(d[8:16]), addr[id]) // below 1<<48: alloc checks every region
	}
}

// ring orders the descriptor writes before the doorbell and writes the
// free-running tail (§7.8).
func (q *RxQueue) ring(n int) {
	if n == 0 {
		return
	}
	mmio.StoreBarrier()
	q.regs.Write32(q.doorbell, q.tail&0xFFFF)
	q.stats.doorbells.Add(1)
}

// Pending reports whether the completion at the head of the CQ has the
// expected phase: there is something for Poll (§7.8).
func (q *RxQueue) Pending() bool {
	if q.broken != nil || len(q.cq) == 0 {
		return false
	}
	w0 := dmamem.Acquire32(q.cq, int((q.cqHead&q.mask)*RxCQEntrySize))
	return w0&spec.RxCdescPhaseMask == phaseBit(q.cqHead, q.shift)<<24
}

// Poll delivers up to budget received frames to fn, then re-posts the
// buffers they used and rings the doorbell once (§7.7, §7.8). The packet and
// its Frags are valid only during fn. It returns the number of frames
// delivered.
//
// A frame whose completions are not all written yet is left for the next
// call. A completion that breaks the protocol is left unconsumed and
// reported as a *DeviceError (INV_RX_REQ_ID, TOO_MANY_RX_DESCS or
// RX_DESCRIPTOR_MALFORMED); the queue then stays stopped until Reset.
func (q *RxQueue) Poll(budget int, fn func(*RxPacket)) (int, error) {
	if q.broken != nil {
		return 0, q.broken
	}
	if len(q.cq) == 0 {
		return 0, nil
	}
	if q.tail == q.head {
		q.stats.noBuffer.Add(1)
	}
	n := 0
	for {
		// Runs of one-buffer frames first, then one frame of any shape.
		n += q.pollSingles(budget-n, fn)
		if n >= budget {
			break
		}
		nfr, err := q.next()
		if nfr == 0 || err != nil {
			break // err is also in q.broken
		}
		fn(&q.pkt)
		// The frame's buffers go back to the free list; post below
		// hands them to the device again.
		for _, id := range q.ids[:nfr] {
			q.free = append(q.free, id)
		}
		q.cqHead += nfr
		q.head += nfr
		n++
	}
	q.ring(q.post())
	q.publish()
	if q.broken != nil {
		return n, q.broken
	}
	return n, nil
}

// pollSingles is Poll for the common frame: one completion with FIRST and
// LAST, every field in range. It delivers up to budget such frames and
// returns how many; it stops at anything else (no completion yet, a
// multi-buffer frame, a value next must reject) without consuming or
// changing it, and next does the work.
//
// It works in two passes over chunks of up to rxSinglesMax frames:
// claimSingles checks and claims the chunk's completions in a loop without
// calls, so the ring state stays in registers, and deliverSingles hands
// them to fn. Calling fn inside the checking loop made every frame reload
// the whole ring state after the call (a Go call clobbers every register):
// 116 instructions per frame, against about 90 for both passes.
func (q *RxQueue) pollSingles(budget int, fn func(*RxPacket)) int {
	n := 0
	for n < budget {
		k := q.claimSingles(min(budget-n, rxSinglesMax))
		if k == 0 {
			break
		}
		q.deliverSingles(q.singles[:k], fn)
		n += k
		if k < rxSinglesMax {
			break // stopped at something else than a single
		}
	}
	return n
}

// rxSinglesMax is how many one-buffer frames pollSingles claims before it
// delivers them: link's budget per Poll (link.RxBudget) in one chunk.
const rxSinglesMax = 64

// rxSingle is a claimed one-buffer frame between pollSingles' passes: its
// completion's word 1 (req_id and length, checked) and its parse result
// and hash as storeParse stores them.
type rxSingle struct {
	parse rxParse
	w1    uint32
}

// claimSingles consumes up to max completions of one-buffer frames into
// q.singles and returns how many. The checks are next's (§7.7), made by
// claimRun. A claimed buffer is no longer posted, so a completion that
// names it again in the same Poll (a device that overran its CQ) fails
// the check; the buffer goes back to the free list, and Poll re-posts it
// after every frame was delivered.
//
// The completions are claimed in runs that neither wrap around the ring
// (so a run has one phase) nor change the parse result the counters sort
// frames by (rxPending, whose newRun is a call and stays out of the loop).
func (q *RxQueue) claimSingles(max int) int {
	const firstLast = spec.RxCdescFirstMask | spec.RxCdescLastMask
	check := spec.RxCdescPhaseMask | firstLast | rxCountMask
	if q.checkMBZ {
		check |= spec.RxCdescMBZMask
	}
	cqe, mask := q.cqe, q.mask
	// The free list has room for every buffer, so the claimed ones are
	// written by index into its spare capacity.
	nfree := len(q.free)
	free := q.free[nfree:cap(q.free)]
	out := q.singles[:min(max, len(q.singles), len(free))]
	pend := &q.pend
	pos := q.cqHead
	k := 0
	for k < len(out) {
		slot := pos & mask
		run := cqe[slot:min(uint32(len(cqe)), slot+uint32(len(out)-k))]
		want := phaseBit(pos, q.shift)<<24 | firstLast
		j := claimRun(run, out[k:], free[k:], q.posted, check, want|pend.cls, uint32(q.bufSize), parseOf(pend.cls))
		pend.run += uint64(j)
		k += j
		pos += uint32(j)
		if j == len(run) {
			continue
		}
		// Stopped: a frame of another parse result starts a new run of
		// the counters, and anything else is left for next.
		w0 := dmamem.Acquire32(run[j][:], 0)
		if w0&(check&^rxCountMask) != want || w0&rxCountMask == pend.cls {
			break
		}
		pend.newRun(w0 & rxCountMask)
	}
	q.cqHead = pos
	q.head += uint32(k)
	q.free = q.free[:nfree+k]
	return k
}

// claimRun claims the completions of run, which all have the phase in
// want, into out and free (req_ids), and returns how many. It stops at the
// first completion that is not written yet, is not a frame in one buffer
// whose parse result is the one in want (and packed in parse), or carries
// a value next must reject: the phase word is read first with the acquire
// load (§7.8), its phase, FIRST, LAST, parse result and (when check has
// them) must-be-zero bits are compared in one compare, then req_id and
// length are checked before they index anything (§7.7). It is a leaf
// function with its state in registers: in a loop with any call in it the
// compiler kept most of it on the stack.
//
//go:noinline
func claimRun(run [][RxCQEntrySize]byte, out []rxSingle, free []uint16, posted []bool, check, want, bufSize uint32, parse rxParse) int {
	out, free = out[:len(run)], free[:len(run)]
	for j := range run {
		c := &run[j]
		w0 := dmamem.Acquire32(c[:], 0)
		if w0&check != want {
			return j
		}
		w1 := binary.LittleEndian.Uint32(c[4:8])
		id, length := w1>>16, w1&0xFFFF
		if id >= uint32(len(posted)) || !posted[id] || length > bufSize {
			return j
		}
		posted[id] = false
		out[j] = rxSingle{parse: rxParse{lo: parse.lo | uint64(binary.LittleEndian.Uint32(c[8:12])), hi: parse.hi}, w1: w1}
		free[j] = uint16(id)
	}
	return len(run)
}

// deliverSingles hands each claimed frame to fn as q.pkt.
func (q *RxQueue) deliverSingles(s []rxSingle, fn func(*RxPacket)) {
	p, mem := &q.pkt, q.pool.mem
	bytes := 0
	for i := range s {
		e := &s[i]
		length := int(e.w1 & 0xFFFF)
		bytes += length
		p.NFrags, p.Len = 0, length
		if length > 0 {
			p.Frags[0] = mem[e.w1>>16][:length]
			p.NFrags = 1
		}
		p.storeParse(e.parse)
		fn(p)
	}
	q.pend.bytes += uint64(bytes)
}

// next parses the frame at the head of the CQ into q.pkt and q.ids. It
// returns the number of completions (buffers) the frame used, 0 if no
// complete frame is there yet, or a DeviceError. Nothing is consumed: the
// caller advances the head after delivering the frame.
func (q *RxQueue) next() (uint32, error) {
	p := &q.pkt
	p.NFrags, p.Len = 0, 0
	for i := uint32(0); ; i++ {
		// Step 1: phase first, with one atomic load of word 0 (§7.8).
		pos := q.cqHead + i
		off := (pos & q.mask) * RxCQEntrySize
		w0 := dmamem.Acquire32(q.cq, int(off))
		if w0&spec.RxCdescPhaseMask != phaseBit(pos, q.shift)<<24 {
			q.unclaim(i)
			return 0, nil
		}
		w1 := le32(q.cq, off+4)
		id := w1 >> 16
		length := int(w1 & 0xFFFF)

		// Step 2: check every field before it indexes anything (§7.7).
		var de *DeviceError
		switch {
		case q.checkMBZ && w0&spec.RxCdescMBZMask != 0:
			q.stats.malformed.Add(1)
			de = q.devErr(spec.ResetRxDescriptorMalformed, "Rx completion %d has must-be-zero status bits %#x", pos, w0&spec.RxCdescMBZMask)
		case (w0&spec.RxCdescFirstMask != 0) != (i == 0):
			q.stats.malformed.Add(1)
			de = q.devErr(spec.ResetRxDescriptorMalformed, "Rx completion %d is buffer %d of its frame but FIRST is %v", pos, i, i != 0)
		case id >= q.depth || !q.posted[id]:
			q.stats.badReqID.Add(1)
			de = q.devErr(spec.ResetInvRxReqID, "Rx completion %d carries req_id %d, which is not a posted buffer (depth %d)", pos, id, q.depth)
		case length > q.bufSize:
			q.stats.malformed.Add(1)
			de = q.devErr(spec.ResetRxDescriptorMalformed, "Rx completion %d reports %d bytes in a %d-byte buffer", pos, length, q.bufSize)
		}
		if de != nil {
			q.unclaim(i)
			q.broken = de
			return 0, de
		}

		// Step 3: claim the buffer (so a repeated req_id within the frame
		// is caught) and add it as a fragment. A zero-length buffer, which
		// some devices send last, is recycled but not handed up.
		q.posted[id] = false
		q.ids[i] = uint16(id)
		if length > 0 {
			p.Frags[p.NFrags] = q.pool.mem[id][:length]
			p.NFrags++
			p.Len += length
		}
		if w0&spec.RxCdescLastMask == 0 {
			if i+1 >= uint32(q.maxDescs) {
				q.unclaim(i + 1)
				q.stats.tooMany.Add(1)
				de := q.devErr(spec.ResetTooManyRxDescs, "Rx frame at completion %d spans more than %d buffers", q.cqHead, q.maxDescs)
				q.broken = de
				return 0, de
			}
			continue
		}

		// Step 4: the LAST completion carries the parse results (§7.7).
		p.setParse(w0, le32(q.cq, off+8))
		q.count(w0, p.Len)
		return i + 1, nil
	}
}

// unclaim gives back the buffers next claimed for a frame it could not
// deliver.
func (q *RxQueue) unclaim(n uint32) {
	for _, id := range q.ids[:n] {
		q.posted[id] = true
	}
}

// devErr builds a DeviceError; only called on the error path.
func (q *RxQueue) devErr(reason spec.ResetReason, format string, args ...any) *DeviceError {
	return &DeviceError{Queue: q.name, Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// count adds a delivered frame of length bytes, whose LAST completion has
// status word w0, to the pending counters (see rxPending).
func (q *RxQueue) count(w0 uint32, length int) {
	c := &q.pend
	c.bytes += uint64(length)
	if cls := w0 & rxCountMask; cls != c.cls {
		c.newRun(cls)
	}
	c.run++
}

// newRun ends the current run and starts one of frames with status bits
// cls. It runs once per run, so it is kept out of line, out of
// pollSingles' loop.
//
//go:noinline
func (c *rxPending) newRun(cls uint32) {
	c.endRun()
	c.cls = cls
}

// endRun adds the frames of the current run to the counters: the L3
// checksum result applies to IPv4 only, the L4 result to unfragmented
// TCP/UDP, and only when the device says it checked (§7.7).
func (c *rxPending) endRun() {
	n, w0 := c.run, c.cls
	if n == 0 {
		return
	}
	c.run = 0
	c.packets += n
	l3 := spec.L3Proto(w0 & spec.RxCdescL3ProtoMask)
	l4 := spec.L4Proto((w0 & spec.RxCdescL4ProtoMask) >> spec.RxCdescL4ProtoShift)
	if l3 == spec.L3ProtoIPv4 {
		if w0&spec.RxCdescL3CsumErrMask != 0 {
			c.l3Bad += n
		} else {
			c.l3Good += n
		}
	}
	if (l4 == spec.L4ProtoTCP || l4 == spec.L4ProtoUDP) && w0&spec.RxCdescIPv4FragMask == 0 {
		switch {
		case w0&spec.RxCdescL4CsumCheckedMask == 0:
			c.l4Unchecked += n
		case w0&spec.RxCdescL4CsumErrMask != 0:
			c.l4Bad += n
		default:
			c.l4Good += n
		}
	}
}

// publish moves one Poll's counts into the shared counters.
func (q *RxQueue) publish() {
	c := &q.pend
	c.endRun()
	if c.packets == 0 {
		return
	}
	s := &q.stats
	s.packets.Add(c.packets)
	s.bytes.Add(c.bytes)
	if c.l3Bad != 0 {
		s.l3Bad.Add(c.l3Bad)
	}
	if c.l3Good != 0 {
		s.l3Good.Add(c.l3Good)
	}
	if c.l4Bad != 0 {
		s.l4Bad.Add(c.l4Bad)
	}
	if c.l4Good != 0 {
		s.l4Good.Add(c.l4Good)
	}
	if c.l4Unchecked != 0 {
		s.l4Unchecked.Add(c.l4Unchecked)
	}
	*c = rxPending{cls: c.cls} // the next Poll's frames likely continue the run
}

// Posted is the number of buffers the device currently owns.
func (q *RxQueue) Posted() int { return int(q.tail - q.head) }

// Reset returns the queue to its freshly allocated state after a device
// reset (§9.3): rings zeroed, every buffer free, phase 1, unbound until Bind.
// Call Refill after the new device queue is created and bound.
func (q *RxQueue) Reset() {
	clear(q.sq)
	clear(q.cq)
	q.resetState()
	q.bound = false
}

// Stats returns the queue's counters. Safe from any goroutine.
func (q *RxQueue) Stats() RxStats {
	s := &q.stats
	return RxStats{
		Packets:         s.packets.Load(),
		Bytes:           s.bytes.Load(),
		Doorbells:       s.doorbells.Load(),
		Refills:         s.refills.Load(),
		RefillPartial:   s.refillPartial.Load(),
		NoBuffer:        s.noBuffer.Load(),
		L3CsumBad:       s.l3Bad.Load(),
		L3CsumGood:      s.l3Good.Load(),
		L4CsumBad:       s.l4Bad.Load(),
		L4CsumGood:      s.l4Good.Load(),
		L4CsumUnchecked: s.l4Unchecked.Load(),
		BadReqID:        s.badReqID.Load(),
		TooManyDescs:    s.tooMany.Load(),
		MalformedCdesc:  s.malformed.Load(),
	}
}

// Close frees the queue's DMA memory. The device-side queue must already be
// destroyed. Safe to call twice.
func (q *RxQueue) Close() error {
	q.sq, q.cq, q.sqe, q.cqe = nil, nil, nil, nil
	q.bound = false
	err := freeRegions(&q.sqRegion, &q.cqRegion)
	if perr := q.pool.free(); err == nil {
		err = perr
	}
	q.pool = nil
	return err
}

// rxParse is what setParse stores, packed for two stores (storeParse):
// lo is the little-endian image of RxPacket's Hash, L3, L4, L3CsumErr and
// L4CsumErr, hi that of L4CsumChecked and IPv4Frag (unsafe.go checks the
// fields lie so).
type rxParse struct {
	lo uint64
	hi uint16
}

// parseOf packs the parse result in a LAST completion's status word w0
// (§7.7), without the hash: the same fields setParse writes.
func parseOf(w0 uint32) rxParse {
	bit := func(mask uint32) uint64 {
		if w0&mask != 0 {
			return 1
		}
		return 0
	}
	l3 := uint64(w0 & spec.RxCdescL3ProtoMask)
	l4 := uint64((w0 & spec.RxCdescL4ProtoMask) >> spec.RxCdescL4ProtoShift)
	return rxParse{
		lo: l3<<32 | l4<<40 | bit(spec.RxCdescL3CsumErrMask)<<48 | bit(spec.RxCdescL4CsumErrMask)<<56,
		hi: uint16(bit(spec.RxCdescL4CsumCheckedMask)) | uint16(bit(spec.RxCdescIPv4FragMask))<<8,
	}
}

// setParse records what the device's parser reported in a frame's LAST
// completion (§7.7): its first word w0 and the Rx hash.
func (p *RxPacket) setParse(w0, hash uint32) {
	p.Hash = hash
	p.L3 = spec.L3Proto(w0 & spec.RxCdescL3ProtoMask)
	p.L4 = spec.L4Proto((w0 & spec.RxCdescL4ProtoMask) >> spec.RxCdescL4ProtoShift)
	p.L3CsumErr = w0&spec.RxCdescL3CsumErrMask != 0
	p.L4CsumErr = w0&spec.RxCdescL4CsumErrMask != 0
	p.L4CsumChecked = w0&spec.RxCdescL4CsumCheckedMask != 0
	p.IPv4Frag = w0&spec.RxCdescIPv4FragMask != 0
}
