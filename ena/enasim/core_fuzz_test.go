package enasim

import (
	"testing"

	"github.com/enanet/enanet/ena/spec"
)

// FuzzAdminEntry feeds arbitrary 64-byte AQ entries to a brought-up model.
// The model must never panic; it answers with a status (any) or goes FATAL
// (e.g. an IOMMU fault from a garbage control-buffer address).
func FuzzAdminEntry(f *testing.F) {
	seeds := [][]byte{
		getFeat(spec.FeatDeviceAttributes, 0),
		getFeat(spec.FeatLLQ, 1),
		setFeat(spec.FeatMTU, &spec.MTU{MTU: 9001}),
		setFeat(spec.FeatLLQ, &spec.LLQ{HeaderLocationEnabled: 1, EntrySizeEnabled: 1, DescsBeforeHeaderEnabled: 2, StrideEnabled: 2, AccelFlags: 3}),
		setFeat(spec.FeatAENQConfig, &spec.AENQConfig{EnabledGroups: 0xDF}),
		setFeatBuf(spec.FeatRSSIndirectionTableConfig, &spec.RSSIndirectionTable{Size: 7, InlineIndex: 3}, 0, 0),
		getStats(spec.StatsCustomerMetrics, 0x3F, 0, 0),
		getStats(spec.StatsBasic, 0, 0, 0),
	}
	cq := entry()
	(&spec.CreateCQCmd{InterruptMode: true, EntrySizeWords: 4, Depth: 256, MSIXVector: 1, BaseAddr: dmaBase}).Encode(cq)
	sq := entry()
	(&spec.CreateSQCmd{Direction: spec.SQDirectionTx, Placement: spec.PlacementDev, CQIdx: 0, Depth: 512}).Encode(sq)
	ds := entry()
	(&spec.DestroySQCmd{SQIdx: 0, Direction: spec.SQDirectionRx}).Encode(ds)
	dc := entry()
	(&spec.DestroyCQCmd{CQIdx: 0}).Encode(dc)
	seeds = append(seeds, cq, sq, ds, dc)
	for _, s := range seeds {
		f.Add(s)
	}
	h := newHarness(f, Config{Profile: ProfileNitroV4})
	h.bringUp()
	f.Fuzz(func(t *testing.T, data []byte) {
		h.t = t
		if h.d.FatalReason() != "" || h.m.Stats().IOCQs > 8 {
			h.bringUp() // start over from a clean device
		}
		e := make([]byte, 64)
		copy(e, data)
		// Keep the fuzzer's phase and id bits half the time, so bad phases
		// and reserved id bits are exercised too.
		if len(data) > 64 && data[64]&1 == 1 {
			slot := h.aqTail & (h.aqDepth - 1)
			copy(h.aq.Bytes[int(slot)*64:], e)
			h.aqTail++
			h.w(spec.RegAQDB, uint32(h.aqTail))
		} else {
			h.post(e)
		}
		if _, _, ok := h.poll(); !ok && h.d.FatalReason() == "" {
			t.Fatalf("no completion and not FATAL for entry % x", e)
		}
	})
}
