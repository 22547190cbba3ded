package spec

import "testing"

// ena_admin_defs.h struct ena_admin_aenq_common_desc: group u16 @0,
// syndrome u16 @2, flags u8 @4 (bit0 PHASE), reserved1[3] @5,
// timestamp_low u32 @8, timestamp_high u32 @12; struct
// ena_admin_aenq_keep_alive_desc: rx_drops_low/high @16/20, tx_drops @24/28,
// rx_overruns @32/36.
func TestAENQKeepAliveEntryVector(t *testing.T) {
	e := AENQEntry{Group: AENQKeepAlive, Syndrome: 0x0102, Phase: true, Timestamp: 0x0000000A_0000000B}
	ka := AENQKeepAlivePayload{RxDrops: 0x01_00000002, TxDrops: 0x03_00000004, RxOverruns: 0x05_00000006}
	ka.Encode(e.Payload[:])
	b := cpDirty(AENQEntrySize)
	e.Encode(b)
	want := cpAt(t, AENQEntrySize,
		0, "04 00 02 01 01 00 00 00 0b 00 00 00 0a 00 00 00",
		16, "02 00 00 00 01 00 00 00 04 00 00 00 03 00 00 00 06 00 00 00 05 00 00 00")
	cpCheck(t, "AENQ keep-alive", b, want)
	got := DecodeAENQEntry(want)
	if got != e {
		t.Errorf("decode = %+v", got)
	}
	if DecodeAENQKeepAlivePayload(got.Payload[:]) != ka {
		t.Errorf("keep-alive = %+v", DecodeAENQKeepAlivePayload(got.Payload[:]))
	}
	if !AENQEntryPhase(want) {
		t.Error("AENQEntryPhase")
	}
	SetAENQEntryPhase(want, false)
	if want[4] != 0 || AENQEntryPhase(want) {
		t.Error("SetAENQEntryPhase")
	}
	// Must-be-zero flag bits stay visible.
	if g := DecodeAENQEntry(cpAt(t, AENQEntrySize, 4, "ff")); !g.Phase || g.FlagsMBZ != 0xFE {
		t.Errorf("flags MBZ = %+v", g)
	}
}

// ena_admin_defs.h struct ena_admin_aenq_link_change_desc: flags u32 @16
// (ENA_ADMIN_AENQ_LINK_CHANGE_DESC_LINK_STATUS_MASK bit 0).
func TestAENQLinkChangeVector(t *testing.T) {
	e := AENQEntry{Group: AENQLinkChange, Phase: true}
	(&AENQLinkChangePayload{LinkUp: true}).Encode(e.Payload[:])
	b := make([]byte, AENQEntrySize)
	e.Encode(b)
	cpCheck(t, "AENQ link change", b, cpAt(t, AENQEntrySize, 0, "00 00 00 00 01", 16, "01 00 00 00"))
	p := DecodeAENQLinkChangePayload(cpHex(t, "03 00 00 80"))
	if !p.LinkUp || p.FlagsReserved != 0x80000002 {
		t.Errorf("decode = %+v", p)
	}
}

// ena_admin_defs.h struct ena_admin_aenq_conf_notifications_desc:
// notifications_bitmap u64 @16, reserved u64 @24.
func TestAENQConfNotificationsVector(t *testing.T) {
	p := AENQConfNotificationsPayload{Bitmap: 0x0102030405060708}
	b := cpDirty(AENQConfNotificationsSize)
	p.Encode(b)
	cpCheck(t, "conf notifications", b, cpHex(t, "08 07 06 05 04 03 02 01 00 00 00 00 00 00 00 00"))
	if DecodeAENQConfNotificationsPayload(b) != p {
		t.Error("decode")
	}
}

// §5.2: NOTIFICATION/UPDATE_HINTS carries ena_admin_ena_hw_hints at entry
// offset 16.
func TestAENQHintsPayload(t *testing.T) {
	raw := cpAt(t, AENQEntrySize, 0, "03 00 02 00 01", 16, "e8 03 70 17")
	e := DecodeAENQEntry(raw)
	if e.Group != AENQNotification || e.Syndrome != AENQSyndromeUpdateHints {
		t.Fatalf("entry = %+v", e)
	}
	h := DecodeHWHints(e.Payload[:])
	if h.MMIOReadTimeout != 1000 || h.DriverWatchdogTimeout != 6000 {
		t.Errorf("hints = %+v", h)
	}
}

// ena_admin_defs.h enum ena_admin_aenq_group.
func TestAENQGroups(t *testing.T) {
	for g, want := range map[AENQGroup]string{0: "LINK_CHANGE", 1: "FATAL_ERROR", 2: "WARNING",
		3: "NOTIFICATION", 4: "KEEP_ALIVE", 5: "REFRESH_CAPABILITIES", 6: "CONF_NOTIFICATIONS",
		7: "DEVICE_REQUEST_RESET", 8: "AENQ_GROUP(8)", 0xFFFF: "AENQ_GROUP(65535)"} {
		if g.String() != want {
			t.Errorf("AENQGroup(%d) = %q", uint16(g), g)
		}
	}
	if AENQGroupsLinux != 0xDF || AENQKeepAlive.Bit() != 0x10 || AENQGroup(40).Bit() != 0 {
		t.Error("group bits")
	}
}
