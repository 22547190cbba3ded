package spec

import "fmt"

// AENQ ring geometry (§5.1, §5.4).
const (
	// AENQEntrySize is one AENQ entry. ena_admin_defs.h struct
	// ena_admin_aenq_entry.
	AENQEntrySize = 64
	// DefaultAENQDepth is the depth vendor drivers use; the driver's head
	// starts at this value. ena_com.c ENA_ASYNC_QUEUE_DEPTH.
	DefaultAENQDepth = 16
	// AENQPayloadOffset is where the group-specific payload starts.
	// ena_admin_defs.h struct ena_admin_aenq_entry inline_data_w4.
	AENQPayloadOffset = 16
	// AENQPayloadSize is the room for the payload (12 u32s).
	AENQPayloadSize = AENQEntrySize - AENQPayloadOffset
	// AENQFlagPhase is ena_admin_defs.h ENA_ADMIN_AENQ_COMMON_DESC_PHASE_MASK.
	AENQFlagPhase = 0x01
)

// AENQGroup is an event group (§5.2). ena_admin_defs.h enum
// ena_admin_aenq_group.
type AENQGroup uint16

// AENQ groups.
const (
	// AENQLinkChange is ena_admin_defs.h ENA_ADMIN_LINK_CHANGE.
	AENQLinkChange AENQGroup = 0
	// AENQFatalError is ena_admin_defs.h ENA_ADMIN_FATAL_ERROR.
	AENQFatalError AENQGroup = 1
	// AENQWarning is ena_admin_defs.h ENA_ADMIN_WARNING.
	AENQWarning AENQGroup = 2
	// AENQNotification is ena_admin_defs.h ENA_ADMIN_NOTIFICATION.
	AENQNotification AENQGroup = 3
	// AENQKeepAlive is ena_admin_defs.h ENA_ADMIN_KEEP_ALIVE.
	AENQKeepAlive AENQGroup = 4
	// AENQRefreshCapabilities is ena_admin_defs.h ENA_ADMIN_REFRESH_CAPABILITIES.
	AENQRefreshCapabilities AENQGroup = 5
	// AENQConfNotifications is ena_admin_defs.h ENA_ADMIN_CONF_NOTIFICATIONS.
	AENQConfNotifications AENQGroup = 6
	// AENQDeviceRequestReset is ena_admin_defs.h ENA_ADMIN_DEVICE_REQUEST_RESET.
	AENQDeviceRequestReset AENQGroup = 7
	// AENQGroupsNum is ena_admin_defs.h ENA_ADMIN_AENQ_GROUPS_NUM.
	AENQGroupsNum = 8
)

var aenqGroupNames = [...]string{
	"LINK_CHANGE", "FATAL_ERROR", "WARNING", "NOTIFICATION", "KEEP_ALIVE",
	"REFRESH_CAPABILITIES", "CONF_NOTIFICATIONS", "DEVICE_REQUEST_RESET",
}

// String returns the protocol name, e.g. "KEEP_ALIVE".
func (g AENQGroup) String() string {
	if int(g) < len(aenqGroupNames) {
		return aenqGroupNames[g]
	}
	return fmt.Sprintf("AENQ_GROUP(%d)", uint16(g))
}

// Bit returns the group's bit in AENQConfig bitmaps (0 if >= 32).
func (g AENQGroup) Bit() uint32 {
	if g >= 32 {
		return 0
	}
	return 1 << g
}

// AENQGroupsLinux is what Linux and FreeBSD enable (masked by the supported
// groups): every group except REFRESH_CAPABILITIES (§5.2).
const AENQGroupsLinux = 1<<AENQLinkChange | 1<<AENQFatalError | 1<<AENQWarning |
	1<<AENQNotification | 1<<AENQKeepAlive | 1<<AENQConfNotifications |
	1<<AENQDeviceRequestReset // 0xDF

// AENQSyndromeUpdateHints is the NOTIFICATION syndrome whose payload is an
// HWHints. ena_admin_defs.h ENA_ADMIN_UPDATE_HINTS.
const AENQSyndromeUpdateHints = 2

// AENQSyndromeSuspend and AENQSyndromeResume are the NOTIFICATION syndromes
// older ena_admin_defs.h named ENA_ADMIN_SUSPEND and ENA_ADMIN_RESUME: the
// device pauses and resumes traffic (no payload). Current drivers only log
// them.
const (
	AENQSyndromeSuspend = 0
	AENQSyndromeResume  = 1
)

// AENQEntry is one 64-byte AENQ entry (§5.1).
// ena_admin_defs.h struct ena_admin_aenq_entry / ena_admin_aenq_common_desc.
type AENQEntry struct {
	Group    AENQGroup // 0
	Syndrome uint16    // 2: group-specific
	Phase    bool      // 4: flags bit 0
	// FlagsMBZ holds flags bits 7:1 in place (must be zero).
	FlagsMBZ uint8
	// Timestamp combines timestamp_low (8) and timestamp_high (12).
	Timestamp uint64
	// Payload is bytes 16..63, decoded per group.
	Payload [AENQPayloadSize]byte
}

// Encode writes the 64-byte entry. A device model must make the phase bit
// (byte 4) visible last, e.g. encode with Phase false and then call
// SetAENQEntryPhase.
func (e *AENQEntry) Encode(b []byte) {
	_ = b[AENQEntrySize-1]
	le.PutUint16(b[0:], uint16(e.Group))
	le.PutUint16(b[2:], e.Syndrome)
	b[4] = boolBit(e.Phase, uint8(AENQFlagPhase)) | e.FlagsMBZ&^AENQFlagPhase
	b[5], b[6], b[7] = 0, 0, 0
	putLoHi(b[8:], e.Timestamp)
	copy(b[AENQPayloadOffset:AENQEntrySize], e.Payload[:])
}

// DecodeAENQEntry reads an entry.
func DecodeAENQEntry(b []byte) AENQEntry {
	_ = b[AENQEntrySize-1]
	e := AENQEntry{
		Group:     AENQGroup(le.Uint16(b[0:])),
		Syndrome:  le.Uint16(b[2:]),
		Phase:     b[4]&AENQFlagPhase != 0,
		FlagsMBZ:  b[4] &^ AENQFlagPhase,
		Timestamp: getLoHi(b[8:]),
	}
	copy(e.Payload[:], b[AENQPayloadOffset:AENQEntrySize])
	return e
}

// AENQEntryPhase returns the phase bit of a raw AENQ entry; the driver
// checks it (then a read barrier) before reading the rest (§5.4).
func AENQEntryPhase(entry []byte) bool { return entry[4]&AENQFlagPhase != 0 }

// SetAENQEntryPhase sets or clears only the phase bit of a raw entry.
func SetAENQEntryPhase(entry []byte, phase bool) {
	entry[4] = entry[4]&^AENQFlagPhase | boolBit(phase, uint8(AENQFlagPhase))
}

// AENQLinkChangeSize is the LINK_CHANGE payload. ena_admin_defs.h struct
// ena_admin_aenq_link_change_desc (flags after the common header).
const AENQLinkChangeSize = 4

// AENQLinkStatus is flags bit 0 of LINK_CHANGE: 1 = link up.
// ena_admin_defs.h ENA_ADMIN_AENQ_LINK_CHANGE_DESC_LINK_STATUS_MASK.
const AENQLinkStatus = 0x01

// AENQLinkChangePayload is the LINK_CHANGE payload, relative to the payload
// (entry offset 16).
type AENQLinkChangePayload struct {
	LinkUp bool // 0: flags bit 0
	// FlagsReserved holds flags bits 31:1 in place.
	FlagsReserved uint32
}

// Encode writes the payload.
func (p *AENQLinkChangePayload) Encode(b []byte) {
	le.PutUint32(b[:AENQLinkChangeSize], boolBit(p.LinkUp, uint32(AENQLinkStatus))|p.FlagsReserved&^AENQLinkStatus)
}

// DecodeAENQLinkChangePayload reads the payload.
func DecodeAENQLinkChangePayload(b []byte) AENQLinkChangePayload {
	f := le.Uint32(b[:AENQLinkChangeSize])
	return AENQLinkChangePayload{LinkUp: f&AENQLinkStatus != 0, FlagsReserved: f &^ AENQLinkStatus}
}

// AENQKeepAliveSize is the KEEP_ALIVE payload. ena_admin_defs.h struct
// ena_admin_aenq_keep_alive_desc (six u32 after the common header).
const AENQKeepAliveSize = 24

// AENQKeepAlivePayload is the KEEP_ALIVE payload (§5.3): counters
// cumulative since reset, each a u32 low / u32 high pair.
type AENQKeepAlivePayload struct {
	RxDrops    uint64 // 0 / 4
	TxDrops    uint64 // 8 / 12
	RxOverruns uint64 // 16 / 20
}

// Encode writes the payload.
func (p *AENQKeepAlivePayload) Encode(b []byte) {
	_ = b[AENQKeepAliveSize-1]
	putLoHi(b[0:], p.RxDrops)
	putLoHi(b[8:], p.TxDrops)
	putLoHi(b[16:], p.RxOverruns)
}

// DecodeAENQKeepAlivePayload reads the payload.
func DecodeAENQKeepAlivePayload(b []byte) AENQKeepAlivePayload {
	_ = b[AENQKeepAliveSize-1]
	return AENQKeepAlivePayload{RxDrops: getLoHi(b[0:]), TxDrops: getLoHi(b[8:]), RxOverruns: getLoHi(b[16:])}
}

// AENQConfNotificationsSize is the CONF_NOTIFICATIONS payload.
// ena_admin_defs.h struct ena_admin_aenq_conf_notifications_desc.
const AENQConfNotificationsSize = 16

// AENQConfNotificationsPayload is the CONF_NOTIFICATIONS payload (§5.2):
// bit n reports "sub-optimal configuration" code n+1.
type AENQConfNotificationsPayload struct {
	Bitmap uint64 // 0 (8..15 reserved)
}

// Encode writes the payload.
func (p *AENQConfNotificationsPayload) Encode(b []byte) {
	_ = b[AENQConfNotificationsSize-1]
	le.PutUint64(b[0:], p.Bitmap)
	le.PutUint64(b[8:], 0)
}

// DecodeAENQConfNotificationsPayload reads the payload.
func DecodeAENQConfNotificationsPayload(b []byte) AENQConfNotificationsPayload {
	_ = b[AENQConfNotificationsSize-1]
	return AENQConfNotificationsPayload{Bitmap: le.Uint64(b[0:])}
}

// The NOTIFICATION / UPDATE_HINTS payload is an HWHints at payload offset 0
// (entry offset 16): use DecodeHWHints(entry.Payload[:]).
