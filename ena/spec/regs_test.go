package spec

import (
	"testing"
	"time"
)

// ena_regs_defs.h ENA_REGS_*_OFF.
func TestRegisterOffsets(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uint32
	}{
		{"VERSION", RegVersion, 0x0}, {"CONTROLLER_VERSION", RegControllerVersion, 0x4},
		{"CAPS", RegCaps, 0x8}, {"CAPS_EXT", RegCapsExt, 0xc},
		{"AQ_BASE_LO", RegAQBaseLo, 0x10}, {"AQ_BASE_HI", RegAQBaseHi, 0x14},
		{"AQ_CAPS", RegAQCaps, 0x18}, {"ACQ_BASE_LO", RegACQBaseLo, 0x20},
		{"ACQ_BASE_HI", RegACQBaseHi, 0x24}, {"ACQ_CAPS", RegACQCaps, 0x28},
		{"AQ_DB", RegAQDB, 0x2c}, {"ACQ_TAIL", RegACQTail, 0x30},
		{"AENQ_CAPS", RegAENQCaps, 0x34}, {"AENQ_BASE_LO", RegAENQBaseLo, 0x38},
		{"AENQ_BASE_HI", RegAENQBaseHi, 0x3c}, {"AENQ_HEAD_DB", RegAENQHeadDB, 0x40},
		{"AENQ_TAIL", RegAENQTail, 0x44}, {"INTR_MASK", RegIntrMask, 0x4c},
		{"DEV_CTL", RegDevCtl, 0x54}, {"DEV_STS", RegDevSts, 0x58},
		{"MMIO_REG_READ", RegMMIORegRead, 0x5c}, {"MMIO_RESP_LO", RegMMIORespLo, 0x60},
		{"MMIO_RESP_HI", RegMMIORespHi, 0x64}, {"RSS_IND_ENTRY_UPDATE", RegRSSIndEntryUpdate, 0x68},
		{"PHC_DB", RegPHCDB, 0x100},
	} {
		if c.got != c.want {
			t.Errorf("%s offset = %#x, want %#x", c.name, c.got, c.want)
		}
		if n := RegName(c.got); n != c.name {
			t.Errorf("RegName(%#x) = %q, want %q", c.got, n, c.name)
		}
	}
	if n := RegName(0x1000); n != "reg 0x1000" {
		t.Errorf("RegName(0x1000) = %q", n)
	}
}

// ena_regs_defs.h ENA_REGS_VERSION_{MINOR,MAJOR}_VERSION_MASK (7:0, 15:8).
func TestVersionRegister(t *testing.T) {
	if v := DecodeVersion(ObservedVersion); v != (Version{Major: 0, Minor: 10}) || v.String() != "0.10" {
		t.Errorf("DecodeVersion(0xA) = %+v %q", v, v)
	}
	if v := DecodeVersion(0xFFFF_1234); v != (Version{Major: 0x12, Minor: 0x34}) {
		t.Errorf("DecodeVersion(0xFFFF1234) = %+v", v)
	}
	if got := (Version{Major: 0x12, Minor: 0x34}).Encode(); got != 0x1234 {
		t.Errorf("Version.Encode = %#x", got)
	}
}

// ena_regs_defs.h ENA_REGS_CONTROLLER_VERSION_*: subminor 7:0, minor 15:8,
// major 23:16, impl_id 31:24.
func TestControllerVersionRegister(t *testing.T) {
	c := DecodeControllerVersion(0x04030201)
	if c != (ControllerVersion{Major: 3, Minor: 2, SubMinor: 1, ImplID: 4}) {
		t.Errorf("DecodeControllerVersion = %+v", c)
	}
	if c.Number() != 0x030201 || c.Encode() != 0x04030201 {
		t.Errorf("Number/Encode = %#x/%#x", c.Number(), c.Encode())
	}
	if !DecodeControllerVersion(ObservedControllerVersion).Supported() {
		t.Error("0.0.1 impl 1 must be supported")
	}
	// An implementation id alone does not make version 0.0.0 acceptable.
	if DecodeControllerVersion(0x01000000).Supported() {
		t.Error("0.0.0 must be rejected")
	}
}

// ena_regs_defs.h ENA_REGS_CAPS_*: contiguous bit 0, reset timeout 5:1,
// DMA width 15:8, admin timeout 19:16.
func TestCapsRegister(t *testing.T) {
	// 0x00053015 = admin 5 (0x50000) | width 0x30 (0x3000) | reset 10
	// (10<<1 = 0x14) | contiguous (0x1).
	want := Caps{ContiguousQueueRequired: true, ResetTimeout: 10, DMAAddrWidth: 48, AdminCmdTimeout: 5}
	if got := DecodeCaps(0x00053015); got != want {
		t.Errorf("DecodeCaps = %+v", got)
	}
	if got := want.Encode(); got != 0x00053015 {
		t.Errorf("Caps.Encode = %#x", got)
	}
	// Undefined bits 7:6 and 31:20 are ignored.
	if got := DecodeCaps(0xFFF000C0); got != (Caps{}) {
		t.Errorf("DecodeCaps(undefined bits) = %+v", got)
	}
	if want.ResetWait() != time.Second || want.AdminTimeout() != 500*time.Millisecond || !want.DMAWidthOK() {
		t.Errorf("durations %v %v", want.ResetWait(), want.AdminTimeout())
	}
	// The model's suggested CAPS (§11): reset 8, width 48, admin 0 → 3 s.
	sim := DecodeCaps(0x00003010)
	if sim.ResetTimeout != 8 || sim.DMAAddrWidth != 48 || sim.AdminTimeout() != 3*time.Second {
		t.Errorf("DecodeCaps(0x3010) = %+v", sim)
	}
	if (Caps{DMAAddrWidth: 64}).DMAWidthOK() || (Caps{DMAAddrWidth: 31}).DMAWidthOK() {
		t.Error("DMA widths outside 32..48 must be rejected")
	}
}

// ena_regs_defs.h ENA_REGS_AQ_CAPS_AQ_DEPTH_MASK (15:0) and
// ENA_REGS_AQ_CAPS_AQ_ENTRY_SIZE_MASK (31:16), same for ACQ and AENQ.
func TestQueueCapsRegister(t *testing.T) {
	if got := (QueueCaps{Depth: 32, EntrySize: 64}).Encode(); got != 0x00400020 {
		t.Errorf("AQ caps = %#x", got)
	}
	if DefaultAQCaps != 0x00400020 || DefaultACQCaps != 0x00400020 || DefaultAENQCaps != 0x00400010 {
		t.Error("default caps constants")
	}
	if got := (QueueCaps{Depth: DefaultAENQDepth, EntrySize: AENQEntrySize}).Encode(); got != DefaultAENQCaps {
		t.Errorf("AENQ caps = %#x", got)
	}
	if got := DecodeQueueCaps(0xABCD1234); got != (QueueCaps{Depth: 0x1234, EntrySize: 0xABCD}) {
		t.Errorf("DecodeQueueCaps = %+v", got)
	}
}

// ena_regs_defs.h ENA_REGS_DEV_CTL_*: reset bit 0, reason ext 27:24, reason
// 31:28; ena_com_dev_reset falls back to GENERIC without the capability.
func TestDevCtlReset(t *testing.T) {
	for _, c := range []struct {
		reason ResetReason
		ext    bool
		want   uint32
	}{
		{ResetNormal, false, 0x00000001},
		{ResetKeepAliveTO, false, 0x10000001},
		{ResetGeneric, true, 0xD0000001},
		{ResetSuspectedPollStarvation, false, 0xF0000001},
		{ResetDeviceRequest, true, 0x31000001},  // 19 = 0x13
		{ResetDeviceRequest, false, 0xD0000001}, // falls back to 13
		{ResetMissFirstInterrupt, true, 0x41000001},
		{ResetRxDescriptorMalformed, false, 0xD0000001},
	} {
		if got := DevCtlReset(c.reason, c.ext); got != c.want {
			t.Errorf("DevCtlReset(%v, %v) = %#08x, want %#08x", c.reason, c.ext, got, c.want)
		}
	}
}

func TestDevCtlDecode(t *testing.T) {
	d := DecodeDevCtl(0x31000001)
	if !d.Reset || d.Reason != ResetDeviceRequest || d.ReasonExt != 1 || d.AQRestart || d.Undefined != 0 {
		t.Errorf("DecodeDevCtl(0x31000001) = %+v", d)
	}
	d = DecodeDevCtl(0x0012345E)
	want := DevCtl{AQRestart: true, Quiescent: true, IOResume: true, Undefined: 0x00123450}
	if d != want {
		t.Errorf("DecodeDevCtl(0x0012345E) = %+v", d)
	}
	if got := want.Encode(); got != 0x0012345E {
		t.Errorf("DevCtl.Encode = %#x", got)
	}
	if got := (DevCtl{Reset: true, Reason: ResetMissFirstInterrupt}).Encode(); got != 0x41000001 {
		t.Errorf("DevCtl.Encode(reason 20) = %#x", got)
	}
}

// ena_regs_defs.h ENA_REGS_DEV_STS_*_MASK.
func TestDevStsBits(t *testing.T) {
	got := []uint32{DevStsReady, DevStsAQRestartInProgress, DevStsAQRestartFinished,
		DevStsResetInProgress, DevStsResetFinished, DevStsFatalError,
		DevStsQuiescentStateInProgress, DevStsQuiescentStateAchieved}
	for i, v := range got {
		if v != 1<<i {
			t.Errorf("DEV_STS bit %d = %#x", i, v)
		}
	}
	if IntrMaskAdmin != 1 || IntrUnmaskAdmin != 0 {
		t.Error("INTR_MASK values")
	}
}

// ena_regs_defs.h ENA_REGS_MMIO_REG_READ_REQ_ID_MASK (15:0),
// REG_OFF (31:16); §3 example: DEV_STS with seq 1 → 0x00580001.
func TestMMIORegRead(t *testing.T) {
	r := MMIORegRead{ReqID: 1, RegOff: RegDevSts}
	if got := r.Encode(); got != 0x00580001 {
		t.Errorf("Encode = %#x", got)
	}
	if got := DecodeMMIORegRead(0xABCD1234); got != (MMIORegRead{ReqID: 0x1234, RegOff: 0xABCD}) {
		t.Errorf("Decode = %+v", got)
	}
}

// ena_admin_defs.h struct ena_admin_ena_mmio_req_read_less_resp: req_id u16
// @0, reg_off u16 @2, reg_val u32 @4.
func TestReadlessResp(t *testing.T) {
	want := cpHex(t, "01 00 58 00 78 56 34 12")
	r := ReadlessResp{ReqID: 1, RegOff: 0x58, Value: 0x12345678}
	b := cpDirty(ReadlessRespSize)
	r.Encode(b)
	cpCheck(t, "readless resp", b, want)
	if got := DecodeReadlessResp(want); got != r {
		t.Errorf("Decode = %+v", got)
	}
	if r.Word() != 0x12345678_0058_0001 {
		t.Errorf("Word = %#x", r.Word())
	}
	if ReadlessStaleOffset != 0xDEAD || MMIOReadTimeout != 0xFFFFFFFF {
		t.Error("readless constants")
	}
}

// ena_regs_defs.h ENA_REGS_RSS_IND_ENTRY_UPDATE_INDEX_MASK (15:0), CQ_IDX (31:16).
func TestRSSIndEntryUpdate(t *testing.T) {
	r := RSSIndEntryUpdate{Index: 0x0102, CQIdx: 0x0304}
	if r.Encode() != 0x03040102 || DecodeRSSIndEntryUpdate(0x03040102) != r {
		t.Errorf("RSSIndEntryUpdate %#x", r.Encode())
	}
}

// ena_regs_defs.h enum ena_regs_reset_reason_types (+ Linux MISS_FIRST_INTERRUPT).
func TestResetReasonString(t *testing.T) {
	for r, want := range map[ResetReason]string{
		0: "NORMAL", 1: "KEEP_ALIVE_TO", 2: "ADMIN_TO", 3: "MISS_TX_CMPL", 4: "INV_RX_REQ_ID",
		5: "INV_TX_REQ_ID", 6: "TOO_MANY_RX_DESCS", 7: "INIT_ERR", 8: "DRIVER_INVALID_STATE",
		9: "OS_TRIGGER", 10: "OS_NETDEV_WD", 11: "SHUTDOWN", 12: "USER_TRIGGER", 13: "GENERIC",
		14: "MISS_INTERRUPT", 15: "SUSPECTED_POLL_STARVATION", 16: "RX_DESCRIPTOR_MALFORMED",
		17: "TX_DESCRIPTOR_MALFORMED", 18: "MISSING_ADMIN_INTERRUPT", 19: "DEVICE_REQUEST",
		20: "MISS_FIRST_INTERRUPT", 21: "RESET_REASON(21)", 255: "RESET_REASON(255)",
	} {
		if r.String() != want {
			t.Errorf("ResetReason(%d) = %q, want %q", uint8(r), r.String(), want)
		}
	}
}
