package rings

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/enanet/enanet/ena/spec"
)

// mkFrame returns n deterministic bytes.
func mkFrame(n int, seed uint32) []byte {
	b := make([]byte, n)
	x := seed*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// split cuts b into k segments of varying size (some may be empty).
func split(b []byte, k int, r *rand.Rand) [][]byte {
	if k <= 1 || len(b) == 0 {
		return [][]byte{b}
	}
	cuts := make([]int, 0, k+1)
	cuts = append(cuts, 0)
	for i := 1; i < k; i++ {
		cuts = append(cuts, r.IntN(len(b)+1))
	}
	cuts = append(cuts, len(b))
	for i := 1; i < len(cuts); i++ { // insertion sort
		for j := i; j > 0 && cuts[j] < cuts[j-1]; j-- {
			cuts[j], cuts[j-1] = cuts[j-1], cuts[j]
		}
	}
	segs := make([][]byte, 0, k)
	for i := 1; i < len(cuts); i++ {
		segs = append(segs, b[cuts[i-1]:cuts[i]])
	}
	return segs
}

// rxCollect polls until nothing more arrives and returns copies of frames.
func rxCollect(t testing.TB, rx *RxQueue) ([][]byte, []RxPacket) {
	t.Helper()
	var frames [][]byte
	var pkts []RxPacket
	for {
		n, err := rx.Poll(64, func(p *RxPacket) {
			var fr []byte
			total := 0
			for _, f := range p.Frags[:p.NFrags] {
				fr = append(fr, f...)
				total += len(f)
			}
			if total != p.Len {
				t.Errorf("RxPacket.Len %d, frags hold %d", p.Len, total)
			}
			frames = append(frames, fr)
			cp := *p
			cp.Frags = [MaxRxFrags][]byte{}
			pkts = append(pkts, cp)
		})
		if err != nil {
			t.Fatalf("Poll: %v", err)
		}
		if n == 0 {
			return frames, pkts
		}
	}
}

type modeCase struct {
	name string
	o    pairOpts
}

var modes = []modeCase{
	{"host", pairOpts{}},
	{"llq128", pairOpts{llq: true, entrySize: 128}},
	{"llq256", pairOpts{llq: true, entrySize: 256}},
}

// TestLoopbackFrames sends frames of many sizes, split into many segment
// shapes, through each placement mode and checks the device reassembled
// them byte for byte and the Rx side handed them up unchanged.
func TestLoopbackFrames(t *testing.T) {
	sizes := []int{1, 60, 64, 95, 96, 97, 200, 223, 224, 225, 1514, 2047, 2048, 2049, 4200, 9014}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			tx, rx, f := newPair(t, m.o)
			f.record = true
			r := rand.New(rand.NewPCG(1, 2))
			var want [][]byte
			for i, n := range sizes {
				fr := mkFrame(n, uint32(i))
				want = append(want, fr)
				if err := tx.Send(split(fr, 1+i%4, r), TxOffload{}); err != nil {
					t.Fatalf("Send %d bytes: %v", n, err)
				}
			}
			tx.Flush()
			f.process()
			f.check(t)
			if n, err := tx.Reclaim(); err != nil || n != len(sizes) {
				t.Fatalf("Reclaim = %d, %v; want %d", n, err, len(sizes))
			}
			got, _ := rxCollect(t, rx)
			if len(got) != len(want) {
				t.Fatalf("received %d frames, want %d", len(got), len(want))
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Errorf("frame %d (%d bytes) corrupted", i, len(want[i]))
				}
				if !bytes.Equal(f.sent[i].frame, want[i]) {
					t.Errorf("device saw frame %d wrong", i)
				}
			}
			// LLQ: header_length is what was pushed; the entry count
			// follows the layout (§8.2).
			if m.o.llq {
				push := tx.pushMax
				for i, s := range f.sent {
					if int(s.first.HeaderLen) != min(len(want[i]), push) {
						t.Errorf("frame %d: header_length %d, want %d", i, s.first.HeaderLen, min(len(want[i]), push))
					}
					if want := tx.layout.EntriesFor(s.ndescs); s.entries != want {
						t.Errorf("frame %d: %d entries, want %d", i, s.entries, want)
					}
				}
			}
			if tx.InFlight() != 0 {
				t.Errorf("InFlight = %d after reclaiming all", tx.InFlight())
			}
			st := tx.Stats()
			if st.Packets != uint64(len(sizes)) || st.Completions != uint64(len(sizes)) || st.Doorbells != 1 {
				t.Errorf("Tx stats %+v", st)
			}
			rs := rx.Stats()
			if rs.Packets != uint64(len(sizes)) || rx.Posted() != rx.Depth()-1 {
				t.Errorf("Rx stats %+v, posted %d", rs, rx.Posted())
			}
		})
	}
}

// TestManyWraps runs tens of thousands of packets through small rings so
// the phase flips thousands of times on every ring, with completions in
// reverse order, mixed sizes (multi-buffer included) and batch sizes up to
// the ring limit.
func TestManyWraps(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			o := m.o
			o.depth = 16
			o.rxDepth = 32
			o.txBuf = 512
			o.rxBuf = 1024
			tx, rx, f := newPair(t, o)
			f.order = orderReverse
			r := rand.New(rand.NewPCG(3, 4))
			frames := make([][]byte, 8)
			for i := range frames {
				frames[i] = mkFrame([]int{60, 64, 300, 511, 512, 513, 1514, 1700}[i], uint32(i))
			}
			sent, recv := 0, 0
			var got []int
			for round := 0; round < 8000; round++ {
				batch := 1 + r.IntN(8)
				var idx []int
				for range batch {
					k := r.IntN(len(frames))
					err := tx.Send(split(frames[k], 1+r.IntN(3), r), TxOffload{})
					if errors.Is(err, ErrNoSpace) {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					idx = append(idx, k)
				}
				tx.Flush()
				f.process()
				if _, err := tx.Reclaim(); err != nil {
					t.Fatal(err)
				}
				got = got[:0]
				if _, err := rx.Poll(64, func(p *RxPacket) {
					var fr []byte
					for _, x := range p.Frags[:p.NFrags] {
						fr = append(fr, x...)
					}
					k := idx[len(got)]
					if !bytes.Equal(fr, frames[k]) {
						t.Fatalf("round %d: frame %d corrupted (len %d want %d)", round, len(got), len(fr), len(frames[k]))
					}
					got = append(got, k)
				}); err != nil {
					t.Fatal(err)
				}
				if len(got) != len(idx) {
					t.Fatalf("round %d: received %d of %d (drops %d)", round, len(got), len(idx), f.rxDrops)
				}
				sent += len(idx)
				recv += len(got)
			}
			f.check(t)
			if wraps := tx.tail / 16; wraps < 1000 {
				t.Errorf("only %d Tx wraps", wraps)
			}
			if wraps := rx.cqHead / 32; wraps < 1000 {
				t.Errorf("only %d Rx wraps", wraps)
			}
			if tx.InFlight() != 0 || tx.Stats().Packets != uint64(sent) || rx.Stats().Packets != uint64(recv) {
				t.Errorf("inflight %d stats %+v %+v", tx.InFlight(), tx.Stats(), rx.Stats())
			}
			t.Logf("%d packets, %d Tx slots (%d wraps), %d Rx completions", sent, tx.tail, tx.tail/16, rx.cqHead)
		})
	}
}

// TestOutOfOrderCompletions holds completions and releases them in a random
// permutation: every packet is freed exactly once and the ring keeps going
// (§7.5).
func TestOutOfOrderCompletions(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			o := m.o
			o.depth = 64
			o.txBuf = 256
			tx, _, f := newPair(t, o)
			f.order = orderHold
			f.loop = false
			r := rand.New(rand.NewPCG(5, 6))
			for round := 0; round < 200; round++ {
				n := 0
				for {
					fr := mkFrame(60+r.IntN(1400), uint32(round))
					err := tx.Send([][]byte{fr}, TxOffload{})
					if errors.Is(err, ErrNoSpace) {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					n++
					if r.IntN(8) == 0 {
						break
					}
				}
				tx.Flush()
				f.process()
				// Release a random subset, in random order.
				perm := r.Perm(len(f.done))
				keep := r.IntN(len(perm) + 1)
				held := append([]uint16(nil), f.done...)
				f.done = f.done[:0]
				for _, p := range perm[keep:] {
					f.done = append(f.done, held[p])
				}
				f.release(nil)
				for _, p := range perm[:keep] {
					f.done = append(f.done, held[p])
				}
				if _, err := tx.Reclaim(); err != nil {
					t.Fatal(err)
				}
				if tx.InFlight() != len(f.done) {
					t.Fatalf("round %d: in flight %d, device holds %d", round, tx.InFlight(), len(f.done))
				}
			}
			f.release(nil)
			if _, err := tx.Reclaim(); err != nil {
				t.Fatal(err)
			}
			f.check(t)
			if tx.InFlight() != 0 || tx.tail != tx.head || len(tx.bufFree) != cap(tx.bufFree) || len(tx.linFree) != txLinearSlots {
				t.Errorf("after all completions: inflight %d tail %d head %d bufs %d", tx.InFlight(), tx.tail, tx.head, len(tx.bufFree))
			}
		})
	}
}

// TestNoSpace fills the ring with completions held: the driver never has
// more than depth-1 slots outstanding (§7.8).
func TestNoSpace(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			o := m.o
			o.depth = 32
			o.metaCaching = true
			tx, _, f := newPair(t, o)
			f.order, f.loop = orderHold, false
			n := 0
			for {
				err := tx.Send([][]byte{mkFrame(1000, 1)}, TxOffload{})
				if errors.Is(err, ErrNoSpace) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				n++
			}
			if n != 31 || tx.tail-tx.head != 31 || tx.Stats().NoSpace != 0 {
				// NoSpace is published at the next Flush.
				if n != 31 {
					t.Fatalf("sent %d packets into a 32-deep ring, want 31", n)
				}
			}
			tx.Flush()
			if tx.Stats().NoSpace != 1 {
				t.Errorf("NoSpace = %d", tx.Stats().NoSpace)
			}
			f.process()
			f.release(nil)
			if k, err := tx.Reclaim(); k != 31 || err != nil {
				t.Fatalf("Reclaim = %d, %v", k, err)
			}
			if err := tx.Send([][]byte{mkFrame(100, 1)}, TxOffload{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestDescriptorLimit: with a small per-packet limit a multi-buffer frame is
// copied into one contiguous slot and described by one descriptor (§7.9).
func TestDescriptorLimit(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			o := m.o
			o.maxDescs = 3
			o.txBuf = 1024
			o.metaCaching = true
			tx, rx, f := newPair(t, o)
			f.record = true
			small := mkFrame(1500, 1) // 2 buffers (1 after a push)
			big := mkFrame(5000, 2)   // 5 buffers: over the limit
			csum := TxOffload{L3: spec.L3ProtoIPv4, L4: spec.L4ProtoTCP, L3Csum: true, L4Csum: true, L3HdrOff: 14, L3HdrLen: 20, L4HdrLen: 5}
			for _, c := range []struct {
				fr  []byte
				off TxOffload
			}{{small, TxOffload{}}, {big, TxOffload{}}, {big, csum}, {small, csum}} {
				if err := tx.Send(split(c.fr, 3, rand.New(rand.NewPCG(1, 1))), c.off); err != nil {
					t.Fatal(err)
				}
			}
			tx.Flush()
			f.process()
			f.check(t)
			if _, err := tx.Reclaim(); err != nil {
				t.Fatal(err)
			}
			got, _ := rxCollect(t, rx)
			want := [][]byte{small, big, big, small}
			for i := range want {
				if i >= len(got) || !bytes.Equal(got[i], want[i]) {
					t.Fatalf("frame %d corrupted or missing", i)
				}
				if f.sent[i].ndescs > 3 {
					t.Errorf("frame %d used %d descriptors, limit 3", i, f.sent[i].ndescs)
				}
			}
			if f.sent[1].ndescs != 1 || f.sent[2].ndescs != 2 {
				t.Errorf("linearised frames used %d and %d descriptors, want 1 and 2 (meta)", f.sent[1].ndescs, f.sent[2].ndescs)
			}
			if tx.Stats().Linearized != 2 {
				t.Errorf("Linearized = %d, want 2", tx.Stats().Linearized)
			}
			if len(tx.linFree) != txLinearSlots {
				t.Errorf("linear slots not returned")
			}
		})
	}
}

// TestLLQContinuationEntries: a chain longer than the first entry's
// descriptor slots continues in further entries, each its own SQ slot with
// its own phase (§8.2); runs across the ring wrap.
func TestLLQContinuationEntries(t *testing.T) {
	for _, es := range []int{128, 256} {
		for _, dbh := range []int{1, 2, 4} {
			o := pairOpts{llq: true, entrySize: es, dbh: dbh, depth: 16, txBuf: 64, maxDescs: 30, rxBuf: 4096}
			tx, rx, f := newPair(t, o)
			f.record = true
			csum := TxOffload{L3: spec.L3ProtoIPv6, L4: spec.L4ProtoUDP, L4Csum: true, L4Partial: true, DF: true, L3HdrOff: 14, L3HdrLen: 40, L4HdrLen: 2}
			for i := 0; i < 40; i++ {
				fr := mkFrame(tx.pushMax+64*(1+i%25), uint32(i))
				if err := tx.Send([][]byte{fr}, csum); err != nil {
					t.Fatalf("es %d dbh %d frame %d: %v", es, dbh, i, err)
				}
				tx.Flush()
				f.process()
				if _, err := tx.Reclaim(); err != nil {
					t.Fatal(err)
				}
				got, _ := rxCollect(t, rx)
				if len(got) != 1 || !bytes.Equal(got[0], fr) {
					t.Fatalf("es %d dbh %d frame %d corrupted", es, dbh, i)
				}
				s := f.sent[len(f.sent)-1]
				if s.entries != tx.layout.EntriesFor(s.ndescs) || s.entries < 1 {
					t.Fatalf("entries %d for %d descs", s.entries, s.ndescs)
				}
			}
			f.check(t)
			if st := tx.Stats(); st.LLQEntries != uint64(tx.tail) || st.LLQEntries <= 40 {
				t.Errorf("es %d dbh %d: LLQEntries %d tail %d", es, dbh, st.LLQEntries, tx.tail)
			}
		}
	}
}

// TestLLQBurstLimit: the driver rings the doorbell before writing more
// entries than the burst limit since the last doorbell (§8.1); the fake
// device fails on a doorbell covering more.
func TestLLQBurstLimit(t *testing.T) {
	tx, rx, f := newPair(t, pairOpts{llq: true, depth: 128, burst: 4, txBuf: 64, maxDescs: 10})
	for i := 0; i < 30; i++ {
		n := 60
		if i%3 == 0 {
			n = 96 + 64*8 // 8 buffers + data: 2 entries
		}
		if err := tx.Send([][]byte{mkFrame(n, uint32(i))}, TxOffload{}); err != nil {
			t.Fatal(err)
		}
	}
	tx.Flush()
	f.check(t)
	if db := tx.Stats().Doorbells; db < uint64(tx.tail/4) {
		t.Errorf("%d doorbells for %d entries with burst 4", db, tx.tail)
	}
	f.process()
	f.check(t)
	if n, err := tx.Reclaim(); n != 30 || err != nil {
		t.Fatalf("Reclaim %d %v", n, err)
	}
	if got, _ := rxCollect(t, rx); len(got) != 30 {
		t.Fatalf("got %d frames", len(got))
	}
	if _, err := NewTx(TxConfig{Depth: 128, DMA: f.dma, Regs: f.regs, LLQ: f.mem, Layout: f.layout, BurstEntries: 1}); err == nil {
		t.Error("burst limit below one packet's entries accepted")
	}
}

// TestMetaCaching: with caching a meta descriptor goes out only when the
// offload metadata changes; without, on every packet (§7.4). The Rx side
// reports what the "device" checked.
func TestMetaCaching(t *testing.T) {
	a := TxOffload{L3: spec.L3ProtoIPv4, L4: spec.L4ProtoTCP, L3Csum: true, L4Csum: true, L4Partial: true, DF: true, L3HdrOff: 14, L3HdrLen: 20, L4HdrLen: 5}
	b := a
	b.L4HdrLen = 8
	seq := []TxOffload{a, a, {}, a, b, b, a}
	for _, m := range modes {
		for _, caching := range []bool{true, false} {
			o := m.o
			o.metaCaching = caching
			tx, rx, f := newPair(t, o)
			f.record = true
			for _, off := range seq {
				if err := tx.Send([][]byte{mkFrame(300, 1)}, off); err != nil {
					t.Fatal(err)
				}
			}
			tx.Flush()
			f.process()
			f.check(t)
			wantMeta := []bool{true, false, false, false, true, false, true}
			if !caching {
				wantMeta = []bool{true, true, true, true, true, true, true}
			}
			nmeta := 0
			for i, s := range f.sent {
				if s.meta != wantMeta[i] {
					t.Errorf("%s caching=%v: packet %d meta %v, want %v", m.name, caching, i, s.meta, wantMeta[i])
				}
				if s.meta {
					nmeta++
				}
				off := seq[i]
				if off.Active() {
					w := uint32(off.L3HdrLen) | uint32(off.L3HdrOff)<<8 | uint32(off.L4HdrLen)<<16
					if s.metaW2 != w {
						t.Errorf("packet %d: device metadata %#x, want %#x", i, s.metaW2, w)
					}
					d := s.first
					if d.L3Proto != off.L3 || d.L4Proto != off.L4 || !d.L3Csum || !d.L4Csum || !d.L4CsumPartial || !d.DF {
						t.Errorf("packet %d: offload bits %+v", i, d)
					}
				} else if s.first.L3Csum || s.first.L4Csum || s.first.L3Proto != 0 {
					t.Errorf("packet %d: offload bits without offload", i)
				} else if s.meta && s.metaW2 != 0 {
					t.Errorf("packet %d: non-zero metadata without offload", i)
				}
			}
			if tx.Stats().MetaDescs != uint64(nmeta) {
				t.Errorf("MetaDescs %d want %d", tx.Stats().MetaDescs, nmeta)
			}
			if _, err := tx.Reclaim(); err != nil {
				t.Fatal(err)
			}
			_, pkts := rxCollect(t, rx)
			for i, p := range pkts {
				if seq[i].Active() && (p.L3 != spec.L3ProtoIPv4 || p.L4 != spec.L4ProtoTCP || !p.L4CsumChecked || p.L4CsumErr || p.L3CsumErr) {
					t.Errorf("rx packet %d: %+v", i, p)
				}
				if p.Hash != f.hash^300 {
					t.Errorf("rx packet %d hash %#x", i, p.Hash)
				}
			}
			rs := rx.Stats()
			if rs.L3CsumGood != 6 || rs.L4CsumGood != 6 || rs.L3CsumBad != 0 {
				t.Errorf("rx csum stats %+v", rs)
			}
			// After a reset the driver forgets the device's cache.
			tx.Reset()
			rx.Reset()
			f.createQueues(t, tx, rx)
			f.sent = f.sent[:0]
			if err := tx.Send([][]byte{mkFrame(300, 1)}, a); err != nil {
				t.Fatal(err)
			}
			tx.Flush()
			f.process()
			f.check(t)
			if !f.sent[0].meta {
				t.Errorf("no meta descriptor after reset")
			}
		}
	}
}

// TestRxChecksumStats: bad checksums reported by the device are handed up
// and counted (§7.7).
func TestRxChecksumStats(t *testing.T) {
	tx, rx, f := newPair(t, pairOpts{})
	off := TxOffload{L3: spec.L3ProtoIPv4, L4: spec.L4ProtoUDP, L3Csum: true, L4Csum: true, L3HdrOff: 14, L3HdrLen: 20, L4HdrLen: 2}
	f.rxStatus = spec.RxCdescL3CsumErrMask | spec.RxCdescL4CsumErrMask
	tx.Send([][]byte{mkFrame(100, 1)}, off)
	tx.Flush()
	f.process()
	f.rxStatus = 0
	tx.Send([][]byte{mkFrame(100, 1)}, TxOffload{L3: spec.L3ProtoIPv4, L4: spec.L4ProtoUDP, L3Csum: true, L3HdrOff: 14, L3HdrLen: 20})
	tx.Flush()
	f.process()
	_, pkts := rxCollect(t, rx)
	if len(pkts) != 2 || !pkts[0].L3CsumErr || !pkts[0].L4CsumErr || !pkts[0].L4CsumChecked || pkts[1].L4CsumChecked {
		t.Fatalf("packets %+v", pkts)
	}
	rs := rx.Stats()
	if rs.L3CsumBad != 1 || rs.L4CsumBad != 1 || rs.L3CsumGood != 1 || rs.L4CsumUnchecked != 1 {
		t.Errorf("stats %+v", rs)
	}
}

// TestJumboRx: a 9001-byte MTU frame spans five 2 KiB Rx buffers, FIRST on
// the first completion, LAST on the fifth (§7.7).
func TestJumboRx(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			tx, rx, f := newPair(t, m.o)
			fr := mkFrame(9001+14, 9)
			for i := 0; i < 100; i++ {
				if err := tx.Send([][]byte{fr[:14], fr[14:]}, TxOffload{}); err != nil {
					t.Fatal(err)
				}
				tx.Flush()
				f.process()
				if _, err := tx.Reclaim(); err != nil {
					t.Fatal(err)
				}
				n, err := rx.Poll(8, func(p *RxPacket) {
					if p.NFrags != 5 || p.Len != len(fr) {
						t.Fatalf("jumbo frame in %d frags, %d bytes", p.NFrags, p.Len)
					}
					off := 0
					for _, x := range p.Frags[:p.NFrags] {
						if !bytes.Equal(x, fr[off:off+len(x)]) {
							t.Fatal("jumbo frame corrupted")
						}
						off += len(x)
					}
				})
				if n != 1 || err != nil {
					t.Fatalf("Poll %d %v", n, err)
				}
			}
			f.check(t)
		})
	}
}

// TestRxPartialFrame: a frame whose LAST completion is not written yet is
// not delivered; the next Poll delivers it whole.
func TestRxPartialFrame(t *testing.T) {
	tx, rx, f := newPair(t, pairOpts{})
	tx.Send([][]byte{mkFrame(5000, 1)}, TxOffload{})
	tx.Flush()
	f.process()
	// Hide the last completion: flip its phase back.
	last := (f.rxCQTail - 1) & f.rxMask
	f.rxCQ[last*16+3] ^= 1
	if n, err := rx.Poll(8, func(*RxPacket) { t.Fatal("partial frame delivered") }); n != 0 || err != nil {
		t.Fatalf("Poll %d %v", n, err)
	}
	f.rxCQ[last*16+3] ^= 1
	if n, err := rx.Poll(8, func(p *RxPacket) {
		if p.Len != 5000 || p.NFrags != 3 {
			t.Fatalf("frame %d bytes in %d frags", p.Len, p.NFrags)
		}
	}); n != 1 || err != nil {
		t.Fatalf("Poll %d %v", n, err)
	}
	if rx.Posted() != rx.Depth()-1 {
		t.Errorf("posted %d", rx.Posted())
	}
}

func wantDevErr(t *testing.T, err error, reason spec.ResetReason) {
	t.Helper()
	var de *DeviceError
	if !errors.As(err, &de) {
		t.Fatalf("error %v is not a DeviceError", err)
	}
	if de.Reason != reason {
		t.Fatalf("reason %v, want %v (%v)", de.Reason, reason, err)
	}
}

// TestTxBadCompletions injects each bad Tx completion: the queue reports
// the matching reset reason, counts it once, consumes nothing, and works
// again after Reset and re-creation (§7.5, §2.3).
func TestTxBadCompletions(t *testing.T) {
	cases := []struct {
		name    string
		mbz     bool
		corrupt func(w0 uint32) uint32
		reason  spec.ResetReason
		counter func(TxStats) uint64
	}{
		{"req_id out of range", false, func(w0 uint32) uint32 { return w0&^0xFFFF | 0xFFF0 }, spec.ResetInvTxReqID, func(s TxStats) uint64 { return s.BadReqID }},
		{"req_id at depth", false, func(w0 uint32) uint32 { return w0&^0xFFFF | 64 }, spec.ResetInvTxReqID, func(s TxStats) uint64 { return s.BadReqID }},
		{"req_id not outstanding", false, func(w0 uint32) uint32 { return w0&^0xFFFF | 40 }, spec.ResetInvTxReqID, func(s TxStats) uint64 { return s.BadReqID }},
		{"mbz bits", true, func(w0 uint32) uint32 { return w0 | 0x80<<24 }, spec.ResetTxDescriptorMalformed, func(s TxStats) uint64 { return s.MalformedCdesc }},
	}
	for _, m := range modes {
		for _, c := range cases {
			t.Run(m.name+"/"+c.name, func(t *testing.T) {
				o := m.o
				o.depth, o.checkMBZ = 64, c.mbz
				tx, rx, f := newPair(t, o)
				for i := 0; i < 3; i++ {
					tx.Send([][]byte{mkFrame(100, 1)}, TxOffload{})
				}
				tx.Flush()
				f.corruptTx = c.corrupt
				f.process()
				n, err := tx.Reclaim()
				if n != 0 {
					t.Errorf("Reclaim consumed %d before the bad completion", n)
				}
				wantDevErr(t, err, c.reason)
				if _, err2 := tx.Reclaim(); err2 != err {
					t.Errorf("second Reclaim returned %v", err2)
				}
				if got := c.counter(tx.Stats()); got != 1 {
					t.Errorf("counter = %d, want 1", got)
				}
				if tx.InFlight() != 3 {
					t.Errorf("in flight %d", tx.InFlight())
				}
				// Recovery: reset rings, re-create the device queues.
				tx.Reset()
				rx.Reset()
				if tx.Stats().Dropped != 3 {
					t.Errorf("Dropped %d", tx.Stats().Dropped)
				}
				if err := tx.Send([][]byte{mkFrame(100, 1)}, TxOffload{}); err == nil {
					t.Error("Send on an unbound queue succeeded")
				}
				f.createQueues(t, tx, rx)
				for i := 0; i < 200; i++ {
					if err := tx.Send([][]byte{mkFrame(100, 1)}, TxOffload{}); err != nil {
						t.Fatal(err)
					}
					tx.Flush()
					f.process()
					if _, err := tx.Reclaim(); err != nil {
						t.Fatal(err)
					}
					if got, _ := rxCollect(t, rx); len(got) != 1 {
						t.Fatal("no frame after recovery")
					}
				}
				f.check(t)
			})
		}
	}
	// Without the CDESC_MBZ capability the bits are not checked.
	tx, _, f := newPair(t, pairOpts{})
	tx.Send([][]byte{mkFrame(100, 1)}, TxOffload{})
	tx.Flush()
	f.corruptTx = func(w0 uint32) uint32 { return w0 | 0xC0<<24 }
	f.process()
	if n, err := tx.Reclaim(); n != 1 || err != nil {
		t.Errorf("MBZ without CheckMBZ: %d %v", n, err)
	}
}

// TestRxBadCompletions injects each bad Rx completion (§7.7).
func TestRxBadCompletions(t *testing.T) {
	cases := []struct {
		name    string
		size    int
		mbz     bool
		corrupt func(i int, w0, w1 uint32) (uint32, uint32)
		reason  spec.ResetReason
		counter func(RxStats) uint64
	}{
		{"req_id out of range", 100, false, func(i int, w0, w1 uint32) (uint32, uint32) { return w0, w1&0xFFFF | 0x8000<<16 }, spec.ResetInvRxReqID, func(s RxStats) uint64 { return s.BadReqID }},
		{"req_id not posted", 5000, false, func(i int, w0, w1 uint32) (uint32, uint32) {
			if i == 2 { // repeat the frame's first buffer id (1)
				return w0, w1&0xFFFF | 1<<16
			}
			return w0, w1
		}, spec.ResetInvRxReqID, func(s RxStats) uint64 { return s.BadReqID }},
		// A device that overran the CQ names a buffer the same Poll just
		// delivered (the good frame's, id 0): it must not be posted again
		// before the Poll's completions are all checked.
		{"req_id delivered in this Poll", 100, false, func(i int, w0, w1 uint32) (uint32, uint32) { return w0, w1&0xFFFF | 0<<16 }, spec.ResetInvRxReqID, func(s RxStats) uint64 { return s.BadReqID }},
		{"FIRST on second", 5000, false, func(i int, w0, w1 uint32) (uint32, uint32) {
			if i == 1 {
				w0 |= spec.RxCdescFirstMask
			}
			return w0, w1
		}, spec.ResetRxDescriptorMalformed, func(s RxStats) uint64 { return s.MalformedCdesc }},
		{"FIRST missing", 100, false, func(i int, w0, w1 uint32) (uint32, uint32) { return w0 &^ spec.RxCdescFirstMask, w1 }, spec.ResetRxDescriptorMalformed, func(s RxStats) uint64 { return s.MalformedCdesc }},
		{"too many descs", 9000, false, nil, spec.ResetTooManyRxDescs, func(s RxStats) uint64 { return s.TooManyDescs }},
		{"mbz7", 100, true, func(i int, w0, w1 uint32) (uint32, uint32) { return w0 | spec.RxCdescMBZ7Mask, w1 }, spec.ResetRxDescriptorMalformed, func(s RxStats) uint64 { return s.MalformedCdesc }},
		{"mbz17", 100, true, func(i int, w0, w1 uint32) (uint32, uint32) { return w0 | spec.RxCdescMBZ17Mask, w1 }, spec.ResetRxDescriptorMalformed, func(s RxStats) uint64 { return s.MalformedCdesc }},
		{"length over buffer", 100, false, func(i int, w0, w1 uint32) (uint32, uint32) { return w0, w1&^0xFFFF | 4000 }, spec.ResetRxDescriptorMalformed, func(s RxStats) uint64 { return s.MalformedCdesc }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := pairOpts{depth: 64, checkMBZ: c.mbz, rxMaxDescs: 4}
			tx, rx, f := newPair(t, o)
			// One good frame first, delivered by the same Poll, then the
			// corrupted one.
			tx.Send([][]byte{mkFrame(100, 1)}, TxOffload{})
			tx.Flush()
			f.process()
			tx.Send([][]byte{mkFrame(c.size, 2)}, TxOffload{})
			tx.Flush()
			f.corruptRx = c.corrupt
			f.process()
			delivered := 0
			n, err := rx.Poll(8, func(*RxPacket) { delivered++ })
			if n != 1 || delivered != 1 {
				t.Errorf("good frame before the bad one: n=%d delivered=%d", n, delivered)
			}
			wantDevErr(t, err, c.reason)
			if n2, err2 := rx.Poll(8, func(*RxPacket) { t.Error("delivered after error") }); n2 != 0 || err2 != err {
				t.Errorf("second Poll: %d %v", n2, err2)
			}
			if got := c.counter(rx.Stats()); got != 1 {
				t.Errorf("counter = %d, want 1", got)
			}
			if rx.Pending() {
				t.Error("Pending on a stopped queue")
			}
			// Recover.
			tx.Reset()
			rx.Reset()
			f.createQueues(t, tx, rx)
			for i := 0; i < 200; i++ {
				tx.Send([][]byte{mkFrame(3000, uint32(i))}, TxOffload{})
				tx.Flush()
				f.process()
				if _, err := tx.Reclaim(); err != nil {
					t.Fatal(err)
				}
				if got, _ := rxCollect(t, rx); len(got) != 1 {
					t.Fatal("no frame after recovery")
				}
			}
			f.check(t)
		})
	}
}

// TestOverdue: packets without completions for the given number of ticks
// are reported, and counted once each (§9.2).
func TestOverdue(t *testing.T) {
	tx, _, f := newPair(t, pairOpts{})
	f.order, f.loop = orderHold, false
	for i := 0; i < 5; i++ {
		tx.Send([][]byte{mkFrame(100, 1)}, TxOffload{})
	}
	tx.Flush()
	f.process()
	tx.Tick()
	tx.Send([][]byte{mkFrame(100, 1)}, TxOffload{})
	tx.Flush()
	f.process()
	tx.Tick()
	if n := tx.Overdue(2); n != 5 {
		t.Errorf("Overdue(2) = %d, want 5", n)
	}
	if n := tx.Overdue(1); n != 6 {
		t.Errorf("Overdue(1) = %d, want 6", n)
	}
	tx.Overdue(1)
	if m := tx.Stats().MissedCompletion; m != 6 {
		t.Errorf("MissedCompletion %d, want 6", m)
	}
	f.release(nil)
	tx.Reclaim()
	if n := tx.Overdue(0); n != 0 {
		t.Errorf("Overdue after completions = %d", n)
	}
}

// TestConfigErrors: configurations the queue cannot honour are refused with
// an error, not a panic.
func TestConfigErrors(t *testing.T) {
	d, r := newFakeDMA(), &fakeRegs{}
	l, _ := spec.NewLLQLayout(128, 2, true)
	bad := []TxConfig{
		{Depth: 0, DMA: d, Regs: r},
		{Depth: 100, DMA: d, Regs: r},
		{Depth: 64, Regs: r},
		{Depth: 64, DMA: d, Regs: r, MaxDescs: 1},
		{Depth: 64, DMA: d, Regs: r, BufSize: 70000},
		{Depth: 64, DMA: d, Regs: r, LLQ: &fakeMem{b: make([]byte, 1<<20)}},
		{Depth: 64, DMA: d, Regs: r, LLQ: &fakeMem{b: make([]byte, 4096)}, Layout: l},
		{Depth: 64, DMA: d, Regs: r, MaxFrame: 70000},
	}
	for i, c := range bad {
		if q, err := NewTx(c); err == nil {
			q.Close()
			t.Errorf("tx config %d accepted", i)
		}
	}
	for i, c := range []RxConfig{{Depth: 3, DMA: d, Regs: r}, {Depth: 64, DMA: d}, {Depth: 64, DMA: d, Regs: r, BufSize: 100000}} {
		if q, err := NewRx(c); err == nil {
			q.Close()
			t.Errorf("rx config %d accepted", i)
		}
	}
	if len(d.regions) != 0 {
		t.Errorf("%d DMA regions leaked by failed constructors", len(d.regions))
	}
	q, err := NewTx(TxConfig{Depth: 64, DMA: d, Regs: r})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Send([][]byte{{1}}, TxOffload{}); err == nil {
		t.Error("Send before Bind succeeded")
	}
	q.Bind(0x1000, 0)
	if err := q.Send(nil, TxOffload{}); !errors.Is(err, ErrEmptyFrame) {
		t.Errorf("empty frame: %v", err)
	}
	if err := q.Send([][]byte{make([]byte, DefaultMaxTxFrame+1)}, TxOffload{}); !errors.Is(err, ErrFrameTooLong) {
		t.Errorf("long frame: %v", err)
	}
	q.Close()
	q.Close()
	if len(d.regions) != 0 {
		t.Errorf("%d DMA regions leaked", len(d.regions))
	}
}
