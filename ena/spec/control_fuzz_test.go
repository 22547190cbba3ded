package spec

import (
	"bytes"
	"testing"
)

// The control-plane decoders read memory the other side controls, so they
// must accept any bytes. Each target also checks that decode → encode →
// decode is stable: whatever a decoder reports, its encoder reproduces.

// pad copies data into a zeroed buffer of exactly n bytes.
func pad(data []byte, n int) []byte {
	b := make([]byte, n)
	copy(b, data)
	return b
}

func FuzzDecodeAQEntry(f *testing.F) {
	seed := make([]byte, AQEntrySize)
	(&CreateSQCmd{Direction: SQDirectionTx, Placement: PlacementDev, Depth: 1024}).Encode(seed)
	f.Add(seed)
	f.Add(bytes.Repeat([]byte{0xFF}, AQEntrySize))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		b := pad(data, AQEntrySize)
		out := make([]byte, AQEntrySize)
		_ = AQEntryOpcode(b).String()
		_ = AQEntryCommandID(b)
		_ = AQEntryPhase(b)

		h := DecodeAQHeader(b)
		h.Encode(out)
		if !bytes.Equal(out[:AQHeaderSize], b[:AQHeaderSize]) {
			t.Fatalf("AQ header round trip: % x → % x", b[:4], out[:4])
		}

		cq := DecodeCreateCQCmd(b)
		cq.Encode(out)
		if got := DecodeCreateCQCmd(out); got.Depth != cq.Depth || got.BaseAddr != cq.BaseAddr ||
			got.MSIXVector != cq.MSIXVector || got.EntrySizeWords != cq.EntrySizeWords {
			t.Fatalf("CREATE_CQ unstable: %+v vs %+v", cq, got)
		}
		sq := DecodeCreateSQCmd(b)
		sq.Encode(out)
		if got := DecodeCreateSQCmd(out); got.Direction != sq.Direction || got.Placement != sq.Placement ||
			got.CompletionPolicy != sq.CompletionPolicy || got.CQIdx != sq.CQIdx || got.BaseAddr != sq.BaseAddr {
			t.Fatalf("CREATE_SQ unstable: %+v vs %+v", sq, got)
		}
		_ = sq.Direction.String() + sq.Placement.String()
		ds := DecodeDestroySQCmd(b)
		ds.Encode(out)
		if got := DecodeDestroySQCmd(out); got.SQIdx != ds.SQIdx || got.Direction != ds.Direction {
			t.Fatal("DESTROY_SQ unstable")
		}
		dc := DecodeDestroyCQCmd(b)
		dc.Encode(out)
		if DecodeDestroyCQCmd(out).CQIdx != dc.CQIdx {
			t.Fatal("DESTROY_CQ unstable")
		}
		gf := DecodeGetFeatureCmd(b)
		gf.Encode(out)
		if got := DecodeGetFeatureCmd(out); got.CtrlBuf != gf.CtrlBuf || got.FeatureID != gf.FeatureID ||
			got.FeatureVersion != gf.FeatureVersion || got.Select != gf.Select {
			t.Fatal("GET_FEATURE unstable")
		}
		_ = gf.FeatureID.String()
		sf := DecodeSetFeatureCmd(b)
		sf.Encode(out)
		if got := DecodeSetFeatureCmd(out); got.Payload != sf.Payload || got.CtrlBuf != sf.CtrlBuf {
			t.Fatal("SET_FEATURE unstable")
		}
		gs := DecodeGetStatsCmd(b)
		gs.Encode(out)
		if got := DecodeGetStatsCmd(out); got.RequestedMetrics != gs.RequestedMetrics || got.Type != gs.Type {
			t.Fatal("GET_STATS unstable")
		}
		_ = gs.Type.String()
		SetAQEntryID(b, AQEntryCommandID(b), !AQEntryPhase(b))
	})
}

func FuzzDecodeACQEntry(f *testing.F) {
	seed := make([]byte, ACQEntrySize)
	(&ACQHeader{CommandID: 3, Phase: true}).Encode(seed)
	(&CreateCQResp{CQIdx: 1, UnmaskRegOffset: 0x1000}).Encode(seed[ACQPayloadOffset:])
	f.Add(seed)
	f.Add(bytes.Repeat([]byte{0xFF}, ACQEntrySize))
	f.Fuzz(func(t *testing.T, data []byte) {
		b := pad(data, ACQEntrySize)
		out := make([]byte, ACQEntrySize)
		h := DecodeACQHeader(b)
		h.Encode(out)
		if !bytes.Equal(out[:ACQHeaderSize], b[:ACQHeaderSize]) {
			t.Fatalf("ACQ header round trip: % x → % x", b[:8], out[:8])
		}
		if err := h.Err(OpGetFeature); (err == nil) != (h.Status == StatusSuccess) {
			t.Fatal("Err disagrees with status")
		} else if err != nil {
			_ = err.Error()
		}
		p := b[ACQPayloadOffset:]
		o := out[ACQPayloadOffset:]
		roundTrip(t, "CreateCQResp", p, o, CreateCQRespSize, func(b []byte) any { return DecodeCreateCQResp(b) },
			func(v any, b []byte) { x := v.(CreateCQResp); x.Encode(b) })
		roundTrip(t, "CreateSQResp", p, o, CreateSQRespSize, func(b []byte) any { return DecodeCreateSQResp(b) },
			func(v any, b []byte) { x := v.(CreateSQResp); x.Encode(b) })
		roundTrip(t, "BasicStats", p, o, BasicStatsSize, func(b []byte) any { return DecodeBasicStats(b) },
			func(v any, b []byte) { x := v.(BasicStats); x.Encode(b) })
		roundTrip(t, "ENIStats", p, o, ENIStatsSize, func(b []byte) any { return DecodeENIStats(b) },
			func(v any, b []byte) { x := v.(ENIStats); x.Encode(b) })
		roundTrip(t, "SRDStats", p, o, SRDStatsSize, func(b []byte) any { return DecodeSRDStats(b) },
			func(v any, b []byte) { x := v.(SRDStats); x.Encode(b) })
		roundTrip(t, "CustomerMetrics", p, o, CustomerMetricsSize, func(b []byte) any { return DecodeCustomerMetrics(b) },
			func(v any, b []byte) { x := v.(CustomerMetrics); x.Encode(b) })
		fuzzFeaturePayloads(t, p)
	})
}

func FuzzDecodeAENQEntry(f *testing.F) {
	seed := make([]byte, AENQEntrySize)
	e := AENQEntry{Group: AENQKeepAlive, Phase: true}
	(&AENQKeepAlivePayload{RxDrops: 5}).Encode(e.Payload[:])
	e.Encode(seed)
	f.Add(seed)
	f.Add(bytes.Repeat([]byte{0xFF}, AENQEntrySize))
	f.Fuzz(func(t *testing.T, data []byte) {
		b := pad(data, AENQEntrySize)
		e := DecodeAENQEntry(b)
		_ = e.Group.String()
		if AENQEntryPhase(b) != e.Phase {
			t.Fatal("AENQEntryPhase disagrees")
		}
		out := make([]byte, AENQEntrySize)
		e.Encode(out)
		if DecodeAENQEntry(out) != e {
			t.Fatal("AENQ entry unstable")
		}
		// Bytes 5..7 are the only ones the encoder drops.
		copy(out[5:8], b[5:8])
		if !bytes.Equal(out, b) {
			t.Fatalf("AENQ entry round trip: % x → % x", b, out)
		}
		p, o := e.Payload[:], make([]byte, AENQPayloadSize)
		roundTrip(t, "KeepAlive", p, o, AENQKeepAliveSize, func(b []byte) any { return DecodeAENQKeepAlivePayload(b) },
			func(v any, b []byte) { x := v.(AENQKeepAlivePayload); x.Encode(b) })
		roundTrip(t, "LinkChange", p, o, AENQLinkChangeSize, func(b []byte) any { return DecodeAENQLinkChangePayload(b) },
			func(v any, b []byte) { x := v.(AENQLinkChangePayload); x.Encode(b) })
		roundTrip(t, "ConfNotifications", p, o, AENQConfNotificationsSize, func(b []byte) any { return DecodeAENQConfNotificationsPayload(b) },
			func(v any, b []byte) { x := v.(AENQConfNotificationsPayload); x.Encode(b) })
		_ = DecodeHWHints(p)
	})
}

func FuzzDecodeFeaturePayload(f *testing.F) {
	seed := make([]byte, RSSHashControlSize)
	(&LLQ{MaxLLQNum: 8, EntrySizeRecommended: LLQEntrySize256}).Encode(seed)
	f.Add(seed)
	f.Add(bytes.Repeat([]byte{0xFF}, HostInfoSize))
	f.Fuzz(func(t *testing.T, data []byte) {
		b := pad(data, RSSHashControlSize)
		fuzzFeaturePayloads(t, b)
		o := make([]byte, RSSHashControlSize)
		roundTrip(t, "RSSHashKey", b, o, RSSHashKeySize, func(b []byte) any { return DecodeRSSHashKey(b) },
			func(v any, b []byte) { x := v.(RSSHashKey); x.Encode(b) })
		roundTrip(t, "RSSHashControl", b, o, RSSHashControlSize, func(b []byte) any { return DecodeRSSHashControl(b) },
			func(v any, b []byte) { x := v.(RSSHashControl); x.Encode(b) })
		roundTrip(t, "RSSIndEntry", b, o, RSSIndEntrySize, func(b []byte) any { return DecodeRSSIndEntry(b) },
			func(v any, b []byte) { x := v.(RSSIndEntry); x.Encode(b) })
		roundTrip(t, "HostInfo", b, o, HostInfoSize, func(b []byte) any { return DecodeHostInfo(b) },
			func(v any, b []byte) { x := v.(HostInfo); x.Encode(b) })
		_ = DecodeReadlessResp(b)
		_ = DecodeCtrlBuf(b)
	})
}

// fuzzFeaturePayloads decodes p (at least GetFeatureRespPayloadSize bytes)
// as every feature payload and checks each is stable under re-encoding.
func fuzzFeaturePayloads(t *testing.T, p []byte) {
	t.Helper()
	o := make([]byte, GetFeatureRespPayloadSize)
	roundTrip(t, "DeviceAttributes", p, o, DeviceAttributesSize, func(b []byte) any { return DecodeDeviceAttributes(b) },
		func(v any, b []byte) { x := v.(DeviceAttributes); x.Encode(b) })
	roundTrip(t, "MaxQueuesNum", p, o, MaxQueuesNumSize, func(b []byte) any { return DecodeMaxQueuesNum(b) },
		func(v any, b []byte) { x := v.(MaxQueuesNum); x.Encode(b) })
	roundTrip(t, "MaxQueuesExt", p, o, MaxQueuesExtSize, func(b []byte) any { return DecodeMaxQueuesExt(b) },
		func(v any, b []byte) { x := v.(MaxQueuesExt); x.Encode(b) })
	roundTrip(t, "HWHints", p, o, HWHintsSize, func(b []byte) any { return DecodeHWHints(b) },
		func(v any, b []byte) { x := v.(HWHints); x.Encode(b) })
	roundTrip(t, "LLQ", p, o, LLQSize, func(b []byte) any { return DecodeLLQ(b) },
		func(v any, b []byte) { x := v.(LLQ); x.Encode(b) })
	roundTrip(t, "StatelessOffload", p, o, StatelessOffloadSize, func(b []byte) any { return DecodeStatelessOffload(b) },
		func(v any, b []byte) { x := v.(StatelessOffload); x.Encode(b) })
	roundTrip(t, "RSSHashFunction", p, o, RSSHashFunctionSize, func(b []byte) any { return DecodeRSSHashFunction(b) },
		func(v any, b []byte) { x := v.(RSSHashFunction); x.Encode(b) })
	roundTrip(t, "RSSHashInput", p, o, RSSHashInputSize, func(b []byte) any { return DecodeRSSHashInput(b) },
		func(v any, b []byte) { x := v.(RSSHashInput); x.Encode(b) })
	roundTrip(t, "RSSIndirectionTable", p, o, RSSIndirectionTableSize, func(b []byte) any { return DecodeRSSIndirectionTable(b) },
		func(v any, b []byte) { x := v.(RSSIndirectionTable); x.Encode(b) })
	roundTrip(t, "MTU", p, o, MTUSize, func(b []byte) any { return DecodeMTU(b) },
		func(v any, b []byte) { x := v.(MTU); x.Encode(b) })
	roundTrip(t, "HostAttrConfig", p, o, HostAttrConfigSize, func(b []byte) any { return DecodeHostAttrConfig(b) },
		func(v any, b []byte) { x := v.(HostAttrConfig); x.Encode(b) })
	roundTrip(t, "AENQConfig", p, o, AENQConfigSize, func(b []byte) any { return DecodeAENQConfig(b) },
		func(v any, b []byte) { x := v.(AENQConfig); x.Encode(b) })
	roundTrip(t, "InterruptModeration", p, o, InterruptModerationSize, func(b []byte) any { return DecodeInterruptModeration(b) },
		func(v any, b []byte) { x := v.(InterruptModeration); x.Encode(b) })
	roundTrip(t, "LinkConfig", p, o, LinkConfigSize, func(b []byte) any { return DecodeLinkConfig(b) },
		func(v any, b []byte) { x := v.(LinkConfig); x.Encode(b) })
	if fn, ok := DecodeRSSHashFunction(p).Selected(); ok {
		_ = fn.String()
	}
	_ = LLQEntrySizeBytes(DecodeLLQ(p).EntrySizeEnabled)
}

// roundTrip decodes in, encodes the value into out (exactly size bytes must
// be written), decodes again and requires the same value: an encoder that
// writes outside its size or loses a decoded field fails here.
func roundTrip(t *testing.T, name string, in, out []byte, size int, dec func([]byte) any, enc func(any, []byte)) {
	t.Helper()
	for i := range out {
		out[i] = 0xA5
	}
	v := dec(in)
	enc(v, out)
	for i := size; i < len(out); i++ {
		if out[i] != 0xA5 {
			t.Fatalf("%s.Encode wrote byte %d beyond its size %d", name, i, size)
		}
	}
	if again := dec(out); again != v {
		t.Fatalf("%s unstable: %+v → %+v", name, v, again)
	}
}
