package enasim

import (
	"fmt"
	"math/bits"
	"sync"

	"github.com/enanet/enanet/ena/spec"
)

// I/O queues (§4.7 CREATE/DESTROY SQ/CQ, §7, §8): creation rules, the
// per-queue registers the device hands out, and the outgoing-frame list.
//
// BAR0 layout of the per-queue registers (the protocol lets the device
// choose them, §2.1; these are the model's choices, all write-only):
//
//	0x1000 + 4*i   Tx SQ i doorbell   (i < 256)
//	0x1400 + 4*i   Rx SQ i doorbell   (i < 256)
//	0x1800 + 4*v   interrupt unmask register of MSI-X vector v (v < 256);
//	               both CQs of a pair share a vector and get the same offset
//	0x1C00 + 4*c   NUMA node register of CQ c (c < 256)
//
// All of it fits below 0x2000, so an 8 KiB BAR0 (Graviton) works too.
//
// Index spaces: Tx SQs and Rx SQs are numbered separately from 0 (DESTROY_SQ
// carries the direction, so a driver that mixes them up is caught); CQs
// share one space. The RSS indirection table holds Rx sq_idx values (§10).
//
// BAR2 (LLQ): the memory BAR is divided evenly between the profile's
// max_llq_num queues; Tx SQ i's ring starts at i * (BAR2 size / max_llq_num)
// and must fit in its share, which is what makes the Nitro v4 class reject
// 256-byte entries at depth 1024 (1 MiB / 8 queues = 128 KiB per queue).

// BAR0 offsets of the per-queue registers.
const (
	txDoorbellBase = ioRegBase
	rxDoorbellBase = 0x1400
	unmaskBase     = 0x1800
	numaBase       = 0x1C00
	ioRegEnd       = 0x2000
	// maxQueueIdx bounds SQ indexes per direction and CQ indexes (the
	// register windows above hold 256 each).
	maxQueueIdx = 256
)

// noVector marks a CQ created without an interrupt.
const noVector = -1

// ioCQ is one I/O completion queue (§7.1). The device is the producer: tail
// is the free-running count of completions written; the phase of entry t is
// 1 on even laps and 0 on odd ones (§7.8).
type ioCQ struct {
	idx       uint16
	depth     int
	shift     uint // log2(depth)
	entrySize int  // bytes: 8, 16 or 32
	base      uint64
	vector    int // MSI-X vector or noVector
	tail      uint32
	dirty     bool  // completions written since the last cqNotify
	sq        *ioSQ // the SQ bound to this CQ, nil if none
	numa      uint32
	// view maps the whole ring while one doorbell or received frame is
	// processed (mu held, see mapRing); nil otherwise.
	view []byte
}

// phase is the phase bit of the next completion.
func (cq *ioCQ) phase() bool { return (cq.tail>>cq.shift)&1 == 0 }

// slotAddr is the device address of the next completion.
func (cq *ioCQ) slotAddr() uint64 {
	return cq.base + uint64(cq.tail&uint32(cq.depth-1))*uint64(cq.entrySize)
}

// ioSQ is one I/O submission queue (§7). head is the device's free-running
// consumer count, tail the last value the driver wrote to the doorbell;
// both are u16 like the doorbell, and depth divides 65536, so
// (counter >> log2(depth)) & 1 is the lap parity and hence the expected
// phase (1 on even laps, §7.8).
type ioSQ struct {
	idx       uint16
	dir       spec.SQDirection
	placement spec.PlacementPolicy
	depth     int
	shift     uint
	base      uint64 // host ring (HOST placement)
	cq        *ioCQ
	head      uint16
	tail      uint16

	// view maps a host ring while one doorbell or received frame is
	// processed (mu held, see mapRing); nil otherwise and for LLQ.
	view []byte

	// Tx only.
	tx *txState
	// Rx only.
	rx *rxState
}

// expectPhase is the phase a descriptor (or LLQ entry) at free-running
// position pos must carry.
func (sq *ioSQ) expectPhase(pos uint16) bool { return (uint32(pos)>>sq.shift)&1 == 0 }

// slot is the ring index of free-running position pos.
func (sq *ioSQ) slot(pos uint16) int { return int(pos) & (sq.depth - 1) }

// name labels the queue in error messages ("Tx SQ 3").
func (sq *ioSQ) name() string {
	if sq.dir == spec.SQDirectionTx {
		return fmt.Sprintf("Tx SQ %d", sq.idx)
	}
	return fmt.Sprintf("Rx SQ %d", sq.idx)
}

// mapRing returns a zero-copy view of a whole ring of size bytes at base,
// for the duration of one doorbell or received frame: one IOMMU lookup
// instead of one per descriptor or completion. Callers hold mu and drop the
// view (set it to nil) before releasing it, as Memory.Slice requires. It
// returns nil when the ring is not reachable as one view; callers then go
// through Memory.Read and Write per entry, which report the IOMMU fault.
func (m *Model) mapRing(base uint64, size int) []byte {
	s, err := m.mem.Slice(base, size)
	if err != nil || len(s) != size {
		return nil
	}
	return s
}

// ioState is all I/O-side state of a Model; the zero value means "no
// queues" (what reset leaves).
type ioState struct {
	cqs   [2 * maxQueueIdx]*ioCQ
	txSQs [maxQueueIdx]*ioSQ
	rxSQs [maxQueueIdx]*ioSQ
	nCQ   int
	nTx   int
	nRx   int
	nLLQ  int

	vecs  [maxVectors]vecState
	raise raiseSet
	mod   modState // interrupt moderation (moderation.go)

	// bar2 is the LLQ memory BAR's content; allocated on first use.
	bar2 []byte

	// out collects frames to send; flushOutgoing swaps it with sending
	// (under sendMu) and sends outside mu.
	out, sending *outList
	spare        [2]outList
	// sendMu serialises flushOutgoing; it is taken before mu, never while
	// holding it.
	sendMu sync.Mutex

	allow  allowances
	faults ioFaults

	// fi and rssBuf are Rx scratch.
	fi     frameInfo
	rssBuf [rssMaxInput]byte
	// toeplitz is the RSS hash table for the current key, built on the
	// first received frame; it survives resets (it depends on the key
	// only).
	toeplitz *toeplitzTable

	// lastRefusal is why the last CREATE/DESTROY was refused, for tests
	// and traces.
	lastRefusal string
}

// outList is a reusable list of frames packed into one buffer.
type outList struct {
	buf  []byte
	ends []int
	// sums[i] is what the device checksummed in frame i (txChecksummed).
	sums []txChecksummed
}

// reserve returns n bytes after the last frame for the next one to be
// built in place; nothing is queued until commit. The buffer grows (and
// then stays grown) only when a doorbell carries more bytes than ever
// before, so the steady state allocates nothing.
func (o *outList) reserve(n int) []byte {
	start := len(o.buf)
	if cap(o.buf)-start < n {
		nb := make([]byte, start, max(2*cap(o.buf), start+n, 64<<10))
		copy(nb, o.buf)
		o.buf = nb
	}
	return o.buf[start : start+n : start+n]
}

// commit queues the n bytes last reserved as one frame, with what the
// device checksummed in it.
func (o *outList) commit(n int, sum txChecksummed) {
	o.buf = o.buf[:len(o.buf)+n]
	o.ends = append(o.ends, len(o.buf))
	o.sums = append(o.sums, sum)
}

func (o *outList) reset() {
	o.buf = o.buf[:0]
	o.ends = o.ends[:0]
	o.sums = o.sums[:0]
}

// ioOut returns the list frames are queued on (mu held).
func (m *Model) ioOut() *outList {
	if m.io.out == nil {
		m.io.out, m.io.sending = &m.io.spare[0], &m.io.spare[1]
	}
	return m.io.out
}

// refuse records why a queue command failed and returns st; the reason
// reads as a sentence in the trace ("enasim: CREATE_SQ: cq_idx 7 does not
// exist").
func (m *Model) refuse(st spec.Status, format string, args ...any) spec.Status {
	m.io.lastRefusal = "enasim: " + fmt.Sprintf(format, args...) + " (" + st.String() + ")"
	m.noteRefusal(format, m.io.lastRefusal)
	if m.tr != nil {
		m.tr.printf("%s", m.io.lastRefusal)
	}
	return st
}

// LastQueueRefusal returns why the last CREATE/DESTROY SQ/CQ command was
// refused, or "" if none was since the model started.
func (m *Model) LastQueueRefusal() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.io.lastRefusal
}

// ioPreconditions applies the firmware rules that gate all I/O queue
// creation: no AENQ registered (Graviton, iPXE finding §11) and, on profiles
// that model older firmware, no HOST_ATTR_CONFIG yet (§4.8).
func (m *Model) ioPreconditions(what string) (spec.Status, bool) {
	if !m.cfg.aenqRegistered {
		return m.refuse(spec.StatusUnknownError, "%s: no AENQ registered; the device refuses I/O queues without one (§11)", what), false
	}
	if m.prof.RequireHostAttr && !m.cfg.hostAttrSet {
		return m.refuse(spec.StatusUnknownError, "%s: HOST_ATTR_CONFIG not set; this firmware refuses I/O queues before it (§4.8)", what), false
	}
	return spec.StatusSuccess, true
}

func isPow2(n int) bool { return n > 0 && n&(n-1) == 0 }

// createCQ executes CREATE_CQ (§4.7) with mu held.
func (m *Model) createCQ(c spec.CreateCQCmd) (spec.CreateCQResp, spec.Status) {
	var r spec.CreateCQResp
	if st, ok := m.ioPreconditions("CREATE_CQ"); !ok {
		return r, st
	}
	depth := int(c.Depth)
	maxDepth := max(m.prof.MaxTxDepth, m.prof.MaxRxDepth)
	if !isPow2(depth) {
		return r, m.refuse(spec.StatusIllegalParameter, "CREATE_CQ: depth %d is not a power of two", depth)
	}
	if depth > maxDepth {
		return r, m.refuse(spec.StatusIllegalParameter, "CREATE_CQ: depth %d exceeds the maximum %d", depth, maxDepth)
	}
	var size int
	switch c.EntrySizeWords {
	case spec.CQEntryWordsTx, spec.CQEntryWordsRx, spec.CQEntryWordsRxTimestamp:
		size = int(c.EntrySizeWords) * 4
	default:
		return r, m.refuse(spec.StatusIllegalParameter, "CREATE_CQ: entry size of %d words is not 2, 4 or 8", c.EntrySizeWords)
	}
	vec := noVector
	switch {
	case c.MSIXVector == spec.MSIXNoVector:
	case c.MSIXVector >= uint32(m.prof.Vectors):
		return r, m.refuse(spec.StatusIllegalParameter, "CREATE_CQ: MSI-X vector %d is out of range (device has %d)", c.MSIXVector, m.prof.Vectors)
	case !c.InterruptMode && c.MSIXVector == 0:
		// Some firmware rejects an empty (zero) vector field when
		// interrupts are not used; 0xFFFFFFFF is the way to say "none"
		// (§11, iPXE).
		return r, m.refuse(spec.StatusIllegalParameter, "CREATE_CQ: vector 0 without interrupt mode; use 0xFFFFFFFF for no interrupt")
	default:
		vec = int(c.MSIXVector)
	}
	if c.BaseAddr == 0 || c.BaseAddr%8 != 0 {
		return r, m.refuse(spec.StatusIllegalParameter, "CREATE_CQ: ring address %#x is zero or not 8-byte aligned", c.BaseAddr)
	}
	if m.io.nCQ >= 2*m.prof.MaxQueues {
		return r, m.refuse(spec.StatusResourceAllocationFailure, "CREATE_CQ: all %d CQs are in use", 2*m.prof.MaxQueues)
	}
	idx := -1
	for i := range 2 * m.prof.MaxQueues {
		if m.io.cqs[i] == nil {
			idx = i
			break
		}
	}
	if idx < 0 {
		return r, m.refuse(spec.StatusResourceAllocationFailure, "CREATE_CQ: no free CQ index")
	}
	m.io.cqs[idx] = &ioCQ{
		idx: uint16(idx), depth: depth, shift: uint(bits.TrailingZeros(uint(depth))),
		entrySize: size, base: c.BaseAddr, vector: vec,
	}
	m.io.nCQ++
	if vec != noVector {
		m.io.vecs[vec].cqs++
	}
	r = spec.CreateCQResp{
		CQIdx:             uint16(idx),
		ActualDepth:       uint16(depth),
		NUMANodeRegOffset: numaBase + 4*uint32(idx),
	}
	if vec != noVector {
		r.UnmaskRegOffset = unmaskBase + 4*uint32(vec)
	}
	return r, spec.StatusSuccess
}

// createSQ executes CREATE_SQ (§4.7, §8.1) with mu held.
func (m *Model) createSQ(c spec.CreateSQCmd) (spec.CreateSQResp, spec.Status) {
	var r spec.CreateSQResp
	if st, ok := m.ioPreconditions("CREATE_SQ"); !ok {
		return r, st
	}
	p := m.prof
	dir := c.Direction
	if dir != spec.SQDirectionTx && dir != spec.SQDirectionRx {
		return r, m.refuse(spec.StatusIllegalParameter, "CREATE_SQ: direction %d is neither Tx (1) nor Rx (2)", uint8(dir))
	}
	if int(c.CQIdx) >= len(m.io.cqs) || m.io.cqs[c.CQIdx] == nil {
		return r, m.refuse(spec.StatusIllegalParameter, "CREATE_SQ: cq_idx %d does not exist", c.CQIdx)
	}
	cq := m.io.cqs[c.CQIdx]
	if cq.sq != nil {
		return r, m.refuse(spec.StatusIllegalParameter, "CREATE_SQ: cq_idx %d is already bound to %s", c.CQIdx, cq.sq.name())
	}
	if c.CompletionPolicy != spec.CompletionPolicyDesc {
		return r, m.refuse(spec.StatusIllegalParameter, "CREATE_SQ: completion policy %d is not supported (only 0)", c.CompletionPolicy)
	}
	depth := int(c.Depth)
	maxDepth, maxQ := p.MaxTxDepth, p.MaxQueues
	if dir == spec.SQDirectionRx {
		maxDepth = p.MaxRxDepth
	}
	if !isPow2(depth) {
		return r, m.refuse(spec.StatusIllegalParameter, "CREATE_SQ: %v depth %d is not a power of two", dir, depth)
	}
	if depth > maxDepth {
		return r, m.refuse(spec.StatusIllegalParameter, "CREATE_SQ: %v depth %d exceeds the maximum %d", dir, depth, maxDepth)
	}
	if dir == spec.SQDirectionTx {
		if cq.entrySize != 8 && cq.entrySize != 16 {
			return r, m.refuse(spec.StatusIllegalParameter, "CREATE_SQ: Tx SQ on cq_idx %d whose %d-byte entries are not Tx completions", c.CQIdx, cq.entrySize)
		}
	} else if cq.entrySize != 16 && cq.entrySize != 32 {
		return r, m.refuse(spec.StatusIllegalParameter, "CREATE_SQ: Rx SQ on cq_idx %d whose %d-byte entries are not Rx completions", c.CQIdx, cq.entrySize)
	}
	var llqOff uint32
	switch c.Placement {
	case spec.PlacementHost:
		if dir == spec.SQDirectionTx && p.LLQ.Required {
			return r, m.refuse(spec.StatusIllegalParameter, "CREATE_SQ: this device requires LLQ (placement DEV) for Tx SQs (§8.4)")
		}
		if c.BaseAddr == 0 || c.BaseAddr%spec.TxDescSize != 0 {
			return r, m.refuse(spec.StatusIllegalParameter, "CREATE_SQ: ring address %#x is zero or not 16-byte aligned", c.BaseAddr)
		}
	case spec.PlacementDev:
		if dir == spec.SQDirectionRx {
			return r, m.refuse(spec.StatusIllegalParameter, "CREATE_SQ: Rx SQs are never LLQ; placement must be HOST (§8.1)")
		}
		if !p.HasLLQ() {
			return r, m.refuse(spec.StatusIllegalParameter, "CREATE_SQ: placement DEV but the device has no LLQ")
		}
		if !m.cfg.llqEnabled || !m.cfg.llqLayout.Valid() {
			return r, m.refuse(spec.StatusIllegalParameter, "CREATE_SQ: placement DEV before SET_FEATURE LLQ (§8.1)")
		}
		es := m.cfg.llqLayout.EntrySize()
		if depth > p.LLQ.MaxDepth {
			return r, m.refuse(spec.StatusIllegalParameter, "CREATE_SQ: LLQ depth %d exceeds max_llq_depth %d", depth, p.LLQ.MaxDepth)
		}
		if es > 128 && p.LLQ.WideDepthLimit != 0 && depth > p.LLQ.WideDepthLimit {
			return r, m.refuse(spec.StatusIllegalParameter, "CREATE_SQ: LLQ depth %d with %d-byte entries exceeds this device's limit %d for wide entries", depth, es, p.LLQ.WideDepthLimit)
		}
		if m.io.nLLQ >= p.LLQ.MaxQueues {
			return r, m.refuse(spec.StatusResourceAllocationFailure, "CREATE_SQ: all %d LLQs are in use", p.LLQ.MaxQueues)
		}
		share := p.LLQ.BAR2Size / uint32(p.LLQ.MaxQueues)
		if uint64(depth)*uint64(es) > uint64(share) {
			return r, m.refuse(spec.StatusIllegalParameter, "CREATE_SQ: LLQ ring of %d x %d bytes does not fit the %d bytes of BAR2 per queue", depth, es, share)
		}
	default:
		return r, m.refuse(spec.StatusIllegalParameter, "CREATE_SQ: placement policy %d is neither HOST (1) nor DEV (3)", uint8(c.Placement))
	}
	table := &m.io.txSQs
	count := &m.io.nTx
	if dir == spec.SQDirectionRx {
		table, count = &m.io.rxSQs, &m.io.nRx
	}
	idx := -1
	for i := range min(maxQ, maxQueueIdx) {
		if table[i] == nil {
			idx = i
			break
		}
	}
	if idx < 0 {
		return r, m.refuse(spec.StatusResourceAllocationFailure, "CREATE_SQ: all %d %v SQs are in use", maxQ, dir)
	}
	sq := &ioSQ{
		idx: uint16(idx), dir: dir, placement: c.Placement, depth: depth,
		shift: uint(bits.TrailingZeros(uint(depth))), base: c.BaseAddr, cq: cq,
	}
	if dir == spec.SQDirectionTx {
		sq.tx = m.newTxState(sq)
		r.DoorbellOffset = txDoorbellBase + 4*uint32(idx)
		if c.Placement == spec.PlacementDev {
			sq.base = 0
			if m.io.bar2 == nil {
				m.io.bar2 = make([]byte, p.LLQ.BAR2Size)
			}
			share := p.LLQ.BAR2Size / uint32(p.LLQ.MaxQueues)
			// LLQ index = Tx SQ index: both are below max queues and the
			// LLQ count is checked above.
			llqOff = uint32(idx) * share
			if llqOff+share > p.LLQ.BAR2Size {
				return r, m.refuse(spec.StatusResourceAllocationFailure, "CREATE_SQ: Tx SQ %d has no LLQ region in BAR2", idx)
			}
			sq.tx.llq = true
			sq.tx.llqOff = llqOff
			sq.tx.layout = m.cfg.llqLayout
			sq.tx.metaRequired = m.cfg.llqMetaCachingDisabled
			if m.cfg.llqBurstLimit {
				sq.tx.burst = m.cfg.llqMaxBurstEntries
			}
			clear(m.io.bar2[llqOff : llqOff+share])
			m.io.nLLQ++
			r.LLQDescriptorsOffset = llqOff
		}
	} else {
		sq.rx = m.newRxState()
		r.DoorbellOffset = rxDoorbellBase + 4*uint32(idx)
	}
	table[idx] = sq
	*count++
	cq.sq = sq
	r.SQIdx = uint16(idx)
	return r, spec.StatusSuccess
}

// destroySQ executes DESTROY_SQ (§4.7) with mu held. Completions held back
// for reordering are discarded: the driver is tearing the queue down.
func (m *Model) destroySQ(c spec.DestroySQCmd) spec.Status {
	var sq *ioSQ
	switch c.Direction {
	case spec.SQDirectionTx:
		if int(c.SQIdx) < maxQueueIdx {
			sq = m.io.txSQs[c.SQIdx]
		}
	case spec.SQDirectionRx:
		if int(c.SQIdx) < maxQueueIdx {
			sq = m.io.rxSQs[c.SQIdx]
		}
	default:
		return m.refuse(spec.StatusIllegalParameter, "DESTROY_SQ: direction %d is neither Tx (1) nor Rx (2)", uint8(c.Direction))
	}
	if sq == nil {
		return m.refuse(spec.StatusIllegalParameter, "DESTROY_SQ: %v sq_idx %d does not exist", c.Direction, c.SQIdx)
	}
	if sq.dir == spec.SQDirectionTx {
		m.io.txSQs[sq.idx] = nil
		m.io.nTx--
		if sq.tx.llq {
			m.io.nLLQ--
		}
	} else {
		m.io.rxSQs[sq.idx] = nil
		m.io.nRx--
	}
	sq.cq.sq = nil
	return spec.StatusSuccess
}

// destroyCQ executes DESTROY_CQ (§4.7) with mu held; the SQ bound to it
// must be destroyed first (§11 [inf]).
func (m *Model) destroyCQ(c spec.DestroyCQCmd) spec.Status {
	if int(c.CQIdx) >= len(m.io.cqs) || m.io.cqs[c.CQIdx] == nil {
		return m.refuse(spec.StatusIllegalParameter, "DESTROY_CQ: cq_idx %d does not exist", c.CQIdx)
	}
	cq := m.io.cqs[c.CQIdx]
	if cq.sq != nil {
		return m.refuse(spec.StatusResourceBusy, "DESTROY_CQ: cq_idx %d is still used by %s; destroy the SQ first", c.CQIdx, cq.sq.name())
	}
	m.io.cqs[c.CQIdx] = nil
	m.io.nCQ--
	if cq.vector != noVector {
		m.io.vecs[cq.vector].cqs--
	}
	return spec.StatusSuccess
}

// resetIO discards every I/O queue, the LLQ memory and the interrupt state
// (device reset, §9.3). Queued outgoing frames still leave (they are already
// on the wire side of the device), allowances and fault settings persist.
func (m *Model) resetIO() {
	io := &m.io
	io.cqs = [len(io.cqs)]*ioCQ{}
	io.txSQs = [maxQueueIdx]*ioSQ{}
	io.rxSQs = [maxQueueIdx]*ioSQ{}
	io.nCQ, io.nTx, io.nRx, io.nLLQ = 0, 0, 0, 0
	io.vecs = [maxVectors]vecState{}
	io.mod.vecs = [maxVectors]heldIRQ{}
	io.raise.clearAll()
	clear(io.bar2)
	// A stalled receive engine is what a reset cures: the injected stall
	// ends with the device reset that the driver's watchdog requests.
	io.faults.stallRx = false
}

// ioQueueCounts returns how many SQs and CQs exist (mu held).
func (m *Model) ioQueueCounts() (sq, cq int) {
	return m.io.nTx + m.io.nRx, m.io.nCQ
}

// ioRegWrite handles a store to a per-queue register with mu held; it
// returns false if off is not one the I/O side handed out.
func (m *Model) ioRegWrite(off, val uint32) bool {
	if off < txDoorbellBase || off >= ioRegEnd || off&3 != 0 {
		return false
	}
	switch {
	case off < rxDoorbellBase:
		sq := m.io.txSQs[(off-txDoorbellBase)/4]
		if sq == nil {
			return false
		}
		m.txDoorbell(sq, uint16(val))
	case off < unmaskBase:
		sq := m.io.rxSQs[(off-rxDoorbellBase)/4]
		if sq == nil {
			return false
		}
		m.rxDoorbell(sq, uint16(val))
	case off < numaBase:
		v := int(off-unmaskBase) / 4
		if v >= m.prof.Vectors || m.io.vecs[v].cqs == 0 {
			return false
		}
		m.writeUnmask(v, val)
	default:
		cq := m.io.cqs[(off-numaBase)/4]
		if cq == nil {
			return false
		}
		cq.numa = val
	}
	return true
}

// flushOutgoing is called without mu after every register or BAR2 store:
// it delivers the interrupts raised and sends the frames queued while mu was
// held. Calls are serialised by sendMu so frames leave in the order they
// were queued.
func (m *Model) flushOutgoing() {
	// Fast path: most stores (every LLQ entry push, unmask writes) leave
	// nothing to send; find that out without serialising on sendMu.
	m.mu.Lock()
	idle := len(m.ioOut().ends) == 0 && m.io.raise.empty()
	m.mu.Unlock()
	if idle {
		return
	}
	m.io.sendMu.Lock()
	m.mu.Lock()
	out := m.ioOut()
	if len(out.ends) == 0 && m.io.raise.empty() {
		m.mu.Unlock()
		m.io.sendMu.Unlock()
		return
	}
	m.io.out, m.io.sending = m.io.sending, out
	r := m.takeRaises()
	w := m.wire
	m.mu.Unlock()

	m.deliverRaises(&r)
	if bw, ok := w.(burstWire); ok {
		bw.sendBurst(out)
	} else if w != nil {
		start := 0
		for _, end := range out.ends {
			w.Send(out.buf[start:end])
			start = end
		}
	}
	out.reset()
	m.io.sendMu.Unlock()
}
