package enasim

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/enanet/enanet/ena/spec"
)

const noVec = spec.MSIXNoVector

// loopRig is a device on a loopback wire with one Tx and one Rx queue.
type loopRig struct {
	*ioRig
	tx *txq
	rx *rxq
}

func newLoopRig(t testing.TB, prof Profile, llqEntry, depth, rxBuf int) *loopRig {
	t.Helper()
	r := newIORig(t, Config{Profile: prof, Wire: NewLoopback(), MAC: testMACA}, llqEntry)
	lr := &loopRig{ioRig: r}
	lr.tx = r.createTx(depth, llqEntry != 0, 1)
	lr.rx = r.createRx(depth, rxBuf, 1)
	return lr
}

// roundTrip sends frames (one doorbell) and returns what came back.
func (lr *loopRig) roundTrip(t testing.TB, frames [][]byte, o sendOpts) ([]rxFrame, []spec.TxCompletion) {
	t.Helper()
	for i, f := range frames {
		oo := o
		oo.reqID = o.reqID + uint16(i)
		lr.tx.send(f, oo)
	}
	lr.tx.doorbell()
	if r := lr.d.FatalReason(); r != "" {
		t.Fatalf("device FATAL: %s", r)
	}
	return lr.rx.poll(), lr.tx.completions()
}

func checkSame(t testing.TB, got []rxFrame, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("received %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i].data, want[i]) {
			t.Fatalf("frame %d differs: got %d bytes, want %d", i, len(got[i].data), len(want[i]))
		}
	}
}

// TestTxRxHost sends frames through host-placement Tx SQs, one and many
// descriptors per frame, and receives them back over the loopback wire.
func TestTxRxHost(t *testing.T) {
	for _, prof := range []Profile{ProfileNoLLQ, ProfileNitroV3} {
		t.Run(prof.Name, func(t *testing.T) {
			lr := newLoopRig(t, prof, 0, 64, 2048)
			frames := [][]byte{tcp4(1, 2, 0), tcp4(3, 4, 100), tcp4(5, 6, 1400)}
			got, comps := lr.roundTrip(t, frames, sendOpts{})
			checkSame(t, got, frames)
			if len(comps) != 3 || comps[0].ReqID != 0 || comps[2].ReqID != 2 {
				t.Fatalf("completions %+v", comps)
			}
			// Multi-descriptor: 100-byte segments, up to 15 descriptors.
			frames = [][]byte{tcp4(7, 8, 1000), tcp4(9, 10, 17)}
			got, comps = lr.roundTrip(t, frames, sendOpts{reqID: 5, seg: 100})
			checkSame(t, got, frames)
			if len(comps) != 2 || comps[0].ReqID != 5 || comps[1].ReqID != 6 {
				t.Fatalf("completions %+v", comps)
			}
			s := lr.d.Stats()
			if s.TxPkts != 5 || s.RxPkts != 5 || s.TxDrops != 0 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

// TestTxRxLLQ sends frames through LLQ Tx SQs with 128- and 256-byte
// entries: frames that fit in the pushed header, frames with buffers,
// frames whose descriptors spill into continuation entries.
func TestTxRxLLQ(t *testing.T) {
	cases := []struct {
		prof  Profile
		entry int
		depth int
	}{
		{ProfileNitroV3, 128, 256},
		{ProfileNitroV4, 256, 512},
		{ProfileNitroV4, 128, 1024},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%d", c.prof.Name, c.entry), func(t *testing.T) {
			lr := newLoopRig(t, c.prof, c.entry, c.depth, 2048)
			small := tcp4(1, 2, 0) // 54 bytes: entirely in the pushed header
			frames := [][]byte{small, tcp4(3, 4, 500), tcp4(5, 6, 1400)}
			// Nitro v4 disables meta caching: every packet needs a meta.
			meta := c.prof.LLQ.AccelFlags&spec.LLQAccelDisableMetaCaching != 0
			got, comps := lr.roundTrip(t, frames, sendOpts{meta: meta})
			checkSame(t, got, frames)
			if len(comps) != len(frames) {
				t.Fatalf("%d completions, want %d", len(comps), len(frames))
			}
			// 64-byte segments: 16+ descriptors, continuation entries.
			frames = [][]byte{tcp4(7, 8, 900)}
			got, _ = lr.roundTrip(t, frames, sendOpts{reqID: 10, seg: 64, meta: meta})
			checkSame(t, got, frames)
		})
	}
}

// TestLLQLayouts runs LLQ with other negotiated layouts: one and four
// descriptors before the header, single-descriptor stride.
func TestLLQLayouts(t *testing.T) {
	for _, c := range []struct {
		dbh      int
		multiple bool
	}{{1, true}, {4, true}, {2, false}, {4, false}} {
		t.Run(fmt.Sprintf("dbh%d/multiple=%v", c.dbh, c.multiple), func(t *testing.T) {
			r := newIORigLLQ(t, Config{Profile: ProfileNitroV3, Wire: NewLoopback()}, 128, c.dbh, c.multiple)
			lr := &loopRig{ioRig: r, tx: r.createTx(64, true, 1), rx: r.createRx(64, 2048, 1)}
			frames := [][]byte{tcp4(1, 2, 0), tcp4(3, 4, 700)}
			got, _ := lr.roundTrip(t, frames, sendOpts{seg: 100, meta: true, meta3: spec.TxMetaDesc{ExtValid: true, MetaStore: true}})
			checkSame(t, got, frames)
		})
	}
}

// TestLLQMetaRequired: with DISABLE_META_CACHING negotiated a packet without
// a meta descriptor is dropped (counted) but still completed.
func TestLLQMetaRequired(t *testing.T) {
	lr := newLoopRig(t, ProfileNitroV4, 256, 512, 2048)
	got, comps := lr.roundTrip(t, [][]byte{tcp4(1, 2, 10)}, sendOpts{})
	if len(got) != 0 || len(comps) != 1 {
		t.Fatalf("got %d frames %d completions, want 0 and 1", len(got), len(comps))
	}
	if s := lr.d.Stats(); s.TxDrops != 1 {
		t.Fatalf("tx_drops %d, want 1", s.TxDrops)
	}
}

// TestJumboRx receives a 9000-byte-MTU frame over five 2 KiB buffers: one
// completion per buffer, FIRST on the first, LAST and the parse results on
// the last.
func TestJumboRx(t *testing.T) {
	lr := newLoopRig(t, ProfileNitroV3, 0, 64, 2048)
	lr.mustOK(setFeat(spec.FeatMTU, &spec.MTU{MTU: 9000}))
	f := tcp4(1, 2, 9000-40)
	got, comps := lr.roundTrip(t, [][]byte{f}, sendOpts{seg: 4096})
	checkSame(t, got, [][]byte{f})
	if len(comps) != 1 {
		t.Fatalf("%d Tx completions", len(comps))
	}
	cs := got[0].comps
	if len(cs) != 5 {
		t.Fatalf("%d Rx completions, want 5", len(cs))
	}
	for i, c := range cs {
		if c.First != (i == 0) || c.Last != (i == 4) || !c.Buffer {
			t.Fatalf("completion %d: first %v last %v buffer %v", i, c.First, c.Last, c.Buffer)
		}
	}
	last := got[0].last()
	if last.L3Proto != spec.L3ProtoIPv4 || last.L4Proto != spec.L4ProtoTCP || !last.L4CsumChecked || last.L4CsumErr || last.L3CsumErr {
		t.Fatalf("last completion parse results %+v", last)
	}
}

// TestMTU: a Tx frame above the MTU is dropped and counted, and the packet
// is still completed; the same frame passes after raising the MTU.
func TestMTU(t *testing.T) {
	lr := newLoopRig(t, ProfileNitroV3, 0, 64, 2048)
	big := tcp4(1, 2, 1500-40+1) // L3 length 1501
	got, comps := lr.roundTrip(t, [][]byte{big}, sendOpts{seg: 1024})
	if len(got) != 0 || len(comps) != 1 {
		t.Fatalf("oversize: got %d frames %d completions", len(got), len(comps))
	}
	if s := lr.d.Stats(); s.TxDrops != 1 {
		t.Fatalf("tx_drops %d, want 1", s.TxDrops)
	}
	if st := lr.status(setFeat(spec.FeatMTU, &spec.MTU{MTU: 9217})); st != spec.StatusIllegalParameter && st != spec.StatusMalformedRequest {
		t.Fatalf("SET MTU above max_mtu: %v", st)
	}
	lr.mustOK(setFeat(spec.FeatMTU, &spec.MTU{MTU: 1501}))
	got, _ = lr.roundTrip(t, [][]byte{big}, sendOpts{reqID: 1, seg: 1024})
	checkSame(t, got, [][]byte{big})
}

// TestRxNoBuffers: a frame arriving when no Rx buffer is posted is dropped
// and counted in rx_overruns; nothing is consumed.
func TestRxNoBuffers(t *testing.T) {
	r := newIORig(t, Config{Profile: ProfileNoLLQ, Wire: NewLoopback()}, 0)
	tx := r.createTx(16, false, noVec)
	rx := r.createRx(16, 2048, noVec)
	// Consume every posted buffer (15) without reposting.
	for i := range 15 {
		tx.send(tcp4(1, 2, 10), sendOpts{reqID: uint16(i)})
	}
	tx.doorbell()
	tx.send(tcp4(1, 2, 10), sendOpts{reqID: 15})
	tx.doorbell()
	if s := r.d.Stats(); s.RxPkts != 15 || s.RxOverruns != 1 {
		t.Fatalf("rx_pkts %d rx_overruns %d, want 15 and 1", s.RxPkts, s.RxOverruns)
	}
	if got := rx.poll(); len(got) != 15 {
		t.Fatalf("polled %d frames", len(got))
	}
}

// TestPhaseManyWraps pushes 1000 packets through depth-8 rings (host and
// LLQ) so every phase flips over 100 times, in batches of up to 5.
func TestPhaseManyWraps(t *testing.T) {
	for _, c := range []struct {
		prof  Profile
		entry int
	}{{ProfileNoLLQ, 0}, {ProfileNitroV3, 128}, {ProfileNitroV4, 256}} {
		t.Run(fmt.Sprintf("%s/%d", c.prof.Name, c.entry), func(t *testing.T) {
			lr := newLoopRig(t, c.prof, c.entry, 8, 2048)
			meta := c.prof.LLQ.AccelFlags&spec.LLQAccelDisableMetaCaching != 0
			sent := 0
			for sent < 1000 {
				n := 1 + sent%3
				var frames [][]byte
				for i := range n {
					frames = append(frames, tcp4(uint16(sent+i), 80, (sent+i)%300))
				}
				seg := 0
				if c.entry == 0 {
					seg = 120 // two descriptors per packet at most three
				}
				got, comps := lr.roundTrip(t, frames, sendOpts{reqID: uint16(sent % 8), seg: seg, meta: meta})
				checkSame(t, got, frames)
				if len(comps) != n {
					t.Fatalf("after %d: %d completions, want %d", sent, len(comps), n)
				}
				sent += n
			}
		})
	}
}

// TestTxMalformed: driver errors the model treats as fatal, each with a
// reason that names the rule.
func TestTxMalformed(t *testing.T) {
	t.Run("stale phase", func(t *testing.T) {
		r := newIORig(t, Config{Profile: ProfileNoLLQ}, 0)
		q := r.createTx(16, false, noVec)
		q.send(tcp4(1, 2, 0), sendOpts{})
		setTxPhase(q.ring.Bytes[0:], false)
		q.doorbell()
		if !strings.Contains(r.d.FatalReason(), "phase") {
			t.Fatalf("fatal reason %q", r.d.FatalReason())
		}
	})
	t.Run("doorbell beyond depth", func(t *testing.T) {
		r := newIORig(t, Config{Profile: ProfileNoLLQ}, 0)
		q := r.createTx(16, false, noVec)
		r.w(q.db, 17)
		if !strings.Contains(r.d.FatalReason(), "ahead") {
			t.Fatalf("fatal reason %q", r.d.FatalReason())
		}
	})
	t.Run("no FIRST", func(t *testing.T) {
		r := newIORig(t, Config{Profile: ProfileNoLLQ}, 0)
		q := r.createTx(16, false, noVec)
		d := spec.TxDesc{Length: 60, Last: true, Phase: true, CompReq: true, BufAddr: q.bufs.Addr}
		d.Encode(q.ring.Bytes)
		q.tail = 1
		q.doorbell()
		if !strings.Contains(r.d.FatalReason(), "FIRST") {
			t.Fatalf("fatal reason %q", r.d.FatalReason())
		}
	})
	t.Run("IOMMU", func(t *testing.T) {
		r := newIORig(t, Config{Profile: ProfileNoLLQ}, 0)
		q := r.createTx(16, false, noVec)
		d := spec.TxDesc{Length: 60, First: true, Last: true, Phase: true, CompReq: true, BufAddr: 0x1000}
		d.Encode(q.ring.Bytes)
		q.tail = 1
		q.doorbell()
		if !strings.Contains(r.d.FatalReason(), "IOMMU") {
			t.Fatalf("fatal reason %q", r.d.FatalReason())
		}
	})
	t.Run("LLQ burst", func(t *testing.T) {
		r := newIORig(t, Config{Profile: ProfileNitroV3}, 128)
		q := r.createTx(256, true, noVec)
		r.burst = 0 // the test driver forgets the burst limit
		for i := range 40 {
			q.send(tcp4(1, 2, 0), sendOpts{reqID: uint16(i)})
		}
		q.doorbell()
		if !strings.Contains(r.d.FatalReason(), "burst") {
			t.Fatalf("fatal reason %q", r.d.FatalReason())
		}
	})
}
