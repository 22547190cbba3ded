package spec

import (
	"errors"
	"testing"
)

// ena_admin_defs.h struct ena_admin_aq_common_desc: command_id u16 @0 (11:0),
// opcode u8 @2, flags u8 @3 (bit0 PHASE, bit1 CTRL_DATA, bit2
// CTRL_DATA_INDIRECT).
func TestAQHeaderVector(t *testing.T) {
	h := AQHeader{CommandID: 0x0ABC, Opcode: OpSetFeature, Phase: true, CtrlDataIndirect: true}
	b := cpDirty(AQHeaderSize)
	h.Encode(b)
	cpCheck(t, "aq header", b, cpHex(t, "bc 0a 09 05"))
	if got := DecodeAQHeader(b); got != h {
		t.Errorf("decode = %+v", got)
	}
	// Reserved bits stay visible: command_id 15:12 and flags 7:3.
	g := DecodeAQHeader(cpHex(t, "bc fa 09 fa"))
	want := AQHeader{CommandID: 0xABC, IDReserved: 0xF000, Opcode: OpSetFeature, CtrlData: true, FlagsReserved: 0xF8}
	if g != want {
		t.Errorf("decode reserved = %+v", g)
	}
	// CommandID wider than 12 bits does not leak into the reserved nibble.
	(&AQHeader{CommandID: 0xFFFF, CtrlData: true}).Encode(b)
	cpCheck(t, "aq header masked", b, cpHex(t, "ff 0f 00 02"))
}

func TestAQEntryRawAccessors(t *testing.T) {
	e := cpAt(t, AQEntrySize, 0, "00 30 08 04")
	SetAQEntryID(e, 0x1ABC, true) // only 11:0 of the id is taken
	cpCheck(t, "stamped header", e[:4], cpHex(t, "bc 3a 08 05"))
	if AQEntryOpcode(e) != OpGetFeature || AQEntryCommandID(e) != 0xABC || !AQEntryPhase(e) {
		t.Errorf("raw accessors: %v %#x %v", AQEntryOpcode(e), AQEntryCommandID(e), AQEntryPhase(e))
	}
	SetAQEntryID(e, 1, false)
	cpCheck(t, "restamped header", e[:4], cpHex(t, "01 30 08 04"))
}

// ena_admin_defs.h struct ena_admin_ctrl_buff_info: length u32 @0, address
// ena_common_mem_addr @4.
func TestCtrlBufVector(t *testing.T) {
	c := CtrlBuf{Length: 0x30, Addr: 0x1234_5678_9ABC}
	b := cpDirty(CtrlBufSize)
	c.Encode(b)
	cpCheck(t, "ctrl buf", b, cpHex(t, "30 00 00 00 bc 9a 78 56 34 12 00 00"))
	if DecodeCtrlBuf(b) != c {
		t.Errorf("decode = %+v", DecodeCtrlBuf(b))
	}
}

// ena_admin_defs.h struct ena_admin_acq_common_desc: command u16 @0 (11:0),
// status u8 @2, flags u8 @3 (bit0 PHASE), extended_status u16 @4,
// sq_head_indx u16 @6.
func TestACQHeaderVector(t *testing.T) {
	h := ACQHeader{CommandID: 0x123, Status: StatusIllegalParameter, Phase: true, ExtendedStatus: 0x4567, SQHeadIndx: 0x89AB}
	b := cpDirty(ACQHeaderSize)
	h.Encode(b)
	want := cpHex(t, "23 01 05 01 67 45 ab 89")
	cpCheck(t, "acq header", b, want)
	if DecodeACQHeader(want) != h {
		t.Errorf("decode = %+v", DecodeACQHeader(want))
	}
	if !ACQEntryPhase(want) || ACQEntryCommandID(want) != 0x123 {
		t.Error("raw ACQ accessors")
	}
	SetACQEntryPhase(want, false)
	if want[3] != 0 {
		t.Errorf("SetACQEntryPhase: flags %#x", want[3])
	}
	g := DecodeACQHeader(cpHex(t, "23 f1 00 ff 00 00 00 00"))
	if g.IDReserved != 0xF000 || g.FlagsReserved != 0xFE || !g.Phase || g.CommandID != 0x123 {
		t.Errorf("reserved bits = %+v", g)
	}
	err := h.Err(OpCreateCQ)
	var se *StatusError
	if !errors.As(err, &se) || se.Opcode != OpCreateCQ || se.Status != StatusIllegalParameter || se.ExtendedStatus != 0x4567 {
		t.Errorf("Err = %v", err)
	}
	if (ACQHeader{}).Err(OpCreateCQ) != nil {
		t.Error("SUCCESS must give nil error")
	}
}

// ena_admin_defs.h struct ena_admin_aq_create_cq_cmd: cq_caps_1 @4 (bit5
// INTERRUPT_MODE_ENABLED), cq_caps_2 @5 (4:0 entry words), cq_depth u16 @6,
// msix_vector u32 @8, cq_ba mem_addr @12.
func TestCreateCQCmdVector(t *testing.T) {
	c := CreateCQCmd{
		Header:        AQHeader{CommandID: 7, Phase: true},
		InterruptMode: true, EntrySizeWords: CQEntryWordsRx, Depth: 0x0400,
		MSIXVector: 3, BaseAddr: 0xABCD_1234_5000,
	}
	b := cpDirty(AQEntrySize)
	c.Encode(b)
	want := cpAt(t, AQEntrySize,
		0, "07 00 03 01",
		4, "20 04 00 04",
		8, "03 00 00 00",
		12, "00 50 34 12 cd ab 00 00")
	cpCheck(t, "CREATE_CQ", b, want)
	c.Header.Opcode = OpCreateCQ
	if got := DecodeCreateCQCmd(want); got != c {
		t.Errorf("decode = %+v", got)
	}
	// msix "none" and polling (iPXE style).
	(&CreateCQCmd{EntrySizeWords: CQEntryWordsTx, Depth: 8, MSIXVector: MSIXNoVector}).Encode(b)
	cpCheck(t, "CREATE_CQ polled", b, cpAt(t, AQEntrySize, 0, "00 00 03 00 00 02 08 00 ff ff ff ff"))
}

// ena_admin_defs.h struct ena_admin_acq_create_cq_resp_desc (after the 8-byte
// header): cq_idx u16 @8, cq_actual_depth u16 @10, numa_node_register_offset
// u32 @12, cq_head_db_register_offset u32 @16,
// cq_interrupt_unmask_register_offset u32 @20 (payload-relative: -8).
func TestCreateCQRespVector(t *testing.T) {
	r := CreateCQResp{CQIdx: 0x0102, ActualDepth: 0x0304, NUMANodeRegOffset: 0x05060708,
		HeadDBRegOffset: 0x090A0B0C, UnmaskRegOffset: 0x0D0E0F10}
	want := cpHex(t, "02 01 04 03 08 07 06 05 0c 0b 0a 09 10 0f 0e 0d")
	b := cpDirty(CreateCQRespSize)
	r.Encode(b)
	cpCheck(t, "CREATE_CQ resp", b, want)
	if DecodeCreateCQResp(want) != r {
		t.Errorf("decode = %+v", DecodeCreateCQResp(want))
	}
}

// ena_admin_defs.h struct ena_admin_aq_create_sq_cmd: sq_identity @4 (7:5
// direction), reserved8_w1 @5, sq_caps_2 @6 (3:0 placement, 6:4 completion
// policy), sq_caps_3 @7 (bit0 phys contiguous), cq_idx u16 @8, sq_depth u16
// @10, sq_ba @12, sq_head_writeback @20, reserved @28, @32.
func TestCreateSQCmdVector(t *testing.T) {
	c := CreateSQCmd{
		Header:    AQHeader{CommandID: 0x0FFF},
		Direction: SQDirectionTx, Placement: PlacementDev, CompletionPolicy: CompletionPolicyHeadOnDemand,
		PhysContiguous: true, CQIdx: 0x0102, Depth: 0x0800,
		BaseAddr: 0x0001_0000_2000, HeadWriteback: 0x00FF_EEDD_CC00,
	}
	b := cpDirty(AQEntrySize)
	c.Encode(b)
	want := cpAt(t, AQEntrySize,
		0, "ff 0f 01 00",
		4, "20 00 23 01",
		8, "02 01 00 08",
		12, "00 20 00 00 01 00 00 00",
		20, "00 cc dd ee ff 00 00 00")
	cpCheck(t, "CREATE_SQ", b, want)
	c.Header.Opcode = OpCreateSQ
	if got := DecodeCreateSQCmd(want); got != c {
		t.Errorf("decode = %+v", got)
	}
	// Rx queue, host placement, policy 0: sq_identity 0x40, sq_caps_2 0x01.
	(&CreateSQCmd{Direction: SQDirectionRx, Placement: PlacementHost, PhysContiguous: true}).Encode(b)
	cpCheck(t, "CREATE_SQ rx", b, cpAt(t, AQEntrySize, 0, "00 00 01 00 40 00 01 01"))
}

// ena_admin_defs.h struct ena_admin_acq_create_sq_resp_desc: sq_idx u16 @8,
// reserved u16 @10, sq_doorbell_offset @12, llq_descriptors_offset @16,
// llq_headers_offset @20 (payload-relative: -8).
func TestCreateSQRespVector(t *testing.T) {
	r := CreateSQResp{SQIdx: 0x0A0B, DoorbellOffset: 0x11223344, LLQDescriptorsOffset: 0x55667788, LLQHeadersOffset: 0x99AABBCC}
	want := cpHex(t, "0b 0a 00 00 44 33 22 11 88 77 66 55 cc bb aa 99")
	b := cpDirty(CreateSQRespSize)
	r.Encode(b)
	cpCheck(t, "CREATE_SQ resp", b, want)
	if DecodeCreateSQResp(want) != r {
		t.Errorf("decode = %+v", DecodeCreateSQResp(want))
	}
}

// ena_admin_defs.h struct ena_admin_aq_destroy_sq_cmd: ena_admin_sq @4 =
// sq_idx u16 @4, sq_identity @6 (7:5 direction); struct
// ena_admin_aq_destroy_cq_cmd: cq_idx u16 @4.
func TestDestroyCmdVectors(t *testing.T) {
	s := DestroySQCmd{Header: AQHeader{CommandID: 2, Phase: true}, SQIdx: 0x0506, Direction: SQDirectionRx}
	b := cpDirty(AQEntrySize)
	s.Encode(b)
	want := cpAt(t, AQEntrySize, 0, "02 00 02 01 06 05 40 00")
	cpCheck(t, "DESTROY_SQ", b, want)
	s.Header.Opcode = OpDestroySQ
	if DecodeDestroySQCmd(want) != s {
		t.Errorf("decode = %+v", DecodeDestroySQCmd(want))
	}
	c := DestroyCQCmd{Header: AQHeader{CommandID: 0x10}, CQIdx: 0x0708}
	c.Encode(b)
	want = cpAt(t, AQEntrySize, 0, "10 00 04 00 08 07 00 00")
	cpCheck(t, "DESTROY_CQ", b, want)
	c.Header.Opcode = OpDestroyCQ
	if DecodeDestroyCQCmd(want) != c {
		t.Errorf("decode = %+v", DecodeDestroyCQCmd(want))
	}
}

// ena_admin_defs.h struct ena_admin_get_feat_cmd: control_buffer @4 (12 B),
// feat_common @16 = flags (1:0 select), feature_id @17, feature_version @18,
// reserved8 @19, raw[11] @20.
func TestGetFeatureCmdVector(t *testing.T) {
	c := GetFeatureCmd{
		Header:  AQHeader{CommandID: 1, Phase: true, CtrlDataIndirect: true},
		CtrlBuf: CtrlBuf{Length: RSSHashKeySize, Addr: 0x0002_0000_3000},
		Select:  FeatureSelectCurrent, FeatureID: FeatRSSHashFunction, FeatureVersion: 1,
	}
	b := cpDirty(AQEntrySize)
	c.Encode(b)
	want := cpAt(t, AQEntrySize,
		0, "01 00 08 05",
		4, "30 00 00 00 00 30 00 00 02 00 00 00",
		16, "01 0a 01 00")
	cpCheck(t, "GET_FEATURE", b, want)
	c.Header.Opcode = OpGetFeature
	if DecodeGetFeatureCmd(want) != c {
		t.Errorf("decode = %+v", DecodeGetFeatureCmd(want))
	}
}

// ena_admin_defs.h struct ena_admin_set_feat_cmd: as get_feat_cmd, payload
// union u @20; ena_admin_set_feature_mtu_desc mtu u32 @0 of u.
func TestSetFeatureCmdVector(t *testing.T) {
	c := SetFeatureCmd{Header: AQHeader{CommandID: 3, Phase: true}, FeatureID: FeatMTU}
	(&MTU{MTU: 9001}).Encode(c.Payload[:])
	c.Payload[43] = 0x77 // last payload byte lands at entry offset 63
	b := cpDirty(AQEntrySize)
	c.Encode(b)
	want := cpAt(t, AQEntrySize,
		0, "03 00 09 01",
		16, "00 0e 00 00",
		20, "29 23 00 00",
		63, "77")
	cpCheck(t, "SET_FEATURE MTU", b, want)
	c.Header.Opcode = OpSetFeature
	if DecodeSetFeatureCmd(want) != c {
		t.Errorf("decode = %+v", DecodeSetFeatureCmd(want))
	}
}

// ena_admin_defs.h struct ena_admin_aq_get_stats_cmd: control_buffer @4,
// type @16, scope @17, reserved3 u16 @18, queue_idx u16 @20, device_id u16
// @22, requested_metrics u64 @24.
func TestGetStatsCmdVector(t *testing.T) {
	c := GetStatsCmd{Header: AQHeader{CommandID: 4, Phase: true}, Type: StatsENI, Scope: StatsScopeEthTraffic,
		QueueIdx: 0x0102, DeviceID: StatsDeviceSelf, RequestedMetrics: CustomerMetricsSupportMask}
	b := cpDirty(AQEntrySize)
	c.Encode(b)
	want := cpAt(t, AQEntrySize,
		0, "04 00 0b 01",
		16, "02 01 00 00 02 01 ff ff",
		24, "3f 00 00 00 00 00 00 00")
	cpCheck(t, "GET_STATS", b, want)
	c.Header.Opcode = OpGetStats
	if DecodeGetStatsCmd(want) != c {
		t.Errorf("decode = %+v", DecodeGetStatsCmd(want))
	}
}

// ena_admin_defs.h struct ena_admin_basic_stats: {tx_bytes, tx_pkts,
// rx_bytes, rx_pkts, rx_drops, tx_drops, rx_overruns} each _low u32 then
// _high u32.
func TestBasicStatsVector(t *testing.T) {
	s := BasicStats{TxBytes: 0x01_00000002, TxPkts: 0x03_00000004, RxBytes: 0x05_00000006,
		RxPkts: 0x07_00000008, RxDrops: 0x09_0000000A, TxDrops: 0x0B_0000000C, RxOverruns: 0x0D_0000000E}
	want := cpHex(t, "02 00 00 00 01 00 00 00 04 00 00 00 03 00 00 00 06 00 00 00 05 00 00 00"+
		"08 00 00 00 07 00 00 00 0a 00 00 00 09 00 00 00 0c 00 00 00 0b 00 00 00 0e 00 00 00 0d 00 00 00")
	b := cpDirty(BasicStatsSize)
	s.Encode(b)
	cpCheck(t, "basic stats", b, want)
	if DecodeBasicStats(want) != s {
		t.Errorf("decode = %+v", DecodeBasicStats(want))
	}
}

// ena_admin_defs.h struct ena_admin_eni_stats: five u64 @0, 8, 16, 24, 32;
// struct ena_admin_ena_srd_info: flags u64 @0 then ena_srd_stats four u64.
func TestENIAndSRDStatsVectors(t *testing.T) {
	want := cpHex(t, "01 00 00 00 00 00 00 10 02 00 00 00 00 00 00 20 03 00 00 00 00 00 00 30"+
		"04 00 00 00 00 00 00 40 05 00 00 00 00 00 00 50")
	e := ENIStats{0x1000000000000001, 0x2000000000000002, 0x3000000000000003, 0x4000000000000004, 0x5000000000000005}
	b := cpDirty(ENIStatsSize)
	e.Encode(b)
	cpCheck(t, "ENI stats", b, want)
	if DecodeENIStats(want) != e {
		t.Errorf("decode = %+v", DecodeENIStats(want))
	}
	s := SRDStats{Flags: 0x1000000000000001, TxPkts: 0x2000000000000002, EligibleTxPkts: 0x3000000000000003,
		RxPkts: 0x4000000000000004, ResourceUtilization: 0x5000000000000005}
	s.Encode(b)
	cpCheck(t, "SRD stats", b, want)
	if DecodeSRDStats(want) != s {
		t.Errorf("decode = %+v", DecodeSRDStats(want))
	}
	if SRDEnabled|SRDUDPEnabled|SRDUDPOrderingBypassEnabled != 7 {
		t.Error("SRD flags")
	}
}

// ena_admin_defs.h struct ena_admin_customer_metrics: reported_metrics u64 @0.
func TestCustomerMetrics(t *testing.T) {
	m := CustomerMetrics{ReportedMetrics: 0x0102030405060708}
	b := cpDirty(CustomerMetricsSize)
	m.Encode(b)
	cpCheck(t, "customer metrics", b, cpHex(t, "08 07 06 05 04 03 02 01"))
	if DecodeCustomerMetrics(b) != m {
		t.Error("decode")
	}
	// Requested bits 0, 2, 5: the buffer holds metric 0, 2, 5 in that order.
	for _, c := range []struct {
		id   uint
		slot int
		ok   bool
	}{{0, 0, true}, {1, 0, false}, {2, 1, true}, {5, 2, true}, {64, 0, false}, {200, 0, false}} {
		slot, ok := CustomerMetricSlot(0x25, c.id)
		if slot != c.slot || ok != c.ok {
			t.Errorf("CustomerMetricSlot(0x25, %d) = %d %v", c.id, slot, ok)
		}
	}
	if CustomerMetricsBufLen(CustomerMetricsSupportMask) != 48 || CustomerMetricsMinSupportMask != 0x1F {
		t.Error("customer metrics sizes")
	}
}

// ena_admin_defs.h enum ena_admin_aq_opcode / ena_admin_aq_completion_status.
func TestOpcodeStatusStrings(t *testing.T) {
	for o, want := range map[Opcode]string{1: "CREATE_SQ", 2: "DESTROY_SQ", 3: "CREATE_CQ", 4: "DESTROY_CQ",
		8: "GET_FEATURE", 9: "SET_FEATURE", 11: "GET_STATS", 5: "OPCODE(5)"} {
		if o.String() != want {
			t.Errorf("Opcode(%d) = %q", uint8(o), o)
		}
	}
	for s, want := range map[Status]string{0: "SUCCESS", 1: "RESOURCE_ALLOCATION_FAILURE", 2: "BAD_OPCODE",
		3: "UNSUPPORTED_OPCODE", 4: "MALFORMED_REQUEST", 5: "ILLEGAL_PARAMETER", 6: "UNKNOWN_ERROR",
		7: "RESOURCE_BUSY", 8: "STATUS(8)"} {
		if s.String() != want {
			t.Errorf("Status(%d) = %q", uint8(s), s)
		}
	}
}

func TestStatusError(t *testing.T) {
	if StatusSuccess.Err() != nil {
		t.Fatal("SUCCESS.Err() != nil")
	}
	err := StatusUnknownError.Err()
	if err.Error() != "device returned UNKNOWN_ERROR" {
		t.Errorf("Error() = %q", err)
	}
	e := &StatusError{Opcode: OpCreateCQ, Status: StatusUnknownError, ExtendedStatus: 3}
	if e.Error() != "CREATE_CQ: device returned UNKNOWN_ERROR (extended status 0x3)" {
		t.Errorf("Error() = %q", e)
	}
	wrapped := errors.Join(errors.New("ena: create queue pair 0"), e)
	if !errors.Is(wrapped, &StatusError{Status: StatusUnknownError}) {
		t.Error("errors.Is by status")
	}
	if !errors.Is(wrapped, &StatusError{Opcode: OpCreateCQ, Status: StatusUnknownError}) {
		t.Error("errors.Is by opcode+status")
	}
	if errors.Is(wrapped, &StatusError{Opcode: OpCreateSQ, Status: StatusUnknownError}) ||
		errors.Is(wrapped, &StatusError{Status: StatusResourceBusy}) {
		t.Error("errors.Is matched the wrong status or opcode")
	}
}

// Stats and SQ enumerations, ena_admin_defs.h enum ena_admin_get_stats_type,
// ena_admin_sq_direction, ena_admin_placement_policy_type.
func TestAdminEnumValues(t *testing.T) {
	if StatsBasic != 0 || StatsExtended != 1 || StatsENI != 2 || StatsENASRD != 3 || StatsCustomerMetrics != 4 {
		t.Error("stats types")
	}
	if StatsCustomerMetrics.String() != "CUSTOMER_METRICS" || StatsType(9).String() != "STATS_TYPE(9)" {
		t.Error("stats type strings")
	}
	if SQDirectionTx.String() != "TX" || SQDirectionRx.String() != "RX" || SQDirection(0).String() != "DIRECTION(0)" {
		t.Error("direction strings")
	}
	if PlacementHost != 1 || PlacementDev != 3 || PlacementDev.String() != "DEV" || PlacementPolicy(2).String() != "PLACEMENT(2)" {
		t.Error("placement")
	}
	if ACQPayloadSize != 56 || SetFeaturePayloadSize != 44 || GetFeatureRespPayloadSize != 56 {
		t.Error("payload sizes")
	}
}
