package enasim

import (
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
		d := spec.TxDesc{Length: uint16(len(h.frame)), ReqID: uint16(pos) % 256, First: true, Last: true, CompReq: true, Phase: ph, BufAddr: tx.bufs.Addr}
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
