package enasim

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/enanet/enanet/ena/spec"
)

// irqs returns and clears the interrupts delivered on vector v.
func (r *ioRig) irqs(v int) uint64 { return r.d.intr.vecs[v].count.Swap(0) }

// TestRSSSteering programs a key and a 128-entry indirection table over four
// Rx SQs through SET_FEATURE, sends many flows, and checks each frame lands
// on table[hash & 127] with the hash in its LAST completion, the hash
// computed here from the frame's addresses and ports.
func TestRSSSteering(t *testing.T) {
	r := newIORig(t, Config{Profile: ProfileNitroV3, Wire: NewLoopback()}, 0)
	tx := r.createTx(256, false, noVec)
	var rxs []*rxq
	for range 4 {
		rxs = append(rxs, r.createRx(256, 2048, noVec))
	}
	// Key: the Microsoft test key (stored as it sits in the buffer).
	k := spec.RSSHashKey{KeyParts: spec.RSSKeyParts}
	copy(k.Key[:], msKey[:])
	k.Encode(r.ctrlBuf.Bytes)
	r.mustOK(setFeatBuf(spec.FeatRSSHashFunction, &spec.RSSHashFunction{SelectedFunc: 1 << 1}, r.ctrlBuf.Addr, spec.RSSHashKeySize))
	// Table: entry i -> Rx SQ of queue (i*7)%4, an uneven pattern.
	table := make([]uint16, 128)
	for i := range table {
		table[i] = rxs[(i*7)%4].sqIdx
		e := spec.RSSIndEntry{CQIdx: table[i]}
		e.Encode(r.ctrlBuf.Bytes[i*4:])
	}
	r.mustOK(setFeatBuf(spec.FeatRSSIndirectionTableConfig,
		&spec.RSSIndirectionTable{Size: 7, InlineIndex: spec.RSSIndTableNoInlineIndex}, r.ctrlBuf.Addr, 128*4))

	perQueue := make([]int, 4)
	for i := range 200 {
		sport, dport := uint16(1000+i*13), uint16(80+i%7)
		f := tcp4(sport, dport, i%50)
		tx.send(f, sendOpts{reqID: uint16(i % 256)})
		tx.doorbell()
		in := []byte{10, 0, 0, 1, 10, 0, 0, 2}
		in = binary.BigEndian.AppendUint16(in, sport)
		in = binary.BigEndian.AppendUint16(in, dport)
		h := toeplitz(&msKey, in)
		want := table[h&127]
		found := false
		for qi, q := range rxs {
			for _, got := range q.poll() {
				if q.sqIdx != want {
					t.Fatalf("flow %d: landed on Rx SQ %d, want %d", i, q.sqIdx, want)
				}
				if got.last().Hash != h {
					t.Fatalf("flow %d: hash %#x, want %#x", i, got.last().Hash, h)
				}
				found = true
				perQueue[qi]++
			}
		}
		if !found {
			t.Fatalf("flow %d: not received", i)
		}
		tx.completions()
	}
	for qi, n := range perQueue {
		if n == 0 {
			t.Errorf("Rx queue %d received nothing: steering does not spread", qi)
		}
	}
	// An entry naming a missing Rx SQ drops the frame (rx_drops).
	for i := range r.ctrlBuf.Bytes[:128*4] {
		r.ctrlBuf.Bytes[i] = 0
	}
	for i := range 128 {
		binary.LittleEndian.PutUint16(r.ctrlBuf.Bytes[i*4:], 200)
	}
	r.mustOK(setFeatBuf(spec.FeatRSSIndirectionTableConfig,
		&spec.RSSIndirectionTable{Size: 7, InlineIndex: spec.RSSIndTableNoInlineIndex}, r.ctrlBuf.Addr, 128*4))
	before := r.d.Stats().RxDrops
	tx.send(tcp4(1, 2, 3), sendOpts{})
	tx.doorbell()
	if r.d.Stats().RxDrops != before+1 {
		t.Fatalf("frame to a missing Rx SQ not counted as rx_drop")
	}
}

// TestInterrupts checks auto-mask, the unmask register (bit 30) and the
// re-raise on unmask when completions arrived while masked (§7.8).
func TestInterrupts(t *testing.T) {
	r := newIORig(t, Config{Profile: ProfileNitroV3, Wire: NewLoopback()}, 0)
	tx := r.createTx(64, false, 2)
	rx := r.createRx(64, 2048, 2)
	if tx.unmask == 0 || tx.unmask != rx.unmask {
		t.Fatalf("unmask offsets %#x / %#x: both CQs of vector 2 must share one", tx.unmask, rx.unmask)
	}
	send := func(id uint16) {
		tx.send(tcp4(1, 2, 10), sendOpts{reqID: id})
		tx.doorbell()
	}
	// Vectors start masked: completions are only remembered.
	send(0)
	if n := r.irqs(2); n != 0 {
		t.Fatalf("%d interrupts before the first unmask", n)
	}
	// Unmask with completions pending: fires at once, then auto-masks.
	r.w(tx.unmask, spec.IntrUnmaskKeepDelays)
	if n := r.irqs(2); n != 1 {
		t.Fatalf("%d interrupts on unmask with pending completions, want 1", n)
	}
	rx.poll()
	tx.completions()
	send(1)
	if n := r.irqs(2); n != 0 {
		t.Fatalf("%d interrupts while auto-masked, want 0", n)
	}
	r.w(tx.unmask, spec.IntrUnmaskKeepDelays)
	if n := r.irqs(2); n != 1 {
		t.Fatalf("%d interrupts after unmask, want 1", n)
	}
	rx.poll()
	tx.completions()
	// Unmask with nothing pending: the next doorbell's completions fire
	// exactly once.
	r.w(tx.unmask, spec.UnmaskWord{Unmask: true, RxDelay: 3, TxDelay: 4}.Encode())
	if n := r.irqs(2); n != 0 {
		t.Fatalf("%d interrupts on unmask with nothing pending", n)
	}
	send(2)
	if n := r.irqs(2); n != 1 {
		t.Fatalf("%d interrupts for one doorbell, want 1", n)
	}
	// A write without bit 30 does not unmask.
	r.w(tx.unmask, spec.IntrMaskKeepDelays)
	send(3)
	if n := r.irqs(2); n != 0 {
		t.Fatalf("%d interrupts without INTR_UNMASK", n)
	}
}

// TestTxCompletionReorder completes in reversed batches of 4.
func TestTxCompletionReorder(t *testing.T) {
	lr := newLoopRig(t, ProfileNitroV3, 0, 64, 2048)
	lr.d.Faults().ReorderTxCompletions(4)
	var frames [][]byte
	for i := range 10 {
		frames = append(frames, tcp4(uint16(i), 1, 0))
	}
	got, comps := lr.roundTrip(t, frames, sendOpts{})
	checkSame(t, got, frames)
	var ids []uint16
	for _, c := range comps {
		ids = append(ids, c.ReqID)
	}
	want := []uint16{3, 2, 1, 0, 7, 6, 5, 4, 9, 8}
	for i := range want {
		if i >= len(ids) || ids[i] != want[i] {
			t.Fatalf("completion order %v, want %v", ids, want)
		}
	}
}

// TestDataPathFaults exercises each injected data-path fault.
func TestDataPathFaults(t *testing.T) {
	t.Run("lose Tx completions", func(t *testing.T) {
		lr := newLoopRig(t, ProfileNitroV3, 0, 64, 2048)
		lr.d.Faults().LoseTxCompletions(2)
		frames := [][]byte{tcp4(1, 1, 0), tcp4(2, 2, 0), tcp4(3, 3, 0)}
		got, comps := lr.roundTrip(t, frames, sendOpts{})
		checkSame(t, got, frames) // the packets still left
		if len(comps) != 1 || comps[0].ReqID != 2 {
			t.Fatalf("completions %+v, want only req_id 2", comps)
		}
	})
	t.Run("corrupt Tx completion", func(t *testing.T) {
		lr := newLoopRig(t, ProfileNitroV3, 0, 64, 2048)
		lr.d.Faults().CorruptNextTxCompletion(CompletionBadReqID)
		_, comps := lr.roundTrip(t, [][]byte{tcp4(1, 1, 0), tcp4(2, 2, 0)}, sendOpts{})
		if comps[0].ReqID != 0xFFFF || comps[1].ReqID != 1 {
			t.Fatalf("completions %+v", comps)
		}
		lr.d.Faults().CorruptNextTxCompletion(CompletionMBZ)
		_, comps = lr.roundTrip(t, [][]byte{tcp4(1, 1, 0)}, sendOpts{reqID: 2})
		if comps[0].MBZ == 0 || comps[0].ReqID != 2 {
			t.Fatalf("completion %+v: MBZ bits not set", comps[0])
		}
	})
	t.Run("corrupt Rx completion", func(t *testing.T) {
		lr := newLoopRig(t, ProfileNitroV3, 0, 64, 2048)
		lr.d.Faults().CorruptNextRxCompletion(CompletionBadReqID)
		lr.tx.send(tcp4(1, 1, 0), sendOpts{})
		lr.tx.doorbell()
		c := spec.DecodeRxCompletion(lr.rx.cq.Bytes[0:])
		if c.ReqID != 0xFFFF {
			t.Fatalf("req_id %d, want 0xFFFF", c.ReqID)
		}
		lr.d.Faults().CorruptNextRxCompletion(CompletionMBZ)
		lr.tx.send(tcp4(1, 1, 0), sendOpts{reqID: 1})
		lr.tx.doorbell()
		if c := spec.DecodeRxCompletion(lr.rx.cq.Bytes[16:]); c.MBZ != spec.RxCdescMBZMask {
			t.Fatalf("MBZ %#x", c.MBZ)
		}
		// Unexpected FIRST, one-buffer frame: its LAST is cleared so the
		// next frame's FIRST arrives mid-packet.
		lr.d.Faults().CorruptNextRxCompletion(CompletionUnexpectedFirst)
		lr.tx.send(tcp4(1, 1, 0), sendOpts{reqID: 2})
		lr.tx.send(tcp4(1, 1, 0), sendOpts{reqID: 3})
		lr.tx.doorbell()
		c2 := spec.DecodeRxCompletion(lr.rx.cq.Bytes[32:])
		c3 := spec.DecodeRxCompletion(lr.rx.cq.Bytes[48:])
		if c2.Last || !c3.First {
			t.Fatalf("one-buffer unexpected FIRST: c2 last %v, c3 first %v", c2.Last, c3.First)
		}
		// Multi-buffer frame: FIRST on its second completion.
		lr.d.Faults().CorruptNextRxCompletion(CompletionUnexpectedFirst)
		lr.mustOK(setFeat(spec.FeatMTU, &spec.MTU{MTU: 4000}))
		lr.tx.send(tcp4(1, 1, 3000), sendOpts{reqID: 4})
		lr.tx.doorbell()
		c5 := spec.DecodeRxCompletion(lr.rx.cq.Bytes[5*16:])
		if !c5.First {
			t.Fatal("second completion of a multi-buffer frame lacks the injected FIRST")
		}
	})
	t.Run("stall Rx", func(t *testing.T) {
		lr := newLoopRig(t, ProfileNitroV3, 0, 64, 2048)
		lr.d.Faults().StallRx(true)
		got, comps := lr.roundTrip(t, [][]byte{tcp4(1, 1, 0)}, sendOpts{})
		if len(got) != 0 || len(comps) != 1 {
			t.Fatalf("stalled: %d frames, %d completions", len(got), len(comps))
		}
		if s := lr.d.Stats(); s.RxOverruns != 1 {
			t.Fatalf("rx_overruns %d, want 1", s.RxOverruns)
		}
		lr.d.Faults().StallRx(false)
		got, _ = lr.roundTrip(t, [][]byte{tcp4(1, 1, 0)}, sendOpts{reqID: 1})
		if len(got) != 1 {
			t.Fatal("Rx did not resume")
		}
	})
}

// TestAllowances drives traffic above the ENI allowances with a fake clock:
// frames beyond the bucket are dropped and counted in the ENI counters, and
// the bucket refills with time.
func TestAllowances(t *testing.T) {
	prof := ProfileNitroV3
	prof.PPSAllowance = 1000 // bucket: 10 ms = 10 packets
	lr := newLoopRig(t, prof, 0, 256, 2048)
	var now int64
	lr.m.SetAllowanceClock(func() int64 { return now })
	var frames [][]byte
	for i := range 15 {
		frames = append(frames, tcp4(uint16(i), 1, 0))
	}
	// Tx takes 10 tokens of the Tx bucket; 5 packets are shaped on Tx.
	got, comps := lr.roundTrip(t, frames, sendOpts{})
	if len(comps) != 15 || len(got) != 10 {
		t.Fatalf("%d completions %d received, want 15 and 10", len(comps), len(got))
	}
	if s := lr.d.Stats(); s.PPSAllowanceExceeded != 5 || s.TxDrops != 0 {
		t.Fatalf("pps_allowance_exceeded %d tx_drops %d, want 5 and 0", s.PPSAllowanceExceeded, s.TxDrops)
	}
	// 5 ms later 5 tokens are back in each bucket.
	now += 5e6
	got, _ = lr.roundTrip(t, frames[:8], sendOpts{reqID: 20})
	if len(got) != 5 {
		t.Fatalf("after refill: %d received, want 5", len(got))
	}

	// Bandwidth: 1 Mbit/s, bucket 8 jumbo frames of bits; 1500-byte
	// frames: ~6.1 fit.
	prof = ProfileNitroV3
	prof.BandwidthAllowance = 1_000_000
	lr = newLoopRig(t, prof, 0, 256, 2048)
	lr.m.SetAllowanceClock(func() int64 { return 0 })
	frames = frames[:0]
	for i := range 100 {
		frames = append(frames, tcp4(uint16(i), 1, 1400))
	}
	got, _ = lr.roundTrip(t, frames, sendOpts{})
	s := lr.d.Stats()
	if len(got) == 0 || len(got) == 100 || s.BWOutAllowanceExceeded != uint64(100-len(got)) {
		t.Fatalf("bandwidth: received %d, bw_out_allowance_exceeded %d", len(got), s.BWOutAllowanceExceeded)
	}
}

// TestQueueRules checks the CREATE/DESTROY rules and their error statuses.
func TestQueueRules(t *testing.T) {
	r := newIORig(t, Config{Profile: ProfileNitroV3}, 0)
	ring := r.alloc(64 * 1024)
	cases := []struct {
		name string
		cmd  []byte
		want spec.Status
		why  string
	}{
		{"SQ before CQ", sqCmd(spec.SQDirectionTx, spec.PlacementHost, 7, 64, ring.Addr), spec.StatusIllegalParameter, "cq_idx 7 does not exist"},
		{"CQ depth not pow2", cqCmd(100, 2, noVec, ring.Addr), spec.StatusIllegalParameter, "power of two"},
		{"CQ depth too big", cqCmd(32768, 4, noVec, ring.Addr), spec.StatusIllegalParameter, "exceeds"},
		{"CQ vector out of range", cqCmd(64, 2, 9, ring.Addr), spec.StatusIllegalParameter, "out of range"},
		{"CQ entry size", cqCmd(64, 3, noVec, ring.Addr), spec.StatusIllegalParameter, "entry size"},
	}
	for _, c := range cases {
		if st := r.status(c.cmd); st != c.want || !strings.Contains(r.m.LastQueueRefusal(), c.why) {
			t.Errorf("%s: status %v (%q), want %v with %q", c.name, st, r.m.LastQueueRefusal(), c.want, c.why)
		}
	}
	cq := spec.DecodeCreateCQResp(r.mustOK(cqCmd(64, 2, 1, ring.Addr)))
	sqCases := []struct {
		name string
		cmd  []byte
		why  string
	}{
		{"Tx depth too big", sqCmd(spec.SQDirectionTx, spec.PlacementHost, cq.CQIdx, 2048, ring.Addr), "exceeds"},
		{"LLQ without SET LLQ", sqCmd(spec.SQDirectionTx, spec.PlacementDev, cq.CQIdx, 64, 0), ""}, // refused by the admin layer or createSQ
		{"Rx on a Tx-sized CQ", sqCmd(spec.SQDirectionRx, spec.PlacementHost, cq.CQIdx, 64, ring.Addr), "not Rx completions"},
		{"bad direction", sqCmd(3, spec.PlacementHost, cq.CQIdx, 64, ring.Addr), "direction"},
	}
	for _, c := range sqCases {
		if st := r.status(c.cmd); st != spec.StatusIllegalParameter || !strings.Contains(r.m.LastQueueRefusal(), c.why) {
			t.Errorf("%s: status %v (%q), want ILLEGAL_PARAMETER with %q", c.name, st, r.m.LastQueueRefusal(), c.why)
		}
	}
	sq := spec.DecodeCreateSQResp(r.mustOK(sqCmd(spec.SQDirectionTx, spec.PlacementHost, cq.CQIdx, 64, ring.Addr)))
	if st := r.status(sqCmd(spec.SQDirectionTx, spec.PlacementHost, cq.CQIdx, 64, ring.Addr)); st != spec.StatusIllegalParameter {
		t.Errorf("second SQ on one CQ: %v", st)
	}
	// Destroy order: the CQ is busy while its SQ exists; DESTROY_SQ must
	// name the right direction.
	destroyCQ := func(idx uint16) []byte {
		e := entry()
		c := spec.DestroyCQCmd{CQIdx: idx}
		c.Encode(e)
		return e
	}
	destroySQ := func(idx uint16, dir spec.SQDirection) []byte {
		e := entry()
		c := spec.DestroySQCmd{SQIdx: idx, Direction: dir}
		c.Encode(e)
		return e
	}
	if st := r.status(destroyCQ(cq.CQIdx)); st != spec.StatusResourceBusy {
		t.Errorf("DESTROY_CQ under a live SQ: %v, want RESOURCE_BUSY", st)
	}
	if st := r.status(destroySQ(sq.SQIdx, spec.SQDirectionRx)); st != spec.StatusIllegalParameter {
		t.Errorf("DESTROY_SQ with the wrong direction: %v", st)
	}
	r.mustOK(destroySQ(sq.SQIdx, spec.SQDirectionTx))
	r.mustOK(destroyCQ(cq.CQIdx))
	if st := r.status(destroyCQ(cq.CQIdx)); st != spec.StatusIllegalParameter {
		t.Errorf("DESTROY_CQ twice: %v", st)
	}

	t.Run("Nitro v4 LLQ rules", func(t *testing.T) {
		r := newIORig(t, Config{Profile: ProfileNitroV4}, 256)
		ring := r.alloc(64 * 1024)
		cq := spec.DecodeCreateCQResp(r.mustOK(cqCmd(1024, 2, noVec, ring.Addr)))
		if st := r.status(sqCmd(spec.SQDirectionTx, spec.PlacementHost, cq.CQIdx, 1024, ring.Addr)); st != spec.StatusIllegalParameter ||
			!strings.Contains(r.m.LastQueueRefusal(), "requires LLQ") {
			t.Errorf("host Tx SQ on an LLQ-required device: %v %q", st, r.m.LastQueueRefusal())
		}
		if st := r.status(sqCmd(spec.SQDirectionTx, spec.PlacementDev, cq.CQIdx, 1024, 0)); st != spec.StatusIllegalParameter {
			t.Errorf("256-byte entries at depth 1024: %v, want ILLEGAL_PARAMETER", st)
		}
		sq := spec.DecodeCreateSQResp(r.mustOK(sqCmd(spec.SQDirectionTx, spec.PlacementDev, cq.CQIdx, 512, 0)))
		if sq.LLQDescriptorsOffset+512*256 > 1<<20 {
			t.Errorf("LLQ offset %#x outside BAR2", sq.LLQDescriptorsOffset)
		}
	})
	t.Run("no AENQ", func(t *testing.T) {
		h := newHarness(t, Config{Profile: ProfileNoLLQ})
		h.reset()
		h.adminQueues()
		h.w(spec.RegIntrMask, spec.IntrMaskAdmin)
		ring := h.alloc(4096)
		if st := h.status(cqCmd(64, 2, noVec, ring.Addr)); st == spec.StatusSuccess {
			t.Error("CREATE_CQ succeeded without an AENQ")
		}
	})
}

// TestResetDiscardsQueues: a device reset discards every I/O queue.
func TestResetDiscardsQueues(t *testing.T) {
	r := newIORig(t, Config{Profile: ProfileNitroV3}, 128)
	r.createTx(64, true, 1)
	r.createRx(64, 2048, 1)
	if s := r.d.Stats(); s.IOSQs != 2 || s.IOCQs != 2 {
		t.Fatalf("queues %d/%d before reset", s.IOSQs, s.IOCQs)
	}
	r.reset()
	if s := r.d.Stats(); s.IOSQs != 0 || s.IOCQs != 0 {
		t.Fatalf("queues %d/%d after reset", s.IOSQs, s.IOCQs)
	}
}
