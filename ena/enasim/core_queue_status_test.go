package enasim

import (
	"testing"

	"github.com/enanet/enanet/ena/spec"
)

// TestQueueErrorStatuses checks the admin-level refusals of CREATE/DESTROY
// SQ/CQ end to end through the admin queue (the checks themselves live in
// the I/O half of the model).
func TestQueueErrorStatuses(t *testing.T) {
	llq256 := spec.LLQ{HeaderLocationEnabled: 1, EntrySizeEnabled: spec.LLQEntrySize256, DescsBeforeHeaderEnabled: 2,
		StrideEnabled: spec.LLQStrideMultipleDescsPerEntry, AccelFlags: 3}

	h := newHarness(t, Config{Profile: ProfileNitroV4})
	h.bringUp()
	if st := h.status(h.createCQ(1000, 4)); st == spec.StatusSuccess {
		t.Error("CREATE_CQ depth 1000 (not a power of two) accepted")
	}
	if st := h.status(h.createCQ(32768, 4)); st == spec.StatusSuccess {
		t.Error("CREATE_CQ depth above the maximum accepted")
	}
	if st := h.status(h.createSQ(spec.SQDirectionRx, spec.PlacementHost, 77, 256)); st == spec.StatusSuccess {
		t.Error("CREATE_SQ with unknown cq_idx 77 accepted")
	}
	txCQ := spec.DecodeCreateCQResp(h.mustOK(h.createCQ(1024, 2)))
	if st := h.status(h.createSQ(spec.SQDirectionTx, spec.PlacementHost, txCQ.CQIdx, 1024)); st == spec.StatusSuccess {
		t.Error("nitro-v4 accepted a host-placement Tx SQ; it requires LLQ")
	}
	h.mustOK(setFeat(spec.FeatLLQ, &llq256))
	if st := h.status(h.createSQ(spec.SQDirectionTx, spec.PlacementDev, txCQ.CQIdx, 1024)); st == spec.StatusSuccess {
		t.Error("nitro-v4 accepted 256-byte LLQ entries at depth 1024")
	}
	sq := spec.DecodeCreateSQResp(h.mustOK(h.createSQ(spec.SQDirectionTx, spec.PlacementDev, txCQ.CQIdx, 512)))
	if st := h.status(destroyCQ(txCQ.CQIdx)); st == spec.StatusSuccess {
		t.Error("DESTROY_CQ of a CQ still used by an SQ accepted")
	}
	h.mustOK(destroySQ(sq.SQIdx, spec.SQDirectionTx))
	h.mustOK(destroyCQ(txCQ.CQIdx))
	if st := h.status(destroyCQ(txCQ.CQIdx)); st == spec.StatusSuccess {
		t.Error("DESTROY_CQ of a destroyed CQ accepted")
	}
	if h.d.FatalReason() != "" {
		t.Errorf("device fatal: %s", h.d.FatalReason())
	}
}

func destroySQ(idx uint16, dir spec.SQDirection) []byte {
	e := entry()
	(&spec.DestroySQCmd{SQIdx: idx, Direction: dir}).Encode(e)
	return e
}

func destroyCQ(idx uint16) []byte {
	e := entry()
	(&spec.DestroyCQCmd{CQIdx: idx}).Encode(e)
	return e
}
