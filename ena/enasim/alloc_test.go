package enasim

import (
	"encoding/binary"
	"syscall"
	"testing"

	"github.com/enanet/enanet/ena/spec"
)

// hotLoop is one packet through the hot path with nothing allocated on the
// test side either: write the descriptor (or LLQ entry), ring the doorbell
// (Tx processing, loopback, Rx completion all happen inside), consume the
// Tx and Rx completions and repost the Rx buffer.
type hotLoop struct {
	lr    *loopRig
	frame []byte
	entry []byte // LLQ: prebuilt entry (phase patched per lap)
	// offload is the host descriptor's template (checksum offload bits).
	offload spec.TxDesc
}

func newHotLoop(t testing.TB, prof Profile, llqEntry int) *hotLoop {
	lr := newLoopRig(t, prof, llqEntry, 256, 2048)
	h := &hotLoop{lr: lr, frame: tcp4(1, 2, 40)}
	copy(lr.tx.bufs.Bytes, h.frame)
	if llqEntry != 0 {
		h.entry = make([]byte, llqEntry)
		var descs [32]byte
		m := spec.TxMetaDesc{ExtValid: true, MetaStore: true, MetaType: true, First: true, L3HdrOff: 14, L3HdrLen: 20, L4HdrLen: 5}
		m.Encode(descs[0:16])
		d := spec.TxDesc{Length: 0, First: false, Last: true, CompReq: true, HeaderLen: uint8(len(h.frame))}
		d.Encode(descs[16:32])
		if _, err := spec.BuildLLQFirstEntry(h.entry, lr.layout, descs[:], h.frame); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func (h *hotLoop) step(t testing.TB) {
	tx, rx := h.lr.tx, h.lr.rx
	pos := tx.tail
	ph := phaseAt(pos, tx.depth)
	if h.entry != nil {
		setTxPhase(h.entry[0:], ph)
		setTxPhase(h.entry[16:], ph)
		off := tx.llqOff + uint32(int(pos)%tx.depth*len(h.entry))
		h.lr.d.llq.WriteBlock(off, h.entry)
	} else {
		d := h.offload
		d.Length, d.ReqID, d.Phase, d.BufAddr = uint16(len(h.frame)), uint16(pos)%256, ph, tx.bufs.Addr
		d.First, d.Last, d.CompReq = true, true, true
		d.Encode(tx.ring.Bytes[int(pos)%tx.depth*16:])
	}
	tx.tail++
	h.lr.regs.Write32(tx.db, uint32(tx.tail))
	// Tx completion.
	slot := int(tx.cqHead) % tx.depth
	if c := spec.DecodeTxCompletion(tx.cq.Bytes[slot*8:]); c.Phase != phaseAt(uint16(tx.cqHead), tx.depth) {
		t.Fatalf("no Tx completion (fatal %q)", h.lr.d.FatalReason())
	}
	tx.cqHead++
	// Rx completion and repost of the same buffer.
	slot = int(rx.cqHead) % rx.depth
	c := spec.DecodeRxCompletion(rx.cq.Bytes[slot*16:])
	if c.Phase != phaseAt(uint16(rx.cqHead), rx.depth) || !c.Last || int(c.Length) != len(h.frame) {
		t.Fatalf("no Rx completion")
	}
	rx.cqHead++
	ctrl := spec.RxDescCtrlPosted0
	if phaseAt(rx.tail, rx.depth) {
		ctrl = spec.RxDescCtrlPosted1
	}
	spec.PutRxDesc(rx.ring.Bytes[int(rx.tail)%rx.depth*16:], uint16(rx.bufSize), ctrl, c.ReqID, rx.bufs.Addr+uint64(int(c.ReqID)*rx.bufSize))
	rx.tail++
	h.lr.regs.Write32(rx.db, uint32(rx.tail))
}

// TestHotPathAllocs: doorbell -> Tx processing -> loopback -> Rx completion
// allocates nothing in steady state, in host and LLQ mode.
func TestHotPathAllocs(t *testing.T) {
	for _, c := range []struct {
		name  string
		prof  Profile
		entry int
	}{{"host", ProfileNitroV3, 0}, {"llq128", ProfileNitroV3, 128}, {"llq256", ProfileNitroV4, 256}} {
		t.Run(c.name, func(t *testing.T) {
			h := newHotLoop(t, c.prof, c.entry)
			for range 600 { // warm up past two ring wraps
				h.step(t)
			}
			if a := testing.AllocsPerRun(1000, func() { h.step(t) }); a != 0 {
				t.Fatalf("%v allocations per packet, want 0", a)
			}
		})
	}
}

// BenchmarkLoopback measures one packet through the model's hot path.
func BenchmarkLoopback(b *testing.B) {
	h := newHotLoop(b, ProfileNitroV3, 0)
	b.ReportAllocs()
	for b.Loop() {
		h.step(b)
	}
}

// BenchmarkLoopbackJumbo measures one MTU 9001 TCP frame through the
// model's hot path with the driver's offload (L4 checksum, partial, meta
// cached): Tx read and checksum, Rx write into a 9 KiB buffer and the Rx
// checksum result.
func BenchmarkLoopbackJumbo(b *testing.B) {
	lr := newLoopRig(b, ProfileNitroV3, 0, 256, 9216)
	lr.mustOK(setFeat(spec.FeatMTU, &spec.MTU{MTU: 9001}))
	// A clock a second ahead at every look: the ENI allowances never
	// shape the loop (the model's speed, not the profile's limit).
	var clock int64
	lr.d.Model().SetAllowanceClock(func() int64 { clock += 1e9; return clock })
	f := buildFrame(frameSpec{src: addr("10.0.0.1"), dst: addr("10.0.0.2"), proto: 6, sport: 1, dport: 2, payload: 9001 - 40, noCsum: true})
	binary.BigEndian.PutUint16(f[14+20+16:], pseudoSum(f, 14, 6, len(f)-34))
	// One packet stores the meta descriptor (§7.4); the loop then relies
	// on the cache, as the driver does.
	store := sendOpts{meta: true, meta3: spec.TxMetaDesc{ExtValid: true, MetaStore: true, MetaType: true, L3HdrOff: 14, L3HdrLen: 20, L4HdrLen: 5}}
	lr.roundTrip(b, [][]byte{tcp4(1, 2, 3)}, store)
	h := &hotLoop{lr: lr, frame: f, offload: spec.TxDesc{L3Proto: spec.L3ProtoIPv4, L4Proto: spec.L4ProtoTCP, L4Csum: true, L4CsumPartial: true}}
	copy(lr.tx.bufs.Bytes, f)
	b.SetBytes(int64(len(f)))
	b.ReportAllocs()
	// CPU time as well as wall time: on a shared machine the wall time
	// mostly measures the other processes.
	cpu0 := processCPU()
	for b.Loop() {
		h.step(b)
	}
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	if c := spec.DecodeRxCompletion(lr.rx.cq.Bytes[(int(lr.rx.cqHead)-1)%lr.rx.depth*16:]); !c.L4CsumChecked || c.L4CsumErr {
		b.Fatalf("Rx checksum result: checked %v err %v", c.L4CsumChecked, c.L4CsumErr)
	}
}

// processCPU is the CPU time (user + system) this process has used, ns.
func processCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
