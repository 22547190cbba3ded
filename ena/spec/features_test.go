package spec

import (
	"strings"
	"testing"
)

// ena_admin_defs.h enum ena_admin_aq_feature_id (+ Linux/DPDK 8, 30, 31).
func TestFeatureIDs(t *testing.T) {
	for id, want := range map[FeatureID]string{
		1: "DEVICE_ATTRIBUTES", 2: "MAX_QUEUES_NUM", 3: "HW_HINTS", 4: "LLQ",
		5: "EXTRA_PROPERTIES_STRINGS", 6: "EXTRA_PROPERTIES_FLAGS", 7: "MAX_QUEUES_EXT",
		8: "FRAG_BYPASS", 10: "RSS_HASH_FUNCTION", 11: "STATELESS_OFFLOAD_CONFIG",
		12: "RSS_INDIRECTION_TABLE_CONFIG", 14: "MTU", 18: "RSS_HASH_INPUT",
		20: "INTERRUPT_MODERATION", 26: "AENQ_CONFIG", 27: "LINK_CONFIG",
		28: "HOST_ATTR_CONFIG", 29: "PHC_CONFIG", 30: "FLOW_STEERING_CONFIG",
		31: "HW_TIMESTAMP", 9: "FEATURE(9)", 200: "FEATURE(200)",
	} {
		if id.String() != want {
			t.Errorf("FeatureID(%d) = %q, want %q", uint8(id), id, want)
		}
	}
	if FeatureBit(FeatAENQConfig) != 0x04000000 || FeatureBit(32) != 0 || FeatureBit(255) != 0 {
		t.Error("FeatureBit")
	}
	if !FeatureSupported(0x10, FeatLLQ) || FeatureSupported(0x10, FeatHWHints) {
		t.Error("FeatureSupported")
	}
}

// §4.6: AENQ_CONFIG (26), STATELESS_OFFLOAD_CONFIG (11) and MAX_QUEUES_EXT
// (7) or MAX_QUEUES_NUM (2) are mandatory.
func TestCheckRequiredFeatures(t *testing.T) {
	if err := CheckRequiredFeatures(1<<26 | 1<<11 | 1<<7); err != nil {
		t.Error(err)
	}
	if err := CheckRequiredFeatures(1<<26 | 1<<11 | 1<<2); err != nil {
		t.Error(err)
	}
	err := CheckRequiredFeatures(1 << 11)
	if err == nil || !strings.Contains(err.Error(), "AENQ_CONFIG, MAX_QUEUES_EXT or MAX_QUEUES_NUM") {
		t.Errorf("err = %v", err)
	}
}

// ena_admin_defs.h enum ena_admin_aq_caps_id.
func TestCapabilities(t *testing.T) {
	if CapENIStats.Bit() != 1 || CapENASRDInfo.Bit() != 2 || CapCustomerMetrics.Bit() != 4 ||
		CapExtendedResetReasons.Bit() != 8 || CapCDescMBZ.Bit() != 16 || Capability(40).Bit() != 0 {
		t.Error("capability bits")
	}
	if !CapExtendedResetReasons.In(0x08) || CapCDescMBZ.In(0x0F) {
		t.Error("Capability.In")
	}
	if CapExtendedResetReasons.String() != "EXTENDED_RESET_REASONS" || Capability(9).String() != "CAPABILITY(9)" {
		t.Error("capability strings")
	}
}

// ena_admin_defs.h struct ena_admin_device_attr_feature_desc: impl_id @0,
// device_version @4, supported_features @8, capabilities @12,
// phys_addr_width @16, virt_addr_width @20, mac_addr[6] @24, reserved7[2]
// @30, max_mtu @32.
func TestDeviceAttributesVector(t *testing.T) {
	d := DeviceAttributes{ImplID: 0x01020304, DeviceVersion: 0x05060708, SupportedFeatures: 0x0C04089E,
		Capabilities: 0x1F, PhysAddrWidth: 0x30, VirtAddrWidth: 0x39,
		MAC: [6]byte{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}, FlowSteeringMaxEntries: 0xA0B0, MaxMTU: 0x2400}
	want := cpHex(t, "04 03 02 01 08 07 06 05 9e 08 04 0c 1f 00 00 00 30 00 00 00 39 00 00 00"+
		"02 11 22 33 44 55 b0 a0 00 24 00 00")
	b := cpDirty(DeviceAttributesSize)
	d.Encode(b)
	cpCheck(t, "DEVICE_ATTRIBUTES", b, want)
	if DecodeDeviceAttributes(want) != d {
		t.Errorf("decode = %+v", DecodeDeviceAttributes(want))
	}
}

// ena_admin_defs.h struct ena_admin_queue_feature_desc: seven u32 @0..24,
// max_packet_tx_descs u16 @28, max_packet_rx_descs u16 @30.
func TestMaxQueuesNumVector(t *testing.T) {
	m := MaxQueuesNum{1, 2, 3, 4, 5, 6, 7, 0x0809, 0x0A0B}
	want := cpHex(t, "01 00 00 00 02 00 00 00 03 00 00 00 04 00 00 00 05 00 00 00 06 00 00 00 07 00 00 00 09 08 0b 0a")
	b := cpDirty(MaxQueuesNumSize)
	m.Encode(b)
	cpCheck(t, "MAX_QUEUES_NUM", b, want)
	if DecodeMaxQueuesNum(want) != m {
		t.Errorf("decode = %+v", DecodeMaxQueuesNum(want))
	}
}

// ena_admin_defs.h struct ena_admin_queue_ext_feature_desc: version u8 @0,
// reserved1[3] @1, then ena_admin_queue_ext_feature_fields @4: nine u32
// (max_tx_sq_num .. max_tx_header_size), max_per_packet_tx_descs u16 @40,
// max_per_packet_rx_descs u16 @42.
func TestMaxQueuesExtVector(t *testing.T) {
	m := MaxQueuesExt{Version: 1, MaxTxSQNum: 0x11, MaxTxCQNum: 0x12, MaxRxSQNum: 0x13, MaxRxCQNum: 0x14,
		MaxTxSQDepth: 0x1000, MaxTxCQDepth: 0x2000, MaxRxSQDepth: 0x3000, MaxRxCQDepth: 0x4000,
		MaxTxHeaderSize: 0xE0, MaxPerPacketTxDescs: 0x1F, MaxPerPacketRxDescs: 0x2E}
	want := cpHex(t, "01 00 00 00 11 00 00 00 12 00 00 00 13 00 00 00 14 00 00 00"+
		"00 10 00 00 00 20 00 00 00 30 00 00 00 40 00 00 e0 00 00 00 1f 00 2e 00")
	b := cpDirty(MaxQueuesExtSize)
	m.Encode(b)
	cpCheck(t, "MAX_QUEUES_EXT", b, want)
	if DecodeMaxQueuesExt(want) != m {
		t.Errorf("decode = %+v", DecodeMaxQueuesExt(want))
	}
	if MaxQueuesExtSize > SetFeaturePayloadSize || MaxQueuesExtSize > GetFeatureRespPayloadSize {
		t.Error("payload does not fit")
	}
}

// ena_admin_defs.h struct ena_admin_ena_hw_hints: eight u16 @0..14,
// reserved[8] @16.
func TestHWHintsVector(t *testing.T) {
	h := HWHints{0x0102, 0x0304, 0x0506, 0x0708, 0x090A, 0x0B0C, 0x0D0E, 0x0F10}
	want := cpHex(t, "02 01 04 03 06 05 08 07 0a 09 0c 0b 0e 0d 10 0f 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00")
	b := cpDirty(HWHintsSize)
	h.Encode(b)
	cpCheck(t, "HW_HINTS", b, want)
	if DecodeHWHints(want) != h {
		t.Errorf("decode = %+v", DecodeHWHints(want))
	}
}

// ena_admin_defs.h struct ena_admin_feature_llq_desc: max_llq_num @0,
// max_llq_depth @4, eight u16 ctrl fields @8..22, feature_version @24,
// entry_size_recommended @25, max_wide_llq_depth u16 @26, accel_mode @28
// (get: supported_flags u16 @28, max_tx_burst_size u16 @30; raw[2] → 8 B,
// so bytes 32..35 are the second raw word).
func TestLLQVector(t *testing.T) {
	l := LLQ{MaxLLQNum: 8, MaxLLQDepth: 0x400,
		HeaderLocationSupported: 0x0003, HeaderLocationEnabled: LLQHeaderLocationInline,
		EntrySizeSupported: 0x0007, EntrySizeEnabled: LLQEntrySize256,
		DescsBeforeHeaderSupported: 0x0017, DescsBeforeHeaderEnabled: LLQDescsBeforeHeader2,
		StrideSupported: 0x0003, StrideEnabled: LLQStrideMultipleDescsPerEntry,
		FeatureVersion: 1, EntrySizeRecommended: LLQEntrySize128, MaxWideLLQDepth: 0x0200,
		AccelFlags: LLQAccelDriverFlags, MaxTxBurstSize: 0x0800}
	want := cpHex(t, "08 00 00 00 00 04 00 00 03 00 01 00 07 00 04 00 17 00 02 00 03 00 02 00"+
		"01 01 00 02 03 00 00 08 00 00 00 00")
	b := cpDirty(LLQSize)
	l.Encode(b)
	cpCheck(t, "LLQ", b, want)
	if DecodeLLQ(want) != l {
		t.Errorf("decode = %+v", DecodeLLQ(want))
	}
	for code, n := range map[uint16]int{1: 128, 2: 192, 4: 256, 0: 0, 3: 0, 0xFFFF: 0} {
		if LLQEntrySizeBytes(code) != n {
			t.Errorf("LLQEntrySizeBytes(%d) = %d", code, LLQEntrySizeBytes(code))
		}
	}
}

// ena_admin_defs.h struct ena_admin_feature_offload_desc: tx @0,
// rx_supported @4, rx_enabled @8; ENA_ADMIN_FEATURE_OFFLOAD_DESC_* masks.
func TestStatelessOffloadVector(t *testing.T) {
	s := StatelessOffload{Tx: OffloadTxL3CsumIPv4 | OffloadTxL4IPv4CsumPart | OffloadTxTSOECN,
		RxSupported: OffloadRxL4IPv6Csum | OffloadRxHash, RxEnabled: OffloadRxL3CsumIPv4 | OffloadRxL4IPv4Csum}
	want := cpHex(t, "83 00 00 00 0c 00 00 00 03 00 00 00")
	b := cpDirty(StatelessOffloadSize)
	s.Encode(b)
	cpCheck(t, "STATELESS_OFFLOAD", b, want)
	if DecodeStatelessOffload(want) != s {
		t.Errorf("decode = %+v", DecodeStatelessOffload(want))
	}
	if OffloadTxL4IPv4CsumFull != 4 || OffloadTxL4IPv6CsumPart != 8 || OffloadTxL4IPv6CsumFull != 0x10 ||
		OffloadTxTSOIPv4 != 0x20 || OffloadTxTSOIPv6 != 0x40 {
		t.Error("tx offload bits")
	}
}

// ena_admin_defs.h struct ena_admin_feature_rss_flow_hash_function:
// supported_func @0, selected_func @4, init_val @8; enum
// ena_admin_hash_functions TOEPLITZ 1, CRC32 2.
func TestRSSHashFunctionVector(t *testing.T) {
	r := RSSHashFunction{SupportedFunc: 0x06, SelectedFunc: HashToeplitz.Bit(), InitVal: 0xFFFFFFFF}
	want := cpHex(t, "06 00 00 00 02 00 00 00 ff ff ff ff")
	b := cpDirty(RSSHashFunctionSize)
	r.Encode(b)
	cpCheck(t, "RSS_HASH_FUNCTION", b, want)
	if DecodeRSSHashFunction(want) != r {
		t.Errorf("decode = %+v", DecodeRSSHashFunction(want))
	}
	if fn, ok := r.Selected(); !ok || fn != HashToeplitz || fn.String() != "TOEPLITZ" {
		t.Errorf("Selected = %v %v", fn, ok)
	}
	// Lowest set bit wins; bits above 7 are ignored.
	if fn, ok := (RSSHashFunction{SelectedFunc: 0xF00 | 0x0C}).Selected(); !ok || fn != HashCRC32 {
		t.Errorf("Selected(0xF0C) = %v %v", fn, ok)
	}
	if _, ok := (RSSHashFunction{SelectedFunc: 0x100}).Selected(); ok {
		t.Error("Selected(0x100) must be none")
	}
	if HashFunction(9).Bit() != 0 || HashFunction(7).String() != "HASH(7)" {
		t.Error("HashFunction bounds")
	}
}

// ena_admin_defs.h struct ena_admin_feature_rss_flow_hash_control:
// key_parts u32 @0, reserved u32 @4, key[10] u32 @8.
func TestRSSHashKeyVector(t *testing.T) {
	k := RSSHashKey{KeyParts: RSSKeyParts}
	for i := range k.Key {
		k.Key[i] = byte(0x80 + i)
	}
	want := make([]byte, 0, RSSHashKeySize)
	want = append(want, cpHex(t, "0a 00 00 00 00 00 00 00")...)
	for i := range RSSKeySize {
		want = append(want, byte(0x80+i))
	}
	b := cpDirty(RSSHashKeySize)
	k.Encode(b)
	cpCheck(t, "RSS key", b, want)
	if DecodeRSSHashKey(want) != k {
		t.Errorf("decode = %+v", DecodeRSSHashKey(want))
	}
}

// ena_admin_defs.h struct ena_admin_feature_rss_flow_hash_input:
// supported_input_sort u16 @0, enabled_input_sort u16 @2; struct
// ena_admin_feature_rss_hash_control: supported_fields[16] @0,
// selected_fields[16] @64, reserved2[16] @128, reserved3[16] @192, each
// ena_admin_proto_input {fields u16, reserved2 u16}.
func TestRSSHashInputVectors(t *testing.T) {
	in := RSSHashInput{SupportedInputSort: 0x0106, EnabledInputSort: RSSDefaultInputSort}
	b := cpDirty(RSSHashInputSize)
	in.Encode(b)
	cpCheck(t, "RSS_HASH_INPUT", b, cpHex(t, "06 01 06 00"))
	if DecodeRSSHashInput(b) != in {
		t.Error("decode")
	}

	var c RSSHashControl
	c.Supported[0] = 0x003F
	c.Supported[15] = 0x1234
	c.Selected = DefaultRSSHashFields()
	want := cpAt(t, RSSHashControlSize,
		0, "3f 00", 60, "34 12",
		64+4*0, "3c 00", 64+4*1, "3c 00", 64+4*2, "3c 00", 64+4*3, "3c 00",
		64+4*4, "0c 00", 64+4*5, "0c 00", 64+4*6, "0c 00", 64+4*7, "03 00")
	cb := cpDirty(RSSHashControlSize)
	c.Encode(cb)
	cpCheck(t, "RSS hash control", cb, want)
	if DecodeRSSHashControl(want) != c {
		t.Errorf("decode = %+v", DecodeRSSHashControl(want))
	}
	if RSSFieldL2DA != 1 || RSSFieldL2SA != 2 || RSSFieldL3DA != 4 || RSSFieldL3SA != 8 ||
		RSSFieldL4DP != 0x10 || RSSFieldL4SP != 0x20 || RSSTCP6Ex != 8 || RSSIP6Ex != 9 {
		t.Error("RSS field/proto constants")
	}
}

// ena_admin_defs.h struct ena_admin_feature_rss_ind_table: min_size u16 @0,
// max_size u16 @2, size u16 @4, flags u8 @6, reserved @7, inline_index u32
// @8, inline_entry {cq_idx u16 @12, reserved u16 @14}; struct
// ena_admin_rss_ind_table_entry {cq_idx u16, reserved u16}.
func TestRSSIndirectionTableVector(t *testing.T) {
	r := RSSIndirectionTable{MinSize: 0x0102, MaxSize: 0x0304, Size: 0x0506, OneEntryUpdate: true,
		InlineIndex: RSSIndTableNoInlineIndex, InlineCQIdx: 0x0708}
	want := cpHex(t, "02 01 04 03 06 05 01 00 ff ff ff ff 08 07 00 00")
	b := cpDirty(RSSIndirectionTableSize)
	r.Encode(b)
	cpCheck(t, "RSS_INDIRECTION_TABLE", b, want)
	if DecodeRSSIndirectionTable(want) != r {
		t.Errorf("decode = %+v", DecodeRSSIndirectionTable(want))
	}
	if g := DecodeRSSIndirectionTable(cpHex(t, "00 00 00 00 00 00 fe 00 00 00 00 00 00 00 00 00")); g.OneEntryUpdate || g.FlagsReserved != 0xFE {
		t.Errorf("flags reserved = %+v", g)
	}
	e := RSSIndEntry{CQIdx: 0xA1B2}
	eb := cpDirty(RSSIndEntrySize)
	e.Encode(eb)
	cpCheck(t, "RSS ind entry", eb, cpHex(t, "b2 a1 00 00"))
	if DecodeRSSIndEntry(eb) != e {
		t.Error("decode entry")
	}
}

// ena_admin_defs.h struct ena_admin_set_feature_mtu_desc (mtu u32 @0),
// ena_admin_set_feature_host_attr_desc (os_info_ba @0, debug_ba @8,
// debug_area_size @16), ena_admin_feature_aenq_desc (supported_groups @0,
// enabled_groups @4), ena_admin_feature_intr_moder_desc
// (intr_delay_resolution u16 @0, reserved u16 @2),
// ena_admin_get_feature_link_desc (speed @0, supported @4, flags @8).
func TestSmallFeatureVectors(t *testing.T) {
	b := cpDirty(HostAttrConfigSize)
	m := MTU{MTU: 0x01020304}
	m.Encode(b)
	cpCheck(t, "MTU", b[:MTUSize], cpHex(t, "04 03 02 01"))
	if DecodeMTU(b) != m {
		t.Error("MTU decode")
	}

	h := HostAttrConfig{OSInfoAddr: 0x0001_2345_6000, DebugAddr: 0x0002_0000_7000, DebugAreaSize: 0x1000}
	h.Encode(b)
	want := cpHex(t, "00 60 45 23 01 00 00 00 00 70 00 00 02 00 00 00 00 10 00 00")
	cpCheck(t, "HOST_ATTR_CONFIG", b, want)
	if DecodeHostAttrConfig(want) != h {
		t.Error("HOST_ATTR_CONFIG decode")
	}

	a := AENQConfig{SupportedGroups: 0xFF, EnabledGroups: AENQGroupsLinux}
	ab := cpDirty(AENQConfigSize)
	a.Encode(ab)
	cpCheck(t, "AENQ_CONFIG", ab, cpHex(t, "ff 00 00 00 df 00 00 00"))
	if DecodeAENQConfig(ab) != a {
		t.Error("AENQ_CONFIG decode")
	}

	im := InterruptModeration{DelayResolution: 0x0102}
	ib := cpDirty(InterruptModerationSize)
	im.Encode(ib)
	cpCheck(t, "INTERRUPT_MODERATION", ib, cpHex(t, "02 01 00 00"))
	if DecodeInterruptModeration(ib) != im {
		t.Error("INTERRUPT_MODERATION decode")
	}

	l := LinkConfig{SpeedMbps: 100000, Supported: LinkSpeed100G | LinkSpeed400G, FullDuplex: true}
	lb := cpDirty(LinkConfigSize)
	l.Encode(lb)
	cpCheck(t, "LINK_CONFIG", lb, cpHex(t, "a0 86 01 00 80 02 00 00 02 00 00 00"))
	if DecodeLinkConfig(lb) != l {
		t.Error("LINK_CONFIG decode")
	}
}
