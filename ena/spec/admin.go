package spec

import (
	"errors"
	"fmt"
	"math/bits"
)

// Admin ring geometry (§4.1).
const (
	// AQEntrySize is the size of one admin submission entry.
	// ena_admin_defs.h struct ena_admin_aq_entry (64 B).
	AQEntrySize = 64
	// ACQEntrySize is the size of one admin completion entry.
	// ena_admin_defs.h struct ena_admin_acq_entry (64 B).
	ACQEntrySize = 64
	// DefaultAdminQueueDepth is the AQ and ACQ depth vendor drivers use.
	// ena_com.c ENA_ADMIN_QUEUE_DEPTH.
	DefaultAdminQueueDepth = 32
	// ACQPayloadOffset is where a command's response starts in an ACQ entry.
	// ena_admin_defs.h struct ena_admin_acq_entry response_specific_data.
	ACQPayloadOffset = 8
	// ACQPayloadSize is the room for a response: 14 u32 words.
	ACQPayloadSize = ACQEntrySize - ACQPayloadOffset
)

// Opcode names an admin command (§4.4). ena_admin_defs.h enum
// ena_admin_aq_opcode.
type Opcode uint8

// Admin opcodes (§4.4); 5, 6, 7 and 10 are undefined.
const (
	// OpCreateSQ is ena_admin_defs.h ENA_ADMIN_CREATE_SQ.
	OpCreateSQ Opcode = 1
	// OpDestroySQ is ena_admin_defs.h ENA_ADMIN_DESTROY_SQ.
	OpDestroySQ Opcode = 2
	// OpCreateCQ is ena_admin_defs.h ENA_ADMIN_CREATE_CQ.
	OpCreateCQ Opcode = 3
	// OpDestroyCQ is ena_admin_defs.h ENA_ADMIN_DESTROY_CQ.
	OpDestroyCQ Opcode = 4
	// OpGetFeature is ena_admin_defs.h ENA_ADMIN_GET_FEATURE.
	OpGetFeature Opcode = 8
	// OpSetFeature is ena_admin_defs.h ENA_ADMIN_SET_FEATURE.
	OpSetFeature Opcode = 9
	// OpGetStats is ena_admin_defs.h ENA_ADMIN_GET_STATS.
	OpGetStats Opcode = 11
)

// String returns the protocol name, e.g. "CREATE_SQ".
func (o Opcode) String() string {
	switch o {
	case OpCreateSQ:
		return "CREATE_SQ"
	case OpDestroySQ:
		return "DESTROY_SQ"
	case OpCreateCQ:
		return "CREATE_CQ"
	case OpDestroyCQ:
		return "DESTROY_CQ"
	case OpGetFeature:
		return "GET_FEATURE"
	case OpSetFeature:
		return "SET_FEATURE"
	case OpGetStats:
		return "GET_STATS"
	}
	return fmt.Sprintf("OPCODE(%d)", uint8(o))
}

// Status is an admin completion status (§4.5). ena_admin_defs.h enum
// ena_admin_aq_completion_status.
type Status uint8

// Completion status codes (§4.5).
const (
	// StatusSuccess is ena_admin_defs.h ENA_ADMIN_SUCCESS.
	StatusSuccess Status = 0
	// StatusResourceAllocationFailure is ena_admin_defs.h
	// ENA_ADMIN_RESOURCE_ALLOCATION_FAILURE.
	StatusResourceAllocationFailure Status = 1
	// StatusBadOpcode is ena_admin_defs.h ENA_ADMIN_BAD_OPCODE.
	StatusBadOpcode Status = 2
	// StatusUnsupportedOpcode is ena_admin_defs.h ENA_ADMIN_UNSUPPORTED_OPCODE.
	StatusUnsupportedOpcode Status = 3
	// StatusMalformedRequest is ena_admin_defs.h ENA_ADMIN_MALFORMED_REQUEST.
	StatusMalformedRequest Status = 4
	// StatusIllegalParameter is ena_admin_defs.h ENA_ADMIN_ILLEGAL_PARAMETER.
	StatusIllegalParameter Status = 5
	// StatusUnknownError is ena_admin_defs.h ENA_ADMIN_UNKNOWN_ERROR.
	StatusUnknownError Status = 6
	// StatusResourceBusy is ena_admin_defs.h ENA_ADMIN_RESOURCE_BUSY.
	StatusResourceBusy Status = 7
)

var statusNames = [...]string{
	"SUCCESS", "RESOURCE_ALLOCATION_FAILURE", "BAD_OPCODE", "UNSUPPORTED_OPCODE",
	"MALFORMED_REQUEST", "ILLEGAL_PARAMETER", "UNKNOWN_ERROR", "RESOURCE_BUSY",
}

// String returns the protocol name, e.g. "ILLEGAL_PARAMETER".
func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("STATUS(%d)", uint8(s))
}

// Err returns nil for SUCCESS and a *StatusError otherwise.
func (s Status) Err() error {
	if s == StatusSuccess {
		return nil
	}
	return &StatusError{Status: s}
}

// StatusError is a non-SUCCESS admin completion, returned so callers can
// branch on the status with errors.As or errors.Is (§4.5).
type StatusError struct {
	// Opcode is the failed command, or 0 if unknown.
	Opcode Opcode
	// Status is the completion status (never StatusSuccess).
	Status Status
	// ExtendedStatus is the device's extra detail (§4.3); drivers only log it.
	ExtendedStatus uint16
}

// Error reads as a sentence, e.g. "CREATE_CQ: device returned
// UNKNOWN_ERROR (extended status 0x3)".
func (e *StatusError) Error() string {
	msg := "device returned " + e.Status.String()
	if e.Opcode != 0 {
		msg = e.Opcode.String() + ": " + msg
	}
	if e.ExtendedStatus != 0 {
		msg += fmt.Sprintf(" (extended status 0x%x)", e.ExtendedStatus)
	}
	return msg
}

// Is makes errors.Is(err, &StatusError{Status: s}) match any error with
// status s; a non-zero Opcode in the target must match too.
func (e *StatusError) Is(target error) bool {
	var t *StatusError
	if !errors.As(target, &t) || t == nil {
		return false
	}
	return t.Status == e.Status && (t.Opcode == 0 || t.Opcode == e.Opcode)
}

// ---------------------------------------------------------------------------
// AQ entry common header and control buffer (§4.2)

// AQ header bit fields.
const (
	// AQCommandIDMask is ena_admin_defs.h
	// ENA_ADMIN_AQ_COMMON_DESC_COMMAND_ID_MASK (bits 11:0).
	AQCommandIDMask = 0x0FFF
	// AQFlagPhase is ena_admin_defs.h ENA_ADMIN_AQ_COMMON_DESC_PHASE_MASK.
	AQFlagPhase = 0x01
	// AQFlagCtrlData (never set by drivers) is ena_admin_defs.h
	// ENA_ADMIN_AQ_COMMON_DESC_CTRL_DATA_MASK.
	AQFlagCtrlData = 0x02
	// AQFlagCtrlDataIndirect marks a valid control buffer (§4.2).
	// ena_admin_defs.h ENA_ADMIN_AQ_COMMON_DESC_CTRL_DATA_INDIRECT_MASK.
	AQFlagCtrlDataIndirect = 0x04
	// aqFlagsReservedMask covers flags bits 7:3.
	aqFlagsReservedMask = 0xF8
	// cmdIDReservedMask covers command id bits 15:12 (AQ and ACQ).
	cmdIDReservedMask = 0xF000
)

// AQHeaderSize is the common header at the start of every AQ entry.
// ena_admin_defs.h struct ena_admin_aq_common_desc.
const AQHeaderSize = 4

// AQHeader is the first 4 bytes of every admin command (§4.2).
type AQHeader struct {
	// CommandID is bits 11:0 of the u16 at offset 0; the device echoes it.
	CommandID uint16
	// IDReserved holds bits 15:12 of that u16, in place (must be 0).
	IDReserved uint16
	// Opcode is the byte at offset 2.
	Opcode Opcode
	// Phase is flags bit 0 (§4.1).
	Phase bool
	// CtrlData is flags bit 1.
	CtrlData bool
	// CtrlDataIndirect is flags bit 2: the control buffer at offset 4 is valid.
	CtrlDataIndirect bool
	// FlagsReserved holds flags bits 7:3, in place (must be 0).
	FlagsReserved uint8
}

// Encode writes the 4-byte header.
func (h *AQHeader) Encode(b []byte) {
	_ = b[AQHeaderSize-1]
	le.PutUint16(b[0:], h.CommandID&AQCommandIDMask|h.IDReserved&cmdIDReservedMask)
	b[2] = uint8(h.Opcode)
	b[3] = boolBit(h.Phase, uint8(AQFlagPhase)) |
		boolBit(h.CtrlData, uint8(AQFlagCtrlData)) |
		boolBit(h.CtrlDataIndirect, uint8(AQFlagCtrlDataIndirect)) |
		h.FlagsReserved&aqFlagsReservedMask
}

// DecodeAQHeader reads the header of an AQ entry.
func DecodeAQHeader(b []byte) AQHeader {
	_ = b[AQHeaderSize-1]
	id := le.Uint16(b[0:])
	return AQHeader{
		CommandID:        id & AQCommandIDMask,
		IDReserved:       id & cmdIDReservedMask,
		Opcode:           Opcode(b[2]),
		Phase:            b[3]&AQFlagPhase != 0,
		CtrlData:         b[3]&AQFlagCtrlData != 0,
		CtrlDataIndirect: b[3]&AQFlagCtrlDataIndirect != 0,
		FlagsReserved:    b[3] & aqFlagsReservedMask,
	}
}

// AQEntryOpcode returns the opcode of a raw AQ entry, so the model can pick
// the decoder.
func AQEntryOpcode(entry []byte) Opcode { return Opcode(entry[2]) }

// AQEntryCommandID returns bits 11:0 of a raw AQ entry's command id.
func AQEntryCommandID(entry []byte) uint16 { return le.Uint16(entry[0:]) & AQCommandIDMask }

// AQEntryPhase returns the phase bit of a raw AQ entry.
func AQEntryPhase(entry []byte) bool { return entry[3]&AQFlagPhase != 0 }

// SetAQEntryID stamps the command id and phase into an encoded AQ entry,
// leaving the opcode and the other flags alone. The admin queue calls it
// after a command's Encode, because only the queue knows both values (§4.1).
func SetAQEntryID(entry []byte, commandID uint16, phase bool) {
	id := le.Uint16(entry[0:])
	le.PutUint16(entry[0:], id&^AQCommandIDMask|commandID&AQCommandIDMask)
	entry[3] = entry[3]&^AQFlagPhase | boolBit(phase, uint8(AQFlagPhase))
}

// CtrlBufSize is the control-buffer descriptor at offset 4 of an AQ entry
// (§4.2). ena_admin_defs.h struct ena_admin_ctrl_buff_info.
const CtrlBufSize = 12

// CtrlBufOffset is where the control-buffer descriptor sits in an AQ entry.
const CtrlBufOffset = 4

// CtrlBuf describes a host buffer that carries a command's data (§4.2).
// Despite the "indirect" flag name, Addr is the data buffer itself.
type CtrlBuf struct {
	Length uint32 // offset 0: bytes
	Addr   uint64 // offset 4: mem_addr (48 bits)
}

// Encode writes the 12-byte descriptor.
func (c *CtrlBuf) Encode(b []byte) {
	_ = b[CtrlBufSize-1]
	le.PutUint32(b[0:], c.Length)
	PutMemAddr(b[4:], c.Addr)
}

// DecodeCtrlBuf reads a control-buffer descriptor. The mem_addr reserved
// half-word is not returned; check it with MemAddrReserved(b[8:]).
func DecodeCtrlBuf(b []byte) CtrlBuf {
	_ = b[CtrlBufSize-1]
	return CtrlBuf{Length: le.Uint32(b[0:]), Addr: GetMemAddr(b[4:])}
}

// ---------------------------------------------------------------------------
// ACQ entry common header (§4.3)

// ACQFlagPhase is ena_admin_defs.h ENA_ADMIN_ACQ_COMMON_DESC_PHASE_MASK.
const ACQFlagPhase = 0x01

// ACQCommandIDMask is ena_admin_defs.h ENA_ADMIN_ACQ_COMMON_DESC_COMMAND_ID_MASK.
const ACQCommandIDMask = 0x0FFF

// ACQHeaderSize is the common header of every ACQ entry.
// ena_admin_defs.h struct ena_admin_acq_common_desc.
const ACQHeaderSize = 8

// ACQHeader is the first 8 bytes of every admin completion (§4.3).
type ACQHeader struct {
	// CommandID is bits 11:0 of the u16 at offset 0: the echoed command id.
	CommandID uint16
	// IDReserved holds bits 15:12 of that u16, in place.
	IDReserved uint16
	// Status is the byte at offset 2.
	Status Status
	// Phase is flags bit 0 (offset 3).
	Phase bool
	// FlagsReserved holds flags bits 7:1, in place.
	FlagsReserved uint8
	// ExtendedStatus is the u16 at offset 4.
	ExtendedStatus uint16
	// SQHeadIndx is the u16 at offset 6: the device's AQ consumer position.
	SQHeadIndx uint16
}

// Encode writes the 8-byte header. A device model must make the phase
// bit visible last (§4.1); use SetACQEntryPhase for that final store.
func (h *ACQHeader) Encode(b []byte) {
	_ = b[ACQHeaderSize-1]
	le.PutUint16(b[0:], h.CommandID&ACQCommandIDMask|h.IDReserved&cmdIDReservedMask)
	b[2] = uint8(h.Status)
	b[3] = boolBit(h.Phase, uint8(ACQFlagPhase)) | h.FlagsReserved&^ACQFlagPhase
	le.PutUint16(b[4:], h.ExtendedStatus)
	le.PutUint16(b[6:], h.SQHeadIndx)
}

// DecodeACQHeader reads the header of an ACQ entry.
func DecodeACQHeader(b []byte) ACQHeader {
	_ = b[ACQHeaderSize-1]
	id := le.Uint16(b[0:])
	return ACQHeader{
		CommandID:      id & ACQCommandIDMask,
		IDReserved:     id & cmdIDReservedMask,
		Status:         Status(b[2]),
		Phase:          b[3]&ACQFlagPhase != 0,
		FlagsReserved:  b[3] &^ ACQFlagPhase,
		ExtendedStatus: le.Uint16(b[4:]),
		SQHeadIndx:     le.Uint16(b[6:]),
	}
}

// Err returns nil on SUCCESS, else a *StatusError naming op.
func (h ACQHeader) Err(op Opcode) error {
	if h.Status == StatusSuccess {
		return nil
	}
	return &StatusError{Opcode: op, Status: h.Status, ExtendedStatus: h.ExtendedStatus}
}

// ACQEntryPhase returns the phase bit of a raw ACQ entry; the driver reads
// it (then a read barrier) before the rest of the entry (§4.1).
func ACQEntryPhase(entry []byte) bool { return entry[3]&ACQFlagPhase != 0 }

// ACQEntryCommandID returns the echoed command id of a raw ACQ entry.
func ACQEntryCommandID(entry []byte) uint16 { return le.Uint16(entry[0:]) & ACQCommandIDMask }

// SetACQEntryPhase sets or clears only the phase bit of a raw ACQ entry.
func SetACQEntryPhase(entry []byte, phase bool) {
	entry[3] = entry[3]&^ACQFlagPhase | boolBit(phase, uint8(ACQFlagPhase))
}

// encodeHeader clears a whole AQ entry and writes h with the given opcode,
// so every command encoder leaves no stale or reserved byte behind.
func encodeHeader(b []byte, h AQHeader, op Opcode) {
	clear(b[:AQEntrySize])
	h.Opcode = op
	h.Encode(b)
}

// ---------------------------------------------------------------------------
// CREATE_CQ (§4.7)

// CREATE_CQ field bits.
const (
	// CQCaps1InterruptModeEnabled is cq_caps_1 bit 5. ena_admin_defs.h
	// ENA_ADMIN_AQ_CREATE_CQ_CMD_INTERRUPT_MODE_ENABLED_MASK.
	CQCaps1InterruptModeEnabled = 0x20
	// CQCaps2EntrySizeWordsMask is cq_caps_2 bits 4:0. ena_admin_defs.h
	// ENA_ADMIN_AQ_CREATE_CQ_CMD_CQ_ENTRY_SIZE_WORDS_MASK.
	CQCaps2EntrySizeWordsMask = 0x1F
	// MSIXNoVector in msix_vector means "no interrupt" (§4.7, iPXE
	// ENA_MSIX_NONE).
	MSIXNoVector = 0xFFFFFFFF
)

// CQ entry sizes in 32-bit words, as sent in cq_caps_2 (§4.7).
const (
	// CQEntryWordsTx is a Tx CQ of 8-byte completions.
	CQEntryWordsTx = 2
	// CQEntryWordsRx is an Rx CQ of 16-byte completions (or a Tx CQ with
	// hardware timestamps).
	CQEntryWordsRx = 4
	// CQEntryWordsRxTimestamp is an Rx CQ with 32-byte timestamped completions.
	CQEntryWordsRxTimestamp = 8
)

// CreateCQCmd is CREATE_CQ (§4.7); Encode writes the whole 64-byte entry.
// ena_admin_defs.h struct ena_admin_aq_create_cq_cmd.
type CreateCQCmd struct {
	// Header: Encode forces Opcode to OpCreateCQ.
	Header AQHeader
	// InterruptMode is cq_caps_1 bit 5 (offset 4).
	InterruptMode bool
	// EntrySizeWords is cq_caps_2 bits 4:0 (offset 5): CQ entry size in u32s.
	EntrySizeWords uint8
	// Depth is cq_depth (offset 6), a power of two.
	Depth uint16
	// MSIXVector is offset 8; MSIXNoVector for none.
	MSIXVector uint32
	// BaseAddr is cq_ba (offset 12), a mem_addr.
	BaseAddr uint64
}

// Encode writes the 64-byte AQ entry.
func (c *CreateCQCmd) Encode(b []byte) {
	encodeHeader(b, c.Header, OpCreateCQ)
	b[4] = boolBit(c.InterruptMode, uint8(CQCaps1InterruptModeEnabled))
	b[5] = c.EntrySizeWords & CQCaps2EntrySizeWordsMask
	le.PutUint16(b[6:], c.Depth)
	le.PutUint32(b[8:], c.MSIXVector)
	PutMemAddr(b[12:], c.BaseAddr)
}

// DecodeCreateCQCmd reads a CREATE_CQ entry.
func DecodeCreateCQCmd(b []byte) CreateCQCmd {
	_ = b[AQEntrySize-1]
	return CreateCQCmd{
		Header:         DecodeAQHeader(b),
		InterruptMode:  b[4]&CQCaps1InterruptModeEnabled != 0,
		EntrySizeWords: b[5] & CQCaps2EntrySizeWordsMask,
		Depth:          le.Uint16(b[6:]),
		MSIXVector:     le.Uint32(b[8:]),
		BaseAddr:       GetMemAddr(b[12:]),
	}
}

// CreateCQRespSize is the used part of the CREATE_CQ response payload
// (ACQ entry bytes 8..23). ena_admin_defs.h struct
// ena_admin_acq_create_cq_resp_desc.
const CreateCQRespSize = 16

// CreateCQResp is the CREATE_CQ response; offsets below are relative to the
// payload (ACQ entry offset 8).
type CreateCQResp struct {
	CQIdx             uint16 // 0: device CQ index
	ActualDepth       uint16 // 2: may be smaller than requested
	NUMANodeRegOffset uint32 // 4: BAR0 offset, 0 = none
	HeadDBRegOffset   uint32 // 8: obsolete; devices return 0
	UnmaskRegOffset   uint32 // 12: BAR0 offset of the interrupt unmask register
}

// Encode writes the payload.
func (r *CreateCQResp) Encode(b []byte) {
	_ = b[CreateCQRespSize-1]
	le.PutUint16(b[0:], r.CQIdx)
	le.PutUint16(b[2:], r.ActualDepth)
	le.PutUint32(b[4:], r.NUMANodeRegOffset)
	le.PutUint32(b[8:], r.HeadDBRegOffset)
	le.PutUint32(b[12:], r.UnmaskRegOffset)
}

// DecodeCreateCQResp reads the payload.
func DecodeCreateCQResp(b []byte) CreateCQResp {
	_ = b[CreateCQRespSize-1]
	return CreateCQResp{
		CQIdx:             le.Uint16(b[0:]),
		ActualDepth:       le.Uint16(b[2:]),
		NUMANodeRegOffset: le.Uint32(b[4:]),
		HeadDBRegOffset:   le.Uint32(b[8:]),
		UnmaskRegOffset:   le.Uint32(b[12:]),
	}
}

// ---------------------------------------------------------------------------
// CREATE_SQ / DESTROY_SQ (§4.7)

// SQDirection is sq_identity bits 7:5. ena_admin_defs.h enum
// ena_admin_sq_direction.
type SQDirection uint8

// SQ directions.
const (
	// SQDirectionTx is ena_admin_defs.h ENA_ADMIN_SQ_DIRECTION_TX.
	SQDirectionTx SQDirection = 1
	// SQDirectionRx is ena_admin_defs.h ENA_ADMIN_SQ_DIRECTION_RX.
	SQDirectionRx SQDirection = 2
)

// String returns "TX", "RX" or "DIRECTION(n)".
func (d SQDirection) String() string {
	switch d {
	case SQDirectionTx:
		return "TX"
	case SQDirectionRx:
		return "RX"
	}
	return fmt.Sprintf("DIRECTION(%d)", uint8(d))
}

// PlacementPolicy is where a Tx SQ's descriptors live (§4.7). ena_admin_defs.h
// enum ena_admin_placement_policy_type.
type PlacementPolicy uint8

// Placement policies.
const (
	// PlacementHost: ring in host memory. ena_admin_defs.h
	// ENA_ADMIN_PLACEMENT_POLICY_HOST.
	PlacementHost PlacementPolicy = 1
	// PlacementDev: LLQ ring in BAR2. ena_admin_defs.h
	// ENA_ADMIN_PLACEMENT_POLICY_DEV.
	PlacementDev PlacementPolicy = 3
)

// String returns "HOST", "DEV" or "PLACEMENT(n)".
func (p PlacementPolicy) String() string {
	switch p {
	case PlacementHost:
		return "HOST"
	case PlacementDev:
		return "DEV"
	}
	return fmt.Sprintf("PLACEMENT(%d)", uint8(p))
}

// CompletionPolicy says when the device reports SQ progress (§4.7).
// ena_admin_defs.h enum ena_admin_completion_policy_type.
type CompletionPolicy uint8

// Completion policies; drivers only send CompletionPolicyDesc.
const (
	// CompletionPolicyDesc is ena_admin_defs.h ENA_ADMIN_COMPLETION_POLICY_DESC.
	CompletionPolicyDesc CompletionPolicy = 0
	// CompletionPolicyDescOnDemand is ena_admin_defs.h
	// ENA_ADMIN_COMPLETION_POLICY_DESC_ON_DEMAND.
	CompletionPolicyDescOnDemand CompletionPolicy = 1
	// CompletionPolicyHeadOnDemand is ena_admin_defs.h
	// ENA_ADMIN_COMPLETION_POLICY_HEAD_ON_DEMAND.
	CompletionPolicyHeadOnDemand CompletionPolicy = 2
	// CompletionPolicyHead is ena_admin_defs.h ENA_ADMIN_COMPLETION_POLICY_HEAD.
	CompletionPolicyHead CompletionPolicy = 3
)

// CREATE_SQ / DESTROY_SQ bit fields.
const (
	// SQDirectionShift is ena_admin_defs.h ENA_ADMIN_SQ_SQ_DIRECTION_SHIFT
	// (also ENA_ADMIN_AQ_CREATE_SQ_CMD_SQ_DIRECTION_SHIFT).
	SQDirectionShift = 5
	// SQDirectionMask is ena_admin_defs.h ENA_ADMIN_SQ_SQ_DIRECTION_MASK.
	SQDirectionMask = 0xE0
	// SQPlacementPolicyMask is ena_admin_defs.h
	// ENA_ADMIN_AQ_CREATE_SQ_CMD_PLACEMENT_POLICY_MASK.
	SQPlacementPolicyMask = 0x0F
	// SQCompletionPolicyShift is ena_admin_defs.h
	// ENA_ADMIN_AQ_CREATE_SQ_CMD_COMPLETION_POLICY_SHIFT.
	SQCompletionPolicyShift = 4
	// SQCompletionPolicyMask is ena_admin_defs.h
	// ENA_ADMIN_AQ_CREATE_SQ_CMD_COMPLETION_POLICY_MASK.
	SQCompletionPolicyMask = 0x70
	// SQPhysContiguous is ena_admin_defs.h
	// ENA_ADMIN_AQ_CREATE_SQ_CMD_IS_PHYSICALLY_CONTIGUOUS_MASK.
	SQPhysContiguous = 0x01
)

// CreateSQCmd is CREATE_SQ (§4.7); Encode writes the whole 64-byte entry.
// ena_admin_defs.h struct ena_admin_aq_create_sq_cmd.
type CreateSQCmd struct {
	// Header: Encode forces Opcode to OpCreateSQ.
	Header AQHeader
	// Direction is sq_identity bits 7:5 (offset 4).
	Direction SQDirection
	// Placement is sq_caps_2 bits 3:0 (offset 6).
	Placement PlacementPolicy
	// CompletionPolicy is sq_caps_2 bits 6:4.
	CompletionPolicy CompletionPolicy
	// PhysContiguous is sq_caps_3 bit 0 (offset 7); drivers set it.
	PhysContiguous bool
	// CQIdx is offset 8: the device index from CREATE_CQ.
	CQIdx uint16
	// Depth is sq_depth (offset 10).
	Depth uint16
	// BaseAddr is sq_ba (offset 12); 0 for LLQ.
	BaseAddr uint64
	// HeadWriteback is sq_head_writeback (offset 20); drivers leave it 0.
	HeadWriteback uint64
}

// Encode writes the 64-byte AQ entry.
func (c *CreateSQCmd) Encode(b []byte) {
	encodeHeader(b, c.Header, OpCreateSQ)
	b[4] = uint8(c.Direction) << SQDirectionShift & SQDirectionMask
	b[6] = uint8(c.Placement)&SQPlacementPolicyMask |
		uint8(c.CompletionPolicy)<<SQCompletionPolicyShift&SQCompletionPolicyMask
	b[7] = boolBit(c.PhysContiguous, uint8(SQPhysContiguous))
	le.PutUint16(b[8:], c.CQIdx)
	le.PutUint16(b[10:], c.Depth)
	PutMemAddr(b[12:], c.BaseAddr)
	PutMemAddr(b[20:], c.HeadWriteback)
}

// DecodeCreateSQCmd reads a CREATE_SQ entry.
func DecodeCreateSQCmd(b []byte) CreateSQCmd {
	_ = b[AQEntrySize-1]
	return CreateSQCmd{
		Header:           DecodeAQHeader(b),
		Direction:        SQDirection(b[4] & SQDirectionMask >> SQDirectionShift),
		Placement:        PlacementPolicy(b[6] & SQPlacementPolicyMask),
		CompletionPolicy: CompletionPolicy(b[6] & SQCompletionPolicyMask >> SQCompletionPolicyShift),
		PhysContiguous:   b[7]&SQPhysContiguous != 0,
		CQIdx:            le.Uint16(b[8:]),
		Depth:            le.Uint16(b[10:]),
		BaseAddr:         GetMemAddr(b[12:]),
		HeadWriteback:    GetMemAddr(b[20:]),
	}
}

// CreateSQRespSize is the used part of the CREATE_SQ response payload
// (ACQ entry bytes 8..23). ena_admin_defs.h struct
// ena_admin_acq_create_sq_resp_desc.
const CreateSQRespSize = 16

// CreateSQResp is the CREATE_SQ response; offsets are relative to the
// payload (ACQ entry offset 8).
type CreateSQResp struct {
	SQIdx                uint16 // 0: device SQ index (2..3 reserved)
	DoorbellOffset       uint32 // 4: BAR0 offset of the SQ doorbell
	LLQDescriptorsOffset uint32 // 8: BAR2 offset of the LLQ ring
	LLQHeadersOffset     uint32 // 12: BAR2 offset of the header ring (unused)
}

// Encode writes the payload.
func (r *CreateSQResp) Encode(b []byte) {
	_ = b[CreateSQRespSize-1]
	le.PutUint16(b[0:], r.SQIdx)
	le.PutUint16(b[2:], 0)
	le.PutUint32(b[4:], r.DoorbellOffset)
	le.PutUint32(b[8:], r.LLQDescriptorsOffset)
	le.PutUint32(b[12:], r.LLQHeadersOffset)
}

// DecodeCreateSQResp reads the payload.
func DecodeCreateSQResp(b []byte) CreateSQResp {
	_ = b[CreateSQRespSize-1]
	return CreateSQResp{
		SQIdx:                le.Uint16(b[0:]),
		DoorbellOffset:       le.Uint32(b[4:]),
		LLQDescriptorsOffset: le.Uint32(b[8:]),
		LLQHeadersOffset:     le.Uint32(b[12:]),
	}
}

// DestroySQCmd is DESTROY_SQ (§4.7). ena_admin_defs.h struct
// ena_admin_aq_destroy_sq_cmd.
type DestroySQCmd struct {
	// Header: Encode forces Opcode to OpDestroySQ.
	Header AQHeader
	// SQIdx is offset 4.
	SQIdx uint16
	// Direction is sq_identity bits 7:5 (offset 6).
	Direction SQDirection
}

// Encode writes the 64-byte AQ entry.
func (c *DestroySQCmd) Encode(b []byte) {
	encodeHeader(b, c.Header, OpDestroySQ)
	le.PutUint16(b[4:], c.SQIdx)
	b[6] = uint8(c.Direction) << SQDirectionShift & SQDirectionMask
}

// DecodeDestroySQCmd reads a DESTROY_SQ entry.
func DecodeDestroySQCmd(b []byte) DestroySQCmd {
	_ = b[AQEntrySize-1]
	return DestroySQCmd{
		Header:    DecodeAQHeader(b),
		SQIdx:     le.Uint16(b[4:]),
		Direction: SQDirection(b[6] & SQDirectionMask >> SQDirectionShift),
	}
}

// DestroyCQCmd is DESTROY_CQ (§4.7). ena_admin_defs.h struct
// ena_admin_aq_destroy_cq_cmd.
type DestroyCQCmd struct {
	// Header: Encode forces Opcode to OpDestroyCQ.
	Header AQHeader
	// CQIdx is offset 4.
	CQIdx uint16
}

// Encode writes the 64-byte AQ entry.
func (c *DestroyCQCmd) Encode(b []byte) {
	encodeHeader(b, c.Header, OpDestroyCQ)
	le.PutUint16(b[4:], c.CQIdx)
}

// DecodeDestroyCQCmd reads a DESTROY_CQ entry.
func DecodeDestroyCQCmd(b []byte) DestroyCQCmd {
	_ = b[AQEntrySize-1]
	return DestroyCQCmd{Header: DecodeAQHeader(b), CQIdx: le.Uint16(b[4:])}
}

// ---------------------------------------------------------------------------
// GET_FEATURE / SET_FEATURE (§4.7)

// GET/SET_FEATURE layout.
const (
	// FeatureSelectMask is bits 1:0 of the feature flags byte.
	// ena_admin_defs.h ENA_ADMIN_GET_SET_FEATURE_COMMON_DESC_SELECT_MASK.
	FeatureSelectMask = 0x03
	// FeatureSelectCurrent asks for the current value (drivers send 0).
	FeatureSelectCurrent = 1
	// FeatureSelectDefault asks for the default value.
	FeatureSelectDefault = 3
	// SetFeaturePayloadOffset is where a SET_FEATURE payload starts in the
	// AQ entry. ena_admin_defs.h struct ena_admin_set_feat_cmd u.
	SetFeaturePayloadOffset = 20
	// SetFeaturePayloadSize is the room for a SET_FEATURE payload (11 u32s).
	SetFeaturePayloadSize = AQEntrySize - SetFeaturePayloadOffset
	// GetFeatureRespPayloadSize is the room for a GET_FEATURE response
	// (ACQ entry offset 8, 14 u32s). ena_admin_defs.h struct
	// ena_admin_get_feat_resp u.
	GetFeatureRespPayloadSize = ACQPayloadSize
)

// GetFeatureCmd is GET_FEATURE (§4.7); the response payload is decoded from
// ACQ entry [8:] with the feature's DecodeXxx. ena_admin_defs.h struct
// ena_admin_get_feat_cmd.
type GetFeatureCmd struct {
	// Header: Encode forces Opcode to OpGetFeature. Set CtrlDataIndirect
	// with a control buffer.
	Header AQHeader
	// CtrlBuf is offset 4; zero unless the feature uses a control buffer.
	CtrlBuf CtrlBuf
	// Select is bits 1:0 of offset 16; drivers send 0.
	Select uint8
	// FeatureID is offset 17.
	FeatureID FeatureID
	// FeatureVersion is offset 18: the highest version the driver supports.
	FeatureVersion uint8
}

// Encode writes the 64-byte AQ entry.
func (c *GetFeatureCmd) Encode(b []byte) {
	encodeHeader(b, c.Header, OpGetFeature)
	c.CtrlBuf.Encode(b[CtrlBufOffset:])
	b[16] = c.Select & FeatureSelectMask
	b[17] = uint8(c.FeatureID)
	b[18] = c.FeatureVersion
}

// DecodeGetFeatureCmd reads a GET_FEATURE entry.
func DecodeGetFeatureCmd(b []byte) GetFeatureCmd {
	_ = b[AQEntrySize-1]
	return GetFeatureCmd{
		Header:         DecodeAQHeader(b),
		CtrlBuf:        DecodeCtrlBuf(b[CtrlBufOffset:]),
		Select:         b[16] & FeatureSelectMask,
		FeatureID:      FeatureID(b[17]),
		FeatureVersion: b[18],
	}
}

// SetFeatureCmd is SET_FEATURE (§4.7): the feature payload is encoded into
// Payload with the feature's Encode. ena_admin_defs.h struct
// ena_admin_set_feat_cmd.
type SetFeatureCmd struct {
	// Header: Encode forces Opcode to OpSetFeature.
	Header AQHeader
	// CtrlBuf is offset 4; zero unless the feature uses a control buffer.
	CtrlBuf CtrlBuf
	// Select is bits 1:0 of offset 16; drivers send 0.
	Select uint8
	// FeatureID is offset 17.
	FeatureID FeatureID
	// FeatureVersion is offset 18.
	FeatureVersion uint8
	// Payload is entry bytes 20..63.
	Payload [SetFeaturePayloadSize]byte
}

// Encode writes the 64-byte AQ entry.
func (c *SetFeatureCmd) Encode(b []byte) {
	encodeHeader(b, c.Header, OpSetFeature)
	c.CtrlBuf.Encode(b[CtrlBufOffset:])
	b[16] = c.Select & FeatureSelectMask
	b[17] = uint8(c.FeatureID)
	b[18] = c.FeatureVersion
	copy(b[SetFeaturePayloadOffset:AQEntrySize], c.Payload[:])
}

// DecodeSetFeatureCmd reads a SET_FEATURE entry.
func DecodeSetFeatureCmd(b []byte) SetFeatureCmd {
	_ = b[AQEntrySize-1]
	c := SetFeatureCmd{
		Header:         DecodeAQHeader(b),
		CtrlBuf:        DecodeCtrlBuf(b[CtrlBufOffset:]),
		Select:         b[16] & FeatureSelectMask,
		FeatureID:      FeatureID(b[17]),
		FeatureVersion: b[18],
	}
	copy(c.Payload[:], b[SetFeaturePayloadOffset:AQEntrySize])
	return c
}

// ---------------------------------------------------------------------------
// GET_STATS (§4.7)

// StatsType selects the statistics block. ena_admin_defs.h enum
// ena_admin_get_stats_type.
type StatsType uint8

// Statistics types.
const (
	// StatsBasic is ena_admin_defs.h ENA_ADMIN_GET_STATS_TYPE_BASIC.
	StatsBasic StatsType = 0
	// StatsExtended is ena_admin_defs.h ENA_ADMIN_GET_STATS_TYPE_EXTENDED.
	StatsExtended StatsType = 1
	// StatsENI is ena_admin_defs.h ENA_ADMIN_GET_STATS_TYPE_ENI.
	StatsENI StatsType = 2
	// StatsENASRD is ena_admin_defs.h ENA_ADMIN_GET_STATS_TYPE_ENA_SRD.
	StatsENASRD StatsType = 3
	// StatsCustomerMetrics is ena_admin_defs.h
	// ENA_ADMIN_GET_STATS_TYPE_CUSTOMER_METRICS.
	StatsCustomerMetrics StatsType = 4
)

// String returns the protocol name, e.g. "BASIC".
func (t StatsType) String() string {
	switch t {
	case StatsBasic:
		return "BASIC"
	case StatsExtended:
		return "EXTENDED"
	case StatsENI:
		return "ENI"
	case StatsENASRD:
		return "ENA_SRD"
	case StatsCustomerMetrics:
		return "CUSTOMER_METRICS"
	}
	return fmt.Sprintf("STATS_TYPE(%d)", uint8(t))
}

// StatsScope is the GET_STATS scope. ena_admin_defs.h enum
// ena_admin_get_stats_scope.
type StatsScope uint8

// Statistics scopes.
const (
	// StatsScopeSpecificQueue is ena_admin_defs.h ENA_ADMIN_SPECIFIC_QUEUE.
	StatsScopeSpecificQueue StatsScope = 0
	// StatsScopeEthTraffic is ena_admin_defs.h ENA_ADMIN_ETH_TRAFFIC.
	StatsScopeEthTraffic StatsScope = 1
)

// StatsDeviceSelf in device_id means the requesting function itself (§4.7).
const StatsDeviceSelf = 0xFFFF

// GetStatsCmd is GET_STATS (§4.7). ena_admin_defs.h struct
// ena_admin_aq_get_stats_cmd.
type GetStatsCmd struct {
	// Header: Encode forces Opcode to OpGetStats.
	Header AQHeader
	// CtrlBuf is offset 4 (EXTENDED and CUSTOMER_METRICS only).
	CtrlBuf CtrlBuf
	// Type is offset 16.
	Type StatsType
	// Scope is offset 17.
	Scope StatsScope
	// QueueIdx is offset 20.
	QueueIdx uint16
	// DeviceID is offset 22; StatsDeviceSelf or 0.
	DeviceID uint16
	// RequestedMetrics is offset 24 (CUSTOMER_METRICS bitmap).
	RequestedMetrics uint64
}

// Encode writes the 64-byte AQ entry.
func (c *GetStatsCmd) Encode(b []byte) {
	encodeHeader(b, c.Header, OpGetStats)
	c.CtrlBuf.Encode(b[CtrlBufOffset:])
	b[16] = uint8(c.Type)
	b[17] = uint8(c.Scope)
	le.PutUint16(b[20:], c.QueueIdx)
	le.PutUint16(b[22:], c.DeviceID)
	le.PutUint64(b[24:], c.RequestedMetrics)
}

// DecodeGetStatsCmd reads a GET_STATS entry.
func DecodeGetStatsCmd(b []byte) GetStatsCmd {
	_ = b[AQEntrySize-1]
	return GetStatsCmd{
		Header:           DecodeAQHeader(b),
		CtrlBuf:          DecodeCtrlBuf(b[CtrlBufOffset:]),
		Type:             StatsType(b[16]),
		Scope:            StatsScope(b[17]),
		QueueIdx:         le.Uint16(b[20:]),
		DeviceID:         le.Uint16(b[22:]),
		RequestedMetrics: le.Uint64(b[24:]),
	}
}

// BasicStatsSize is the BASIC statistics payload. ena_admin_defs.h struct
// ena_admin_basic_stats.
const BasicStatsSize = 56

// BasicStats is the GET_STATS BASIC response payload (ACQ entry [8:]): seven
// 64-bit counters, each stored as u32 low then u32 high (§4.7).
type BasicStats struct {
	TxBytes    uint64 // 0
	TxPkts     uint64 // 8
	RxBytes    uint64 // 16
	RxPkts     uint64 // 24
	RxDrops    uint64 // 32
	TxDrops    uint64 // 40
	RxOverruns uint64 // 48
}

// Encode writes the payload.
func (s *BasicStats) Encode(b []byte) {
	_ = b[BasicStatsSize-1]
	putLoHi(b[0:], s.TxBytes)
	putLoHi(b[8:], s.TxPkts)
	putLoHi(b[16:], s.RxBytes)
	putLoHi(b[24:], s.RxPkts)
	putLoHi(b[32:], s.RxDrops)
	putLoHi(b[40:], s.TxDrops)
	putLoHi(b[48:], s.RxOverruns)
}

// DecodeBasicStats reads the payload.
func DecodeBasicStats(b []byte) BasicStats {
	_ = b[BasicStatsSize-1]
	return BasicStats{
		TxBytes:    getLoHi(b[0:]),
		TxPkts:     getLoHi(b[8:]),
		RxBytes:    getLoHi(b[16:]),
		RxPkts:     getLoHi(b[24:]),
		RxDrops:    getLoHi(b[32:]),
		TxDrops:    getLoHi(b[40:]),
		RxOverruns: getLoHi(b[48:]),
	}
}

// ENIStatsSize is the ENI statistics payload. ena_admin_defs.h struct
// ena_admin_eni_stats.
const ENIStatsSize = 40

// ENIStats is the GET_STATS ENI response payload: packets the instance's
// allowances shaped or dropped (§4.7).
type ENIStats struct {
	BWInAllowanceExceeded      uint64 // 0
	BWOutAllowanceExceeded     uint64 // 8
	PPSAllowanceExceeded       uint64 // 16
	ConntrackAllowanceExceeded uint64 // 24
	LinklocalAllowanceExceeded uint64 // 32
}

// Encode writes the payload.
func (s *ENIStats) Encode(b []byte) {
	_ = b[ENIStatsSize-1]
	le.PutUint64(b[0:], s.BWInAllowanceExceeded)
	le.PutUint64(b[8:], s.BWOutAllowanceExceeded)
	le.PutUint64(b[16:], s.PPSAllowanceExceeded)
	le.PutUint64(b[24:], s.ConntrackAllowanceExceeded)
	le.PutUint64(b[32:], s.LinklocalAllowanceExceeded)
}

// DecodeENIStats reads the payload.
func DecodeENIStats(b []byte) ENIStats {
	_ = b[ENIStatsSize-1]
	return ENIStats{
		BWInAllowanceExceeded:      le.Uint64(b[0:]),
		BWOutAllowanceExceeded:     le.Uint64(b[8:]),
		PPSAllowanceExceeded:       le.Uint64(b[16:]),
		ConntrackAllowanceExceeded: le.Uint64(b[24:]),
		LinklocalAllowanceExceeded: le.Uint64(b[32:]),
	}
}

// ENA SRD flags (SRDStats.Flags).
const (
	// SRDEnabled is ena_admin_defs.h ENA_ADMIN_ENA_SRD_ENABLED.
	SRDEnabled = 1 << 0
	// SRDUDPEnabled is ena_admin_defs.h ENA_ADMIN_ENA_SRD_UDP_ENABLED.
	SRDUDPEnabled = 1 << 1
	// SRDUDPOrderingBypassEnabled is ena_admin_defs.h
	// ENA_ADMIN_ENA_SRD_UDP_ORDERING_BYPASS_ENABLED.
	SRDUDPOrderingBypassEnabled = 1 << 2
)

// SRDStatsSize is the ENA_SRD statistics payload. ena_admin_defs.h struct
// ena_admin_ena_srd_info.
const SRDStatsSize = 40

// SRDStats is the GET_STATS ENA_SRD response payload (§4.7).
type SRDStats struct {
	Flags               uint64 // 0: SRD* bits
	TxPkts              uint64 // 8
	EligibleTxPkts      uint64 // 16
	RxPkts              uint64 // 24
	ResourceUtilization uint64 // 32
}

// Encode writes the payload.
func (s *SRDStats) Encode(b []byte) {
	_ = b[SRDStatsSize-1]
	le.PutUint64(b[0:], s.Flags)
	le.PutUint64(b[8:], s.TxPkts)
	le.PutUint64(b[16:], s.EligibleTxPkts)
	le.PutUint64(b[24:], s.RxPkts)
	le.PutUint64(b[32:], s.ResourceUtilization)
}

// DecodeSRDStats reads the payload.
func DecodeSRDStats(b []byte) SRDStats {
	_ = b[SRDStatsSize-1]
	return SRDStats{
		Flags:               le.Uint64(b[0:]),
		TxPkts:              le.Uint64(b[8:]),
		EligibleTxPkts:      le.Uint64(b[16:]),
		RxPkts:              le.Uint64(b[24:]),
		ResourceUtilization: le.Uint64(b[32:]),
	}
}

// Customer metric ids: bit n of requested/reported metrics (§4.7).
// ena_admin_defs.h enum ena_admin_customer_metrics_id.
const (
	// MetricBWInAllowanceExceeded is ENA_ADMIN_BW_IN_ALLOWANCE_EXCEEDED.
	MetricBWInAllowanceExceeded = 0
	// MetricBWOutAllowanceExceeded is ENA_ADMIN_BW_OUT_ALLOWANCE_EXCEEDED.
	MetricBWOutAllowanceExceeded = 1
	// MetricPPSAllowanceExceeded is ENA_ADMIN_PPS_ALLOWANCE_EXCEEDED.
	MetricPPSAllowanceExceeded = 2
	// MetricConntrackAllowanceExceeded is ENA_ADMIN_CONNTRACK_ALLOWANCE_EXCEEDED.
	MetricConntrackAllowanceExceeded = 3
	// MetricLinklocalAllowanceExceeded is ENA_ADMIN_LINKLOCAL_ALLOWANCE_EXCEEDED.
	MetricLinklocalAllowanceExceeded = 4
	// MetricConntrackAllowanceAvailable is ENA_ADMIN_CONNTRACK_ALLOWANCE_AVAILABLE.
	MetricConntrackAllowanceAvailable = 5
)

// Customer-metrics discovery masks and buffer size (§4.7).
const (
	// CustomerMetricsSupportMask is what drivers request to discover support.
	// ena_admin_defs.h ENA_ADMIN_CUSTOMER_METRICS_SUPPORT_MASK.
	CustomerMetricsSupportMask = 0x3F
	// CustomerMetricsMinSupportMask is assumed without capability
	// CUSTOMER_METRICS. ena_admin_defs.h
	// ENA_ADMIN_CUSTOMER_METRICS_MIN_SUPPORT_MASK.
	CustomerMetricsMinSupportMask = 0x1F
	// CustomerMetricsBufSize is the control buffer drivers pass.
	// ena_com.h ENA_CUSTOMER_METRICS_BUFFER_SIZE.
	CustomerMetricsBufSize = 512
)

// CustomerMetricsSize is the inline CUSTOMER_METRICS response payload.
// ena_admin_defs.h struct ena_admin_customer_metrics.
const CustomerMetricsSize = 8

// CustomerMetrics is the inline CUSTOMER_METRICS response: which requested
// metrics the device filled in the control buffer.
type CustomerMetrics struct {
	ReportedMetrics uint64 // 0
}

// Encode writes the payload.
func (m *CustomerMetrics) Encode(b []byte) {
	le.PutUint64(b[:CustomerMetricsSize], m.ReportedMetrics)
}

// DecodeCustomerMetrics reads the payload.
func DecodeCustomerMetrics(b []byte) CustomerMetrics {
	return CustomerMetrics{ReportedMetrics: le.Uint64(b[:CustomerMetricsSize])}
}

// CustomerMetricSlot returns where metric id sits in the control buffer for a
// request bitmap: buffer values are one u64 per requested bit, in bit order
// (§4.7). ok is false if id is not requested.
func CustomerMetricSlot(requested uint64, id uint) (slot int, ok bool) {
	if id >= 64 || requested&(1<<id) == 0 {
		return 0, false
	}
	return bits.OnesCount64(requested & (1<<id - 1)), true
}

// CustomerMetricsBufLen is the number of buffer bytes a request fills.
func CustomerMetricsBufLen(requested uint64) int {
	return 8 * bits.OnesCount64(requested)
}
