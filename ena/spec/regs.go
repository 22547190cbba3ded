package spec

import (
	"fmt"
	"time"
)

// BAR indexes (§1.2). ena_com ENA_REG_BAR / ENA_MEM_BAR.
const (
	// RegBAR is the register BAR: every register of §2 and every doorbell.
	RegBAR = 0
	// MemBAR is the LLQ device-memory BAR (§8), mapped write-combining.
	MemBAR = 2
)

// BAR0 register offsets (§2.1). Every register is 32 bits wide.
const (
	// RegVersion is ena_regs_defs.h ENA_REGS_VERSION_OFF.
	RegVersion = 0x00
	// RegControllerVersion is ena_regs_defs.h ENA_REGS_CONTROLLER_VERSION_OFF.
	RegControllerVersion = 0x04
	// RegCaps is ena_regs_defs.h ENA_REGS_CAPS_OFF.
	RegCaps = 0x08
	// RegCapsExt is ena_regs_defs.h ENA_REGS_CAPS_EXT_OFF (no fields defined).
	RegCapsExt = 0x0C
	// RegAQBaseLo is ena_regs_defs.h ENA_REGS_AQ_BASE_LO_OFF.
	RegAQBaseLo = 0x10
	// RegAQBaseHi is ena_regs_defs.h ENA_REGS_AQ_BASE_HI_OFF.
	RegAQBaseHi = 0x14
	// RegAQCaps is ena_regs_defs.h ENA_REGS_AQ_CAPS_OFF.
	RegAQCaps = 0x18
	// RegACQBaseLo is ena_regs_defs.h ENA_REGS_ACQ_BASE_LO_OFF.
	RegACQBaseLo = 0x20
	// RegACQBaseHi is ena_regs_defs.h ENA_REGS_ACQ_BASE_HI_OFF.
	RegACQBaseHi = 0x24
	// RegACQCaps is ena_regs_defs.h ENA_REGS_ACQ_CAPS_OFF.
	RegACQCaps = 0x28
	// RegAQDB is the admin SQ doorbell; the driver writes its free-running
	// tail. ena_regs_defs.h ENA_REGS_AQ_DB_OFF.
	RegAQDB = 0x2C
	// RegACQTail is ena_regs_defs.h ENA_REGS_ACQ_TAIL_OFF (never read by drivers).
	RegACQTail = 0x30
	// RegAENQCaps is ena_regs_defs.h ENA_REGS_AENQ_CAPS_OFF.
	RegAENQCaps = 0x34
	// RegAENQBaseLo is ena_regs_defs.h ENA_REGS_AENQ_BASE_LO_OFF.
	RegAENQBaseLo = 0x38
	// RegAENQBaseHi is ena_regs_defs.h ENA_REGS_AENQ_BASE_HI_OFF.
	RegAENQBaseHi = 0x3C
	// RegAENQHeadDB is the AENQ head (credit) doorbell, §5.4.
	// ena_regs_defs.h ENA_REGS_AENQ_HEAD_DB_OFF.
	RegAENQHeadDB = 0x40
	// RegAENQTail is ena_regs_defs.h ENA_REGS_AENQ_TAIL_OFF (never read).
	RegAENQTail = 0x44
	// RegIntrMask masks the management interrupt (admin polling mode).
	// ena_regs_defs.h ENA_REGS_INTR_MASK_OFF.
	RegIntrMask = 0x4C
	// RegDevCtl is ena_regs_defs.h ENA_REGS_DEV_CTL_OFF.
	RegDevCtl = 0x54
	// RegDevSts is ena_regs_defs.h ENA_REGS_DEV_STS_OFF.
	RegDevSts = 0x58
	// RegMMIORegRead takes readless read requests (§3).
	// ena_regs_defs.h ENA_REGS_MMIO_REG_READ_OFF.
	RegMMIORegRead = 0x5C
	// RegMMIORespLo is ena_regs_defs.h ENA_REGS_MMIO_RESP_LO_OFF.
	RegMMIORespLo = 0x60
	// RegMMIORespHi is ena_regs_defs.h ENA_REGS_MMIO_RESP_HI_OFF.
	RegMMIORespHi = 0x64
	// RegRSSIndEntryUpdate is ena_regs_defs.h ENA_REGS_RSS_IND_ENTRY_UPDATE_OFF
	// (unused by drivers).
	RegRSSIndEntryUpdate = 0x68
	// RegPHCDB is ena_regs_defs.h ENA_REGS_PHC_DB_OFF; drivers use the offset
	// GET_FEATURE(PHC_CONFIG) returns instead.
	RegPHCDB = 0x100
)

// RegName returns the protocol name of a BAR0 register offset (§2.1), or a
// hex offset for anything else (device-chosen doorbells, unmask registers).
// It exists for log and error messages.
func RegName(off uint32) string {
	switch off {
	case RegVersion:
		return "VERSION"
	case RegControllerVersion:
		return "CONTROLLER_VERSION"
	case RegCaps:
		return "CAPS"
	case RegCapsExt:
		return "CAPS_EXT"
	case RegAQBaseLo:
		return "AQ_BASE_LO"
	case RegAQBaseHi:
		return "AQ_BASE_HI"
	case RegAQCaps:
		return "AQ_CAPS"
	case RegACQBaseLo:
		return "ACQ_BASE_LO"
	case RegACQBaseHi:
		return "ACQ_BASE_HI"
	case RegACQCaps:
		return "ACQ_CAPS"
	case RegAQDB:
		return "AQ_DB"
	case RegACQTail:
		return "ACQ_TAIL"
	case RegAENQCaps:
		return "AENQ_CAPS"
	case RegAENQBaseLo:
		return "AENQ_BASE_LO"
	case RegAENQBaseHi:
		return "AENQ_BASE_HI"
	case RegAENQHeadDB:
		return "AENQ_HEAD_DB"
	case RegAENQTail:
		return "AENQ_TAIL"
	case RegIntrMask:
		return "INTR_MASK"
	case RegDevCtl:
		return "DEV_CTL"
	case RegDevSts:
		return "DEV_STS"
	case RegMMIORegRead:
		return "MMIO_REG_READ"
	case RegMMIORespLo:
		return "MMIO_RESP_LO"
	case RegMMIORespHi:
		return "MMIO_RESP_HI"
	case RegRSSIndEntryUpdate:
		return "RSS_IND_ENTRY_UPDATE"
	case RegPHCDB:
		return "PHC_DB"
	}
	return fmt.Sprintf("reg 0x%x", off)
}

// ---------------------------------------------------------------------------
// VERSION and CONTROLLER_VERSION (§2.2)

// VERSION bit fields.
const (
	// VersionMinorMask is ena_regs_defs.h ENA_REGS_VERSION_MINOR_VERSION_MASK.
	VersionMinorMask = 0x000000FF
	// VersionMajorShift is ena_regs_defs.h ENA_REGS_VERSION_MAJOR_VERSION_SHIFT.
	VersionMajorShift = 8
	// VersionMajorMask is ena_regs_defs.h ENA_REGS_VERSION_MAJOR_VERSION_MASK.
	VersionMajorMask = 0x0000FF00
)

// ObservedVersion is what real EC2 devices report in VERSION ("device
// version 0.10", §2.2); a realistic value for the model.
const ObservedVersion = 0x0000000A

// Version is the decoded VERSION register: the ENA spec version the device
// implements (§2.2). Drivers only log it.
type Version struct {
	Major uint8 // bits 15:8
	Minor uint8 // bits 7:0
}

// Encode returns the register value.
func (v Version) Encode() uint32 {
	return uint32(v.Major)<<VersionMajorShift | uint32(v.Minor)
}

// DecodeVersion splits a VERSION register value. Bits 31:16 are undefined
// and ignored.
func DecodeVersion(v uint32) Version {
	return Version{
		Major: uint8((v & VersionMajorMask) >> VersionMajorShift),
		Minor: uint8(v & VersionMinorMask),
	}
}

// String prints "major.minor" as drivers log it.
func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// CONTROLLER_VERSION bit fields.
const (
	// ControllerVersionSubMinorMask is ena_regs_defs.h
	// ENA_REGS_CONTROLLER_VERSION_SUBMINOR_VERSION_MASK.
	ControllerVersionSubMinorMask = 0x000000FF
	// ControllerVersionMinorShift is ena_regs_defs.h
	// ENA_REGS_CONTROLLER_VERSION_MINOR_VERSION_SHIFT.
	ControllerVersionMinorShift = 8
	// ControllerVersionMinorMask is ena_regs_defs.h
	// ENA_REGS_CONTROLLER_VERSION_MINOR_VERSION_MASK.
	ControllerVersionMinorMask = 0x0000FF00
	// ControllerVersionMajorShift is ena_regs_defs.h
	// ENA_REGS_CONTROLLER_VERSION_MAJOR_VERSION_SHIFT.
	ControllerVersionMajorShift = 16
	// ControllerVersionMajorMask is ena_regs_defs.h
	// ENA_REGS_CONTROLLER_VERSION_MAJOR_VERSION_MASK.
	ControllerVersionMajorMask = 0x00FF0000
	// ControllerVersionImplIDShift is ena_regs_defs.h
	// ENA_REGS_CONTROLLER_VERSION_IMPL_ID_SHIFT.
	ControllerVersionImplIDShift = 24
	// ControllerVersionImplIDMask is ena_regs_defs.h
	// ENA_REGS_CONTROLLER_VERSION_IMPL_ID_MASK.
	ControllerVersionImplIDMask = 0xFF000000
)

// MinControllerVersion is the lowest (major<<16 | minor<<8 | subminor) the
// drivers accept: 0.0.1 (§2.2, §6 step 4). ena_com.c MIN_ENA_CTRL_VER.
const MinControllerVersion = 0x000001

// ObservedControllerVersion is what real devices report ("controller version
// 0.0.1 implementation version 1", §2.2).
const ObservedControllerVersion = 0x01000001

// ControllerVersion is the decoded CONTROLLER_VERSION register (§2.2).
type ControllerVersion struct {
	Major    uint8 // bits 23:16
	Minor    uint8 // bits 15:8
	SubMinor uint8 // bits 7:0
	ImplID   uint8 // bits 31:24
}

// Encode returns the register value.
func (c ControllerVersion) Encode() uint32 {
	return uint32(c.ImplID)<<ControllerVersionImplIDShift |
		uint32(c.Major)<<ControllerVersionMajorShift |
		uint32(c.Minor)<<ControllerVersionMinorShift |
		uint32(c.SubMinor)
}

// DecodeControllerVersion splits a CONTROLLER_VERSION register value.
func DecodeControllerVersion(v uint32) ControllerVersion {
	return ControllerVersion{
		Major:    uint8((v & ControllerVersionMajorMask) >> ControllerVersionMajorShift),
		Minor:    uint8((v & ControllerVersionMinorMask) >> ControllerVersionMinorShift),
		SubMinor: uint8(v & ControllerVersionSubMinorMask),
		ImplID:   uint8((v & ControllerVersionImplIDMask) >> ControllerVersionImplIDShift),
	}
}

// Number returns major<<16 | minor<<8 | subminor, the value drivers compare
// with MinControllerVersion.
func (c ControllerVersion) Number() uint32 {
	return c.Encode() &^ ControllerVersionImplIDMask
}

// Supported reports whether the drivers would accept this controller
// (version >= 0.0.1, §6 step 4).
func (c ControllerVersion) Supported() bool { return c.Number() >= MinControllerVersion }

// String prints "major.minor.subminor impl N".
func (c ControllerVersion) String() string {
	return fmt.Sprintf("%d.%d.%d impl %d", c.Major, c.Minor, c.SubMinor, c.ImplID)
}

// ---------------------------------------------------------------------------
// CAPS (§2.2)

// CAPS bit fields.
const (
	// CapsContiguousQueueRequired is ena_regs_defs.h
	// ENA_REGS_CAPS_CONTIGUOUS_QUEUE_REQUIRED_MASK.
	CapsContiguousQueueRequired = 0x00000001
	// CapsResetTimeoutShift is ena_regs_defs.h ENA_REGS_CAPS_RESET_TIMEOUT_SHIFT.
	CapsResetTimeoutShift = 1
	// CapsResetTimeoutMask is ena_regs_defs.h ENA_REGS_CAPS_RESET_TIMEOUT_MASK.
	CapsResetTimeoutMask = 0x0000003E
	// CapsDMAAddrWidthShift is ena_regs_defs.h ENA_REGS_CAPS_DMA_ADDR_WIDTH_SHIFT.
	CapsDMAAddrWidthShift = 8
	// CapsDMAAddrWidthMask is ena_regs_defs.h ENA_REGS_CAPS_DMA_ADDR_WIDTH_MASK.
	CapsDMAAddrWidthMask = 0x0000FF00
	// CapsAdminCmdTimeoutShift is ena_regs_defs.h ENA_REGS_CAPS_ADMIN_CMD_TO_SHIFT.
	CapsAdminCmdTimeoutShift = 16
	// CapsAdminCmdTimeoutMask is ena_regs_defs.h ENA_REGS_CAPS_ADMIN_CMD_TO_MASK.
	CapsAdminCmdTimeoutMask = 0x000F0000
)

// Limits and units of the CAPS fields (§2.2, §9.1).
const (
	// CapsTimeoutUnit is the unit of RESET_TIMEOUT and ADMIN_CMD_TO.
	CapsTimeoutUnit = 100 * time.Millisecond
	// DefaultAdminTimeout applies when ADMIN_CMD_TO is 0 (ena_com
	// ADMIN_CMD_TIMEOUT_US, 3 s).
	DefaultAdminTimeout = 3 * time.Second
	// MinDMAAddrWidth and MaxDMAAddrWidth bound the DMA_ADDR_WIDTH drivers
	// accept (§6 step 5).
	MinDMAAddrWidth = 32
	// MaxDMAAddrWidth: see MinDMAAddrWidth; mem_addr has 48 bits.
	MaxDMAAddrWidth = 48
)

// Caps is the decoded CAPS register (§2.2).
type Caps struct {
	// ContiguousQueueRequired is bit 0; drivers ignore it (their queues are
	// always contiguous).
	ContiguousQueueRequired bool
	// ResetTimeout is bits 5:1 in units of 100 ms; 0 makes drivers refuse
	// to reset.
	ResetTimeout uint8
	// DMAAddrWidth is bits 15:8, the usable DMA address width in bits.
	DMAAddrWidth uint8
	// AdminCmdTimeout is bits 19:16 in units of 100 ms; 0 means 3 s.
	AdminCmdTimeout uint8
}

// Encode returns the register value (the model's side). Fields wider than
// their bit range are truncated.
func (c Caps) Encode() uint32 {
	return boolBit(c.ContiguousQueueRequired, uint32(CapsContiguousQueueRequired)) |
		uint32(c.ResetTimeout)<<CapsResetTimeoutShift&CapsResetTimeoutMask |
		uint32(c.DMAAddrWidth)<<CapsDMAAddrWidthShift |
		uint32(c.AdminCmdTimeout)<<CapsAdminCmdTimeoutShift&CapsAdminCmdTimeoutMask
}

// DecodeCaps splits a CAPS register value; undefined bits are ignored.
func DecodeCaps(v uint32) Caps {
	return Caps{
		ContiguousQueueRequired: v&CapsContiguousQueueRequired != 0,
		ResetTimeout:            uint8((v & CapsResetTimeoutMask) >> CapsResetTimeoutShift),
		DMAAddrWidth:            uint8((v & CapsDMAAddrWidthMask) >> CapsDMAAddrWidthShift),
		AdminCmdTimeout:         uint8((v & CapsAdminCmdTimeoutMask) >> CapsAdminCmdTimeoutShift),
	}
}

// ResetWait is how long each phase of a reset may take (§6 step 3.2);
// zero means the device gave no timeout and must not be reset.
func (c Caps) ResetWait() time.Duration {
	return time.Duration(c.ResetTimeout) * CapsTimeoutUnit
}

// AdminTimeout is the admin completion timeout (§4.1): ADMIN_CMD_TO × 100 ms
// or DefaultAdminTimeout when the field is 0.
func (c Caps) AdminTimeout() time.Duration {
	if c.AdminCmdTimeout == 0 {
		return DefaultAdminTimeout
	}
	return time.Duration(c.AdminCmdTimeout) * CapsTimeoutUnit
}

// DMAWidthOK reports whether DMAAddrWidth is within what drivers accept.
func (c Caps) DMAWidthOK() bool {
	return c.DMAAddrWidth >= MinDMAAddrWidth && c.DMAAddrWidth <= MaxDMAAddrWidth
}

// ---------------------------------------------------------------------------
// AQ_CAPS, ACQ_CAPS, AENQ_CAPS (§2.2)

// Queue caps bit fields, the same for AQ_CAPS, ACQ_CAPS and AENQ_CAPS.
const (
	// QueueCapsDepthMask is ena_regs_defs.h ENA_REGS_AQ_CAPS_AQ_DEPTH_MASK
	// (also ACQ_CAPS_ACQ_DEPTH_MASK, AENQ_CAPS_AENQ_DEPTH_MASK).
	QueueCapsDepthMask = 0x0000FFFF
	// QueueCapsEntrySizeShift is ena_regs_defs.h
	// ENA_REGS_AQ_CAPS_AQ_ENTRY_SIZE_SHIFT (and the ACQ/AENQ twins).
	QueueCapsEntrySizeShift = 16
	// QueueCapsEntrySizeMask is ena_regs_defs.h
	// ENA_REGS_AQ_CAPS_AQ_ENTRY_SIZE_MASK (and the ACQ/AENQ twins).
	QueueCapsEntrySizeMask = 0xFFFF0000
)

// Values the vendor drivers write (§2.2, §6 steps 9-10).
const (
	// DefaultAQCaps is 32 entries × 64 B.
	DefaultAQCaps = 0x00400020
	// DefaultACQCaps is 32 entries × 64 B.
	DefaultACQCaps = 0x00400020
	// DefaultAENQCaps is 16 entries × 64 B.
	DefaultAENQCaps = 0x00400010
)

// QueueCaps is the decoded form of AQ_CAPS, ACQ_CAPS or AENQ_CAPS (§2.2).
type QueueCaps struct {
	Depth     uint16 // bits 15:0, number of entries
	EntrySize uint16 // bits 31:16, bytes per entry
}

// Encode returns the register value.
func (q QueueCaps) Encode() uint32 {
	return uint32(q.EntrySize)<<QueueCapsEntrySizeShift | uint32(q.Depth)
}

// DecodeQueueCaps splits an AQ/ACQ/AENQ caps register value.
func DecodeQueueCaps(v uint32) QueueCaps {
	return QueueCaps{
		Depth:     uint16(v & QueueCapsDepthMask),
		EntrySize: uint16(v >> QueueCapsEntrySizeShift),
	}
}

// ---------------------------------------------------------------------------
// DEV_CTL (§2.2, §2.3)

// DEV_CTL bit fields.
const (
	// DevCtlDevReset starts a reset; the driver writes 0 afterwards to finish
	// it. ena_regs_defs.h ENA_REGS_DEV_CTL_DEV_RESET_MASK.
	DevCtlDevReset = 0x00000001
	// DevCtlAQRestart is ena_regs_defs.h ENA_REGS_DEV_CTL_AQ_RESTART_MASK (unused).
	DevCtlAQRestart = 0x00000002
	// DevCtlQuiescent is ena_regs_defs.h ENA_REGS_DEV_CTL_QUIESCENT_MASK (unused).
	DevCtlQuiescent = 0x00000004
	// DevCtlIOResume is ena_regs_defs.h ENA_REGS_DEV_CTL_IO_RESUME_MASK (unused).
	DevCtlIOResume = 0x00000008
	// DevCtlResetReasonExtShift is ena_regs_defs.h
	// ENA_REGS_DEV_CTL_RESET_REASON_EXT_SHIFT.
	DevCtlResetReasonExtShift = 24
	// DevCtlResetReasonExtMask holds reason bits 7:4, valid only with
	// capability EXTENDED_RESET_REASONS. ena_regs_defs.h
	// ENA_REGS_DEV_CTL_RESET_REASON_EXT_MASK.
	DevCtlResetReasonExtMask = 0x0F000000
	// DevCtlResetReasonShift is ena_regs_defs.h ENA_REGS_DEV_CTL_RESET_REASON_SHIFT.
	DevCtlResetReasonShift = 28
	// DevCtlResetReasonMask holds reason bits 3:0. ena_regs_defs.h
	// ENA_REGS_DEV_CTL_RESET_REASON_MASK.
	DevCtlResetReasonMask = 0xF0000000
	// devCtlUndefinedMask covers bits 23:4, which no source defines.
	devCtlUndefinedMask = 0x00FFFFF0
)

// DevCtlReset returns the DEV_CTL value that starts a reset for reason
// (§2.2): bit 0, reason bits 3:0 in 31:28 and, if the device advertises
// EXTENDED_RESET_REASONS (extended), reason bits 7:4 in 27:24. A reason that
// needs the extension on a device without it is sent as GENERIC instead,
// as ena_com_dev_reset does, so the device never sees a truncated code.
func DevCtlReset(reason ResetReason, extended bool) uint32 {
	low, high := uint32(reason)&0xF, uint32(reason)>>4&0xF
	if high != 0 && !extended {
		low, high = uint32(ResetGeneric), 0
	}
	return DevCtlDevReset | low<<DevCtlResetReasonShift | high<<DevCtlResetReasonExtShift
}

// DevCtl is a decoded DEV_CTL write, as the device model sees it.
type DevCtl struct {
	Reset     bool // bit 0: start (1) or finish (0) a reset
	AQRestart bool // bit 1
	Quiescent bool // bit 2
	IOResume  bool // bit 3
	// Reason combines bits 31:28 (reason 3:0) and 27:24 (reason 7:4).
	Reason ResetReason
	// ReasonExt is the raw bits 27:24, kept so a model that does not
	// advertise EXTENDED_RESET_REASONS can notice a driver using them.
	ReasonExt uint8
	// Undefined holds bits 23:4 in place (they should be 0).
	Undefined uint32
}

// DecodeDevCtl splits a DEV_CTL value.
func DecodeDevCtl(v uint32) DevCtl {
	ext := uint8((v & DevCtlResetReasonExtMask) >> DevCtlResetReasonExtShift)
	low := uint8((v & DevCtlResetReasonMask) >> DevCtlResetReasonShift)
	return DevCtl{
		Reset:     v&DevCtlDevReset != 0,
		AQRestart: v&DevCtlAQRestart != 0,
		Quiescent: v&DevCtlQuiescent != 0,
		IOResume:  v&DevCtlIOResume != 0,
		Reason:    ResetReason(ext<<4 | low),
		ReasonExt: ext,
		Undefined: v & devCtlUndefinedMask,
	}
}

// Encode returns the register value. Reason bits 7:4 are taken from Reason;
// ReasonExt is ignored (it is derived on decode).
func (d DevCtl) Encode() uint32 {
	return boolBit(d.Reset, uint32(DevCtlDevReset)) |
		boolBit(d.AQRestart, uint32(DevCtlAQRestart)) |
		boolBit(d.Quiescent, uint32(DevCtlQuiescent)) |
		boolBit(d.IOResume, uint32(DevCtlIOResume)) |
		d.Undefined&devCtlUndefinedMask |
		(uint32(d.Reason)&0xF)<<DevCtlResetReasonShift |
		(uint32(d.Reason)>>4&0xF)<<DevCtlResetReasonExtShift
}

// ---------------------------------------------------------------------------
// DEV_STS (§2.2)

// DEV_STS bits.
const (
	// DevStsReady must be 1 before a reset and before admin init.
	// ena_regs_defs.h ENA_REGS_DEV_STS_READY_MASK.
	DevStsReady = 0x01
	// DevStsAQRestartInProgress is ena_regs_defs.h
	// ENA_REGS_DEV_STS_AQ_RESTART_IN_PROGRESS_MASK.
	DevStsAQRestartInProgress = 0x02
	// DevStsAQRestartFinished is ena_regs_defs.h
	// ENA_REGS_DEV_STS_AQ_RESTART_FINISHED_MASK.
	DevStsAQRestartFinished = 0x04
	// DevStsResetInProgress is polled for 1 then 0 during a reset.
	// ena_regs_defs.h ENA_REGS_DEV_STS_RESET_IN_PROGRESS_MASK.
	DevStsResetInProgress = 0x08
	// DevStsResetFinished is ena_regs_defs.h ENA_REGS_DEV_STS_RESET_FINISHED_MASK.
	DevStsResetFinished = 0x10
	// DevStsFatalError is ena_regs_defs.h ENA_REGS_DEV_STS_FATAL_ERROR_MASK.
	DevStsFatalError = 0x20
	// DevStsQuiescentStateInProgress is ena_regs_defs.h
	// ENA_REGS_DEV_STS_QUIESCENT_STATE_IN_PROGRESS_MASK.
	DevStsQuiescentStateInProgress = 0x40
	// DevStsQuiescentStateAchieved is ena_regs_defs.h
	// ENA_REGS_DEV_STS_QUIESCENT_STATE_ACHIEVED_MASK.
	DevStsQuiescentStateAchieved = 0x80
)

// ---------------------------------------------------------------------------
// INTR_MASK (§2.2)

// INTR_MASK values: drivers write exactly one of these.
const (
	// IntrMaskAdmin (bit 0) masks the management interrupt: admin polling
	// mode. ena_com ENA_REGS_ADMIN_INTR_MASK.
	IntrMaskAdmin = 0x00000001
	// IntrUnmaskAdmin selects admin interrupt mode.
	IntrUnmaskAdmin = 0x00000000
)

// ---------------------------------------------------------------------------
// Readless register reads (§3)

// MMIO_REG_READ bit fields.
const (
	// MMIORegReadReqIDMask is ena_regs_defs.h ENA_REGS_MMIO_REG_READ_REQ_ID_MASK.
	MMIORegReadReqIDMask = 0x0000FFFF
	// MMIORegReadRegOffShift is ena_regs_defs.h
	// ENA_REGS_MMIO_REG_READ_REG_OFF_SHIFT.
	MMIORegReadRegOffShift = 16
	// MMIORegReadRegOffMask is ena_regs_defs.h
	// ENA_REGS_MMIO_REG_READ_REG_OFF_MASK.
	MMIORegReadRegOffMask = 0xFFFF0000
)

// Readless protocol constants (§3).
const (
	// ReadlessStaleOffset is added to the sequence number and stored in the
	// response's req_id before each request, so a stale response can never
	// match. ena_com.c (seq_num + 0xDEAD).
	ReadlessStaleOffset = 0xDEAD
	// MMIOReadTimeout is the value a failed readless read returns; callers
	// treat it as failure. ena_com.c ENA_MMIO_READ_TIMEOUT.
	MMIOReadTimeout = 0xFFFFFFFF
	// DefaultReadlessTimeout is how long drivers poll for a response
	// (ena_com ENA_REG_READ_TIMEOUT, 200000 polls of 1 µs); HW hint
	// mmio_read_timeout overrides it.
	DefaultReadlessTimeout = 200 * time.Millisecond
)

// MMIORegRead is a readless read request written to MMIO_REG_READ (§3).
type MMIORegRead struct {
	ReqID  uint16 // bits 15:0: the driver's sequence number
	RegOff uint16 // bits 31:16: register offset to read
}

// Encode returns the register value.
func (r MMIORegRead) Encode() uint32 {
	return uint32(r.RegOff)<<MMIORegReadRegOffShift | uint32(r.ReqID)
}

// DecodeMMIORegRead splits an MMIO_REG_READ write.
func DecodeMMIORegRead(v uint32) MMIORegRead {
	return MMIORegRead{ReqID: uint16(v & MMIORegReadReqIDMask), RegOff: uint16(v >> MMIORegReadRegOffShift)}
}

// ReadlessRespSize is the size of the readless response buffer (§3).
// ena_admin_defs.h struct ena_admin_ena_mmio_req_read_less_resp.
const ReadlessRespSize = 8

// ReadlessResp is the 8-byte response the device DMAs to the address in
// MMIO_RESP_LO/HI (§3). The driver polls ReqID (offset 0), so a model must
// make the first two bytes visible last, or store all 8 bytes at once.
type ReadlessResp struct {
	ReqID  uint16 // offset 0: echo of the request's REQ_ID
	RegOff uint16 // offset 2: echo of the request's REG_OFF
	Value  uint32 // offset 4: the register value
}

// Encode writes the response.
func (r *ReadlessResp) Encode(b []byte) {
	_ = b[ReadlessRespSize-1]
	le.PutUint16(b[0:], r.ReqID)
	le.PutUint16(b[2:], r.RegOff)
	le.PutUint32(b[4:], r.Value)
}

// DecodeReadlessResp reads a response buffer.
func DecodeReadlessResp(b []byte) ReadlessResp {
	_ = b[ReadlessRespSize-1]
	return ReadlessResp{ReqID: le.Uint16(b[0:]), RegOff: le.Uint16(b[2:]), Value: le.Uint32(b[4:])}
}

// Word returns the response as one little-endian uint64, for a model that
// publishes all 8 bytes with a single atomic store.
func (r ReadlessResp) Word() uint64 {
	return uint64(r.Value)<<32 | uint64(r.RegOff)<<16 | uint64(r.ReqID)
}

// ---------------------------------------------------------------------------
// RSS_IND_ENTRY_UPDATE (§2.2)

// RSS_IND_ENTRY_UPDATE bit fields (defined, unused by drivers).
const (
	// RSSIndEntryUpdateIndexMask is ena_regs_defs.h
	// ENA_REGS_RSS_IND_ENTRY_UPDATE_INDEX_MASK.
	RSSIndEntryUpdateIndexMask = 0x0000FFFF
	// RSSIndEntryUpdateCQIdxShift is ena_regs_defs.h
	// ENA_REGS_RSS_IND_ENTRY_UPDATE_CQ_IDX_SHIFT.
	RSSIndEntryUpdateCQIdxShift = 16
	// RSSIndEntryUpdateCQIdxMask is ena_regs_defs.h
	// ENA_REGS_RSS_IND_ENTRY_UPDATE_CQ_IDX_MASK.
	RSSIndEntryUpdateCQIdxMask = 0xFFFF0000
)

// RSSIndEntryUpdate is a single-entry indirection update (§2.2).
type RSSIndEntryUpdate struct {
	Index uint16 // bits 15:0
	CQIdx uint16 // bits 31:16
}

// Encode returns the register value.
func (r RSSIndEntryUpdate) Encode() uint32 {
	return uint32(r.CQIdx)<<RSSIndEntryUpdateCQIdxShift | uint32(r.Index)
}

// DecodeRSSIndEntryUpdate splits an RSS_IND_ENTRY_UPDATE write.
func DecodeRSSIndEntryUpdate(v uint32) RSSIndEntryUpdate {
	return RSSIndEntryUpdate{Index: uint16(v & RSSIndEntryUpdateIndexMask), CQIdx: uint16(v >> RSSIndEntryUpdateCQIdxShift)}
}

// PHCDBReqIDMask is the req_id field of a PHC doorbell write.
// ena_regs_defs.h ENA_REGS_PHC_DB_REQ_ID_MASK.
const PHCDBReqIDMask = 0x0000FFFF

// ---------------------------------------------------------------------------
// Reset reasons (§2.3)

// ResetReason says why the driver resets the device; it travels in DEV_CTL
// (§2.3). ena_regs_defs.h enum ena_regs_reset_reason_types.
type ResetReason uint8

// Reset reason codes (§2.3).
const (
	// ResetNormal is ena_regs_defs.h ENA_REGS_RESET_NORMAL.
	ResetNormal ResetReason = 0
	// ResetKeepAliveTO is ena_regs_defs.h ENA_REGS_RESET_KEEP_ALIVE_TO.
	ResetKeepAliveTO ResetReason = 1
	// ResetAdminTO is ena_regs_defs.h ENA_REGS_RESET_ADMIN_TO.
	ResetAdminTO ResetReason = 2
	// ResetMissTxCmpl is ena_regs_defs.h ENA_REGS_RESET_MISS_TX_CMPL.
	ResetMissTxCmpl ResetReason = 3
	// ResetInvRxReqID is ena_regs_defs.h ENA_REGS_RESET_INV_RX_REQ_ID.
	ResetInvRxReqID ResetReason = 4
	// ResetInvTxReqID is ena_regs_defs.h ENA_REGS_RESET_INV_TX_REQ_ID.
	ResetInvTxReqID ResetReason = 5
	// ResetTooManyRxDescs is ena_regs_defs.h ENA_REGS_RESET_TOO_MANY_RX_DESCS.
	ResetTooManyRxDescs ResetReason = 6
	// ResetInitErr is ena_regs_defs.h ENA_REGS_RESET_INIT_ERR.
	ResetInitErr ResetReason = 7
	// ResetDriverInvalidState is ena_regs_defs.h ENA_REGS_RESET_DRIVER_INVALID_STATE.
	ResetDriverInvalidState ResetReason = 8
	// ResetOSTrigger is ena_regs_defs.h ENA_REGS_RESET_OS_TRIGGER.
	ResetOSTrigger ResetReason = 9
	// ResetOSNetdevWD is ena_regs_defs.h ENA_REGS_RESET_OS_NETDEV_WD.
	ResetOSNetdevWD ResetReason = 10
	// ResetShutdown is ena_regs_defs.h ENA_REGS_RESET_SHUTDOWN.
	ResetShutdown ResetReason = 11
	// ResetUserTrigger is ena_regs_defs.h ENA_REGS_RESET_USER_TRIGGER.
	ResetUserTrigger ResetReason = 12
	// ResetGeneric is ena_regs_defs.h ENA_REGS_RESET_GENERIC; also the
	// fallback for codes >= 16 without EXTENDED_RESET_REASONS.
	ResetGeneric ResetReason = 13
	// ResetMissInterrupt is ena_regs_defs.h ENA_REGS_RESET_MISS_INTERRUPT.
	ResetMissInterrupt ResetReason = 14
	// ResetSuspectedPollStarvation is ena_regs_defs.h
	// ENA_REGS_RESET_SUSPECTED_POLL_STARVATION.
	ResetSuspectedPollStarvation ResetReason = 15
	// ResetRxDescriptorMalformed is ena_regs_defs.h
	// ENA_REGS_RESET_RX_DESCRIPTOR_MALFORMED.
	ResetRxDescriptorMalformed ResetReason = 16
	// ResetTxDescriptorMalformed is ena_regs_defs.h
	// ENA_REGS_RESET_TX_DESCRIPTOR_MALFORMED.
	ResetTxDescriptorMalformed ResetReason = 17
	// ResetMissingAdminInterrupt is ena_regs_defs.h
	// ENA_REGS_RESET_MISSING_ADMIN_INTERRUPT.
	ResetMissingAdminInterrupt ResetReason = 18
	// ResetDeviceRequest is ena_regs_defs.h ENA_REGS_RESET_DEVICE_REQUEST.
	ResetDeviceRequest ResetReason = 19
	// ResetMissFirstInterrupt is ena_regs_defs.h (Linux, DPDK)
	// ENA_REGS_RESET_MISS_FIRST_INTERRUPT.
	ResetMissFirstInterrupt ResetReason = 20
)

var resetReasonNames = [...]string{
	"NORMAL", "KEEP_ALIVE_TO", "ADMIN_TO", "MISS_TX_CMPL", "INV_RX_REQ_ID",
	"INV_TX_REQ_ID", "TOO_MANY_RX_DESCS", "INIT_ERR", "DRIVER_INVALID_STATE",
	"OS_TRIGGER", "OS_NETDEV_WD", "SHUTDOWN", "USER_TRIGGER", "GENERIC",
	"MISS_INTERRUPT", "SUSPECTED_POLL_STARVATION", "RX_DESCRIPTOR_MALFORMED",
	"TX_DESCRIPTOR_MALFORMED", "MISSING_ADMIN_INTERRUPT", "DEVICE_REQUEST",
	"MISS_FIRST_INTERRUPT",
}

// String returns the protocol name, e.g. "KEEP_ALIVE_TO".
func (r ResetReason) String() string {
	if int(r) < len(resetReasonNames) {
		return resetReasonNames[r]
	}
	return fmt.Sprintf("RESET_REASON(%d)", uint8(r))
}
