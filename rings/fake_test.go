package rings

import (
	"encoding/binary"
	"fmt"
	"syscall"
	"testing"

	"github.com/enanet/enanet/ena/hw"
	"github.com/enanet/enanet/ena/spec"
)

// This file is a small in-test ENA data path: a DMA allocator over mmap'd
// memory with made-up device addresses, a register BAR that records
// doorbells, a memory BAR that captures LLQ stores, and a device that reads
// the driver's descriptors exactly as §7 and §8 lay them out, loops every
// frame back into the Rx queue and writes completions. It checks what the
// driver wrote (phase, FIRST/LAST, req_id, meta, LLQ layout, burst limit,
// flush before doorbell) and records violations in fakeDev.errs.

// fakeDMA hands out mmap'd regions at device addresses starting high above
// zero, with a gap between regions so a stray address never lands in a
// neighbour.
type fakeDMA struct {
	next    uint64
	regions []*fakeRegion
}

type fakeRegion struct {
	addr uint64
	mem  []byte
}

func newFakeDMA() *fakeDMA { return &fakeDMA{next: 0x12_3400_0000} }

func (d *fakeDMA) Alloc(size, align int) (*hw.Region, error) {
	if size <= 0 || align <= 0 || align&(align-1) != 0 {
		return nil, fmt.Errorf("fakedma: bad alloc size %d align %d", size, align)
	}
	n := (size + 4095) &^ 4095
	mem, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("fakedma: mmap %d bytes: %w", n, err)
	}
	a := uint64(max(align, 4096))
	addr := (d.next + a - 1) &^ (a - 1)
	d.next = addr + uint64(n) + 1<<20
	r := &fakeRegion{addr: addr, mem: mem}
	d.regions = append(d.regions, r)
	return hw.NewRegion(mem[:size], addr, func() error {
		for i, x := range d.regions {
			if x == r {
				d.regions = append(d.regions[:i], d.regions[i+1:]...)
				break
			}
		}
		return syscall.Munmap(mem)
	}), nil
}

func (d *fakeDMA) AddrWidth() int { return 48 }

// mem translates a device address range to host memory, or nil.
func (d *fakeDMA) mem(addr uint64, n int) []byte {
	for _, r := range d.regions {
		if addr >= r.addr && addr+uint64(n) <= r.addr+uint64(len(r.mem)) {
			off := addr - r.addr
			return r.mem[off : off+uint64(n)]
		}
	}
	return nil
}

// fakeRegs is BAR0: it keeps the last value and count of writes per offset
// and calls onWrite (the device's doorbell handler).
type fakeRegs struct {
	last    [1 << 12]uint32
	count   [1 << 12]uint64
	onWrite func(off, val uint32)
}

func (r *fakeRegs) Read32(off uint32) uint32 { return r.last[off/4] }
func (r *fakeRegs) Write32(off uint32, val uint32) {
	r.last[off/4] = val
	r.count[off/4]++
	if r.onWrite != nil {
		r.onWrite(off, val)
	}
}
func (r *fakeRegs) Size() uint32 { return 4 << 12 }

// fakeMem is BAR2. dirty is set by stores and cleared by Flush, so the
// device can tell a doorbell rung before the flush.
type fakeMem struct {
	b       []byte
	dirty   bool
	flushes uint64
	blocks  uint64
	bad     string
}

func (m *fakeMem) WriteBlock(off uint32, src []byte) {
	if off%8 != 0 || len(src)%8 != 0 {
		m.bad = fmt.Sprintf("WriteBlock at %#x of %d bytes is not 64-bit aligned", off, len(src))
		return
	}
	copy(m.b[off:], src)
	m.dirty = true
	m.blocks++
}
func (m *fakeMem) Flush()       { m.dirty = false; m.flushes++ }
func (m *fakeMem) Size() uint32 { return uint32(len(m.b)) }

// Offsets the fake device hands out.
const (
	fakeTxDoorbell = 0x1000
	fakeRxDoorbell = 0x1004
	fakeLLQOff     = 0x4000
)

// Completion orders the fake device can use.
const (
	orderInOrder = iota // completions in submission order
	orderReverse        // each Process batch completed back to front
	orderHold           // keep completions until release
)

// fakeTxFrame is what the device saw for one packet (recorded when
// fakeDev.record is set).
type fakeTxFrame struct {
	reqID   uint16
	frame   []byte
	meta    bool
	metaW2  uint32 // word 2 of the meta in effect (cached or sent)
	first   spec.TxDesc
	ndescs  int // descriptors including meta
	entries int // LLQ entries (0 in host mode)
}

// fakeDev is the device side of one Tx/Rx queue pair in loopback.
type fakeDev struct {
	dma  *fakeDMA
	regs *fakeRegs
	mem  *fakeMem
	errs []string

	// Tx side.
	txDepth, txMask uint32
	txShift         uint
	txSQ            []byte // host-mode SQ as the device sees it
	txCQ            []byte
	layout          spec.LLQLayout
	llq             bool
	maxDescs        int
	burst           uint32
	txDB            uint32 // last doorbell value
	txDBPrev        uint32 // doorbell before that (burst check)
	txHead          uint32 // free-running: slots consumed
	txCQTail        uint32
	done            []uint16 // completed req_ids not yet written
	order           int
	metaValid       bool
	metaW2          uint32
	frame           []byte
	descScratch     []spec.TxDesc
	record          bool
	sent            []fakeTxFrame
	loop            bool // deliver Tx frames to the Rx side

	// Tx fault injection: applied to the next completion written.
	corruptTx func(w0 uint32) uint32

	// Rx side.
	rxDepth, rxMask uint32
	rxShift         uint
	rxSQ, rxCQ      []byte
	rxDB            uint32
	rxHead          uint32
	rxCQTail        uint32
	rxDrops         int
	rxBufLen        int
	// rxStatus is OR'd into the LAST completion's status word.
	rxStatus uint32
	// corruptRx edits the status/word1 of completion i of the next frame.
	corruptRx func(i int, w0, w1 uint32) (uint32, uint32)
	// rxChunk, if non-zero, limits the bytes written per buffer.
	rxChunk int
	hash    uint32
}

func (f *fakeDev) errorf(format string, args ...any) {
	if len(f.errs) < 20 {
		f.errs = append(f.errs, fmt.Sprintf(format, args...))
	}
}

func (f *fakeDev) check(t testing.TB) {
	t.Helper()
	if f.mem != nil && f.mem.bad != "" {
		t.Fatalf("fake device: memory BAR: %s", f.mem.bad)
	}
	if len(f.errs) > 0 {
		t.Fatalf("fake device saw %d protocol violations, first: %v", len(f.errs), f.errs)
	}
}

// pairOpts configures newPair.
type pairOpts struct {
	depth, rxDepth int
	llq            bool
	entrySize      int
	dbh            int
	burst          int
	maxDescs       int
	metaCaching    bool
	txBuf, rxBuf   int
	maxHeader      int
	checkMBZ       bool
	rxMaxDescs     int
	maxFrame       int
}

// newPair builds a Tx and an Rx queue on a fake device, "creates" the device
// queues with their addresses, binds them and posts the Rx buffers.
func newPair(t testing.TB, o pairOpts) (*TxQueue, *RxQueue, *fakeDev) {
	t.Helper()
	if o.depth == 0 {
		o.depth = 256
	}
	if o.rxDepth == 0 {
		o.rxDepth = o.depth
	}
	if o.maxDescs == 0 {
		o.maxDescs = DefaultMaxTxDescs
	}
	f := &fakeDev{dma: newFakeDMA(), regs: &fakeRegs{}, maxDescs: o.maxDescs, loop: true,
		done: make([]uint16, 0, 1<<16), frame: make([]byte, 1<<16), descScratch: make([]spec.TxDesc, 0, MaxTxDescs+1), hash: 0x9e3779b9}
	f.regs.onWrite = f.onDoorbell
	cfg := TxConfig{Name: "tx 0", Depth: o.depth, DMA: f.dma, Regs: f.regs, MaxDescs: o.maxDescs,
		MetaCaching: o.metaCaching, BufSize: o.txBuf, MaxHeader: o.maxHeader, CheckMBZ: o.checkMBZ,
		BurstEntries: o.burst, MaxFrame: o.maxFrame}
	if o.llq {
		if o.entrySize == 0 {
			o.entrySize = 128
		}
		if o.dbh == 0 {
			o.dbh = 2
		}
		l, err := spec.NewLLQLayout(o.entrySize, o.dbh, true)
		if err != nil {
			t.Fatal(err)
		}
		f.mem = &fakeMem{b: make([]byte, fakeLLQOff+o.depth*o.entrySize)}
		f.layout, f.llq, f.burst = l, true, uint32(o.burst)
		cfg.LLQ, cfg.Layout = f.mem, l
	}
	tx, err := NewTx(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rx, err := NewRx(RxConfig{Name: "rx 0", Depth: o.rxDepth, DMA: f.dma, Regs: f.regs, BufSize: o.rxBuf,
		MaxDescs: o.rxMaxDescs, CheckMBZ: o.checkMBZ})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tx.Close(); err != nil {
			t.Error(err)
		}
		if err := rx.Close(); err != nil {
			t.Error(err)
		}
	})
	f.createQueues(t, tx, rx)
	return tx, rx, f
}

// createQueues plays CREATE_CQ/CREATE_SQ: the device learns the ring
// addresses, starts at phase 1 and position 0, and the driver binds.
func (f *fakeDev) createQueues(t testing.TB, tx *TxQueue, rx *RxQueue) {
	t.Helper()
	f.txDepth = uint32(tx.Depth())
	f.txMask, f.txShift, _ = checkDepth("fake", tx.Depth())
	f.txCQ = f.dma.mem(tx.CQAddr(), tx.Depth()*TxCQEntrySize)
	if !f.llq {
		f.txSQ = f.dma.mem(tx.SQAddr(), tx.Depth()*spec.TxDescSize)
		if f.txSQ == nil {
			t.Fatal("fake device: Tx SQ address does not translate")
		}
	} else if tx.SQAddr() != 0 {
		t.Fatal("LLQ queue reports a host SQ address")
	}
	f.rxDepth = uint32(rx.Depth())
	f.rxMask, f.rxShift, _ = checkDepth("fake", rx.Depth())
	f.rxSQ = f.dma.mem(rx.SQAddr(), rx.Depth()*spec.RxDescSize)
	f.rxCQ = f.dma.mem(rx.CQAddr(), rx.Depth()*RxCQEntrySize)
	if f.txCQ == nil || f.rxSQ == nil || f.rxCQ == nil {
		t.Fatal("fake device: ring addresses do not translate")
	}
	f.rxBufLen = rx.bufSize
	f.txDB, f.txDBPrev, f.txHead, f.txCQTail = 0, 0, 0, 0
	f.rxDB, f.rxHead, f.rxCQTail = 0, 0, 0
	f.metaValid = false
	f.done = f.done[:0]
	tx.Bind(fakeTxDoorbell, fakeLLQOff)
	rx.Bind(fakeRxDoorbell)
	rx.Refill()
}

// onDoorbell records doorbells; the device does its work in process, so
// tests and benchmarks decide when the device runs.
func (f *fakeDev) onDoorbell(off, val uint32) {
	switch off {
	case fakeTxDoorbell:
		if f.llq && f.mem.dirty {
			f.errorf("Tx doorbell %d rung with LLQ stores not flushed (§8.3)", val)
		}
		if val > 0xFFFF {
			f.errorf("Tx doorbell value %#x is wider than 16 bits", val)
		}
		if f.llq && f.burst != 0 && uint16(val-f.txDB) > uint16(f.burst) {
			f.errorf("Tx doorbell %d after %d entries, burst limit %d (§8.1)", val, uint16(val-f.txDB), f.burst)
		}
		f.txDBPrev, f.txDB = f.txDB, val
	case fakeRxDoorbell:
		f.rxDB = val
	default:
		f.errorf("write to unexpected register %#x", off)
	}
}

// process runs the device: consume every Tx packet up to the doorbell,
// loop it back to Rx, and write Tx completions in the configured order.
func (f *fakeDev) process() {
	start := len(f.done)
	for uint16(f.txHead) != uint16(f.txDB) {
		if !f.txPacket() {
			return
		}
	}
	switch f.order {
	case orderInOrder:
		f.flushCompletions(0, len(f.done))
	case orderReverse:
		for i, j := start, len(f.done)-1; i < j; i, j = i+1, j-1 {
			f.done[i], f.done[j] = f.done[j], f.done[i]
		}
		f.flushCompletions(0, len(f.done))
	}
}

// release writes held completions; perm, if non-nil, gives the order.
func (f *fakeDev) release(perm []int) {
	if perm != nil {
		held := append([]uint16(nil), f.done...)
		for i, p := range perm {
			f.done[i] = held[p]
		}
	}
	f.flushCompletions(0, len(f.done))
}

func (f *fakeDev) flushCompletions(from, to int) {
	for _, id := range f.done[from:to] {
		f.writeTxCompletion(id)
	}
	f.done = f.done[:0]
}

func (f *fakeDev) writeTxCompletion(id uint16) {
	pos := f.txCQTail
	off := (pos & f.txMask) * TxCQEntrySize
	w0 := uint32(id) | phaseBit(pos, f.txShift)<<24
	if f.corruptTx != nil {
		w0 = f.corruptTx(w0)
		f.corruptTx = nil
	}
	binary.LittleEndian.PutUint32(f.txCQ[off+4:], uint32(pos&0xFFFF)<<16)
	binary.LittleEndian.PutUint32(f.txCQ[off:], w0)
	f.txCQTail++
}

// txPacket consumes one packet at txHead; false on a violation (recorded).
func (f *fakeDev) txPacket() bool {
	var (
		descs   = f.descScratch[:0]
		hasMeta bool
		metaW2  uint32
		header  []byte
		entries int
		nd      int
	)
	if f.llq {
		head, db := f.txHead, f.txDB
		es := uint32(f.layout.EntrySize())
		entry := func(i int) []byte {
			pos := head + uint32(i)
			if uint16(pos-head) >= uint16(uint16(db)-uint16(head)) {
				return nil
			}
			off := fakeLLQOff + (pos&f.txMask)*es
			b := f.mem.b[off : off+es]
			if w0 := binary.LittleEndian.Uint32(b); w0&spec.TxDescPhaseMask != phaseBit(pos, f.txShift)<<24 {
				f.errorf("LLQ entry %d slot 0 has the wrong phase (w0 %#x)", pos, w0)
			}
			return b
		}
		p, err := spec.DecodeLLQPacket(f.layout, entry, f.maxDescs, descs)
		if err != nil {
			f.errorf("LLQ packet at entry %d: %v", head, err)
			return false
		}
		// Unused descriptor slots must be zero and the rest of the
		// header area too.
		first := f.mem.b[fakeLLQOff+(head&f.txMask)*es:][:es]
		hdrEnd := f.layout.HeaderOffset() + len(p.Header)
		for _, c := range first[hdrEnd:] {
			if c != 0 {
				f.errorf("LLQ entry %d: non-zero bytes after the pushed header", head)
				break
			}
		}
		descs, hasMeta, header, entries = p.Descs, p.HasMeta, p.Header, p.Entries
		nd = len(descs)
		if hasMeta {
			nd++
			metaW2 = binary.LittleEndian.Uint32(first[8:])
			if !p.Meta.First || !p.Meta.MetaStore || !p.Meta.ExtValid || p.Meta.Last || p.Meta.CompReq {
				f.errorf("LLQ meta descriptor flags wrong: %+v", p.Meta)
			}
		}
		f.txHead += uint32(p.Entries)
	} else {
		for {
			if uint16(f.txHead) == uint16(f.txDB) {
				f.errorf("host SQ: packet at %d has no LAST before the doorbell", f.txHead-uint32(nd))
				return false
			}
			pos := f.txHead
			b := f.txSQ[(pos&f.txMask)*16:][:16]
			f.txHead++
			nd++
			if nd > f.maxDescs {
				f.errorf("host SQ: packet exceeds %d descriptors", f.maxDescs)
				return false
			}
			w0 := binary.LittleEndian.Uint32(b)
			if w0&spec.TxDescPhaseMask != phaseBit(pos, f.txShift)<<24 {
				f.errorf("host SQ slot %d: wrong phase (w0 %#x)", pos, w0)
				return false
			}
			if spec.IsMetaDesc(b) {
				m := spec.DecodeTxMetaDesc(b)
				if nd != 1 || !m.First || !m.MetaStore || m.Last || m.CompReq {
					f.errorf("host SQ slot %d: bad meta descriptor %+v", pos, m)
					return false
				}
				hasMeta = true
				metaW2 = binary.LittleEndian.Uint32(b[8:])
				continue
			}
			d := spec.DecodeTxDesc(b)
			descs = append(descs, d)
			if d.Last {
				break
			}
		}
	}
	if len(descs) == 0 {
		f.errorf("packet without data descriptors")
		return false
	}
	d0 := descs[0]
	if d0.First == hasMeta || !d0.CompReq || d0.ReservedLenCtrl != 0 || d0.ReservedMetaCtrl != 0 {
		f.errorf("first data descriptor flags wrong (meta %v): %+v", hasMeta, d0)
	}
	if int(d0.ReqID) >= int(f.txDepth) {
		f.errorf("req_id %d out of range", d0.ReqID)
	}
	if hasMeta {
		f.metaValid, f.metaW2 = true, metaW2
	}
	if (d0.L3Csum || d0.L4Csum) && !f.metaValid {
		f.errorf("packet %d asks for checksum offload with no metadata cached (§7.4)", d0.ReqID)
	}
	// Gather the frame.
	n := copy(f.frame, header)
	for i, d := range descs {
		if i > 0 && (d.First || d.CompReq || d.ReqID != 0 || d.HeaderLen != 0) {
			f.errorf("descriptor %d of packet %d carries first-descriptor fields: %+v", i, d0.ReqID, d)
		}
		if d.Length == 0 {
			if len(descs) != 1 || !f.llq {
				f.errorf("zero-length descriptor %d in packet %d", i, d0.ReqID)
			}
			continue
		}
		src := f.dma.mem(d.BufAddr, int(d.Length))
		if src == nil {
			f.errorf("packet %d descriptor %d: buffer %#x+%d does not translate", d0.ReqID, i, d.BufAddr, d.Length)
			return false
		}
		n += copy(f.frame[n:], src)
	}
	frame := f.frame[:n]
	if f.record {
		f.sent = append(f.sent, fakeTxFrame{reqID: d0.ReqID, frame: append([]byte(nil), frame...), meta: hasMeta,
			metaW2: f.metaW2, first: d0, ndescs: nd, entries: entries})
	}
	f.done = append(f.done, d0.ReqID)
	if f.loop {
		f.receive(frame, d0)
	}
	return true
}

// receive writes frame into posted Rx buffers and their completions
// (§7.7). The status of the LAST completion reports the protocols the Tx
// side named and "checksum good" for the offloads it asked for.
func (f *fakeDev) receive(frame []byte, tx spec.TxDesc) {
	chunk := f.rxBufLen
	if f.rxChunk != 0 {
		chunk = f.rxChunk
	}
	need := uint32((len(frame) + chunk - 1) / chunk)
	if uint32(uint16(uint16(f.rxDB)-uint16(f.rxHead))) < need {
		f.rxDrops++
		return
	}
	status := uint32(tx.L3Proto) | uint32(tx.L4Proto)<<spec.RxCdescL4ProtoShift | f.rxStatus
	if tx.L4Csum {
		status |= spec.RxCdescL4CsumCheckedMask
	}
	corrupt := f.corruptRx
	f.corruptRx = nil
	for i := uint32(0); i < need; i++ {
		pos := f.rxHead
		d := f.rxSQ[(pos&f.rxMask)*16:][:16]
		rd := spec.DecodeRxDesc(d)
		if rd.Phase != (phaseBit(pos, f.rxShift) == 1) || !rd.First || !rd.Last || !rd.CompReq || rd.BufferLen() != f.rxBufLen {
			f.errorf("Rx descriptor %d malformed: %+v", pos, rd)
		}
		f.rxHead++
		part := frame[min(int(i)*chunk, len(frame)):min(int(i+1)*chunk, len(frame))]
		if dst := f.dma.mem(rd.BufAddr, len(part)); dst != nil {
			copy(dst, part)
		} else {
			f.errorf("Rx buffer %#x does not translate", rd.BufAddr)
		}
		cpos := f.rxCQTail
		off := (cpos & f.rxMask) * RxCQEntrySize
		w0 := phaseBit(cpos, f.rxShift)<<24 | spec.RxCdescBufferMask
		if i == 0 {
			w0 |= spec.RxCdescFirstMask
		}
		if i == need-1 {
			w0 |= spec.RxCdescLastMask | status
		}
		w1 := uint32(len(part)) | uint32(rd.ReqID)<<16
		if corrupt != nil {
			w0, w1 = corrupt(int(i), w0, w1)
		}
		c := f.rxCQ[off:][:16]
		binary.LittleEndian.PutUint32(c[4:], w1)
		binary.LittleEndian.PutUint32(c[8:], f.hash^uint32(len(frame)))
		binary.LittleEndian.PutUint32(c[12:], 0)
		binary.LittleEndian.PutUint32(c[0:], w0)
		f.rxCQTail++
	}
}

// fastProcess is a minimal device for driver-cost benchmarks: it reads just
// enough of each Tx packet to find its req_id (the data descriptors up to
// LAST in the SQ or the packet's first LLQ entry), completes it, and
// "receives" one frame of the same length into the next posted Rx buffer
// without copying data. Frames must fit one LLQ entry's descriptors and one
// Rx buffer.
func (f *fakeDev) fastProcess() {
	for uint16(f.txHead) != uint16(f.txDB) {
		var id uint16
		length := 0
		if f.llq {
			es := uint32(f.layout.EntrySize())
			e := f.mem.b[fakeLLQOff+(f.txHead&f.txMask)*es:][:es]
			for s := 0; s < f.layout.DescsBeforeHeader(); s++ {
				w0 := binary.LittleEndian.Uint32(e[s*16:])
				if w0&spec.TxDescMetaDescMask != 0 {
					continue
				}
				if w0&spec.TxDescCompReqMask != 0 {
					w1 := binary.LittleEndian.Uint32(e[s*16+4:])
					id = uint16(w0>>16&0x3F)<<10 | uint16(w1>>22)
					length = int(e[s*16+15])
				}
				length += int(w0 & 0xFFFF)
				if w0&spec.TxDescLastMask != 0 {
					break
				}
			}
			f.txHead++
		} else {
			for {
				b := f.txSQ[(f.txHead&f.txMask)*16:][:16]
				f.txHead++
				w0 := binary.LittleEndian.Uint32(b)
				if w0&spec.TxDescMetaDescMask != 0 {
					continue
				}
				if w0&spec.TxDescCompReqMask != 0 {
					id = uint16(w0>>16&0x3F)<<10 | uint16(binary.LittleEndian.Uint32(b[4:])>>22)
				}
				length += int(w0 & 0xFFFF)
				if w0&spec.TxDescLastMask != 0 {
					break
				}
			}
		}
		f.writeTxCompletion(id)
		// Rx: one buffer, one completion.
		if uint16(f.rxDB) == uint16(f.rxHead) {
			f.rxDrops++
			continue
		}
		d := f.rxSQ[(f.rxHead&f.rxMask)*16:][:16]
		f.rxHead++
		reqID := binary.LittleEndian.Uint16(d[4:])
		cpos := f.rxCQTail
		c := f.rxCQ[(cpos&f.rxMask)*RxCQEntrySize:][:16]
		binary.LittleEndian.PutUint32(c[4:], uint32(length)|uint32(reqID)<<16)
		binary.LittleEndian.PutUint32(c[8:], f.hash)
		binary.LittleEndian.PutUint32(c[0:], phaseBit(cpos, f.rxShift)<<24|spec.RxCdescFirstMask|spec.RxCdescLastMask|
			uint32(spec.L3ProtoIPv4)|uint32(spec.L4ProtoTCP)<<8|spec.RxCdescL4CsumCheckedMask)
		f.rxCQTail++
	}
}
