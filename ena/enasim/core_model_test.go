package enasim

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enanet/enanet/ena/hw"
	"github.com/enanet/enanet/ena/spec"
)

var allProfiles = []Profile{ProfileNitroV3, ProfileNitroV4, ProfileNoLLQ}

func TestBringUpPerProfile(t *testing.T) {
	for _, p := range allProfiles {
		for _, rev := range []uint8{0, hw.RevisionNoReadless} {
			t.Run(p.Name+map[uint8]string{0: "/readless", 1: "/plain"}[rev], func(t *testing.T) {
				mac := [6]byte{0x02, 0, 0, 0, 0, 0x42}
				h := newHarness(t, Config{Profile: p, Revision: rev, MAC: mac})
				if got := h.readless; got != (rev == 0) {
					t.Fatalf("readless %v for revision %d", got, rev)
				}
				h.setResp()
				if v := h.r(spec.RegVersion); v != 0x0A {
					t.Errorf("VERSION %#x, want 0x0A", v)
				}
				if v := h.r(spec.RegControllerVersion); v != 0x01000001 || !spec.DecodeControllerVersion(v).Supported() {
					t.Errorf("CONTROLLER_VERSION %#x", v)
				}
				c := spec.DecodeCaps(h.r(spec.RegCaps))
				if c.ResetTimeout == 0 || c.DMAAddrWidth != 48 || !c.DMAWidthOK() || c.AdminTimeout() != spec.DefaultAdminTimeout {
					t.Errorf("CAPS %+v: need reset timeout, DMA width 48, admin timeout field 0 (3 s)", c)
				}
				attrs := h.bringUp()
				if attrs.MAC != mac || attrs.MaxMTU != uint32(p.MaxMTU) {
					t.Errorf("attributes MAC %x max_mtu %d", attrs.MAC, attrs.MaxMTU)
				}
				if err := spec.CheckRequiredFeatures(attrs.SupportedFeatures); err != nil {
					t.Error(err)
				}
				if spec.FeatureSupported(attrs.SupportedFeatures, spec.FeatLinkConfig) {
					t.Error("LINK_CONFIG advertised; EC2 devices do not")
				}
				q := spec.DecodeMaxQueuesExt(h.mustOK(getFeat(spec.FeatMaxQueuesExt, 1)))
				if q.Version != 1 || q.MaxTxSQNum != uint32(p.MaxQueues) || q.MaxRxSQDepth != uint32(p.MaxRxDepth) {
					t.Errorf("MAX_QUEUES_EXT %+v", q)
				}
				_ = h.mustOK(getFeat(spec.FeatMaxQueuesNum, 0))
				_ = h.mustOK(getFeat(spec.FeatStatelessOffloadConfig, 0))
				_ = h.mustOK(getFeat(spec.FeatHWHints, 0))
				_ = h.mustOK(getFeat(spec.FeatInterruptModeration, 0))
				if p.HasLLQ() {
					l := spec.DecodeLLQ(h.mustOK(getFeat(spec.FeatLLQ, 1)))
					if l.MaxLLQNum != uint32(p.LLQ.MaxQueues) || l.EntrySizeRecommended != uint8(p.LLQ.Recommended) {
						t.Errorf("LLQ %+v", l)
					}
					if h.d.LLQ() == nil {
						t.Error("profile with LLQ has no BAR2")
					}
				} else {
					if st := h.status(getFeat(spec.FeatLLQ, 1)); st != spec.StatusUnsupportedOpcode {
						t.Errorf("GET LLQ on %s: %s", p.Name, st)
					}
					if h.d.LLQ() != nil {
						t.Error("no-LLQ profile has a BAR2")
					}
				}
				// SET AENQ_CONFIG with LINK_CHANGE enabled sends the link state
				// once credits arrive (bringUp wrote AENQ_HEAD_DB).
				ev, ok := h.waitEvent(spec.AENQLinkChange, time.Second, true)
				if !ok || !spec.DecodeAENQLinkChangePayload(ev.Payload[:]).LinkUp {
					t.Fatalf("no link-up event (ok=%v)", ok)
				}
				if !h.waitIRQ(0, time.Second) {
					t.Error("management vector 0 not raised with INTR_MASK = 0")
				}
				// Queue creation is allowed now.
				resp := spec.DecodeCreateCQResp(h.mustOK(h.createCQ(256, 4)))
				_ = resp
				if h.r(spec.RegDevSts) != spec.DevStsReady {
					t.Errorf("DEV_STS %#x at the end of bring-up", h.r(spec.RegDevSts))
				}
			})
		}
	}
}

func TestIdentity(t *testing.T) {
	for _, id := range []uint16{0xEC20, 0xEC21, 0x0EC2, 0x1EC2} {
		d, err := New(Config{DeviceID: id, Revision: 1})
		if err != nil {
			t.Fatal(err)
		}
		got := d.Identity()
		if got.Vendor != 0x1D0F || got.Device != id || got.Readless() {
			t.Errorf("identity %v", got)
		}
		d.Close()
	}
	if _, err := New(Config{DeviceID: 0x1234}); err == nil {
		t.Error("New accepted a non-ENA device id")
	}
	if _, err := ProfileByName("nitro-v9"); err == nil {
		t.Error("unknown profile accepted")
	}
	for _, n := range ProfileNames() {
		if p, err := ProfileByName(n); err != nil || p.Name != n {
			t.Errorf("ProfileByName(%q) = %v, %v", n, p.Name, err)
		}
	}
}

// TestErrorStatuses checks the feature-level refusals of §4.5/§11.
func TestErrorStatuses(t *testing.T) {
	h := newHarness(t, Config{Profile: ProfileNitroV3})
	h.bringUp()
	key := h.alloc(4096)
	bad := entry()
	bad[2] = 5 // opcodes 5, 6, 7, 10 are undefined (§4.4)
	llq := func(mut func(*spec.LLQ)) []byte {
		l := spec.LLQ{
			HeaderLocationEnabled: spec.LLQHeaderLocationInline, EntrySizeEnabled: spec.LLQEntrySize128,
			DescsBeforeHeaderEnabled: 2, StrideEnabled: spec.LLQStrideMultipleDescsPerEntry, AccelFlags: 3,
		}
		mut(&l)
		return setFeat(spec.FeatLLQ, &l)
	}
	cases := []struct {
		name string
		e    []byte
		want spec.Status
	}{
		{"undefined opcode", bad, spec.StatusBadOpcode},
		{"GET LINK_CONFIG", getFeat(spec.FeatLinkConfig, 0), spec.StatusUnsupportedOpcode},
		{"GET PHC_CONFIG", getFeat(spec.FeatPHCConfig, 0), spec.StatusUnsupportedOpcode},
		{"GET MTU (SET-only)", getFeat(spec.FeatMTU, 0), spec.StatusUnsupportedOpcode},
		{"SET DEVICE_ATTRIBUTES (GET-only)", setFeat(spec.FeatDeviceAttributes, nil), spec.StatusUnsupportedOpcode},
		{"SET MTU above max_mtu", setFeat(spec.FeatMTU, &spec.MTU{MTU: 9217}), spec.StatusIllegalParameter},
		{"SET MTU max", setFeat(spec.FeatMTU, &spec.MTU{MTU: 9216}), spec.StatusSuccess},
		{"SET LLQ 256 B on nitro-v3", llq(func(l *spec.LLQ) { l.EntrySizeEnabled = spec.LLQEntrySize256 }), spec.StatusIllegalParameter},
		{"SET LLQ two entry sizes", llq(func(l *spec.LLQ) { l.EntrySizeEnabled = 3 }), spec.StatusIllegalParameter},
		{"SET LLQ header ring", llq(func(l *spec.LLQ) { l.HeaderLocationEnabled = spec.LLQHeaderLocationRing }), spec.StatusIllegalParameter},
		{"SET LLQ 3 descs before header", llq(func(l *spec.LLQ) { l.DescsBeforeHeaderEnabled = 3 }), spec.StatusIllegalParameter},
		{"SET LLQ no stride", llq(func(l *spec.LLQ) { l.StrideEnabled = 0 }), spec.StatusIllegalParameter},
		{"SET AENQ_CONFIG unsupported group", setFeat(spec.FeatAENQConfig, &spec.AENQConfig{EnabledGroups: 1 << 5}), spec.StatusIllegalParameter},
		{"SET RSS_HASH_FUNCTION without key buffer", setFeat(spec.FeatRSSHashFunction, &spec.RSSHashFunction{SelectedFunc: 2}), spec.StatusMalformedRequest},
		{"SET RSS_HASH_FUNCTION unknown function", setFeatBuf(spec.FeatRSSHashFunction, &spec.RSSHashFunction{SelectedFunc: 1 << 5}, key.Addr, 48), spec.StatusIllegalParameter},
		{"SET RSS_INDIRECTION_TABLE size 3", setFeatBuf(spec.FeatRSSIndirectionTableConfig, &spec.RSSIndirectionTable{Size: 3, InlineIndex: spec.RSSIndTableNoInlineIndex}, key.Addr, 4096), spec.StatusIllegalParameter},
		{"SET RSS_INDIRECTION_TABLE short buffer", setFeatBuf(spec.FeatRSSIndirectionTableConfig, &spec.RSSIndirectionTable{Size: 7, InlineIndex: spec.RSSIndTableNoInlineIndex}, key.Addr, 64), spec.StatusMalformedRequest},
		{"SET HOST_ATTR_CONFIG without page", setFeat(spec.FeatHostAttrConfig, &spec.HostAttrConfig{}), spec.StatusIllegalParameter},
		{"GET_STATS ENA_SRD", getStats(spec.StatsENASRD, 0, 0, 0), spec.StatusUnsupportedOpcode},
		{"GET_STATS EXTENDED", getStats(spec.StatsExtended, 0, 0, 0), spec.StatusUnsupportedOpcode},
		{"GET_STATS type 9", getStats(9, 0, 0, 0), spec.StatusIllegalParameter},
		{"GET_STATS CUSTOMER_METRICS short buffer", getStats(spec.StatsCustomerMetrics, 0x3F, key.Addr, 8), spec.StatusMalformedRequest},
		{"CREATE_SQ LLQ before SET LLQ", h.createSQ(spec.SQDirectionTx, spec.PlacementDev, 1, 256), spec.StatusIllegalParameter},
	}
	for _, c := range cases {
		binary.LittleEndian.PutUint32(key.Bytes[0:], 9) // key_parts for the RSS case
		if got := h.status(c.e); got != c.want {
			t.Errorf("%s: status %s, want %s", c.name, got, c.want)
		}
	}
	// RSS key with key_parts != 10.
	if st := h.status(setFeatBuf(spec.FeatRSSHashFunction, &spec.RSSHashFunction{SelectedFunc: 2}, key.Addr, 48)); st != spec.StatusIllegalParameter {
		t.Errorf("RSS key_parts 9: %s", st)
	}
	// A bad AQ phase bit is answered with MALFORMED_REQUEST, not a hang.
	e := getFeat(spec.FeatDeviceAttributes, 0)
	slot := h.aqTail & (h.aqDepth - 1)
	spec.SetAQEntryID(e, 7, !ringPhase(h.aqTail, h.aqDepth))
	copy(h.aq.Bytes[int(slot)*64:], e)
	h.aqTail++
	h.w(spec.RegAQDB, uint32(h.aqTail))
	c, _, ok := h.poll()
	if !ok || c.Status != spec.StatusMalformedRequest || c.CommandID != 7 {
		t.Errorf("bad phase: ok %v completion %+v", ok, c)
	}
	if h.d.FatalReason() != "" {
		t.Errorf("device fatal after bad requests: %s", h.d.FatalReason())
	}
}

// TestFeatureRoundTrips sets and reads back features, including control
// buffers written through Memory.
func TestFeatureRoundTrips(t *testing.T) {
	h := newHarness(t, Config{Profile: ProfileNitroV4})
	h.bringUp()
	buf := h.alloc(4096)
	// LLQ with the recommended 256 B entries.
	l := spec.LLQ{HeaderLocationEnabled: 1, EntrySizeEnabled: spec.LLQEntrySize256, DescsBeforeHeaderEnabled: 2,
		StrideEnabled: spec.LLQStrideMultipleDescsPerEntry, AccelFlags: 3}
	h.mustOK(setFeat(spec.FeatLLQ, &l))
	got := spec.DecodeLLQ(h.mustOK(getFeat(spec.FeatLLQ, 1)))
	if got.EntrySizeEnabled != spec.LLQEntrySize256 || got.DescsBeforeHeaderEnabled != 2 {
		t.Errorf("LLQ after SET: %+v", got)
	}
	h.m.mu.Lock()
	if !h.m.cfg.llqMetaCachingDisabled || h.m.cfg.llqMaxBurstEntries != 4096/256 || h.m.cfg.llqLayout.MaxPushHeader() != 224 {
		t.Errorf("negotiated LLQ state %+v", h.m.cfg)
	}
	h.m.mu.Unlock()
	// RSS key.
	var k spec.RSSHashKey
	k.KeyParts = 10
	for i := range k.Key {
		k.Key[i] = byte(i + 1)
	}
	k.Encode(buf.Bytes)
	h.mustOK(setFeatBuf(spec.FeatRSSHashFunction, &spec.RSSHashFunction{SelectedFunc: spec.HashToeplitz.Bit()}, buf.Addr, 48))
	clear(buf.Bytes)
	f := spec.DecodeRSSHashFunction(h.mustOK(getFeatBuf(spec.FeatRSSHashFunction, buf.Addr, 48)))
	if fn, _ := f.Selected(); fn != spec.HashToeplitz || spec.DecodeRSSHashKey(buf.Bytes) != k {
		t.Errorf("RSS function %+v key %x", f, buf.Bytes[:48])
	}
	// Hash inputs.
	hc := spec.RSSHashControl{Selected: spec.DefaultRSSHashFields()}
	hc.Encode(buf.Bytes)
	h.mustOK(setFeatBuf(spec.FeatRSSHashInput, &spec.RSSHashInput{EnabledInputSort: spec.RSSDefaultInputSort}, buf.Addr, 256))
	hc.Selected[spec.RSSTCP4] |= spec.RSSFieldL2DA
	hc.Encode(buf.Bytes)
	if st := h.status(setFeatBuf(spec.FeatRSSHashInput, &spec.RSSHashInput{}, buf.Addr, 256)); st != spec.StatusIllegalParameter {
		t.Errorf("unsupported hash field: %s", st)
	}
	// Indirection table of 128 entries.
	for i := range 128 {
		e := spec.RSSIndEntry{CQIdx: uint16(i % 4)}
		e.Encode(buf.Bytes[4*i:])
	}
	h.mustOK(setFeatBuf(spec.FeatRSSIndirectionTableConfig, &spec.RSSIndirectionTable{Size: 7, InlineIndex: spec.RSSIndTableNoInlineIndex}, buf.Addr, 512))
	clear(buf.Bytes)
	it := spec.DecodeRSSIndirectionTable(h.mustOK(getFeatBuf(spec.FeatRSSIndirectionTableConfig, buf.Addr, 512)))
	if it.Size != 7 || spec.DecodeRSSIndEntry(buf.Bytes[4*5:]).CQIdx != 1 {
		t.Errorf("table %+v entry5 %x", it, buf.Bytes[20:24])
	}
	// Host info was read through Memory.
	if hi, ok := h.m.HostInfo(); !ok || hi.OSType != spec.OSLinux || hi.NumCPUs != 2 {
		t.Errorf("host info %+v %v", hi, ok)
	}
}

func TestGetStats(t *testing.T) {
	h := newHarness(t, Config{})
	h.bringUp()
	h.m.mu.Lock()
	h.m.stats = devStats{txBytes: 1 << 40, txPkts: 5, rxDrops: 3, bwIn: 7, pps: 9, conntrackAvailable: 11}
	h.m.mu.Unlock()
	b := spec.DecodeBasicStats(h.mustOK(getStats(spec.StatsBasic, 0, 0, 0)))
	if b.TxBytes != 1<<40 || b.TxPkts != 5 || b.RxDrops != 3 {
		t.Errorf("BASIC %+v", b)
	}
	eni := spec.DecodeENIStats(h.mustOK(getStats(spec.StatsENI, 0, 0, 0)))
	if eni.BWInAllowanceExceeded != 7 || eni.PPSAllowanceExceeded != 9 {
		t.Errorf("ENI %+v", eni)
	}
	// Discovery: no buffer, the device reports what it has.
	cm := spec.DecodeCustomerMetrics(h.mustOK(getStats(spec.StatsCustomerMetrics, 0x3F, 0, 0)))
	if cm.ReportedMetrics != 0x3F {
		t.Errorf("reported metrics %#x", cm.ReportedMetrics)
	}
	buf := h.alloc(4096)
	req := uint64(1<<spec.MetricPPSAllowanceExceeded | 1<<spec.MetricConntrackAllowanceAvailable)
	h.mustOK(getStats(spec.StatsCustomerMetrics, req, buf.Addr, 512))
	if v0, v1 := binary.LittleEndian.Uint64(buf.Bytes[0:]), binary.LittleEndian.Uint64(buf.Bytes[8:]); v0 != 9 || v1 != 11 {
		t.Errorf("metrics buffer %d %d", v0, v1)
	}
}

func TestNoAENQQueueCreationFails(t *testing.T) {
	h := newHarness(t, Config{})
	h.reset()
	h.adminQueues()
	h.w(spec.RegIntrMask, 1)
	h.setHostAttr()
	h.mustOK(getFeat(spec.FeatDeviceAttributes, 0)) // early commands answer
	ac := spec.DecodeAENQConfig(h.mustOK(getFeat(spec.FeatAENQConfig, 0)))
	if ac.SupportedGroups != 0 {
		t.Errorf("supported groups %#x without an AENQ", ac.SupportedGroups)
	}
	if st := h.status(h.createCQ(256, 4)); st != spec.StatusUnknownError {
		t.Errorf("CREATE_CQ without AENQ: %s, want UNKNOWN_ERROR", st)
	}
	if st := h.status(h.createSQ(spec.SQDirectionRx, spec.PlacementHost, 0, 256)); st != spec.StatusUnknownError {
		t.Errorf("CREATE_SQ without AENQ: %s, want UNKNOWN_ERROR", st)
	}
}

func TestLateAENQGhost(t *testing.T) {
	var trace bytes.Buffer
	var tmu sync.Mutex
	h := newHarness(t, Config{Trace: lockedWriter{&tmu, &trace}})
	h.reset()
	h.adminQueues()
	h.w(spec.RegIntrMask, 1)
	h.setHostAttr()
	h.mustOK(getFeat(spec.FeatDeviceAttributes, 0))
	h.registerAENQ() // too late: after the first admin command
	if v := h.r(spec.RegDevSts); v != spec.DevStsReady {
		t.Fatalf("DEV_STS %#x right after late registration, want 0x1", v)
	}
	ac := spec.DecodeAENQConfig(h.mustOK(getFeat(spec.FeatAENQConfig, 0)))
	if ac.SupportedGroups != 0 {
		t.Errorf("ghost AENQ reports supported groups %#x, want 0", ac.SupportedGroups)
	}
	h.mustOK(setFeat(spec.FeatAENQConfig, &spec.AENQConfig{}))
	h.w(spec.RegAENQHeadDB, 16)
	deadline := time.Now().Add(2 * time.Second)
	for h.r(spec.RegDevSts)&spec.DevStsFatalError == 0 {
		if time.Now().After(deadline) {
			t.Fatal("device did not go FATAL after the ghost AENQ_HEAD_DB")
		}
		time.Sleep(50 * time.Microsecond)
	}
	if v := h.r(spec.RegDevSts); v != 0x21 {
		t.Errorf("DEV_STS %#x, want 0x21", v)
	}
	h.post(h.createCQ(256, 4))
	if _, _, ok := h.poll(); ok {
		t.Error("a FATAL device completed CREATE_CQ")
	}
	if !strings.Contains(h.d.FatalReason(), "after the first admin command") {
		t.Errorf("fatal reason %q", h.d.FatalReason())
	}
	// A reset recovers, and the right order works.
	h.init()
	h.setHostAttr()
	if ac := spec.DecodeAENQConfig(h.mustOK(getFeat(spec.FeatAENQConfig, 0))); ac.SupportedGroups != ProfileNitroV3.AENQGroups {
		t.Errorf("after reset supported groups %#x", ac.SupportedGroups)
	}
	tmu.Lock()
	defer tmu.Unlock()
	if !strings.Contains(trace.String(), "ghost") || !strings.Contains(trace.String(), "DEV_STS=0x21") {
		t.Errorf("trace does not show the ghost AENQ and DEV_STS 0x21:\n%s", trace.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestAENQHeadBeforeRegistrationIsFatal(t *testing.T) {
	h := newHarness(t, Config{})
	h.reset()
	h.adminQueues()
	h.w(spec.RegAENQHeadDB, 16)
	if h.r(spec.RegDevSts)&spec.DevStsFatalError == 0 || h.d.FatalReason() == "" {
		t.Fatalf("AENQ_HEAD_DB before AENQ registration: DEV_STS %#x", h.r(spec.RegDevSts))
	}
}

func TestIOMMUFaults(t *testing.T) {
	t.Run("host info outside memory", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.init()
		h.post(setFeat(spec.FeatHostAttrConfig, &spec.HostAttrConfig{OSInfoAddr: 0x1234_5000}))
		if _, _, ok := h.poll(); ok {
			t.Error("command that faulted completed")
		}
		if r := h.d.FatalReason(); !strings.Contains(r, "IOMMU fault") || !strings.Contains(r, "0x12345000") {
			t.Errorf("fatal reason %q", r)
		}
		if h.r(spec.RegDevSts)&spec.DevStsFatalError == 0 {
			t.Error("no FATAL_ERROR in DEV_STS")
		}
	})
	t.Run("freed AQ", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.init()
		h.mustOK(getFeat(spec.FeatDeviceAttributes, 0))
		_ = h.aq.Free()
		h.w(spec.RegAQDB, uint32(h.aqTail+1))
		if !strings.Contains(h.d.FatalReason(), "IOMMU fault") {
			t.Errorf("fatal reason %q", h.d.FatalReason())
		}
	})
	t.Run("buffer runs past allocation", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.bringUp()
		small := h.alloc(16) // one page mapped; 4 KiB + guard after it
		h.post(setFeatBuf(spec.FeatRSSIndirectionTableConfig, &spec.RSSIndirectionTable{Size: 7, InlineIndex: spec.RSSIndTableNoInlineIndex}, small.Addr+4000, 512))
		if !strings.Contains(h.d.FatalReason(), "IOMMU fault") {
			t.Errorf("fatal reason %q", h.d.FatalReason())
		}
	})
}

func TestKeepAliveAndCredits(t *testing.T) {
	h := newHarness(t, Config{KeepAlivePeriod: 2 * time.Millisecond})
	h.init()
	h.setHostAttr()
	h.mustOK(setFeat(spec.FeatAENQConfig, &spec.AENQConfig{EnabledGroups: spec.AENQKeepAlive.Bit()}))
	h.m.mu.Lock()
	h.m.stats.rxDrops, h.m.stats.txDrops, h.m.stats.rxOverruns = 1, 2, 3
	h.m.mu.Unlock()
	time.Sleep(10 * time.Millisecond)
	if _, ok := h.nextEvent(); ok {
		t.Fatal("event posted before any AENQ_HEAD_DB credit")
	}
	// Two credits (AENQ_HEAD_DB = 2): the device may post entries 0 and 1
	// only, however many periods pass.
	h.w(spec.RegAENQHeadDB, 2)
	n := 0
	deadline := time.Now().Add(2 * time.Second)
	for n < 2 && time.Now().Before(deadline) {
		e, ok := h.nextEvent()
		if !ok {
			time.Sleep(time.Millisecond)
			continue
		}
		n++
		ka := spec.DecodeAENQKeepAlivePayload(e.Payload[:])
		if e.Group != spec.AENQKeepAlive || ka.RxDrops != 1 || ka.TxDrops != 2 || ka.RxOverruns != 3 {
			t.Errorf("event %+v payload %+v", e, ka)
		}
	}
	time.Sleep(20 * time.Millisecond) // ~10 periods without credits
	if _, ok := h.nextEvent(); ok || n != 2 {
		t.Fatalf("%d events (or a third one) with 2 credits", n)
	}
	// More credits: keep-alives resume.
	h.w(spec.RegAENQHeadDB, uint32(h.aenqHead))
	if _, ok := h.waitEvent(spec.AENQKeepAlive, time.Second, true); !ok {
		t.Fatal("no keep-alive after new credits")
	}
	// Many periods, credits returned each time: the ring wraps with the
	// phase flipping.
	for range 40 {
		if _, ok := h.waitEvent(spec.AENQKeepAlive, time.Second, true); !ok {
			t.Fatal("keep-alive stopped while credits were returned")
		}
	}
}

func TestFaults(t *testing.T) {
	t.Run("InjectFatal", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.bringUp()
		h.d.Faults().InjectFatal("test")
		if h.r(spec.RegDevSts)&spec.DevStsFatalError == 0 || !strings.Contains(h.d.FatalReason(), "test") {
			t.Fatal("InjectFatal had no effect")
		}
		h.post(getFeat(spec.FeatDeviceAttributes, 0))
		if _, _, ok := h.poll(); ok {
			t.Error("FATAL device answered")
		}
		h.init() // reset recovers
		h.mustOK(getFeat(spec.FeatDeviceAttributes, 0))
	})
	t.Run("StopKeepAlive", func(t *testing.T) {
		h := newHarness(t, Config{KeepAlivePeriod: time.Millisecond})
		h.bringUp()
		if _, ok := h.waitEvent(spec.AENQKeepAlive, time.Second, true); !ok {
			t.Fatal("no keep-alive")
		}
		h.d.Faults().StopKeepAlive(true)
		time.Sleep(3 * time.Millisecond)
		for {
			if _, ok := h.nextEvent(); !ok {
				break
			}
		}
		h.w(spec.RegAENQHeadDB, uint32(h.aenqHead))
		if _, ok := h.waitEvent(spec.AENQKeepAlive, 20*time.Millisecond, true); ok {
			t.Fatal("keep-alive while stopped")
		}
		h.d.Faults().StopKeepAlive(false)
		if _, ok := h.waitEvent(spec.AENQKeepAlive, time.Second, true); !ok {
			t.Fatal("keep-alive did not resume")
		}
	})
	t.Run("DropAdminCompletions", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.bringUp()
		h.d.Faults().DropAdminCompletions(1)
		h.post(setFeat(spec.FeatMTU, &spec.MTU{MTU: 9000}))
		if _, _, ok := h.poll(); ok {
			t.Fatal("dropped completion arrived")
		}
		h.m.mu.Lock()
		mtu := h.m.cfg.mtu
		h.m.mu.Unlock()
		if mtu != 9000 {
			t.Errorf("command not executed: mtu %d", mtu)
		}
		h.mustOK(getFeat(spec.FeatDeviceAttributes, 0)) // the next one completes
	})
	t.Run("DelayAdminCompletions", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.bringUp()
		h.d.Faults().DelayAdminCompletions(20 * time.Millisecond)
		start := time.Now()
		id := h.post(getFeat(spec.FeatDeviceAttributes, 0))
		if _, _, ok := h.poll(); ok {
			t.Fatal("delayed completion arrived at once")
		}
		for {
			c, _, ok := h.poll()
			if ok {
				if c.CommandID != id || c.Status != spec.StatusSuccess {
					t.Errorf("completion %+v", c)
				}
				if time.Since(start) < 20*time.Millisecond {
					t.Errorf("arrived after %v", time.Since(start))
				}
				break
			}
			if time.Since(start) > 2*time.Second {
				t.Fatal("delayed completion never arrived")
			}
			time.Sleep(time.Millisecond)
		}
		h.d.Faults().DelayAdminCompletions(0)
		h.mustOK(getFeat(spec.FeatDeviceAttributes, 0))
	})
	t.Run("SetLink RequestReset SendHints", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.bringUp()
		if _, ok := h.waitEvent(spec.AENQLinkChange, time.Second, true); !ok {
			t.Fatal("no initial link event")
		}
		h.d.Faults().SetLink(false)
		ev, ok := h.waitEvent(spec.AENQLinkChange, time.Second, true)
		if !ok || spec.DecodeAENQLinkChangePayload(ev.Payload[:]).LinkUp || h.d.Stats().LinkUp {
			t.Error("no link-down event")
		}
		h.d.Faults().RequestReset()
		if _, ok := h.waitEvent(spec.AENQDeviceRequestReset, time.Second, true); !ok {
			t.Error("no DEVICE_REQUEST_RESET event")
		}
		hints := spec.HWHints{DriverWatchdogTimeout: 1234}
		h.d.Faults().SendHints(hints)
		ev, ok = h.waitEvent(spec.AENQNotification, time.Second, true)
		if !ok || ev.Syndrome != spec.AENQSyndromeUpdateHints || spec.DecodeHWHints(ev.Payload[:]) != hints {
			t.Errorf("hints event %+v ok %v", ev, ok)
		}
	})
}

func TestResetDiscardsState(t *testing.T) {
	h := newHarness(t, Config{Profile: ProfileNitroV3})
	h.bringUp()
	h.mustOK(setFeat(spec.FeatMTU, &spec.MTU{MTU: 9000}))
	h.mustOK(h.createCQ(256, 4))
	if h.d.Stats().IOCQs != 1 {
		t.Fatalf("stats %+v", h.d.Stats())
	}
	h.d.Faults().InjectFatal("before reset")
	h.w(spec.RegDevCtl, spec.DevCtlReset(spec.ResetKeepAliveTO, true))
	// The readless address is gone: a read request without re-programming
	// MMIO_RESP gets no answer.
	h.seq++
	binary.LittleEndian.PutUint16(h.resp.Bytes, 0xBEEF)
	h.w(spec.RegMMIORegRead, spec.MMIORegRead{ReqID: h.seq, RegOff: spec.RegDevSts}.Encode())
	if binary.LittleEndian.Uint16(h.resp.Bytes) != 0xBEEF {
		t.Error("readless answered after reset without MMIO_RESP")
	}
	if v := h.regs.Read32(spec.RegDevSts); v != spec.DevStsResetInProgress {
		t.Errorf("DEV_STS during reset %#x, want RESET_IN_PROGRESS only", v)
	}
	h.w(spec.RegDevCtl, 0)
	for _, off := range []uint32{spec.RegAQBaseLo, spec.RegAQCaps, spec.RegACQBaseLo, spec.RegAENQBaseLo, spec.RegAENQCaps, spec.RegMMIORespLo} {
		if v := h.regs.Read32(off); v != 0 {
			t.Errorf("%s = %#x after reset", spec.RegName(off), v)
		}
	}
	s := h.d.Stats()
	if s.IOCQs != 0 || s.DevSts != spec.DevStsReady || s.LastResetReason != spec.ResetKeepAliveTO || s.Resets != 2 {
		t.Errorf("stats after reset %+v", s)
	}
	h.m.mu.Lock()
	if h.m.cfg.mtu != 1500 || h.m.cfg.aenqRegistered || h.m.cfg.hostAttrSet {
		t.Errorf("features survived reset: %+v", h.m.cfg)
	}
	h.m.mu.Unlock()
	// A new bring-up works.
	h.bringUp()
}

func TestTraceReadable(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	h := newHarness(t, Config{Trace: lockedWriter{&mu, &buf}, Name: "simT"})
	h.bringUp()
	h.status(getFeat(spec.FeatLinkConfig, 0))
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	for _, want := range []string{
		"simT +", "W 0x054 DEV_CTL", "DEV_STS=0x08", "reset started (NORMAL)", "readless DEV_STS",
		"AQ[0] cmd 0 SET_FEATURE HOST_ATTR_CONFIG", "GET_FEATURE DEVICE_ATTRIBUTES", "00: ",
		"ACQ[1] cmd 1 GET_FEATURE status SUCCESS", "LINK_CONFIG", "UNSUPPORTED_OPCODE", "AENQ[0] LINK_CHANGE",
		"W 0x040 AENQ_HEAD_DB",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("trace lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("trace:\n%s", out)
	}
}

// TestRegisterWritesDoNotAllocate: hot-path register writes (doorbells,
// INTR_MASK, AENQ credits) allocate nothing when not tracing.
func TestRegisterWritesDoNotAllocate(t *testing.T) {
	h := newHarness(t, Config{})
	h.bringUp()
	for _, c := range []struct {
		off, val uint32
	}{{0x1000, 5}, {spec.RegIntrMask, 0}, {spec.RegAENQHeadDB, uint32(h.aenqHead)}} {
		if n := testing.AllocsPerRun(100, func() { h.w(c.off, c.val) }); n != 0 {
			t.Errorf("write %#x allocates %v times", c.off, n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { h.regs.Read32(spec.RegDevSts) }); n != 0 {
		t.Errorf("DEV_STS read allocates %v", n)
	}
}

// TestCloseStopsGoroutines: Close stops the keep-alive loop and pending
// timers (a delayed completion and the ghost fatal timer).
func TestCloseStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 3 {
		d, err := New(Config{KeepAlivePeriod: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		h := &harness{t: t, d: d, m: d.Model(), regs: d.Registers(), dma: d.DMA(), aqDepth: 32, aenqDep: 16, readless: true}
		h.resp = h.alloc(4096)
		h.hostInfo = h.alloc(4096)
		h.bringUp()
		d.Faults().DelayAdminCompletions(time.Hour)
		h.post(getFeat(spec.FeatDeviceAttributes, 0))
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil {
			t.Fatal("second Close:", err)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines leaked: %d > %d\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

func TestDMAAllocator(t *testing.T) {
	d, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r, err := d.DMA().Alloc(100, 65536)
	if err != nil {
		t.Fatal(err)
	}
	if r.Addr%65536 != 0 || r.Addr < dmaBase || len(r.Bytes) != 100 {
		t.Errorf("region addr %#x len %d", r.Addr, len(r.Bytes))
	}
	m := d.dma
	if err := m.Write(r.Addr+96, []byte{1, 2, 3, 4}); err != nil || r.Bytes[99] != 4 {
		t.Errorf("write inside: %v", err)
	}
	if err := m.Write(r.Addr+4096, []byte{1}); err == nil {
		t.Error("write beyond the mapping succeeded")
	}
	if _, err := m.Slice(r.Addr-1, 2); err == nil {
		t.Error("slice straddling the start succeeded")
	}
	if err := r.Free(); err != nil {
		t.Fatal(err)
	}
	if err := m.Read(r.Addr, make([]byte, 1)); err == nil {
		t.Error("read after free succeeded")
	}
	if _, err := d.DMA().Alloc(0, 4096); err == nil {
		t.Error("zero-size alloc succeeded")
	}
}

// TestDMAAllocLimit: the in-process IOMMU refuses allocations larger than
// one hugepage, as real no-IOMMU hardware cannot promise them contiguous.
func TestDMAAllocLimit(t *testing.T) {
	d, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r, err := d.DMA().Alloc(hw.MaxAlloc, 4096)
	if err != nil {
		t.Fatalf("Alloc(hw.MaxAlloc): %v", err)
	}
	r.Free()
	if _, err := d.DMA().Alloc(hw.MaxAlloc+1, 4096); err == nil || !strings.Contains(err.Error(), "MaxAlloc") {
		t.Fatalf("Alloc(hw.MaxAlloc+1) = %v, want an error naming hw.MaxAlloc", err)
	}
}
