package enasim

import (
	"encoding/binary"
	"testing"

	"github.com/enanet/enanet/ena/hw"
	"github.com/enanet/enanet/ena/spec"
)

// A tiny test-only data-path "driver", written from the protocol document
// (§7, §8) and independent of package rings: it creates queues with admin
// commands through the core harness, writes descriptors or LLQ entries,
// rings doorbells and reads completions.

// ioRig is a brought-up device plus helpers to create I/O queues.
type ioRig struct {
	*harness
	layout spec.LLQLayout
	burst  int
}

// newIORig brings a device up (§6 up to AENQ enabled). With llqEntry != 0
// it also negotiates LLQ with that entry size (128 or 256), 2 descriptors
// before the header, multiple descriptors per entry and the accel flags
// every vendor driver sets.
func newIORig(t testing.TB, cfg Config, llqEntry int) *ioRig {
	t.Helper()
	return newIORigLLQ(t, cfg, llqEntry, 2, true)
}

// newIORigLLQ is newIORig with a chosen number of descriptors before the
// header and stride.
func newIORigLLQ(t testing.TB, cfg Config, llqEntry, dbh int, multiple bool) *ioRig {
	t.Helper()
	h := newHarness(t, cfg)
	h.bringUp()
	r := &ioRig{harness: h}
	if llqEntry != 0 {
		code := uint16(spec.LLQEntrySize128)
		if llqEntry == 256 {
			code = spec.LLQEntrySize256
		}
		stride := uint16(spec.LLQStrideMultipleDescsPerEntry)
		if !multiple {
			stride = spec.LLQStrideSingleDescPerEntry
		}
		f := spec.LLQ{
			HeaderLocationEnabled:    spec.LLQHeaderLocationInline,
			EntrySizeEnabled:         code,
			DescsBeforeHeaderEnabled: uint16(dbh),
			StrideEnabled:            stride,
			AccelFlags:               spec.LLQAccelDriverFlags,
		}
		h.mustOK(setFeat(spec.FeatLLQ, &f))
		l, err := spec.NewLLQLayout(llqEntry, dbh, multiple)
		if err != nil {
			t.Fatal(err)
		}
		r.layout = l
		p := h.m.Profile()
		if p.LLQ.AccelFlags&spec.LLQAccelLimitTxBurst != 0 {
			r.burst = int(p.LLQ.MaxTxBurst) / llqEntry
		}
	}
	return r
}

// cqCmd builds CREATE_CQ.
func cqCmd(depth uint16, words uint8, vector uint32, addr uint64) []byte {
	e := entry()
	c := spec.CreateCQCmd{InterruptMode: vector != spec.MSIXNoVector, EntrySizeWords: words, Depth: depth, MSIXVector: vector, BaseAddr: addr}
	c.Encode(e)
	return e
}

// sqCmd builds CREATE_SQ.
func sqCmd(dir spec.SQDirection, pl spec.PlacementPolicy, cq, depth uint16, addr uint64) []byte {
	e := entry()
	c := spec.CreateSQCmd{Direction: dir, Placement: pl, PhysContiguous: true, CQIdx: cq, Depth: depth, BaseAddr: addr}
	c.Encode(e)
	return e
}

// txq is a Tx queue as the test driver sees it.
type txq struct {
	r      *ioRig
	llq    bool
	depth  int
	sqIdx  uint16
	cqIdx  uint16
	db     uint32
	unmask uint32
	llqOff uint32
	ring   *hw.Region // HOST descriptors
	cq     *hw.Region
	bufs   *hw.Region // one bufSize slot per req_id
	tail   uint16     // free-running SQ tail (descriptors or entries)
	cqHead uint32
	bounce []byte
	since  int // LLQ entries since the last doorbell
}

const txBufSize = 16 << 10

func (r *ioRig) createTx(depth int, llq bool, vector uint32) *txq {
	r.t.Helper()
	q := &txq{r: r, llq: llq, depth: depth}
	q.cq = r.alloc(depth * 8)
	resp := spec.DecodeCreateCQResp(r.mustOK(cqCmd(uint16(depth), spec.CQEntryWordsTx, vector, q.cq.Addr)))
	q.cqIdx, q.unmask = resp.CQIdx, resp.UnmaskRegOffset
	pl, addr := spec.PlacementHost, uint64(0)
	if llq {
		pl = spec.PlacementDev
		q.bounce = make([]byte, 64*256)
	} else {
		q.ring = r.alloc(depth * spec.TxDescSize)
		addr = q.ring.Addr
	}
	sr := spec.DecodeCreateSQResp(r.mustOK(sqCmd(spec.SQDirectionTx, pl, q.cqIdx, uint16(depth), addr)))
	q.sqIdx, q.db, q.llqOff = sr.SQIdx, sr.DoorbellOffset, sr.LLQDescriptorsOffset
	q.bufs = r.alloc(depth * txBufSize)
	return q
}

// sendOpts shape one test packet.
type sendOpts struct {
	reqID   uint16
	seg     int  // bytes per data descriptor (0 = whole frame in one)
	meta    bool // emit a meta descriptor
	meta3   spec.TxMetaDesc
	offload spec.TxDesc // only the offload fields are used
	noComp  bool
}

// phaseAt is the phase a producer writes at free-running position pos.
func phaseAt(pos uint16, depth int) bool {
	return (int(pos)/depth)&1 == 0
}

// send writes one packet (no doorbell). The frame is copied into the
// req_id's buffer slot; LLQ pushes min(len, max push) header bytes.
func (q *txq) send(frame []byte, o sendOpts) {
	q.r.t.Helper()
	slot := int(o.reqID) % q.depth
	buf := q.bufs.Bytes[slot*txBufSize : (slot+1)*txBufSize]
	bufAddr := q.bufs.Addr + uint64(slot*txBufSize)
	hdr := 0
	if q.llq {
		hdr = min(len(frame), q.r.layout.MaxPushHeader())
	}
	rest := frame[hdr:]
	copy(buf, rest)
	seg := o.seg
	if seg <= 0 {
		seg = max(len(rest), 1)
	}
	var descs [][spec.TxDescSize]byte
	if o.meta {
		m := o.meta3
		m.First = true
		var b [16]byte
		m.Encode(b[:])
		descs = append(descs, b)
	}
	n := 0
	for first := true; first || n < len(rest); first = false {
		l := min(seg, len(rest)-n)
		d := o.offload
		d.Length = uint16(l)
		d.BufAddr = bufAddr + uint64(n)
		if l == 0 {
			d.BufAddr = 0
		}
		d.First = first && !o.meta
		d.CompReq = first && !o.noComp
		if !first {
			d = spec.TxDesc{Length: uint16(l), BufAddr: bufAddr + uint64(n)}
		} else {
			d.ReqID = o.reqID
			d.HeaderLen = uint8(hdr)
		}
		n += l
		d.Last = n >= len(rest)
		var b [16]byte
		d.Encode(b[:])
		descs = append(descs, b)
	}
	if !q.llq {
		for _, b := range descs {
			pos := q.tail
			setTxPhase(b[:], phaseAt(pos, q.depth))
			copy(q.ring.Bytes[int(pos)%q.depth*16:], b[:])
			q.tail++
		}
		return
	}
	// LLQ: decide which entry each descriptor lands in so it carries that
	// entry's phase (§8.2), then build and push the entries.
	l := q.r.layout
	entries := l.EntriesFor(len(descs))
	flat := make([]byte, 0, len(descs)*16)
	for i, b := range descs {
		e := 0
		if i >= l.DescsBeforeHeader() {
			e = 1 + (i-l.DescsBeforeHeader())/l.DescsPerEntry()
		}
		setTxPhase(b[:], phaseAt(q.tail+uint16(e), q.depth))
		flat = append(flat, b[:]...)
	}
	got, err := spec.BuildLLQPacket(q.bounce, l, flat, frame[:hdr])
	if err != nil || got != entries {
		q.r.t.Fatalf("BuildLLQPacket: %d entries, %v", got, err)
	}
	es := l.EntrySize()
	for e := range entries {
		if q.r.burst > 0 && q.since+1 > q.r.burst {
			q.doorbell()
		}
		off := q.llqOff + uint32(int(q.tail)%q.depth*es)
		q.r.d.LLQ().WriteBlock(off, q.bounce[e*es:(e+1)*es])
		q.tail++
		q.since++
	}
}

func setTxPhase(b []byte, phase bool) {
	w := binary.LittleEndian.Uint32(b)
	w &^= spec.TxDescPhaseMask
	if phase {
		w |= spec.TxDescPhaseMask
	}
	binary.LittleEndian.PutUint32(b, w)
}

func (q *txq) doorbell() {
	q.r.w(q.db, uint32(q.tail))
	q.since = 0
}

// completions reads every Tx completion the device has written.
func (q *txq) completions() []spec.TxCompletion {
	var out []spec.TxCompletion
	for {
		slot := int(q.cqHead) % q.depth
		c := spec.DecodeTxCompletion(q.cq.Bytes[slot*8:])
		if c.Phase != ((int(q.cqHead)/q.depth)&1 == 0) {
			return out
		}
		out = append(out, c)
		q.cqHead++
	}
}

// rxq is an Rx queue as the test driver sees it.
type rxq struct {
	r       *ioRig
	depth   int
	bufSize int
	sqIdx   uint16
	cqIdx   uint16
	db      uint32
	unmask  uint32
	ring    *hw.Region
	cq      *hw.Region
	bufs    *hw.Region
	words   uint8
	tail    uint16
	cqHead  uint32
	free    []uint16 // req_ids not posted
	posted  int      // buffers the device holds
	partial []byte
	parts   []spec.RxCompletion
}

func (r *ioRig) createRx(depth, bufSize int, vector uint32) *rxq {
	r.t.Helper()
	q := &rxq{r: r, depth: depth, bufSize: bufSize, words: spec.CQEntryWordsRx}
	q.cq = r.alloc(depth * 16)
	resp := spec.DecodeCreateCQResp(r.mustOK(cqCmd(uint16(depth), q.words, vector, q.cq.Addr)))
	q.cqIdx, q.unmask = resp.CQIdx, resp.UnmaskRegOffset
	q.ring = r.alloc(depth * spec.RxDescSize)
	sr := spec.DecodeCreateSQResp(r.mustOK(sqCmd(spec.SQDirectionRx, spec.PlacementHost, q.cqIdx, uint16(depth), q.ring.Addr)))
	q.sqIdx, q.db = sr.SQIdx, sr.DoorbellOffset
	q.bufs = r.alloc(depth * bufSize)
	for i := range depth {
		q.free = append(q.free, uint16(i))
	}
	q.refill(depth - 1)
	return q
}

// refill posts up to n free buffers and rings the doorbell once.
func (q *rxq) refill(n int) {
	posted := 0
	n = min(n, q.depth-1-q.posted)
	for posted < n && len(q.free) > 0 {
		id := q.free[0]
		q.free = q.free[1:]
		ctrl := spec.RxDescCtrlPosted0
		if phaseAt(q.tail, q.depth) {
			ctrl = spec.RxDescCtrlPosted1
		}
		l := uint16(q.bufSize)
		if q.bufSize == 65536 {
			l = 0
		}
		spec.PutRxDesc(q.ring.Bytes[int(q.tail)%q.depth*16:], l, ctrl, id, q.bufs.Addr+uint64(int(id)*q.bufSize))
		q.tail++
		posted++
		q.posted++
	}
	q.r.w(q.db, uint32(q.tail))
}

// rxFrame is one received frame with its completions.
type rxFrame struct {
	data  []byte
	comps []spec.RxCompletion
}

// last is the completion carrying the parse results.
func (f *rxFrame) last() spec.RxCompletion { return f.comps[len(f.comps)-1] }

// poll returns every complete frame and reposts the buffers it used.
func (q *rxq) poll() []rxFrame {
	var out []rxFrame
	for {
		slot := int(q.cqHead) % q.depth
		size := int(q.words) * 4
		c := spec.DecodeRxCompletion(q.cq.Bytes[slot*size:])
		if c.Phase != ((int(q.cqHead)/q.depth)&1 == 0) {
			break
		}
		q.cqHead++
		q.posted--
		id := c.ReqID
		if int(id) < q.depth {
			q.partial = append(q.partial, q.bufs.Bytes[int(id)*q.bufSize:int(id)*q.bufSize+int(c.Length)]...)
			q.free = append(q.free, id)
		}
		q.parts = append(q.parts, c)
		if c.Last {
			out = append(out, rxFrame{data: q.partial, comps: q.parts})
			q.partial, q.parts = nil, nil
		}
	}
	if len(out) > 0 {
		q.refill(len(q.free))
	}
	return out
}
