package rings

import (
	"fmt"
	"sync/atomic"

	"github.com/enanet/enanet/ena/hw"
	"github.com/enanet/enanet/ena/hw/dmamem"
	"github.com/enanet/enanet/ena/hw/mmio"
	"github.com/enanet/enanet/ena/spec"
)

// Tx limits and defaults.
const (
	// DefaultTxBufSize is the size of one pre-mapped Tx buffer when
	// TxConfig.BufSize is 0.
	DefaultTxBufSize = 2048
	// DefaultMaxTxDescs is the per-packet descriptor limit used when
	// TxConfig.MaxDescs is 0: the cap Linux and FreeBSD apply (§7.9).
	DefaultMaxTxDescs = 19
	// MaxTxDescs caps the per-packet descriptor limit whatever the device
	// reports; frames copied into 2 KiB buffers never need more.
	MaxTxDescs = 32
	// DefaultMaxTxFrame is the longest frame Send accepts when
	// TxConfig.MaxFrame is 0: a 9216-byte MTU (the ENA maximum) plus an
	// Ethernet header with one VLAN tag.
	DefaultMaxTxFrame = 9216 + 14 + 4
	// txLinearSlots is how many contiguous MaxFrame-sized areas a queue keeps
	// for frames that would need more descriptors than the device allows
	// (§7.9 "linearised"); each one is described by a single descriptor.
	txLinearSlots = 8
)

// TxConfig describes one Tx queue. The ena driver fills it from the device's
// features (max queues, LLQ negotiation, offloads) and its own policy.
type TxConfig struct {
	// Name prefixes errors and DeviceError.Queue, e.g. "tx 0".
	Name string
	// Depth is the SQ and CQ depth, a power of two (§7.1).
	Depth int
	// DMA allocates the CQ, the host-mode SQ and the Tx buffers.
	DMA hw.DMA
	// Regs is BAR0, where the SQ doorbell lives.
	Regs hw.RegisterBAR
	// LLQ is BAR2. nil selects host placement: descriptors in DMA memory.
	LLQ hw.MemoryBAR
	// Layout is the negotiated LLQ entry layout; used when LLQ != nil (§8.1).
	Layout spec.LLQLayout
	// BurstEntries is the device's LLQ burst limit in entries: the driver
	// rings the doorbell before writing more entries than this since the
	// previous doorbell (§8.1). 0 means no limit.
	BurstEntries int
	// MaxDescs is the device's limit of descriptors per packet, meta
	// descriptor included (§7.9). 0 means DefaultMaxTxDescs; values above
	// MaxTxDescs are capped. Must be at least 2 (meta + data).
	MaxDescs int
	// MetaCaching false sends a meta descriptor with every packet, as the
	// device requires when it reports DISABLE_META_CACHING (§7.4).
	MetaCaching bool
	// BufSize is the size of each pre-mapped Tx buffer; a frame spans
	// several. 0 means DefaultTxBufSize. At most 65535 (16-bit length).
	BufSize int
	// MaxHeader caps the header_length hint in host mode (max_header_size,
	// §7.9); 0 sends no hint, as FreeBSD does.
	MaxHeader int
	// CheckMBZ makes Reclaim reject completions with must-be-zero bits set
	// (capability CDESC_MBZ, §7.5).
	CheckMBZ bool
	// MaxFrame is the longest frame Send accepts (0 = DefaultMaxTxFrame,
	// at most 65535). It also sizes the areas used to linearise frames.
	MaxFrame int
}

// txInfo is the driver's record of one in-flight packet, indexed by req_id
// (§7.8). Only the Tx goroutine writes it.
type txInfo struct {
	inflight bool   // a packet is outstanding under this req_id
	missed   bool   // already counted as a missed completion
	linear   bool   // bufs[0] is a linearisation slot, not a pool buffer
	nbufs    uint8  // buffers the packet holds
	slots    uint16 // SQ slots it used: descriptors (host) or LLQ entries
	tick     uint32 // q.now when it was sent
	bufs     [MaxTxDescs]uint16
}

// txCounters are the TxStats counters. The Tx goroutine adds to them once per
// call (not per packet); Overdue adds MissedCompletion; Stats reads them from
// any goroutine.
type txCounters struct {
	packets, bytes, doorbells, completions, noSpace, linearized,
	metaDescs, llqEntries, badReqID, malformed, missed, dropped atomic.Uint64
}

// txPending accumulates per-packet counts between Flush calls, so Send
// touches no atomics. Only the Tx goroutine uses it.
type txPending struct {
	packets, bytes, metaDescs, llqEntries, linearized, noSpace uint64
}

// TxQueue is one ENA Tx queue: a submission ring (in DMA memory, or in BAR2
// for LLQ), its completion ring, and the buffers frames are copied into.
//
// Who writes what: the driver writes SQ descriptors (host mode) or LLQ
// entries, the Tx buffers and the doorbell; the device writes the CQ. Every
// other field is the driver's and is touched only by the Tx goroutine, except
// now (Tick, atomic) and stats (atomic).
type TxQueue struct {
	name string

	// Fixed at NewTx.
	depth     uint32
	mask      uint32 // depth-1; also the most SQ slots in flight (§7.8)
	shift     uint   // log2(depth)
	regs      hw.RegisterBAR
	llq       hw.MemoryBAR // nil in host mode
	layout    spec.LLQLayout
	entrySize uint32 // LLQ entry bytes
	hdrOff    int    // LLQ: pushed header offset in the first entry
	pushMax   int    // LLQ: most bytes pushed in the first entry
	dbh       uint32 // LLQ: descriptors before the header
	dpe       uint32 // LLQ: descriptors per continuation entry
	burst     uint32 // LLQ: max entries between doorbells, 0 = none
	maxDescs  int
	metaCache bool
	bufSize   int
	maxFrame  int
	maxHeader int
	checkMBZ  bool
	// hostOneMax is the longest frame host placement sends in one buffer
	// (Send's own path): min(bufSize, maxFrame).
	hostOneMax int
	// llqOneMax is the longest frame LLQ placement pushes whole in one
	// entry (sendLLQOne): min(pushMax, maxFrame).
	llqOneMax int
	// entries[n] is the number of SQ slots a packet of n descriptors uses.
	entries [MaxTxDescs + 1]uint16

	// DMA memory.
	sqRegion, cqRegion, linRegion *hw.Region
	pool                          *bufPool // Tx buffers: driver writes, device reads

	sq      []byte                  // host-mode SQ: driver writes, device reads
	cq      []byte                  // CQ: device writes, driver reads
	sqe     [][spec.TxDescSize]byte // sq's descriptors
	cqe     [][TxCQEntrySize]byte   // cq's completions
	lin     []byte                  // linearisation slots
	linAddr uint64
	bounce  []byte // LLQ: one packet's entries built here, then pushed

	// descs holds the packet Send is building, for its placement writer.
	descs [MaxTxDescs]txDesc

	// Set by Bind.
	bound    bool
	doorbell uint32 // BAR0 offset of the SQ doorbell
	llqOff   uint32 // BAR2 offset of the SQ's first LLQ entry

	// Driver state, Tx goroutine only.
	tail      uint32 // free-running SQ tail: slots written (u16 of it goes to the doorbell)
	head      uint32 // free-running count of SQ slots reclaimed
	rung      uint32 // tail at the last doorbell
	cqHead    uint32 // free-running CQ position of the next completion
	reqFree   []uint16
	bufFree   []uint16
	linFree   []uint16
	info      []txInfo
	metaValid bool         // metaW2 mirrors the device's cached metadata (§7.4)
	metaW2    uint32       // word 2 of the last meta descriptor stored
	offEnc    txOffloadEnc // the last offload request's descriptor bits
	broken    error        // the device broke the protocol; nothing is consumed until Reset

	now   atomic.Uint32 // coarse clock, advanced by Tick
	pend  txPending
	stats txCounters
}

// NewTx allocates a Tx queue's rings and buffers. The device-side queue is
// created by the caller: CREATE_CQ with CQAddr, then CREATE_SQ with SQAddr
// (host mode) or device placement (LLQ), then Bind with the offsets the
// device returned (§4.7).
func NewTx(cfg TxConfig) (*TxQueue, error) {
	name := cfg.Name
	if name == "" {
		name = "tx"
	}
	mask, shift, err := checkDepth(name, cfg.Depth)
	if err != nil {
		return nil, err
	}
	if cfg.DMA == nil || cfg.Regs == nil {
		return nil, fmt.Errorf("rings: %s: config needs DMA and Regs", name)
	}
	q := &TxQueue{
		name:      name,
		depth:     uint32(cfg.Depth),
		mask:      mask,
		shift:     shift,
		regs:      cfg.Regs,
		llq:       cfg.LLQ,
		maxDescs:  cfg.MaxDescs,
		metaCache: cfg.MetaCaching,
		bufSize:   cfg.BufSize,
		maxFrame:  cfg.MaxFrame,
		maxHeader: min(max(cfg.MaxHeader, 0), 255),
		checkMBZ:  cfg.CheckMBZ,
	}
	if q.maxDescs == 0 {
		q.maxDescs = DefaultMaxTxDescs
	}
	q.maxDescs = min(q.maxDescs, MaxTxDescs)
	if q.maxDescs < 2 {
		return nil, fmt.Errorf("rings: %s: %d descriptors per packet leave no room for a meta and a data descriptor (§7.9)", name, cfg.MaxDescs)
	}
	if q.bufSize == 0 {
		q.bufSize = DefaultTxBufSize
	}
	if q.bufSize < 64 || q.bufSize > 0xFFFF {
		return nil, fmt.Errorf("rings: %s: buffer size %d is not in [64, 65535] (16-bit descriptor length, §7.2)", name, q.bufSize)
	}
	if q.maxFrame == 0 {
		q.maxFrame = DefaultMaxTxFrame
	}
	if q.maxFrame < 60 || q.maxFrame > 0xFFFF {
		return nil, fmt.Errorf("rings: %s: max frame %d is not in [60, 65535]", name, q.maxFrame)
	}
	q.hostOneMax = min(q.bufSize, q.maxFrame)
	for n := range q.entries {
		q.entries[n] = uint16(max(n, 1))
	}
	if q.llq != nil {
		l := cfg.Layout
		if !l.Valid() {
			return nil, fmt.Errorf("rings: %s: LLQ memory BAR given without a negotiated entry layout (§8.1)", name)
		}
		q.layout = l
		q.entrySize = uint32(l.EntrySize())
		q.hdrOff = l.HeaderOffset()
		q.pushMax = l.MaxPushHeader()
		q.llqOneMax = min(q.pushMax, q.maxFrame)
		q.dbh = uint32(l.DescsBeforeHeader())
		q.dpe = uint32(l.DescsPerEntry())
		for n := range q.entries {
			q.entries[n] = uint16(l.EntriesFor(n))
		}
		if cfg.BurstEntries < 0 {
			return nil, fmt.Errorf("rings: %s: negative LLQ burst limit %d", name, cfg.BurstEntries)
		}
		if cfg.BurstEntries > 0 {
			if need := int(q.entries[q.maxDescs]); cfg.BurstEntries < need {
				return nil, fmt.Errorf("rings: %s: LLQ burst limit of %d entries is below the %d a %d-descriptor packet needs (§8.1)",
					name, cfg.BurstEntries, need, q.maxDescs)
			}
			q.burst = uint32(cfg.BurstEntries)
		}
		if uint64(cfg.Depth)*uint64(q.entrySize) > uint64(q.llq.Size()) {
			return nil, fmt.Errorf("rings: %s: %d LLQ entries of %d bytes do not fit the %d-byte memory BAR", name, cfg.Depth, q.entrySize, q.llq.Size())
		}
		q.bounce = make([]byte, int(q.entries[MaxTxDescs])*int(q.entrySize))
	}
	// A packet may never need more slots than the ring can have in flight.
	for q.maxDescs > 2 && int(q.entries[q.maxDescs]) > cfg.Depth-1 {
		q.maxDescs--
	}
	if int(q.entries[q.maxDescs]) > cfg.Depth-1 {
		return nil, fmt.Errorf("rings: %s: depth %d cannot hold one %d-descriptor packet", name, cfg.Depth, q.maxDescs)
	}

	ok := false
	defer func() {
		if !ok {
			q.Close()
		}
	}()
	if q.cqRegion, err = alloc(cfg.DMA, name, "completion ring", cfg.Depth*TxCQEntrySize, ringAlign); err != nil {
		return nil, err
	}
	q.cq = q.cqRegion.Bytes[:cfg.Depth*TxCQEntrySize]
	q.cqe = entries8(q.cq)
	if q.llq == nil {
		if q.sqRegion, err = alloc(cfg.DMA, name, "submission ring", cfg.Depth*spec.TxDescSize, ringAlign); err != nil {
			return nil, err
		}
		q.sq = q.sqRegion.Bytes[:cfg.Depth*spec.TxDescSize]
		q.sqe = entries16(q.sq)
	}
	// Host mode with buffers up to DefaultTxBufSize: every buffer is one
	// descriptor and at most depth-1 descriptors are in flight, so depth
	// buffers always suffice. Larger buffers are fewer (txPoolBuffers), and
	// Send reports ErrNoSpace when they run out before the ring does. LLQ:
	// a packet may hold more buffers than entries; Send reports ErrNoSpace
	// when the pool runs dry, and the extra maxDescs buffers guarantee that
	// any frame fits once the ring has drained.
	nbufs := txPoolBuffers(cfg.Depth, q.bufSize)
	if q.llq != nil {
		nbufs += q.maxDescs
	}
	if q.pool, err = newBufPool(cfg.DMA, name, "Tx buffers", nbufs, q.bufSize); err != nil {
		return nil, err
	}
	linSize := (q.maxFrame + 63) &^ 63
	if q.linRegion, err = alloc(cfg.DMA, name, "Tx linearisation slots", txLinearSlots*linSize, ringAlign); err != nil {
		return nil, err
	}
	q.lin = q.linRegion.Bytes[:txLinearSlots*linSize]
	q.linAddr = q.linRegion.Addr

	q.reqFree = make([]uint16, 0, cfg.Depth)
	q.bufFree = make([]uint16, 0, nbufs)
	q.linFree = make([]uint16, 0, txLinearSlots)
	q.info = make([]txInfo, cfg.Depth)
	q.resetState()
	ok = true
	return q, nil
}

// txPoolBuffers is how many Tx buffers a ring of depth slots gets: one per
// slot for buffers up to DefaultTxBufSize, and for larger buffers as many
// as fit in the memory that depth default-size buffers take. A 9 KiB
// buffer per jumbo frame then leaves as many frame bytes in flight as five
// 2 KiB ones did, and the pool stays depth × 2 KiB instead of growing 4.5
// times: DMA memory comes from hugepages reserved ahead (enactl setup).
func txPoolBuffers(depth, bufSize int) int {
	if bufSize <= DefaultTxBufSize {
		return depth
	}
	return max((depth*DefaultTxBufSize+bufSize-1)/bufSize, 1)
}

// resetState puts the driver-side state back to a new queue's: everything
// free, positions zero, phase 1 (§7.8).
func (q *TxQueue) resetState() {
	q.reqFree = q.reqFree[:0]
	for i := int(q.depth) - 1; i >= 0; i-- {
		q.reqFree = append(q.reqFree, uint16(i))
	}
	q.bufFree = q.bufFree[:0]
	for i := cap(q.bufFree) - 1; i >= 0; i-- {
		q.bufFree = append(q.bufFree, uint16(i))
	}
	q.linFree = q.linFree[:0]
	for i := txLinearSlots - 1; i >= 0; i-- {
		q.linFree = append(q.linFree, uint16(i))
	}
	clear(q.info)
	q.tail, q.head, q.rung, q.cqHead = 0, 0, 0, 0
	q.metaValid, q.metaW2 = false, 0
	q.offEnc = txOffloadEnc{} // the zero TxOffload's encoding
	q.offEnc.meta = q.needMeta(&q.offEnc)
	q.broken = nil
	q.pend = txPending{}
}

// SQAddr is the SQ ring's device address for CREATE_SQ; 0 in LLQ mode, where
// the ring lives in the device's memory BAR (§4.7, §8.2).
func (q *TxQueue) SQAddr() uint64 {
	if q.sqRegion == nil {
		return 0
	}
	return q.sqRegion.Addr
}

// CQAddr is the CQ ring's device address for CREATE_CQ (entries of
// TxCQEntrySize bytes).
func (q *TxQueue) CQAddr() uint64 {
	if q.cqRegion == nil {
		return 0
	}
	return q.cqRegion.Addr
}

// Depth is the ring depth.
func (q *TxQueue) Depth() int { return int(q.depth) }

// BufSize is the size of each Tx buffer; a longer frame spans several.
func (q *TxQueue) BufSize() int { return q.bufSize }

// LLQ reports whether the queue pushes descriptors to device memory.
func (q *TxQueue) LLQ() bool { return q.llq != nil }

// Bind records the offsets the CREATE_SQ response returned: the SQ doorbell
// in BAR0 and, for LLQ, the SQ's entries in BAR2 (§4.7). The queue refuses to
// send until it is bound, and Reset unbinds it.
func (q *TxQueue) Bind(doorbellOff, llqOff uint32) {
	q.doorbell = doorbellOff
	q.llqOff = llqOff
	q.bound = true
}

// txDesc is one Tx descriptor, meta or data, as Send builds it: words 0-1
// and 2-3 without the phase bit, which the placement writer adds for the
// slot the descriptor lands in (§7.2, §7.3, §7.8).
type txDesc struct{ lo, hi uint64 }

// txPlan is what Send decides about one frame before it changes any queue
// state (§7.4, §7.9, §8.2).
type txPlan struct {
	total  int    // frame bytes
	push   int    // LLQ: leading bytes pushed in the first entry's header area
	rest   int    // bytes carried in buffers; 0 for an LLQ frame pushed whole
	nbufs  int    // buffers the rest needs (1 when linear)
	linear bool   // the rest goes into one linearisation slot (§7.9)
	meta   bool   // a meta descriptor leads the packet (§7.4)
	metaW2 uint32 // the meta descriptor's word 2 (offload header lengths)
	hdrLen uint32 // header_length of the first data descriptor (§7.2, §8.2)
	ndescs uint32 // descriptors, meta included
	slots  uint32 // SQ slots the packet uses: descriptors (host) or LLQ entries
}

// txMetaW0 is word 0 of every meta descriptor Send writes: the metadata is
// stored in the device's cache and applies from this packet on (§7.3, §7.4).
const txMetaW0 = spec.TxMetaMetaDescMask | spec.TxMetaExtValidMask | spec.TxMetaEthMetaTypeMask |
	spec.TxMetaMetaStoreMask | spec.TxMetaFirstMask

// send is Send's general path: LLQ placement, frames spanning several
// buffers or linearised, and the errors.
func (q *TxQueue) send(segs [][]byte, off *TxOffload) error {
	if !q.bound {
		return errNotBound
	}
	var p txPlan
	if err := q.plan(&p, segs, off); err != nil {
		return err
	}
	// At most depth-1 slots are ever outstanding, so the CQ can never
	// overflow (§7.8).
	if q.tail-q.head+p.slots > q.mask || len(q.reqFree) == 0 ||
		(p.linear && len(q.linFree) == 0) || (!p.linear && len(q.bufFree) < p.nbufs) {
		q.pend.noSpace++
		return ErrNoSpace
	}
	if q.burst != 0 && q.tail-q.rung+p.slots > q.burst {
		q.Flush()
	}
	q.build(&p, segs)
	if q.llq != nil {
		q.writeLLQ(&p, segs)
	} else {
		q.writeHost(&p)
	}
	q.tail += p.slots
	q.pend.packets++
	q.pend.bytes += uint64(p.total)
	if p.meta {
		q.pend.metaDescs++
	}
	return nil
}

// plan sizes one frame: whether it needs a meta descriptor, how many bytes
// LLQ pushes in the entry, how many buffers carry the rest, and the SQ slots
// all of that takes.
func (q *TxQueue) plan(p *txPlan, segs [][]byte, off *TxOffload) error {
	for _, s := range segs {
		p.total += len(s)
	}
	if p.total == 0 {
		return ErrEmptyFrame
	}
	if p.total > q.maxFrame {
		return ErrFrameTooLong
	}
	e := q.offloadEnc(off)
	p.metaW2, p.meta = e.metaW2, e.meta
	nmeta := uint32(0)
	if p.meta {
		nmeta = 1
	}
	// LLQ pushes the first bytes in the entry; buffers carry the rest
	// (§8.2).
	if q.llq != nil {
		p.push = min(p.total, q.pushMax)
	}
	p.rest = p.total - p.push
	if p.rest > 0 {
		p.nbufs = 1
		if p.rest > q.bufSize { // divide only when needed: IDIV is slow
			p.nbufs = (p.rest + q.bufSize - 1) / q.bufSize
		}
	}
	p.ndescs = uint32(max(p.nbufs, 1)) + nmeta
	// A frame that would need more descriptors than the device allows goes
	// into one contiguous slot instead (§7.9).
	if p.ndescs > uint32(q.maxDescs) {
		p.linear, p.nbufs, p.ndescs = true, 1, 1+nmeta
	}
	p.slots = uint32(q.entries[p.ndescs])
	// header_length: in LLQ mode the bytes pushed; in host mode a hint of
	// at most max_header_size bytes, all in the first buffer (§7.2, §7.9).
	if q.llq != nil {
		p.hdrLen = uint32(p.push)
	} else {
		first := p.rest
		if !p.linear {
			first = min(first, q.bufSize)
		}
		p.hdrLen = uint32(min(first, q.maxHeader))
	}
	return nil
}

// build takes a req_id and the buffers planned for the packet, copies the
// bytes not pushed in an LLQ entry into them, and builds the descriptors in
// q.descs: the meta descriptor if planned, then one data descriptor per
// buffer. Offload flags and req_id go only in the first data descriptor;
// FIRST is on the meta descriptor if there is one (§7.2, §7.3).
//
// The offload bits come from q.offEnc, which plan set for this frame.
func (q *TxQueue) build(p *txPlan, segs [][]byte) {
	id := pop(&q.reqFree)
	in := &q.info[id]
	in.inflight, in.missed, in.linear = true, false, p.linear
	in.nbufs = uint8(p.nbufs)
	in.slots = uint16(p.slots)
	in.tick = q.now.Load()

	k := 0
	if p.meta {
		q.descs[0] = txDesc{uint64(txMetaW0), uint64(p.metaW2)}
		k = 1
		if q.offEnc.active {
			q.metaStored(p.metaW2)
		}
	}
	w0 := uint32(id>>10)<<spec.TxDescReqIDHiShift | spec.TxDescCompReqMask
	if !p.meta {
		w0 |= spec.TxDescFirstMask
	}
	w1 := uint32(id&0x3FF)<<spec.TxDescReqIDLoShift | q.offEnc.w1
	switch {
	case p.rest == 0:
		// LLQ frame that fits in the entry: one empty data descriptor
		// (§8.2).
		q.descs[k] = txDesc{uint64(w0|spec.TxDescLastMask) | uint64(w1)<<32, txAddrWord(0, p.hdrLen)}
	case p.linear:
		slot := pop(&q.linFree)
		in.bufs[0] = slot
		size := len(q.lin) / txLinearSlots
		start := int(slot) * size
		si, so := seek(segs, p.push)
		gather(q.lin[start:start+p.rest], segs, si, so)
		q.descs[k] = txDesc{uint64(w0|spec.TxDescLastMask|uint32(p.rest)) | uint64(w1)<<32,
			txAddrWord(q.linAddr+uint64(start), p.hdrLen)}
		q.pend.linearized++
	case p.nbufs == 1:
		// The common case, without the multi-buffer loop.
		b := pop(&q.bufFree)
		in.bufs[0] = b
		if dst := q.pool.mem[b][:p.rest]; p.push == 0 {
			copySegs(dst, segs)
		} else {
			si, so := seek(segs, p.push)
			gather(dst, segs, si, so)
		}
		q.descs[k] = txDesc{uint64(w0|spec.TxDescLastMask|uint32(p.rest)) | uint64(w1)<<32,
			txAddrWord(q.pool.addr[b], p.hdrLen)}
	default:
		si, so := seek(segs, p.push)
		rest, hdrLen := p.rest, p.hdrLen
		for j := range p.nbufs {
			b := pop(&q.bufFree)
			in.bufs[j] = b
			n := min(rest, q.bufSize)
			rest -= n
			si, so = gather(q.pool.mem[b][:n], segs, si, so)
			w := w0 | uint32(n)
			if j == p.nbufs-1 {
				w |= spec.TxDescLastMask
			}
			q.descs[k] = txDesc{uint64(w) | uint64(w1)<<32, txAddrWord(q.pool.addr[b], hdrLen)}
			k++
			w0, w1, hdrLen = 0, 0, 0
		}
	}
}

// writeHost is the host-placement writer: it stores the packet's descriptors
// in the SQ in DMA memory, each with the phase of the slot it lands in
// (§7.8). The device reads them after the doorbell Flush rings.
func (q *TxQueue) writeHost(p *txPlan) {
	for k, d := range q.descs[:p.ndescs] {
		pos := q.tail + uint32(k)
		off := (pos & q.mask) * spec.TxDescSize
		put64(q.sq, off, d.lo|uint64(phaseBit(pos, q.shift))<<24)
		put64(q.sq, off+8, d.hi)
	}
}

// writeLLQ is the LLQ writer: it builds the packet's entries zeroed in the
// bounce buffer, with the first bytes of the frame in the first entry's
// header area and the descriptors in its descriptors-before-header slots,
// then in continuation entries, each carrying its entry's phase (§7.8,
// §8.2). It then pushes every entry to its own ring position in BAR2 with
// ordered 64-bit stores (§8.3).
func (q *TxQueue) writeLLQ(p *txPlan, segs [][]byte) {
	es := q.entrySize
	b := q.bounce[:p.slots*es]
	clear(b)
	if hdr := b[q.hdrOff : q.hdrOff+p.push]; p.rest == 0 {
		copySegs(hdr, segs) // the whole frame is pushed: a plain copy
	} else {
		gather(hdr, segs, 0, 0)
	}
	for k, d := range q.descs[:p.ndescs] {
		e, off := uint32(0), uint32(k)*spec.LLQDescSlotSize
		if c := uint32(k); c >= q.dbh {
			c -= q.dbh
			e = 1 + c/q.dpe
			off = e*es + c%q.dpe*spec.LLQDescSlotSize
		}
		put64(b, off, d.lo|uint64(phaseBit(q.tail+e, q.shift))<<24)
		put64(b, off+8, d.hi)
	}
	for e := range p.slots {
		q.llq.WriteBlock(q.llqOff+((q.tail+e)&q.mask)*es, b[e*es:(e+1)*es])
	}
	q.pend.llqEntries += uint64(p.slots)
}

// txOffloadBits are the checksum-offload bits of a first data descriptor's
// word 1 (§7.2).
func txOffloadBits(off *TxOffload) uint32 {
	if !off.Active() {
		return 0
	}
	w1 := uint32(off.L3)&spec.TxDescL3ProtoMask |
		uint32(off.L4)<<spec.TxDescL4ProtoShift&spec.TxDescL4ProtoMask
	if off.DF {
		w1 |= spec.TxDescDFMask
	}
	if off.L3Csum {
		w1 |= spec.TxDescL3CsumEnMask
	}
	if off.L4Csum {
		w1 |= spec.TxDescL4CsumEnMask
		if off.L4Partial {
			w1 |= spec.TxDescL4CsumPartialMask
		}
	}
	return w1
}

// txAddrWord is the high half of a Tx descriptor: buffer address bits 31:0,
// then bits 47:32 and header_length (§7.2).
//
// Address bits 47:32 sit at word 3's bits 15:0 (TxDescAddrHiMask), so the
// address lands in the word's low 48 bits unshifted: one mask instead of
// splitting it in two (the compiler does not see that).
func txAddrWord(addr uint64, hdrLen uint32) uint64 {
	return addr&txAddrMask | uint64(hdrLen)<<(32+spec.TxDescHeaderLengthShift)
}

// txAddrMask is the address bits txAddrWord keeps: 31:0 and, through
// TxDescAddrHiMask, 47:32.
const txAddrMask = 1<<32 - 1 | uint64(spec.TxDescAddrHiMask)<<32

// pop takes the last index off a free list the caller checked is not empty.
func pop(free *[]uint16) uint16 {
	s := *free
	v := s[len(s)-1]
	*free = s[:len(s)-1]
	return v
}

// Flush makes everything Send wrote visible to the device and rings the SQ
// doorbell once, if anything was queued since the last one (§7.8, §8.3):
// LLQ stores are flushed out of the write-combining buffers, DMA writes are
// ordered before the register store, then the free-running tail is written.
func (q *TxQueue) Flush() {
	if q.tail != q.rung && q.bound {
		if q.llq != nil {
			q.llq.Flush()
		}
		mmio.StoreBarrier()
		q.regs.Write32(q.doorbell, q.tail&0xFFFF)
		q.rung = q.tail
		q.stats.doorbells.Add(1)
	}
	q.publish()
}

// publish moves the per-packet counts Send kept in plain fields into the
// shared counters.
func (q *TxQueue) publish() {
	p := &q.pend
	if p.packets != 0 {
		q.stats.packets.Add(p.packets)
		q.stats.bytes.Add(p.bytes)
	}
	if p.metaDescs != 0 {
		q.stats.metaDescs.Add(p.metaDescs)
	}
	if p.llqEntries != 0 {
		q.stats.llqEntries.Add(p.llqEntries)
	}
	if p.linearized != 0 {
		q.stats.linearized.Add(p.linearized)
	}
	if p.noSpace != 0 {
		q.stats.noSpace.Add(p.noSpace)
	}
	*p = txPending{}
}

// Reclaim consumes the Tx completions the device has written: one per packet,
// possibly out of order (§7.5). Each frees the packet's req_id and buffers
// and returns the SQ slots the packet used. It returns how many packets
// completed.
//
// A completion that breaks the protocol (must-be-zero bits when CheckMBZ, a
// req_id out of range or not outstanding) is left unconsumed and reported as
// a *DeviceError with the reset reason to use; the queue then stays stopped
// (further calls return the same error) until Reset.
func (q *TxQueue) Reclaim() (int, error) {
	if q.broken != nil {
		return 0, q.broken
	}
	if len(q.cq) == 0 {
		return 0, nil
	}
	start := q.cqHead
	for {
		// Runs of one-buffer packets, then runs of any other kind, with
		// the same steps, until a completion is not written yet or
		// breaks the protocol.
		q.reclaimSingles()
		if !q.reclaimOthers() {
			break
		}
	}
	n := int(q.cqHead - start)
	if n != 0 {
		q.stats.completions.Add(uint64(n))
	}
	if q.broken != nil {
		return n, q.broken
	}
	return n, nil
}

// reclaimOthers consumes completions of the packets reclaimSingles leaves:
// linearised ones, several buffers, and in LLQ placement one buffer. It
// reports true when it stopped at a packet of reclaimSingles' kind, and
// false when the next completion is not written yet or breaks the
// protocol (then q.broken is set, see checkCompletion).
func (q *TxQueue) reclaimOthers() bool {
	for {
		pos := q.cqHead
		// Step 1 (see reclaimSingles).
		w0 := dmamem.Acquire32(q.cqe[pos&q.mask][:], 0)
		if w0&spec.TxCdescPhaseMask != phaseBit(pos, q.shift)<<24 {
			return false
		}
		// Step 2.
		id := int(w0 & spec.TxCdescReqIDMask)
		if id >= len(q.info) || !q.info[id].inflight || q.checkMBZ && w0&spec.TxCdescMBZMask != 0 {
			q.checkCompletion(w0)
			return false
		}
		// Step 3.
		in := &q.info[id]
		switch {
		case in.linear:
			q.linFree = append(q.linFree, in.bufs[0])
		case in.nbufs == 1 && q.llq == nil, in.nbufs == 0 && q.llq != nil:
			return true // reclaimSingles' kind
		case in.nbufs > 0:
			q.bufFree = append(q.bufFree, in.bufs[:in.nbufs]...)
		} // 0 buffers: an LLQ frame pushed whole in its entry
		in.inflight = false
		q.reqFree = append(q.reqFree, uint16(id))
		q.head += uint32(in.slots)
		q.cqHead = pos + 1
	}
}

// reclaimSingles is Reclaim for the common packet: in host placement one
// that holds one pool buffer, in LLQ placement one pushed whole in its
// entry (no buffer). It consumes completions until the next one is not
// written yet, breaks the protocol or is for another kind of packet, which
// it leaves for Reclaim.
func (q *TxQueue) reclaimSingles() {
	// The loop keeps the queue's state in locals and stores it back once.
	// Freed req_ids and buffers are written by index into the free lists'
	// spare capacity: every req_id and buffer is either in flight or on
	// its list, and a completion frees only an in-flight one, so the lists
	// never outgrow the capacity they were made with.
	cqe, info, mask, shift := q.cqe, q.info, q.mask, q.shift
	// The phase and the must-be-zero bits (when the device promised
	// them) in one compare.
	check := spec.TxCdescPhaseMask
	if q.checkMBZ {
		check |= spec.TxCdescMBZMask
	}
	pos, head := q.cqHead, q.head
	nreq, nbuf := len(q.reqFree), len(q.bufFree)
	reqs, bufs := q.reqFree[nreq:cap(q.reqFree)], q.bufFree[nbuf:cap(q.bufFree)]
	llq := q.llq != nil
	lim := len(reqs)
	if !llq {
		lim = min(lim, len(bufs))
	}
	k := 0
	// In runs that do not wrap around the ring: one phase per run.
	for k < lim {
		slot := pos & mask
		run := cqe[slot:min(uint32(len(cqe)), slot+uint32(lim-k))]
		var j int
		var slots uint32
		if llq {
			j, slots = reclaimRunPushed(run, info, reqs[k:], check, phaseBit(pos, shift)<<24)
		} else {
			j, slots = reclaimRun(run, info, reqs[k:], bufs[k:], check, phaseBit(pos, shift)<<24)
		}
		k += j
		pos += uint32(j)
		head += slots
		if j < len(run) {
			break
		}
	}
	q.cqHead, q.head = pos, head
	q.reqFree = q.reqFree[:nreq+k]
	if !llq {
		q.bufFree = q.bufFree[:nbuf+k]
	}
}

// reclaimRun consumes the completions of run, which all have the phase
// in want, while they are for one-buffer packets, writing the freed
// req_ids and buffers into reqs and bufs. It returns how many it
// consumed and the SQ slots their packets used. It is a leaf function,
// so the loop keeps its state in registers.
//
//go:noinline
func reclaimRun(run [][TxCQEntrySize]byte, info []txInfo, reqs, bufs []uint16, check, want uint32) (int, uint32) {
	reqs, bufs = reqs[:len(run)], bufs[:len(run)]
	slots := uint32(0)
	for k := range run {
		// Step 1: an acquire load of word 0; the phase says whether the
		// device has written this entry on the current lap (§7.8). The
		// Tx completion's other word (sub_qid, sq_head) is ignored by
		// drivers (§7.5), so there is nothing more to read.
		w0 := dmamem.Acquire32(run[k][:], 0)
		if w0&check != want {
			return k, slots
		}
		// Step 2: check before use (Reclaim builds the error).
		id := int(w0 & spec.TxCdescReqIDMask)
		if id >= len(info) {
			return k, slots
		}
		in := &info[id]
		if !in.inflight || in.nbufs != 1 || in.linear {
			return k, slots
		}
		// Step 3: free the packet, its buffer and its slots.
		bufs[k] = in.bufs[0]
		reqs[k] = uint16(id)
		in.inflight = false
		slots += uint32(in.slots)
	}
	return len(run), slots
}

// reclaimRunPushed is reclaimRun for LLQ frames pushed whole in their
// entry, which hold no buffer.
//
//go:noinline
func reclaimRunPushed(run [][TxCQEntrySize]byte, info []txInfo, reqs []uint16, check, want uint32) (int, uint32) {
	reqs = reqs[:len(run)]
	slots := uint32(0)
	for k := range run {
		// Steps 1 and 2 as in reclaimRun.
		w0 := dmamem.Acquire32(run[k][:], 0)
		if w0&check != want {
			return k, slots
		}
		id := int(w0 & spec.TxCdescReqIDMask)
		if id >= len(info) {
			return k, slots
		}
		in := &info[id]
		if !in.inflight || in.nbufs != 0 || in.linear {
			return k, slots
		}
		// Step 3: free the packet and its slots.
		reqs[k] = uint16(id)
		in.inflight = false
		slots += uint32(in.slots)
	}
	return len(run), slots
}

// checkCompletion validates Tx completion word 0 (§7.5) and, on a violation,
// counts it, stops the queue and returns the DeviceError.
func (q *TxQueue) checkCompletion(w0 uint32) error {
	id := w0 & spec.TxCdescReqIDMask
	var de *DeviceError
	switch {
	case q.checkMBZ && w0&spec.TxCdescMBZMask != 0:
		q.stats.malformed.Add(1)
		de = &DeviceError{Queue: q.name, Reason: spec.ResetTxDescriptorMalformed,
			Detail: fmt.Sprintf("Tx completion %d has must-be-zero flags %#x", q.cqHead, w0>>24&uint32(spec.TxCdescFlagsMBZMask))}
	case id >= q.depth:
		q.stats.badReqID.Add(1)
		de = &DeviceError{Queue: q.name, Reason: spec.ResetInvTxReqID,
			Detail: fmt.Sprintf("Tx completion %d carries req_id %d, queue depth is %d", q.cqHead, id, q.depth)}
	case !q.info[id].inflight:
		q.stats.badReqID.Add(1)
		de = &DeviceError{Queue: q.name, Reason: spec.ResetInvTxReqID,
			Detail: fmt.Sprintf("Tx completion %d carries req_id %d, which has no packet outstanding", q.cqHead, id)}
	default:
		return nil
	}
	q.broken = de
	return de
}

// Tick advances the queue's coarse clock; the ena driver's watchdog calls it
// once per interval. Safe from any goroutine.
func (q *TxQueue) Tick() { q.now.Add(1) }

// Overdue returns how many in-flight packets were sent at least ticks Ticks
// ago without a completion, and counts each one once in MissedCompletion.
// The driver resets with MISS_TX_CMPL when this passes its threshold (§9.2).
// It reads the Tx goroutine's records, so the caller must serialise it with
// Send and Reclaim (the driver holds its queue lock).
func (q *TxQueue) Overdue(ticks uint32) int {
	now := q.now.Load()
	n, fresh := 0, uint64(0)
	for i := range q.info {
		in := &q.info[i]
		if in.inflight && now-in.tick >= ticks {
			n++
			if !in.missed {
				in.missed = true
				fresh++
			}
		}
	}
	if fresh != 0 {
		q.stats.missed.Add(fresh)
	}
	return n
}

// InFlight is the number of packets sent and not yet completed.
func (q *TxQueue) InFlight() int { return int(q.depth) - len(q.reqFree) }

// Reset returns the queue to its freshly allocated state after a device
// reset (§9.3): rings zeroed, positions 0, phase 1, meta cache forgotten,
// every in-flight frame dropped (counted in Dropped), and the queue unbound
// until Bind is called with the new queue's offsets.
func (q *TxQueue) Reset() {
	q.stats.dropped.Add(uint64(q.InFlight()))
	clear(q.sq)
	clear(q.cq)
	q.resetState()
	q.bound = false
}

// Stats returns the queue's counters. Safe from any goroutine; counts of
// packets sent but not yet flushed appear after the next Flush.
func (q *TxQueue) Stats() TxStats {
	s := &q.stats
	return TxStats{
		Packets:          s.packets.Load(),
		Bytes:            s.bytes.Load(),
		Doorbells:        s.doorbells.Load(),
		Completions:      s.completions.Load(),
		NoSpace:          s.noSpace.Load(),
		Linearized:       s.linearized.Load(),
		MetaDescs:        s.metaDescs.Load(),
		LLQEntries:       s.llqEntries.Load(),
		BadReqID:         s.badReqID.Load(),
		MalformedCdesc:   s.malformed.Load(),
		MissedCompletion: s.missed.Load(),
		Dropped:          s.dropped.Load(),
	}
}

// Close frees the queue's DMA memory. The device-side queue must already be
// destroyed (DESTROY_SQ, then DESTROY_CQ). Safe to call twice.
func (q *TxQueue) Close() error {
	q.sq, q.cq, q.lin, q.sqe, q.cqe = nil, nil, nil, nil, nil
	q.bound = false
	err := freeRegions(&q.sqRegion, &q.cqRegion, &q.linRegion)
	if perr := q.pool.free(); err == nil {
		err = perr
	}
	q.pool = nil
	return err
}

// txOffloadEnc is what one TxOffload means in descriptors: the first data
// descriptor's offload bits of word 1 (§7.2), the meta descriptor's word 2
// and whether the frame asks for any offload, so it needs metadata (§7.4).
// Send computes it once for a run of frames with the same request, which is
// how a stack sends: every TCP segment of a flow asks for the same offloads.
type txOffloadEnc struct {
	k0     uint64 // txOffloadKey of the request these bits encode
	k1     uint8
	w1     uint32 // offload bits of the first data descriptor's word 1
	metaW2 uint32 // meta descriptor word 2: the offload header lengths
	active bool   // the request's Active()
	meta   bool   // needMeta(this encoding), kept current by metaStored
}

// offloadEnc returns the encoding of off, computing it when off differs
// from the previous frame's request.
func (q *TxQueue) offloadEnc(off *TxOffload) *txOffloadEnc {
	e := &q.offEnc
	if k0, k1 := txOffloadKey(off); k0 != e.k0 || k1 != e.k1 {
		q.setOffloadEnc(off, k0, k1)
	}
	return e
}

// setOffloadEnc encodes off, whose key is k0, k1, into q.offEnc. It runs
// only when the request changes, so it is kept out of line (Send and
// sendLLQOne inline offloadEnc's compare by hand).
//
//go:noinline
func (q *TxQueue) setOffloadEnc(off *TxOffload, k0 uint64, k1 uint8) {
	e := &q.offEnc
	e.k0, e.k1 = k0, k1
	e.w1, e.metaW2, e.active = txOffloadBits(off), 0, off.Active()
	if e.active {
		e.metaW2 = uint32(off.L3HdrLen) | uint32(off.L3HdrOff)<<spec.TxMetaL3HdrOffShift |
			uint32(off.L4HdrLen)<<spec.TxMetaL4HdrLenShift&spec.TxMetaL4HdrLenMask
	}
	e.meta = q.needMeta(e)
}

// metaStored records that a meta descriptor with word 2 w2 stored the
// device's cached metadata (§7.4), and recomputes whether the current
// request needs a meta descriptor.
func (q *TxQueue) metaStored(w2 uint32) {
	q.metaValid, q.metaW2 = true, w2
	q.offEnc.meta = q.needMeta(&q.offEnc)
}

// needMeta reports whether a frame with offload encoding e needs a meta
// descriptor. With meta caching only offloaded frames whose metadata
// differs from what the device holds need one; without, every frame
// carries one, zero metadata when it asks for no offload (§7.4).
func (q *TxQueue) needMeta(e *txOffloadEnc) bool {
	return !q.metaCache || e.active && (!q.metaValid || e.metaW2 != q.metaW2)
}
