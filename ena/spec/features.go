package spec

import (
	"fmt"
	"strings"
)

// FeatureID names a GET_FEATURE / SET_FEATURE feature (§4.6).
// ena_admin_defs.h enum ena_admin_aq_feature_id.
type FeatureID uint8

// Feature ids (§4.6).
const (
	// FeatDeviceAttributes is ena_admin_defs.h ENA_ADMIN_DEVICE_ATTRIBUTES.
	FeatDeviceAttributes FeatureID = 1
	// FeatMaxQueuesNum is ena_admin_defs.h ENA_ADMIN_MAX_QUEUES_NUM.
	FeatMaxQueuesNum FeatureID = 2
	// FeatHWHints is ena_admin_defs.h ENA_ADMIN_HW_HINTS.
	FeatHWHints FeatureID = 3
	// FeatLLQ is ena_admin_defs.h ENA_ADMIN_LLQ.
	FeatLLQ FeatureID = 4
	// FeatExtraPropertiesStrings is ena_admin_defs.h
	// ENA_ADMIN_EXTRA_PROPERTIES_STRINGS.
	FeatExtraPropertiesStrings FeatureID = 5
	// FeatExtraPropertiesFlags is ena_admin_defs.h ENA_ADMIN_EXTRA_PROPERTIES_FLAGS.
	FeatExtraPropertiesFlags FeatureID = 6
	// FeatMaxQueuesExt is ena_admin_defs.h ENA_ADMIN_MAX_QUEUES_EXT.
	FeatMaxQueuesExt FeatureID = 7
	// FeatFragBypass is ena_admin_defs.h (Linux, DPDK) ENA_ADMIN_FRAG_BYPASS.
	FeatFragBypass FeatureID = 8
	// FeatRSSHashFunction is ena_admin_defs.h ENA_ADMIN_RSS_HASH_FUNCTION.
	FeatRSSHashFunction FeatureID = 10
	// FeatStatelessOffloadConfig is ena_admin_defs.h
	// ENA_ADMIN_STATELESS_OFFLOAD_CONFIG.
	FeatStatelessOffloadConfig FeatureID = 11
	// FeatRSSIndirectionTableConfig is ena_admin_defs.h
	// ENA_ADMIN_RSS_INDIRECTION_TABLE_CONFIG.
	FeatRSSIndirectionTableConfig FeatureID = 12
	// FeatMTU is ena_admin_defs.h ENA_ADMIN_MTU.
	FeatMTU FeatureID = 14
	// FeatRSSHashInput is ena_admin_defs.h ENA_ADMIN_RSS_HASH_INPUT.
	FeatRSSHashInput FeatureID = 18
	// FeatInterruptModeration is ena_admin_defs.h ENA_ADMIN_INTERRUPT_MODERATION.
	FeatInterruptModeration FeatureID = 20
	// FeatAENQConfig is ena_admin_defs.h ENA_ADMIN_AENQ_CONFIG.
	FeatAENQConfig FeatureID = 26
	// FeatLinkConfig is ena_admin_defs.h ENA_ADMIN_LINK_CONFIG.
	FeatLinkConfig FeatureID = 27
	// FeatHostAttrConfig is ena_admin_defs.h ENA_ADMIN_HOST_ATTR_CONFIG.
	FeatHostAttrConfig FeatureID = 28
	// FeatPHCConfig is ena_admin_defs.h ENA_ADMIN_PHC_CONFIG.
	FeatPHCConfig FeatureID = 29
	// FeatFlowSteeringConfig is ena_admin_defs.h (Linux)
	// ENA_ADMIN_FLOW_STEERING_CONFIG.
	FeatFlowSteeringConfig FeatureID = 30
	// FeatHWTimestamp is ena_admin_defs.h (Linux, DPDK) ENA_ADMIN_HW_TIMESTAMP.
	FeatHWTimestamp FeatureID = 31
)

// String returns the protocol name, e.g. "AENQ_CONFIG".
func (f FeatureID) String() string {
	switch f {
	case FeatDeviceAttributes:
		return "DEVICE_ATTRIBUTES"
	case FeatMaxQueuesNum:
		return "MAX_QUEUES_NUM"
	case FeatHWHints:
		return "HW_HINTS"
	case FeatLLQ:
		return "LLQ"
	case FeatExtraPropertiesStrings:
		return "EXTRA_PROPERTIES_STRINGS"
	case FeatExtraPropertiesFlags:
		return "EXTRA_PROPERTIES_FLAGS"
	case FeatMaxQueuesExt:
		return "MAX_QUEUES_EXT"
	case FeatFragBypass:
		return "FRAG_BYPASS"
	case FeatRSSHashFunction:
		return "RSS_HASH_FUNCTION"
	case FeatStatelessOffloadConfig:
		return "STATELESS_OFFLOAD_CONFIG"
	case FeatRSSIndirectionTableConfig:
		return "RSS_INDIRECTION_TABLE_CONFIG"
	case FeatMTU:
		return "MTU"
	case FeatRSSHashInput:
		return "RSS_HASH_INPUT"
	case FeatInterruptModeration:
		return "INTERRUPT_MODERATION"
	case FeatAENQConfig:
		return "AENQ_CONFIG"
	case FeatLinkConfig:
		return "LINK_CONFIG"
	case FeatHostAttrConfig:
		return "HOST_ATTR_CONFIG"
	case FeatPHCConfig:
		return "PHC_CONFIG"
	case FeatFlowSteeringConfig:
		return "FLOW_STEERING_CONFIG"
	case FeatHWTimestamp:
		return "HW_TIMESTAMP"
	}
	return fmt.Sprintf("FEATURE(%d)", uint8(f))
}

// Feature versions drivers put in feature_version (§4.7).
const (
	// LLQFeatureVersion is ena_admin_defs.h ENA_ADMIN_LLQ_FEATURE_VERSION_1.
	LLQFeatureVersion = 1
	// MaxQueuesExtVersion is ena_com.c ENA_FEATURE_MAX_QUEUE_EXT_VER; the
	// response's version byte must equal it.
	MaxQueuesExtVersion = 1
	// RSSIndirectionTableVersion is 0: Linux 6.1's ena.ko and DPDK 22.11's
	// ENA PMD both send 0 in GET and SET RSS_INDIRECTION_TABLE_CONFIG
	// (observed in the QEMU rig's bring-up comparison), as FreeBSD does,
	// and ena_admin_defs.h defines no version for this feature.
	RSSIndirectionTableVersion = 0
	// HWTimestampVersion is ena_admin_defs.h (Linux)
	// ENA_ADMIN_HW_TIMESTAMP_FEATURE_VERSION_1.
	HWTimestampVersion = 1
	// PHCFeatureVersion is ena_admin_defs.h ENA_ADMIN_PHC_FEATURE_VERSION_0.
	PHCFeatureVersion = 0
	// FragBypassVersion is ena_admin_defs.h (Linux)
	// ENA_ADMIN_FRAG_BYPASS_FEATURE_VERSION_0.
	FragBypassVersion = 0
)

// FeatureBit returns the supported_features bit of id (bit n = feature n,
// §4.6), or 0 for ids that do not fit the 32-bit bitmap.
func FeatureBit(id FeatureID) uint32 {
	if id >= 32 {
		return 0
	}
	return 1 << id
}

// FeatureSupported reports whether a DEVICE_ATTRIBUTES supported_features
// bitmap advertises id.
func FeatureSupported(supported uint32, id FeatureID) bool {
	return supported&FeatureBit(id) != 0
}

// CheckRequiredFeatures returns an error naming what is missing if the
// device lacks a feature every driver requires (§4.6): AENQ_CONFIG,
// STATELESS_OFFLOAD_CONFIG and MAX_QUEUES_EXT or MAX_QUEUES_NUM.
func CheckRequiredFeatures(supported uint32) error {
	var missing []string
	for _, id := range []FeatureID{FeatAENQConfig, FeatStatelessOffloadConfig} {
		if !FeatureSupported(supported, id) {
			missing = append(missing, id.String())
		}
	}
	if !FeatureSupported(supported, FeatMaxQueuesExt) && !FeatureSupported(supported, FeatMaxQueuesNum) {
		missing = append(missing, "MAX_QUEUES_EXT or MAX_QUEUES_NUM")
	}
	if missing != nil {
		return fmt.Errorf("device does not support required features %s (supported_features 0x%08x)",
			strings.Join(missing, ", "), supported)
	}
	return nil
}

// Capability is a bit number in DEVICE_ATTRIBUTES.capabilities (§4.6).
// ena_admin_defs.h enum ena_admin_aq_caps_id.
type Capability uint8

// Capability bits.
const (
	// CapENIStats allows GET_STATS ENI. ena_admin_defs.h ENA_ADMIN_ENI_STATS.
	CapENIStats Capability = 0
	// CapENASRDInfo allows GET_STATS ENA_SRD. ena_admin_defs.h ENA_ADMIN_ENA_SRD_INFO.
	CapENASRDInfo Capability = 1
	// CapCustomerMetrics allows GET_STATS CUSTOMER_METRICS.
	// ena_admin_defs.h ENA_ADMIN_CUSTOMER_METRICS.
	CapCustomerMetrics Capability = 2
	// CapExtendedResetReasons makes DEV_CTL bits 27:24 valid.
	// ena_admin_defs.h ENA_ADMIN_EXTENDED_RESET_REASONS.
	CapExtendedResetReasons Capability = 3
	// CapCDescMBZ asks drivers to check must-be-zero completion bits.
	// ena_admin_defs.h ENA_ADMIN_CDESC_MBZ.
	CapCDescMBZ Capability = 4
)

// String returns the protocol name, e.g. "EXTENDED_RESET_REASONS".
func (c Capability) String() string {
	switch c {
	case CapENIStats:
		return "ENI_STATS"
	case CapENASRDInfo:
		return "ENA_SRD_INFO"
	case CapCustomerMetrics:
		return "CUSTOMER_METRICS"
	case CapExtendedResetReasons:
		return "EXTENDED_RESET_REASONS"
	case CapCDescMBZ:
		return "CDESC_MBZ"
	}
	return fmt.Sprintf("CAPABILITY(%d)", uint8(c))
}

// Bit returns the capability's bit in the capabilities bitmap (0 if >= 32).
func (c Capability) Bit() uint32 {
	if c >= 32 {
		return 0
	}
	return 1 << c
}

// In reports whether the capabilities bitmap has c.
func (c Capability) In(capabilities uint32) bool { return capabilities&c.Bit() != 0 }

// ---------------------------------------------------------------------------
// DEVICE_ATTRIBUTES (§4.8)

// DeviceAttributesSize is the DEVICE_ATTRIBUTES payload.
// ena_admin_defs.h struct ena_admin_device_attr_feature_desc.
const DeviceAttributesSize = 36

// DeviceAttributes is the GET DEVICE_ATTRIBUTES payload (§4.8).
type DeviceAttributes struct {
	ImplID            uint32  // 0
	DeviceVersion     uint32  // 4
	SupportedFeatures uint32  // 8: bit n = FeatureID n
	Capabilities      uint32  // 12: Capability bits
	PhysAddrWidth     uint32  // 16
	VirtAddrWidth     uint32  // 20
	MAC               [6]byte // 24: network byte order
	// FlowSteeringMaxEntries is bytes 30-31: reserved in the FreeBSD and
	// DPDK headers, flow_steering_max_entries in Linux.
	FlowSteeringMaxEntries uint16
	MaxMTU                 uint32 // 32: L3 MTU
}

// Encode writes the payload.
func (d *DeviceAttributes) Encode(b []byte) {
	_ = b[DeviceAttributesSize-1]
	le.PutUint32(b[0:], d.ImplID)
	le.PutUint32(b[4:], d.DeviceVersion)
	le.PutUint32(b[8:], d.SupportedFeatures)
	le.PutUint32(b[12:], d.Capabilities)
	le.PutUint32(b[16:], d.PhysAddrWidth)
	le.PutUint32(b[20:], d.VirtAddrWidth)
	copy(b[24:30], d.MAC[:])
	le.PutUint16(b[30:], d.FlowSteeringMaxEntries)
	le.PutUint32(b[32:], d.MaxMTU)
}

// DecodeDeviceAttributes reads the payload.
func DecodeDeviceAttributes(b []byte) DeviceAttributes {
	_ = b[DeviceAttributesSize-1]
	d := DeviceAttributes{
		ImplID:                 le.Uint32(b[0:]),
		DeviceVersion:          le.Uint32(b[4:]),
		SupportedFeatures:      le.Uint32(b[8:]),
		Capabilities:           le.Uint32(b[12:]),
		PhysAddrWidth:          le.Uint32(b[16:]),
		VirtAddrWidth:          le.Uint32(b[20:]),
		FlowSteeringMaxEntries: le.Uint16(b[30:]),
		MaxMTU:                 le.Uint32(b[32:]),
	}
	copy(d.MAC[:], b[24:30])
	return d
}

// ---------------------------------------------------------------------------
// MAX_QUEUES_NUM, MAX_QUEUES_EXT (§4.8)

// MaxQueuesNumSize is the MAX_QUEUES_NUM payload.
// ena_admin_defs.h struct ena_admin_queue_feature_desc.
const MaxQueuesNumSize = 32

// MaxQueuesNum is the GET MAX_QUEUES_NUM payload (§4.8), the older form of
// MaxQueuesExt.
type MaxQueuesNum struct {
	MaxSQNum          uint32 // 0
	MaxSQDepth        uint32 // 4
	MaxCQNum          uint32 // 8
	MaxCQDepth        uint32 // 12
	MaxLegacyLLQNum   uint32 // 16
	MaxLegacyLLQDepth uint32 // 20
	MaxHeaderSize     uint32 // 24
	MaxPacketTxDescs  uint16 // 28: includes the meta descriptor
	MaxPacketRxDescs  uint16 // 30
}

// Encode writes the payload.
func (m *MaxQueuesNum) Encode(b []byte) {
	_ = b[MaxQueuesNumSize-1]
	le.PutUint32(b[0:], m.MaxSQNum)
	le.PutUint32(b[4:], m.MaxSQDepth)
	le.PutUint32(b[8:], m.MaxCQNum)
	le.PutUint32(b[12:], m.MaxCQDepth)
	le.PutUint32(b[16:], m.MaxLegacyLLQNum)
	le.PutUint32(b[20:], m.MaxLegacyLLQDepth)
	le.PutUint32(b[24:], m.MaxHeaderSize)
	le.PutUint16(b[28:], m.MaxPacketTxDescs)
	le.PutUint16(b[30:], m.MaxPacketRxDescs)
}

// DecodeMaxQueuesNum reads the payload.
func DecodeMaxQueuesNum(b []byte) MaxQueuesNum {
	_ = b[MaxQueuesNumSize-1]
	return MaxQueuesNum{
		MaxSQNum:          le.Uint32(b[0:]),
		MaxSQDepth:        le.Uint32(b[4:]),
		MaxCQNum:          le.Uint32(b[8:]),
		MaxCQDepth:        le.Uint32(b[12:]),
		MaxLegacyLLQNum:   le.Uint32(b[16:]),
		MaxLegacyLLQDepth: le.Uint32(b[20:]),
		MaxHeaderSize:     le.Uint32(b[24:]),
		MaxPacketTxDescs:  le.Uint16(b[28:]),
		MaxPacketRxDescs:  le.Uint16(b[30:]),
	}
}

// MaxQueuesExtSize is the MAX_QUEUES_EXT payload.
// ena_admin_defs.h struct ena_admin_queue_ext_feature_desc.
const MaxQueuesExtSize = 44

// MaxQueuesExt is the GET MAX_QUEUES_EXT payload (feature version 1, §4.8).
type MaxQueuesExt struct {
	Version             uint8  // 0: must be MaxQueuesExtVersion
	MaxTxSQNum          uint32 // 4
	MaxTxCQNum          uint32 // 8
	MaxRxSQNum          uint32 // 12
	MaxRxCQNum          uint32 // 16
	MaxTxSQDepth        uint32 // 20
	MaxTxCQDepth        uint32 // 24
	MaxRxSQDepth        uint32 // 28
	MaxRxCQDepth        uint32 // 32
	MaxTxHeaderSize     uint32 // 36
	MaxPerPacketTxDescs uint16 // 40: includes the meta descriptor
	MaxPerPacketRxDescs uint16 // 42
}

// Encode writes the payload.
func (m *MaxQueuesExt) Encode(b []byte) {
	_ = b[MaxQueuesExtSize-1]
	b[0], b[1], b[2], b[3] = m.Version, 0, 0, 0
	le.PutUint32(b[4:], m.MaxTxSQNum)
	le.PutUint32(b[8:], m.MaxTxCQNum)
	le.PutUint32(b[12:], m.MaxRxSQNum)
	le.PutUint32(b[16:], m.MaxRxCQNum)
	le.PutUint32(b[20:], m.MaxTxSQDepth)
	le.PutUint32(b[24:], m.MaxTxCQDepth)
	le.PutUint32(b[28:], m.MaxRxSQDepth)
	le.PutUint32(b[32:], m.MaxRxCQDepth)
	le.PutUint32(b[36:], m.MaxTxHeaderSize)
	le.PutUint16(b[40:], m.MaxPerPacketTxDescs)
	le.PutUint16(b[42:], m.MaxPerPacketRxDescs)
}

// DecodeMaxQueuesExt reads the payload.
func DecodeMaxQueuesExt(b []byte) MaxQueuesExt {
	_ = b[MaxQueuesExtSize-1]
	return MaxQueuesExt{
		Version:             b[0],
		MaxTxSQNum:          le.Uint32(b[4:]),
		MaxTxCQNum:          le.Uint32(b[8:]),
		MaxRxSQNum:          le.Uint32(b[12:]),
		MaxRxCQNum:          le.Uint32(b[16:]),
		MaxTxSQDepth:        le.Uint32(b[20:]),
		MaxTxCQDepth:        le.Uint32(b[24:]),
		MaxRxSQDepth:        le.Uint32(b[28:]),
		MaxRxCQDepth:        le.Uint32(b[32:]),
		MaxTxHeaderSize:     le.Uint32(b[36:]),
		MaxPerPacketTxDescs: le.Uint16(b[40:]),
		MaxPerPacketRxDescs: le.Uint16(b[42:]),
	}
}

// ---------------------------------------------------------------------------
// HW_HINTS (§4.8; also the AENQ UPDATE_HINTS payload, §5.2)

// HWHintsSize is the HW_HINTS payload. ena_admin_defs.h struct
// ena_admin_ena_hw_hints.
const HWHintsSize = 32

// HWHintDisabled in a timeout hint turns the corresponding check off.
const HWHintDisabled = 0xFFFF

// HWHints are device-suggested timeouts and limits (§4.8); 0 means "keep
// the driver default".
type HWHints struct {
	MMIOReadTimeout             uint16 // 0: ms
	DriverWatchdogTimeout       uint16 // 2: ms, HWHintDisabled = off
	MissingTxCompletionTimeout  uint16 // 4: ms, HWHintDisabled = off
	MissedTxCompletionThreshold uint16 // 6: count before reset
	AdminCompletionTxTimeout    uint16 // 8: ms
	NetdevWDTimeout             uint16 // 10: ms
	MaxTxSGLSize                uint16 // 12
	MaxRxSGLSize                uint16 // 14
}

// Encode writes the payload (bytes 16..31 reserved, zero).
func (h *HWHints) Encode(b []byte) {
	_ = b[HWHintsSize-1]
	le.PutUint16(b[0:], h.MMIOReadTimeout)
	le.PutUint16(b[2:], h.DriverWatchdogTimeout)
	le.PutUint16(b[4:], h.MissingTxCompletionTimeout)
	le.PutUint16(b[6:], h.MissedTxCompletionThreshold)
	le.PutUint16(b[8:], h.AdminCompletionTxTimeout)
	le.PutUint16(b[10:], h.NetdevWDTimeout)
	le.PutUint16(b[12:], h.MaxTxSGLSize)
	le.PutUint16(b[14:], h.MaxRxSGLSize)
	clear(b[16:HWHintsSize])
}

// DecodeHWHints reads the payload.
func DecodeHWHints(b []byte) HWHints {
	_ = b[HWHintsSize-1]
	return HWHints{
		MMIOReadTimeout:             le.Uint16(b[0:]),
		DriverWatchdogTimeout:       le.Uint16(b[2:]),
		MissingTxCompletionTimeout:  le.Uint16(b[4:]),
		MissedTxCompletionThreshold: le.Uint16(b[6:]),
		AdminCompletionTxTimeout:    le.Uint16(b[8:]),
		NetdevWDTimeout:             le.Uint16(b[10:]),
		MaxTxSGLSize:                le.Uint16(b[12:]),
		MaxRxSGLSize:                le.Uint16(b[14:]),
	}
}

// ---------------------------------------------------------------------------
// LLQ (§4.8, §8.1)

// LLQ header location codes. ena_admin_defs.h enum
// ena_admin_llq_header_location.
const (
	// LLQHeaderLocationInline is ena_admin_defs.h ENA_ADMIN_INLINE_HEADER.
	LLQHeaderLocationInline = 1
	// LLQHeaderLocationRing is ena_admin_defs.h ENA_ADMIN_HEADER_RING.
	LLQHeaderLocationRing = 2
)

// LLQ entry size codes. ena_admin_defs.h enum ena_admin_llq_ring_entry_size.
const (
	// LLQEntrySize128 is ena_admin_defs.h ENA_ADMIN_LIST_ENTRY_SIZE_128B.
	LLQEntrySize128 = 1
	// LLQEntrySize192 is ena_admin_defs.h ENA_ADMIN_LIST_ENTRY_SIZE_192B.
	LLQEntrySize192 = 2
	// LLQEntrySize256 is ena_admin_defs.h ENA_ADMIN_LIST_ENTRY_SIZE_256B.
	LLQEntrySize256 = 4
)

// LLQEntrySizeBytes converts an entry-size code to bytes; 0 for an unknown
// code (the field is a device-controlled value).
func LLQEntrySizeBytes(code uint16) int {
	switch code {
	case LLQEntrySize128:
		return 128
	case LLQEntrySize192:
		return 192
	case LLQEntrySize256:
		return 256
	}
	return 0
}

// LLQ descriptors-before-header values: the field holds the number; the
// "supported" field is a bitmask of these numbers. ena_admin_defs.h enum
// ena_admin_llq_num_descs_before_header.
const (
	// LLQDescsBeforeHeader0 is ENA_ADMIN_LLQ_NUM_DESCS_BEFORE_HEADER_0.
	LLQDescsBeforeHeader0 = 0
	// LLQDescsBeforeHeader1 is ENA_ADMIN_LLQ_NUM_DESCS_BEFORE_HEADER_1.
	LLQDescsBeforeHeader1 = 1
	// LLQDescsBeforeHeader2 is ENA_ADMIN_LLQ_NUM_DESCS_BEFORE_HEADER_2.
	LLQDescsBeforeHeader2 = 2
	// LLQDescsBeforeHeader4 is ENA_ADMIN_LLQ_NUM_DESCS_BEFORE_HEADER_4.
	LLQDescsBeforeHeader4 = 4
	// LLQDescsBeforeHeader8 is ENA_ADMIN_LLQ_NUM_DESCS_BEFORE_HEADER_8.
	LLQDescsBeforeHeader8 = 8
)

// LLQ descriptor stride codes. ena_admin_defs.h enum ena_admin_llq_stride_ctrl.
const (
	// LLQStrideSingleDescPerEntry is ena_admin_defs.h
	// ENA_ADMIN_SINGLE_DESC_PER_ENTRY.
	LLQStrideSingleDescPerEntry = 1
	// LLQStrideMultipleDescsPerEntry is ena_admin_defs.h
	// ENA_ADMIN_MULTIPLE_DESCS_PER_ENTRY.
	LLQStrideMultipleDescsPerEntry = 2
)

// LLQ accel-mode flag bits. ena_admin_defs.h enum ena_admin_accel_mode_feat.
const (
	// LLQAccelDisableMetaCaching is bit ENA_ADMIN_DISABLE_META_CACHING.
	LLQAccelDisableMetaCaching = 1 << 0
	// LLQAccelLimitTxBurst is bit ENA_ADMIN_LIMIT_TX_BURST.
	LLQAccelLimitTxBurst = 1 << 1
	// LLQAccelDriverFlags is what vendor drivers set in SET LLQ (§4.8).
	LLQAccelDriverFlags = LLQAccelDisableMetaCaching | LLQAccelLimitTxBurst
)

// LLQSize is the LLQ payload. ena_admin_defs.h struct
// ena_admin_feature_llq_desc.
const LLQSize = 36

// LLQ is the GET / SET LLQ payload (§4.8). SET fills only the *Enabled
// fields and AccelFlags.
type LLQ struct {
	MaxLLQNum                  uint32 // 0: 0 = no LLQ
	MaxLLQDepth                uint32 // 4
	HeaderLocationSupported    uint16 // 8: bitmask of LLQHeaderLocation*
	HeaderLocationEnabled      uint16 // 10
	EntrySizeSupported         uint16 // 12: bitmask of LLQEntrySize*
	EntrySizeEnabled           uint16 // 14
	DescsBeforeHeaderSupported uint16 // 16: bitmask of the numbers
	DescsBeforeHeaderEnabled   uint16 // 18
	StrideSupported            uint16 // 20: bitmask of LLQStride*
	StrideEnabled              uint16 // 22
	FeatureVersion             uint8  // 24: device's answer
	EntrySizeRecommended       uint8  // 25: an LLQEntrySize* code
	MaxWideLLQDepth            uint16 // 26: max depth with 256 B entries, 0 = unknown
	// AccelFlags is offset 28: GET supported_flags / SET enabled_flags.
	AccelFlags uint16
	// MaxTxBurstSize is offset 30: GET max_tx_burst_size in bytes; reserved
	// in SET.
	MaxTxBurstSize uint16
}

// Encode writes the payload (bytes 32..35 reserved, zero).
func (l *LLQ) Encode(b []byte) {
	_ = b[LLQSize-1]
	le.PutUint32(b[0:], l.MaxLLQNum)
	le.PutUint32(b[4:], l.MaxLLQDepth)
	le.PutUint16(b[8:], l.HeaderLocationSupported)
	le.PutUint16(b[10:], l.HeaderLocationEnabled)
	le.PutUint16(b[12:], l.EntrySizeSupported)
	le.PutUint16(b[14:], l.EntrySizeEnabled)
	le.PutUint16(b[16:], l.DescsBeforeHeaderSupported)
	le.PutUint16(b[18:], l.DescsBeforeHeaderEnabled)
	le.PutUint16(b[20:], l.StrideSupported)
	le.PutUint16(b[22:], l.StrideEnabled)
	b[24] = l.FeatureVersion
	b[25] = l.EntrySizeRecommended
	le.PutUint16(b[26:], l.MaxWideLLQDepth)
	le.PutUint16(b[28:], l.AccelFlags)
	le.PutUint16(b[30:], l.MaxTxBurstSize)
	le.PutUint32(b[32:], 0)
}

// DecodeLLQ reads the payload.
func DecodeLLQ(b []byte) LLQ {
	_ = b[LLQSize-1]
	return LLQ{
		MaxLLQNum:                  le.Uint32(b[0:]),
		MaxLLQDepth:                le.Uint32(b[4:]),
		HeaderLocationSupported:    le.Uint16(b[8:]),
		HeaderLocationEnabled:      le.Uint16(b[10:]),
		EntrySizeSupported:         le.Uint16(b[12:]),
		EntrySizeEnabled:           le.Uint16(b[14:]),
		DescsBeforeHeaderSupported: le.Uint16(b[16:]),
		DescsBeforeHeaderEnabled:   le.Uint16(b[18:]),
		StrideSupported:            le.Uint16(b[20:]),
		StrideEnabled:              le.Uint16(b[22:]),
		FeatureVersion:             b[24],
		EntrySizeRecommended:       b[25],
		MaxWideLLQDepth:            le.Uint16(b[26:]),
		AccelFlags:                 le.Uint16(b[28:]),
		MaxTxBurstSize:             le.Uint16(b[30:]),
	}
}

// ---------------------------------------------------------------------------
// STATELESS_OFFLOAD_CONFIG (§4.8)

// Tx offload bits (StatelessOffload.Tx).
const (
	// OffloadTxL3CsumIPv4 is ena_admin_defs.h
	// ENA_ADMIN_FEATURE_OFFLOAD_DESC_TX_L3_CSUM_IPV4_MASK.
	OffloadTxL3CsumIPv4 = 1 << 0
	// OffloadTxL4IPv4CsumPart is ENA_ADMIN_FEATURE_OFFLOAD_DESC_TX_L4_IPV4_CSUM_PART_MASK.
	OffloadTxL4IPv4CsumPart = 1 << 1
	// OffloadTxL4IPv4CsumFull is ENA_ADMIN_FEATURE_OFFLOAD_DESC_TX_L4_IPV4_CSUM_FULL_MASK.
	OffloadTxL4IPv4CsumFull = 1 << 2
	// OffloadTxL4IPv6CsumPart is ENA_ADMIN_FEATURE_OFFLOAD_DESC_TX_L4_IPV6_CSUM_PART_MASK.
	OffloadTxL4IPv6CsumPart = 1 << 3
	// OffloadTxL4IPv6CsumFull is ENA_ADMIN_FEATURE_OFFLOAD_DESC_TX_L4_IPV6_CSUM_FULL_MASK.
	OffloadTxL4IPv6CsumFull = 1 << 4
	// OffloadTxTSOIPv4 is ENA_ADMIN_FEATURE_OFFLOAD_DESC_TSO_IPV4_MASK.
	OffloadTxTSOIPv4 = 1 << 5
	// OffloadTxTSOIPv6 is ENA_ADMIN_FEATURE_OFFLOAD_DESC_TSO_IPV6_MASK.
	OffloadTxTSOIPv6 = 1 << 6
	// OffloadTxTSOECN is ENA_ADMIN_FEATURE_OFFLOAD_DESC_TSO_ECN_MASK.
	OffloadTxTSOECN = 1 << 7
)

// Rx offload bits (StatelessOffload.RxSupported / RxEnabled).
const (
	// OffloadRxL3CsumIPv4 is ena_admin_defs.h
	// ENA_ADMIN_FEATURE_OFFLOAD_DESC_RX_L3_CSUM_IPV4_MASK.
	OffloadRxL3CsumIPv4 = 1 << 0
	// OffloadRxL4IPv4Csum is ENA_ADMIN_FEATURE_OFFLOAD_DESC_RX_L4_IPV4_CSUM_MASK.
	OffloadRxL4IPv4Csum = 1 << 1
	// OffloadRxL4IPv6Csum is ENA_ADMIN_FEATURE_OFFLOAD_DESC_RX_L4_IPV6_CSUM_MASK.
	OffloadRxL4IPv6Csum = 1 << 2
	// OffloadRxHash is ENA_ADMIN_FEATURE_OFFLOAD_DESC_RX_HASH_MASK: the Rx
	// completion carries the RSS hash.
	OffloadRxHash = 1 << 3
)

// StatelessOffloadSize is the STATELESS_OFFLOAD_CONFIG payload.
// ena_admin_defs.h struct ena_admin_feature_offload_desc.
const StatelessOffloadSize = 12

// StatelessOffload is the GET STATELESS_OFFLOAD_CONFIG payload (§4.8).
type StatelessOffload struct {
	Tx          uint32 // 0: OffloadTx* bits
	RxSupported uint32 // 4: OffloadRx* bits
	RxEnabled   uint32 // 8: OffloadRx* bits (not set by drivers)
}

// Encode writes the payload.
func (s *StatelessOffload) Encode(b []byte) {
	_ = b[StatelessOffloadSize-1]
	le.PutUint32(b[0:], s.Tx)
	le.PutUint32(b[4:], s.RxSupported)
	le.PutUint32(b[8:], s.RxEnabled)
}

// DecodeStatelessOffload reads the payload.
func DecodeStatelessOffload(b []byte) StatelessOffload {
	_ = b[StatelessOffloadSize-1]
	return StatelessOffload{Tx: le.Uint32(b[0:]), RxSupported: le.Uint32(b[4:]), RxEnabled: le.Uint32(b[8:])}
}

// ---------------------------------------------------------------------------
// RSS_HASH_FUNCTION (§4.8, §10)

// HashFunction is an RSS hash function code; the supported/selected
// bitmaps use bit (1 << code). ena_admin_defs.h enum ena_admin_hash_functions.
type HashFunction uint8

// Hash function codes (§10).
const (
	// HashToeplitz is ena_admin_defs.h ENA_ADMIN_TOEPLITZ.
	HashToeplitz HashFunction = 1
	// HashCRC32 is ena_admin_defs.h ENA_ADMIN_CRC32.
	HashCRC32 HashFunction = 2
)

// String returns "TOEPLITZ", "CRC32" or "HASH(n)".
func (h HashFunction) String() string {
	switch h {
	case HashToeplitz:
		return "TOEPLITZ"
	case HashCRC32:
		return "CRC32"
	}
	return fmt.Sprintf("HASH(%d)", uint8(h))
}

// Bit returns the function's bit in supported_func / selected_func.
func (h HashFunction) Bit() uint32 {
	if h >= 8 {
		return 0
	}
	return 1 << h
}

// RSSHashFuncMask covers bits 7:0 of supported_func and selected_func.
// ena_admin_defs.h ENA_ADMIN_FEATURE_RSS_FLOW_HASH_FUNCTION_FUNCS_MASK.
const RSSHashFuncMask = 0xFF

// RSSHashFunctionSize is the inline RSS_HASH_FUNCTION payload.
// ena_admin_defs.h struct ena_admin_feature_rss_flow_hash_function.
const RSSHashFunctionSize = 12

// RSSHashFunction is the inline RSS_HASH_FUNCTION payload (§4.8); the key
// travels in an RSSHashKey control buffer.
type RSSHashFunction struct {
	SupportedFunc uint32 // 0: bits 7:0, bit n = HashFunction n
	SelectedFunc  uint32 // 4: bits 7:0, SET sends HashFunction.Bit()
	InitVal       uint32 // 8
}

// Encode writes the payload.
func (r *RSSHashFunction) Encode(b []byte) {
	_ = b[RSSHashFunctionSize-1]
	le.PutUint32(b[0:], r.SupportedFunc)
	le.PutUint32(b[4:], r.SelectedFunc)
	le.PutUint32(b[8:], r.InitVal)
}

// DecodeRSSHashFunction reads the payload.
func DecodeRSSHashFunction(b []byte) RSSHashFunction {
	_ = b[RSSHashFunctionSize-1]
	return RSSHashFunction{SupportedFunc: le.Uint32(b[0:]), SelectedFunc: le.Uint32(b[4:]), InitVal: le.Uint32(b[8:])}
}

// Selected decodes SelectedFunc as the drivers do, by the lowest set bit of
// bits 7:0; ok is false if none is set.
func (r RSSHashFunction) Selected() (fn HashFunction, ok bool) {
	sel := r.SelectedFunc & RSSHashFuncMask
	for i := range 8 {
		if sel&(1<<i) != 0 {
			return HashFunction(i), true
		}
	}
	return 0, false
}

// RSS key constants (§10).
const (
	// RSSKeyParts is the key length in u32 words. ena_admin_defs.h
	// ENA_ADMIN_RSS_KEY_PARTS.
	RSSKeyParts = 10
	// RSSKeySize is the key length in bytes. ena_com.h ENA_HASH_KEY_SIZE.
	RSSKeySize = 4 * RSSKeyParts
)

// RSSHashKeySize is the RSS_HASH_FUNCTION control buffer. ena_admin_defs.h
// struct ena_admin_feature_rss_flow_hash_control.
const RSSHashKeySize = 48

// RSSHashKey is the RSS_HASH_FUNCTION control buffer (§4.8): the Toeplitz
// key. Key holds the bytes exactly as they sit in memory; whether the
// device wants them reversed is disputed (§10), so this package does not
// reorder them.
type RSSHashKey struct {
	KeyParts uint32           // 0: number of u32 key words (RSSKeyParts)
	Key      [RSSKeySize]byte // 8
}

// Encode writes the control buffer.
func (k *RSSHashKey) Encode(b []byte) {
	_ = b[RSSHashKeySize-1]
	le.PutUint32(b[0:], k.KeyParts)
	le.PutUint32(b[4:], 0)
	copy(b[8:RSSHashKeySize], k.Key[:])
}

// DecodeRSSHashKey reads the control buffer.
func DecodeRSSHashKey(b []byte) RSSHashKey {
	_ = b[RSSHashKeySize-1]
	k := RSSHashKey{KeyParts: le.Uint32(b[0:])}
	copy(k.Key[:], b[8:RSSHashKeySize])
	return k
}

// ---------------------------------------------------------------------------
// RSS_HASH_INPUT (§4.8, §10)

// Input sort bits (RSSHashInput).
const (
	// RSSInputSortL3 swaps L3 addresses if DA < SA. ena_admin_defs.h
	// ENA_ADMIN_FEATURE_RSS_FLOW_HASH_INPUT_L3_SORT_MASK.
	RSSInputSortL3 = 1 << 1
	// RSSInputSortL4 swaps L4 ports if DP < SP. ena_admin_defs.h
	// ENA_ADMIN_FEATURE_RSS_FLOW_HASH_INPUT_L4_SORT_MASK.
	RSSInputSortL4 = 1 << 2
	// RSSDefaultInputSort is what drivers SET (§10).
	RSSDefaultInputSort = RSSInputSortL3 | RSSInputSortL4
)

// RSSHashInputSize is the inline RSS_HASH_INPUT payload. ena_admin_defs.h
// struct ena_admin_feature_rss_flow_hash_input.
const RSSHashInputSize = 4

// RSSHashInput is the inline RSS_HASH_INPUT payload (§4.8).
type RSSHashInput struct {
	SupportedInputSort uint16 // 0
	EnabledInputSort   uint16 // 2
}

// Encode writes the payload.
func (r *RSSHashInput) Encode(b []byte) {
	_ = b[RSSHashInputSize-1]
	le.PutUint16(b[0:], r.SupportedInputSort)
	le.PutUint16(b[2:], r.EnabledInputSort)
}

// DecodeRSSHashInput reads the payload.
func DecodeRSSHashInput(b []byte) RSSHashInput {
	_ = b[RSSHashInputSize-1]
	return RSSHashInput{SupportedInputSort: le.Uint16(b[0:]), EnabledInputSort: le.Uint16(b[2:])}
}

// RSSProto indexes the per-protocol hash-input arrays. ena_admin_defs.h enum
// ena_admin_flow_hash_proto.
type RSSProto uint8

// RSS protocol indexes (§4.8).
const (
	// RSSTCP4 is ena_admin_defs.h ENA_ADMIN_RSS_TCP4.
	RSSTCP4 RSSProto = 0
	// RSSUDP4 is ena_admin_defs.h ENA_ADMIN_RSS_UDP4.
	RSSUDP4 RSSProto = 1
	// RSSTCP6 is ena_admin_defs.h ENA_ADMIN_RSS_TCP6.
	RSSTCP6 RSSProto = 2
	// RSSUDP6 is ena_admin_defs.h ENA_ADMIN_RSS_UDP6.
	RSSUDP6 RSSProto = 3
	// RSSIP4 is ena_admin_defs.h ENA_ADMIN_RSS_IP4.
	RSSIP4 RSSProto = 4
	// RSSIP6 is ena_admin_defs.h ENA_ADMIN_RSS_IP6.
	RSSIP6 RSSProto = 5
	// RSSIP4Frag is ena_admin_defs.h ENA_ADMIN_RSS_IP4_FRAG.
	RSSIP4Frag RSSProto = 6
	// RSSNotIP is ena_admin_defs.h ENA_ADMIN_RSS_NOT_IP.
	RSSNotIP RSSProto = 7
	// RSSTCP6Ex is ena_admin_defs.h ENA_ADMIN_RSS_TCP6_EX.
	RSSTCP6Ex RSSProto = 8
	// RSSIP6Ex is ena_admin_defs.h ENA_ADMIN_RSS_IP6_EX.
	RSSIP6Ex RSSProto = 9
	// RSSProtoNum is the array length. ena_admin_defs.h ENA_ADMIN_RSS_PROTO_NUM.
	RSSProtoNum = 16
)

// RSS hash field bits. ena_admin_defs.h enum ena_admin_flow_hash_fields.
const (
	// RSSFieldL2DA is ENA_ADMIN_RSS_L2_DA.
	RSSFieldL2DA = 1 << 0
	// RSSFieldL2SA is ENA_ADMIN_RSS_L2_SA.
	RSSFieldL2SA = 1 << 1
	// RSSFieldL3DA is ENA_ADMIN_RSS_L3_DA.
	RSSFieldL3DA = 1 << 2
	// RSSFieldL3SA is ENA_ADMIN_RSS_L3_SA.
	RSSFieldL3SA = 1 << 3
	// RSSFieldL4DP is ENA_ADMIN_RSS_L4_DP.
	RSSFieldL4DP = 1 << 4
	// RSSFieldL4SP is ENA_ADMIN_RSS_L4_SP.
	RSSFieldL4SP = 1 << 5
)

// DefaultRSSHashFields returns the hash inputs drivers select (§10): L3+L4
// for TCP/UDP, L3 for plain and fragmented IP, L2 for non-IP; other
// protocols stay 0.
func DefaultRSSHashFields() [RSSProtoNum]uint16 {
	const l3l4 = RSSFieldL3DA | RSSFieldL3SA | RSSFieldL4DP | RSSFieldL4SP
	const l3 = RSSFieldL3DA | RSSFieldL3SA
	var f [RSSProtoNum]uint16
	f[RSSTCP4], f[RSSUDP4], f[RSSTCP6], f[RSSUDP6] = l3l4, l3l4, l3l4, l3l4
	f[RSSIP4], f[RSSIP6], f[RSSIP4Frag] = l3, l3, l3
	f[RSSNotIP] = RSSFieldL2DA | RSSFieldL2SA
	return f
}

// RSSHashControlSize is the RSS_HASH_INPUT control buffer. ena_admin_defs.h
// struct ena_admin_feature_rss_hash_control.
const RSSHashControlSize = 256

// RSSHashControl is the RSS_HASH_INPUT control buffer (§4.8): per protocol,
// the fields the device can hash (Supported) and the fields selected.
// Each entry is a u16 plus a reserved u16; two reserved arrays follow.
type RSSHashControl struct {
	Supported [RSSProtoNum]uint16 // 0: 16 × 4 B
	Selected  [RSSProtoNum]uint16 // 64: 16 × 4 B
}

// Encode writes the 256-byte control buffer.
func (r *RSSHashControl) Encode(b []byte) {
	_ = b[RSSHashControlSize-1]
	clear(b[:RSSHashControlSize])
	for i := range RSSProtoNum {
		le.PutUint16(b[4*i:], r.Supported[i])
		le.PutUint16(b[64+4*i:], r.Selected[i])
	}
}

// DecodeRSSHashControl reads the control buffer.
func DecodeRSSHashControl(b []byte) RSSHashControl {
	_ = b[RSSHashControlSize-1]
	var r RSSHashControl
	for i := range RSSProtoNum {
		r.Supported[i] = le.Uint16(b[4*i:])
		r.Selected[i] = le.Uint16(b[64+4*i:])
	}
	return r
}

// ---------------------------------------------------------------------------
// RSS_INDIRECTION_TABLE_CONFIG (§4.8, §10)

// Indirection table constants.
const (
	// RSSIndTableOneEntryUpdate is flags bit 0. ena_admin_defs.h
	// ENA_ADMIN_FEATURE_RSS_IND_TABLE_ONE_ENTRY_UPDATE_MASK.
	RSSIndTableOneEntryUpdate = 0x01
	// RSSIndTableNoInlineIndex in inline_index means "no inline entry";
	// drivers always send it.
	RSSIndTableNoInlineIndex = 0xFFFFFFFF
	// RSSIndEntrySize is one control-buffer entry. ena_admin_defs.h struct
	// ena_admin_rss_ind_table_entry.
	RSSIndEntrySize = 4
)

// RSSIndirectionTableSize is the inline payload. ena_admin_defs.h struct
// ena_admin_feature_rss_ind_table.
const RSSIndirectionTableSize = 16

// RSSIndirectionTable is the inline RSS_INDIRECTION_TABLE_CONFIG payload
// (§4.8). Sizes are log2 of the entry count; the entries travel in a
// control buffer of 2^Size RSSIndEntry.
type RSSIndirectionTable struct {
	MinSize        uint16 // 0: log2
	MaxSize        uint16 // 2: log2
	Size           uint16 // 4: log2 (SET: size being programmed)
	OneEntryUpdate bool   // 6: flags bit 0
	// FlagsReserved holds flags bits 7:1 in place.
	FlagsReserved uint8
	InlineIndex   uint32 // 8: RSSIndTableNoInlineIndex for none
	InlineCQIdx   uint16 // 12: inline_entry.cq_idx
}

// Encode writes the payload.
func (r *RSSIndirectionTable) Encode(b []byte) {
	_ = b[RSSIndirectionTableSize-1]
	le.PutUint16(b[0:], r.MinSize)
	le.PutUint16(b[2:], r.MaxSize)
	le.PutUint16(b[4:], r.Size)
	b[6] = boolBit(r.OneEntryUpdate, uint8(RSSIndTableOneEntryUpdate)) | r.FlagsReserved&^RSSIndTableOneEntryUpdate
	b[7] = 0
	le.PutUint32(b[8:], r.InlineIndex)
	le.PutUint16(b[12:], r.InlineCQIdx)
	le.PutUint16(b[14:], 0)
}

// DecodeRSSIndirectionTable reads the payload.
func DecodeRSSIndirectionTable(b []byte) RSSIndirectionTable {
	_ = b[RSSIndirectionTableSize-1]
	return RSSIndirectionTable{
		MinSize:        le.Uint16(b[0:]),
		MaxSize:        le.Uint16(b[2:]),
		Size:           le.Uint16(b[4:]),
		OneEntryUpdate: b[6]&RSSIndTableOneEntryUpdate != 0,
		FlagsReserved:  b[6] &^ RSSIndTableOneEntryUpdate,
		InlineIndex:    le.Uint32(b[8:]),
		InlineCQIdx:    le.Uint16(b[12:]),
	}
}

// RSSIndEntry is one indirection-table entry (§4.8). Every driver stores the
// Rx SQ's device index (sq_idx) in the field the header calls cq_idx.
type RSSIndEntry struct {
	CQIdx uint16 // 0 (2..3 reserved)
}

// Encode writes the entry.
func (e *RSSIndEntry) Encode(b []byte) {
	_ = b[RSSIndEntrySize-1]
	le.PutUint16(b[0:], e.CQIdx)
	le.PutUint16(b[2:], 0)
}

// DecodeRSSIndEntry reads an entry.
func DecodeRSSIndEntry(b []byte) RSSIndEntry {
	_ = b[RSSIndEntrySize-1]
	return RSSIndEntry{CQIdx: le.Uint16(b[0:])}
}

// ---------------------------------------------------------------------------
// MTU, HOST_ATTR_CONFIG, AENQ_CONFIG, INTERRUPT_MODERATION, LINK_CONFIG (§4.8)

// MTUSize is the MTU payload. ena_admin_defs.h struct
// ena_admin_set_feature_mtu_desc.
const MTUSize = 4

// MTU is the SET MTU payload: the L3 MTU, excluding the Ethernet header.
type MTU struct {
	MTU uint32 // 0
}

// Encode writes the payload.
func (m *MTU) Encode(b []byte) { le.PutUint32(b[:MTUSize], m.MTU) }

// DecodeMTU reads the payload.
func DecodeMTU(b []byte) MTU { return MTU{MTU: le.Uint32(b[:MTUSize])} }

// HostAttrConfigSize is the HOST_ATTR_CONFIG payload. ena_admin_defs.h
// struct ena_admin_set_feature_host_attr_desc.
const HostAttrConfigSize = 20

// HostAttrConfig is the SET HOST_ATTR_CONFIG payload (§4.8).
type HostAttrConfig struct {
	OSInfoAddr    uint64 // 0: mem_addr of the 4 KiB host-info page
	DebugAddr     uint64 // 8: mem_addr of a debug area, 0 if none
	DebugAreaSize uint32 // 16
}

// Encode writes the payload.
func (h *HostAttrConfig) Encode(b []byte) {
	_ = b[HostAttrConfigSize-1]
	PutMemAddr(b[0:], h.OSInfoAddr)
	PutMemAddr(b[8:], h.DebugAddr)
	le.PutUint32(b[16:], h.DebugAreaSize)
}

// DecodeHostAttrConfig reads the payload.
func DecodeHostAttrConfig(b []byte) HostAttrConfig {
	_ = b[HostAttrConfigSize-1]
	return HostAttrConfig{OSInfoAddr: GetMemAddr(b[0:]), DebugAddr: GetMemAddr(b[8:]), DebugAreaSize: le.Uint32(b[16:])}
}

// AENQConfigSize is the AENQ_CONFIG payload. ena_admin_defs.h struct
// ena_admin_feature_aenq_desc.
const AENQConfigSize = 8

// AENQConfig is the GET / SET AENQ_CONFIG payload (§4.8): bit n = AENQGroup n.
type AENQConfig struct {
	SupportedGroups uint32 // 0
	EnabledGroups   uint32 // 4
}

// Encode writes the payload.
func (a *AENQConfig) Encode(b []byte) {
	_ = b[AENQConfigSize-1]
	le.PutUint32(b[0:], a.SupportedGroups)
	le.PutUint32(b[4:], a.EnabledGroups)
}

// DecodeAENQConfig reads the payload.
func DecodeAENQConfig(b []byte) AENQConfig {
	_ = b[AENQConfigSize-1]
	return AENQConfig{SupportedGroups: le.Uint32(b[0:]), EnabledGroups: le.Uint32(b[4:])}
}

// InterruptModerationSize is the INTERRUPT_MODERATION payload.
// ena_admin_defs.h struct ena_admin_feature_intr_moder_desc.
const InterruptModerationSize = 4

// InterruptModeration is the GET INTERRUPT_MODERATION payload (§4.8).
type InterruptModeration struct {
	// DelayResolution is µs per delay unit; drivers treat 0 as 1.
	DelayResolution uint16 // 0 (2..3 reserved)
}

// Encode writes the payload.
func (m *InterruptModeration) Encode(b []byte) {
	_ = b[InterruptModerationSize-1]
	le.PutUint16(b[0:], m.DelayResolution)
	le.PutUint16(b[2:], 0)
}

// DecodeInterruptModeration reads the payload.
func DecodeInterruptModeration(b []byte) InterruptModeration {
	_ = b[InterruptModerationSize-1]
	return InterruptModeration{DelayResolution: le.Uint16(b[0:])}
}

// Link speed bits (LinkConfig.Supported). ena_admin_defs.h enum
// ena_admin_link_types.
const (
	// LinkSpeed1G is ENA_ADMIN_LINK_SPEED_1G.
	LinkSpeed1G = 1 << 0
	// LinkSpeed2HalfG is ENA_ADMIN_LINK_SPEED_2_HALF_G.
	LinkSpeed2HalfG = 1 << 1
	// LinkSpeed5G is ENA_ADMIN_LINK_SPEED_5G.
	LinkSpeed5G = 1 << 2
	// LinkSpeed10G is ENA_ADMIN_LINK_SPEED_10G.
	LinkSpeed10G = 1 << 3
	// LinkSpeed25G is ENA_ADMIN_LINK_SPEED_25G.
	LinkSpeed25G = 1 << 4
	// LinkSpeed40G is ENA_ADMIN_LINK_SPEED_40G.
	LinkSpeed40G = 1 << 5
	// LinkSpeed50G is ENA_ADMIN_LINK_SPEED_50G.
	LinkSpeed50G = 1 << 6
	// LinkSpeed100G is ENA_ADMIN_LINK_SPEED_100G.
	LinkSpeed100G = 1 << 7
	// LinkSpeed200G is ENA_ADMIN_LINK_SPEED_200G.
	LinkSpeed200G = 1 << 8
	// LinkSpeed400G is ENA_ADMIN_LINK_SPEED_400G.
	LinkSpeed400G = 1 << 9
)

// Link flag bits (LinkConfig flags word).
const (
	// LinkFlagAutoneg is ena_admin_defs.h ENA_ADMIN_GET_FEATURE_LINK_DESC_AUTONEG_MASK.
	LinkFlagAutoneg = 1 << 0
	// LinkFlagFullDuplex is ena_admin_defs.h ENA_ADMIN_GET_FEATURE_LINK_DESC_DUPLEX_MASK.
	LinkFlagFullDuplex = 1 << 1
)

// LinkConfigSize is the LINK_CONFIG payload. ena_admin_defs.h struct
// ena_admin_get_feature_link_desc.
const LinkConfigSize = 12

// LinkConfig is the GET LINK_CONFIG payload (§4.8); EC2 devices do not
// advertise it in practice.
type LinkConfig struct {
	SpeedMbps  uint32 // 0
	Supported  uint32 // 4: LinkSpeed* bits
	Autoneg    bool   // 8: flags bit 0
	FullDuplex bool   // 8: flags bit 1
}

// Encode writes the payload.
func (l *LinkConfig) Encode(b []byte) {
	_ = b[LinkConfigSize-1]
	le.PutUint32(b[0:], l.SpeedMbps)
	le.PutUint32(b[4:], l.Supported)
	le.PutUint32(b[8:], boolBit(l.Autoneg, uint32(LinkFlagAutoneg))|boolBit(l.FullDuplex, uint32(LinkFlagFullDuplex)))
}

// DecodeLinkConfig reads the payload.
func DecodeLinkConfig(b []byte) LinkConfig {
	_ = b[LinkConfigSize-1]
	f := le.Uint32(b[8:])
	return LinkConfig{
		SpeedMbps:  le.Uint32(b[0:]),
		Supported:  le.Uint32(b[4:]),
		Autoneg:    f&LinkFlagAutoneg != 0,
		FullDuplex: f&LinkFlagFullDuplex != 0,
	}
}
