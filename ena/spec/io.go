package spec

// Data-path wire formats: Tx/Rx submission descriptors and completion
// descriptors (protocol §7). Every layout here was read from the upstream
// ena_eth_io_defs.h (amzn-drivers kernel/fbsd copy, DPDK base/ena_defs copy);
// each constant names the struct field or mask it comes from.
//
// Hot-path notes for the rings package: the first little-endian u32 of both
// completion formats holds the PHASE bit at bit 24 (TxCdescPhaseMask,
// RxCdescPhaseMask), so a consumer can load word 0 once, compare the phase,
// issue its read barrier, and only then decode the rest. The Encode methods
// and decoders below do not allocate and are small enough to cost a few ns.

import (
	"encoding/binary"
	"strconv"
)

// L3Proto is the L3 protocol index carried in the Tx descriptor meta_ctrl
// word and in the Rx completion status word (§7.7). Tx has only 4 bits for it
// (§7.2), Rx has 5.
type L3Proto uint8

// L3 protocol index values, ena_eth_io_defs.h enum ena_eth_io_l3_proto_index.
const (
	L3ProtoUnknown L3Proto = 0  // ENA_ETH_IO_L3_PROTO_UNKNOWN
	L3ProtoIPv4    L3Proto = 8  // ENA_ETH_IO_L3_PROTO_IPV4
	L3ProtoIPv6    L3Proto = 11 // ENA_ETH_IO_L3_PROTO_IPV6
	L3ProtoFCoE    L3Proto = 21 // ENA_ETH_IO_L3_PROTO_FCOE
	L3ProtoRoCE    L3Proto = 22 // ENA_ETH_IO_L3_PROTO_ROCE
)

// String names the protocol index as the header does, so log lines read
// "l3 IPV4"; indexes the protocol does not define print as "L3Proto(n)".
func (p L3Proto) String() string {
	switch p {
	case L3ProtoUnknown:
		return "UNKNOWN"
	case L3ProtoIPv4:
		return "IPV4"
	case L3ProtoIPv6:
		return "IPV6"
	case L3ProtoFCoE:
		return "FCOE"
	case L3ProtoRoCE:
		return "ROCE"
	}
	return "L3Proto(" + strconv.Itoa(int(p)) + ")"
}

// L4Proto is the L4 protocol index carried in the Tx descriptor meta_ctrl
// word and in the Rx completion status word (§7.7); 5 bits in both.
type L4Proto uint8

// L4 protocol index values, ena_eth_io_defs.h enum ena_eth_io_l4_proto_index.
const (
	L4ProtoUnknown      L4Proto = 0  // ENA_ETH_IO_L4_PROTO_UNKNOWN
	L4ProtoTCP          L4Proto = 12 // ENA_ETH_IO_L4_PROTO_TCP
	L4ProtoUDP          L4Proto = 13 // ENA_ETH_IO_L4_PROTO_UDP
	L4ProtoRoutableRoCE L4Proto = 23 // ENA_ETH_IO_L4_PROTO_ROUTEABLE_ROCE
)

// String names the protocol index as the header does; undefined indexes
// print as "L4Proto(n)".
func (p L4Proto) String() string {
	switch p {
	case L4ProtoUnknown:
		return "UNKNOWN"
	case L4ProtoTCP:
		return "TCP"
	case L4ProtoUDP:
		return "UDP"
	case L4ProtoRoutableRoCE:
		return "ROUTEABLE_ROCE"
	}
	return "L4Proto(" + strconv.Itoa(int(p)) + ")"
}

// ioBit returns mask if b is set and 0 otherwise; it keeps the encoders
// readable and compiles to a conditional move.
func ioBit(b bool, mask uint32) uint32 {
	if b {
		return mask
	}
	return 0
}

// ioAddrMask keeps the 48 address bits every ENA descriptor can carry (§7.2,
// §7.6); the upper 16 bits of a uint64 address are dropped on encode.
const ioAddrMask = 1<<48 - 1

// ---------------------------------------------------------------------------
// Tx descriptor (§7.2)

// TxDescSize is the size of one Tx descriptor and of one Tx SQ slot in HOST
// placement (§7.1, §7.2); sizeof(struct ena_eth_io_tx_desc).
const TxDescSize = 16

// Tx descriptor word 0 (len_ctrl, offset 0) fields, §7.2.
const (
	TxDescLengthMask      uint32 = 0x0000FFFF                 // ENA_ETH_IO_TX_DESC_LENGTH_MASK
	TxDescReqIDHiShift           = 16                         // ENA_ETH_IO_TX_DESC_REQ_ID_HI_SHIFT
	TxDescReqIDHiMask     uint32 = 0x003F0000                 // ENA_ETH_IO_TX_DESC_REQ_ID_HI_MASK (req_id bits 15:10)
	TxDescMetaDescMask    uint32 = 1 << 23                    // ENA_ETH_IO_TX_DESC_META_DESC_MASK (0 in a data descriptor)
	TxDescPhaseMask       uint32 = 1 << 24                    // ENA_ETH_IO_TX_DESC_PHASE_MASK
	TxDescFirstMask       uint32 = 1 << 26                    // ENA_ETH_IO_TX_DESC_FIRST_MASK
	TxDescLastMask        uint32 = 1 << 27                    // ENA_ETH_IO_TX_DESC_LAST_MASK
	TxDescCompReqMask     uint32 = 1 << 28                    // ENA_ETH_IO_TX_DESC_COMP_REQ_MASK
	TxDescLenCtrlRsvdMask uint32 = 1<<22 | 1<<25 | 0xE0000000 // reserved22, reserved1 (25), reserved29/31 (31:29)
)

// Tx descriptor word 1 (meta_ctrl, offset 4) fields, §7.2.
const (
	TxDescL3ProtoMask       uint32 = 0x0000000F // ENA_ETH_IO_TX_DESC_L3_PROTO_IDX_MASK
	TxDescDFMask            uint32 = 1 << 4     // ENA_ETH_IO_TX_DESC_DF_MASK
	TxDescTSOEnMask         uint32 = 1 << 7     // ENA_ETH_IO_TX_DESC_TSO_EN_MASK
	TxDescL4ProtoShift             = 8          // ENA_ETH_IO_TX_DESC_L4_PROTO_IDX_SHIFT
	TxDescL4ProtoMask       uint32 = 0x00001F00 // ENA_ETH_IO_TX_DESC_L4_PROTO_IDX_MASK
	TxDescL3CsumEnMask      uint32 = 1 << 13    // ENA_ETH_IO_TX_DESC_L3_CSUM_EN_MASK
	TxDescL4CsumEnMask      uint32 = 1 << 14    // ENA_ETH_IO_TX_DESC_L4_CSUM_EN_MASK
	TxDescFCSDisMask        uint32 = 1 << 15    // ENA_ETH_IO_TX_DESC_ETHERNET_FCS_DIS_MASK
	TxDescL4CsumPartialMask uint32 = 1 << 17    // ENA_ETH_IO_TX_DESC_L4_CSUM_PARTIAL_MASK
	TxDescReqIDLoShift             = 22         // ENA_ETH_IO_TX_DESC_REQ_ID_LO_SHIFT
	TxDescReqIDLoMask       uint32 = 0xFFC00000 // ENA_ETH_IO_TX_DESC_REQ_ID_LO_MASK (req_id bits 9:0)
	// TxDescMetaCtrlRsvdMask covers reserved5 (6:5), reserved16, reserved18
	// (20:18) and reserved21 of meta_ctrl.
	TxDescMetaCtrlRsvdMask uint32 = 0x3<<5 | 1<<16 | 0xF<<18
)

// Tx descriptor word 3 (buff_addr_hi_hdr_sz, offset 12) fields, §7.2.
const (
	TxDescAddrHiMask        uint32 = 0x0000FFFF // ENA_ETH_IO_TX_DESC_ADDR_HI_MASK (address bits 47:32)
	TxDescHeaderLengthShift        = 24         // ENA_ETH_IO_TX_DESC_HEADER_LENGTH_SHIFT
	TxDescHeaderLengthMask  uint32 = 0xFF000000 // ENA_ETH_IO_TX_DESC_HEADER_LENGTH_MASK
	TxDescAddrHdrRsvdMask   uint32 = 0x00FF0000 // reserved16_w2 (23:16)
)

// TxDesc is a Tx data descriptor (§7.2): one buffer of a packet. ena_com puts
// ReqID and the offload flags only in the first data descriptor of a packet;
// the following ones carry Length, BufAddr and Phase (plus Last on the final
// one).
type TxDesc struct {
	// Length is the buffer length in bytes, excluding bytes pushed in an LLQ
	// entry and the 4-byte FCS.
	Length uint16
	// ReqID is the driver's 16-bit packet cookie, returned in the Tx
	// completion; split 10/6 bits across meta_ctrl and len_ctrl.
	ReqID uint16
	// Meta is the META_DESC bit; it must be 0 in a data descriptor. Encode
	// writes it as given so tests can build a malformed descriptor.
	Meta    bool
	Phase   bool
	First   bool // first descriptor of the packet (only if no meta descriptor precedes)
	Last    bool // last descriptor of the packet
	CompReq bool // request a Tx completion; ena_com always sets it in the first data descriptor

	L3Proto       L3Proto // 4 bits; needed when L3Csum or TSO is set
	DF            bool    // must be 1 unless IPv4 with DF=0
	TSO           bool
	L4Proto       L4Proto // 5 bits; needed when L4Csum or TSO is set
	L3Csum        bool    // device computes the IPv4 header checksum
	L4Csum        bool    // device computes the TCP/UDP checksum
	FCSDisable    bool    // device does not append the Ethernet FCS
	L4CsumPartial bool    // L4 checksum field already holds the pseudo-header sum

	// BufAddr is the buffer's device address (48 bits).
	BufAddr uint64
	// HeaderLen is header_length: LLQ = bytes pushed in the entry; HOST =
	// a hint that must not exceed max_header_size.
	HeaderLen uint8

	// Reserved holds the reserved bits of words 0, 1 and 3 in place
	// (masks TxDescLenCtrlRsvdMask, TxDescMetaCtrlRsvdMask,
	// TxDescAddrHdrRsvdMask). Drivers write 0; a strict model may reject
	// non-zero values. Encode writes them as given (masked).
	ReservedLenCtrl, ReservedMetaCtrl, ReservedAddrHdr uint32
}

// Encode writes the descriptor into b[0:TxDescSize]. Out-of-range values are
// masked to their field widths.
func (d *TxDesc) Encode(b []byte) {
	PutTxDesc(b, d.Length, d.ReqID, d.Ctrl(), d.Offloads(), d.BufAddr, d.HeaderLen)
	b[14] = uint8((d.ReservedAddrHdr & TxDescAddrHdrRsvdMask) >> 16) // reserved16_w2
}

// Ctrl returns the flag bits of word 0 (len_ctrl) without length and req_id:
// META_DESC, PHASE, FIRST, LAST, COMP_REQ and the reserved bits.
func (d *TxDesc) Ctrl() uint32 {
	return ioBit(d.Meta, TxDescMetaDescMask) |
		ioBit(d.Phase, TxDescPhaseMask) |
		ioBit(d.First, TxDescFirstMask) |
		ioBit(d.Last, TxDescLastMask) |
		ioBit(d.CompReq, TxDescCompReqMask) |
		d.ReservedLenCtrl&TxDescLenCtrlRsvdMask
}

// Offloads returns word 1 (meta_ctrl) without req_id: protocol indexes,
// offload flags and the reserved bits. A Tx ring can compute it once per
// packet (or once per flow) and pass it to PutTxDesc.
func (d *TxDesc) Offloads() uint32 {
	return uint32(d.L3Proto)&TxDescL3ProtoMask |
		ioBit(d.DF, TxDescDFMask) |
		ioBit(d.TSO, TxDescTSOEnMask) |
		uint32(d.L4Proto)<<TxDescL4ProtoShift&TxDescL4ProtoMask |
		ioBit(d.L3Csum, TxDescL3CsumEnMask) |
		ioBit(d.L4Csum, TxDescL4CsumEnMask) |
		ioBit(d.FCSDisable, TxDescFCSDisMask) |
		ioBit(d.L4CsumPartial, TxDescL4CsumPartialMask) |
		d.ReservedMetaCtrl&TxDescMetaCtrlRsvdMask
}

// PutTxDesc writes a Tx data descriptor from raw parts without building a
// TxDesc; it is the Tx hot-path form (inlinable, a few ns). ctrl holds word-0
// flag bits (TxDescPhaseMask, TxDescFirstMask, TxDescLastMask,
// TxDescCompReqMask), offloads holds word-1 bits (protocol indexes and
// TxDesc*EnMask flags, see TxDesc.Offloads); any bits of ctrl or offloads
// that belong to length or req_id are ignored. The req_id is split as §7.8
// requires; address bits above 47 are dropped.
func PutTxDesc(b []byte, length, reqID uint16, ctrl, offloads uint32, addr uint64, headerLen uint8) {
	_ = b[TxDescSize-1]
	w0 := uint32(length) | uint32(reqID>>10)<<TxDescReqIDHiShift | ctrl&^(TxDescLengthMask|TxDescReqIDHiMask)
	w1 := offloads&^TxDescReqIDLoMask | uint32(reqID)<<TxDescReqIDLoShift
	binary.LittleEndian.PutUint64(b[0:], uint64(w0)|uint64(w1)<<32)
	binary.LittleEndian.PutUint64(b[8:], addr&ioAddrMask|uint64(headerLen)<<56)
}

// DecodeTxDesc reads a Tx data descriptor from b[0:TxDescSize]. It does not
// look at META_DESC to decide the kind; use IsMetaDesc first (§7.3).
func DecodeTxDesc(b []byte) TxDesc {
	_ = b[TxDescSize-1]
	w0 := binary.LittleEndian.Uint32(b[0:])
	w1 := binary.LittleEndian.Uint32(b[4:])
	w2 := binary.LittleEndian.Uint32(b[8:])
	w3 := binary.LittleEndian.Uint32(b[12:])
	return TxDesc{
		Length:           uint16(w0 & TxDescLengthMask),
		ReqID:            uint16((w0&TxDescReqIDHiMask)>>TxDescReqIDHiShift)<<10 | uint16(w1>>TxDescReqIDLoShift),
		Meta:             w0&TxDescMetaDescMask != 0,
		Phase:            w0&TxDescPhaseMask != 0,
		First:            w0&TxDescFirstMask != 0,
		Last:             w0&TxDescLastMask != 0,
		CompReq:          w0&TxDescCompReqMask != 0,
		L3Proto:          L3Proto(w1 & TxDescL3ProtoMask),
		DF:               w1&TxDescDFMask != 0,
		TSO:              w1&TxDescTSOEnMask != 0,
		L4Proto:          L4Proto((w1 & TxDescL4ProtoMask) >> TxDescL4ProtoShift),
		L3Csum:           w1&TxDescL3CsumEnMask != 0,
		L4Csum:           w1&TxDescL4CsumEnMask != 0,
		FCSDisable:       w1&TxDescFCSDisMask != 0,
		L4CsumPartial:    w1&TxDescL4CsumPartialMask != 0,
		BufAddr:          uint64(w3&TxDescAddrHiMask)<<32 | uint64(w2),
		HeaderLen:        uint8(w3 >> TxDescHeaderLengthShift),
		ReservedLenCtrl:  w0 & TxDescLenCtrlRsvdMask,
		ReservedMetaCtrl: w1 & TxDescMetaCtrlRsvdMask,
		ReservedAddrHdr:  w3 & TxDescAddrHdrRsvdMask,
	}
}

// IsMetaDesc reports whether the 16-byte Tx SQ slot b holds a meta
// descriptor: META_DESC is bit 23 of word 0 in both Tx layouts (§7.2, §7.3).
// A slice shorter than 4 bytes reports false rather than panicking.
func IsMetaDesc(b []byte) bool {
	if len(b) < 4 {
		return false
	}
	return binary.LittleEndian.Uint32(b)&TxDescMetaDescMask != 0
}

// ---------------------------------------------------------------------------
// Tx meta descriptor (§7.3)

// TxMetaDescSize is the size of a Tx meta descriptor; it shares the 16-byte
// slot with TxDesc (sizeof(struct ena_eth_io_tx_meta_desc)).
const TxMetaDescSize = 16

// Tx meta descriptor word 0 (len_ctrl) fields, §7.3.
const (
	TxMetaReqIDLoMask     uint32 = 0x000003FF                               // ENA_ETH_IO_TX_META_DESC_REQ_ID_LO_MASK (never used; write 0)
	TxMetaExtValidMask    uint32 = 1 << 14                                  // ENA_ETH_IO_TX_META_DESC_EXT_VALID_MASK
	TxMetaMSSHiShift             = 16                                       // ENA_ETH_IO_TX_META_DESC_MSS_HI_SHIFT
	TxMetaMSSHiMask       uint32 = 0x000F0000                               // ENA_ETH_IO_TX_META_DESC_MSS_HI_MASK (MSS bits 13:10)
	TxMetaEthMetaTypeMask uint32 = 1 << 20                                  // ENA_ETH_IO_TX_META_DESC_ETH_META_TYPE_MASK
	TxMetaMetaStoreMask   uint32 = 1 << 21                                  // ENA_ETH_IO_TX_META_DESC_META_STORE_MASK
	TxMetaMetaDescMask    uint32 = 1 << 23                                  // ENA_ETH_IO_TX_META_DESC_META_DESC_MASK (must be 1)
	TxMetaPhaseMask       uint32 = 1 << 24                                  // ENA_ETH_IO_TX_META_DESC_PHASE_MASK
	TxMetaFirstMask       uint32 = 1 << 26                                  // ENA_ETH_IO_TX_META_DESC_FIRST_MASK
	TxMetaLastMask        uint32 = 1 << 27                                  // ENA_ETH_IO_TX_META_DESC_LAST_MASK
	TxMetaCompReqMask     uint32 = 1 << 28                                  // ENA_ETH_IO_TX_META_DESC_COMP_REQ_MASK
	TxMetaLenCtrlRsvdMask uint32 = 0x3FFF | 1<<15 | 1<<22 | 1<<25 | 0x7<<29 // req_id_lo (9:0, unused), reserved 13:10, 15, 22, 25, 31:29
)

// Tx meta descriptor word 2 (offset 8) fields, §7.3.
const (
	TxMetaL3HdrLenMask  uint32 = 0x000000FF // ENA_ETH_IO_TX_META_DESC_L3_HDR_LEN_MASK
	TxMetaL3HdrOffShift        = 8          // ENA_ETH_IO_TX_META_DESC_L3_HDR_OFF_SHIFT
	TxMetaL3HdrOffMask  uint32 = 0x0000FF00 // ENA_ETH_IO_TX_META_DESC_L3_HDR_OFF_MASK
	TxMetaL4HdrLenShift        = 16         // ENA_ETH_IO_TX_META_DESC_L4_HDR_LEN_IN_WORDS_SHIFT
	TxMetaL4HdrLenMask  uint32 = 0x003F0000 // ENA_ETH_IO_TX_META_DESC_L4_HDR_LEN_IN_WORDS_MASK
	TxMetaMSSLoShift           = 22         // ENA_ETH_IO_TX_META_DESC_MSS_LO_SHIFT
	TxMetaMSSLoMask     uint32 = 0xFFC00000 // ENA_ETH_IO_TX_META_DESC_MSS_LO_MASK (MSS bits 9:0)
)

// TxMetaMaxMSS is the largest MSS the 14-bit split field can carry (§7.3).
const TxMetaMaxMSS = 1<<14 - 1

// TxMetaDesc is a Tx meta descriptor (§7.3): offload metadata (MSS and
// header offsets for TSO/checksum) that opens a packet and that the device
// may cache per queue (§7.4). It always precedes the packet's first data
// descriptor.
type TxMetaDesc struct {
	ExtValid bool   // word 2 offsets and MSS high bits are valid (ena_com always sets it)
	MSS      uint16 // 14 bits, split: 13:10 in word 0 [19:16], 9:0 in word 2 [31:22]
	// MetaType is ETH_META_TYPE: false = Tx metadata, true = extended
	// metadata (what ena_com sends).
	MetaType  bool
	MetaStore bool // store this metadata in the queue's cache (§7.4)
	// Meta is the META_DESC bit as decoded. Encode always sets it: a 16-byte
	// slot without it is a data descriptor by definition (§7.3).
	Meta    bool
	Phase   bool
	First   bool // a meta descriptor always opens its packet
	Last    bool // 0 in every driver
	CompReq bool // 0 in every driver

	L3HdrLen uint8 // bytes
	L3HdrOff uint8 // bytes from frame start
	L4HdrLen uint8 // 6 bits, in 32-bit words

	// Reserved bits in place: word 0 (mask TxMetaLenCtrlRsvdMask, which
	// includes the never-used req_id_lo bits 9:0), word 1 and word 3.
	// Drivers write 0; Encode writes them as given.
	ReservedLenCtrl, ReservedWord1, ReservedWord3 uint32
}

// Encode writes the meta descriptor into b[0:TxMetaDescSize], always with
// META_DESC set. MSS above TxMetaMaxMSS and L4HdrLen above 63 are masked.
func (m *TxMetaDesc) Encode(b []byte) {
	_ = b[TxMetaDescSize-1]
	w0 := TxMetaMetaDescMask |
		ioBit(m.ExtValid, TxMetaExtValidMask) |
		uint32(m.MSS>>10)<<TxMetaMSSHiShift&TxMetaMSSHiMask |
		ioBit(m.MetaType, TxMetaEthMetaTypeMask) |
		ioBit(m.MetaStore, TxMetaMetaStoreMask) |
		ioBit(m.Phase, TxMetaPhaseMask) |
		ioBit(m.First, TxMetaFirstMask) |
		ioBit(m.Last, TxMetaLastMask) |
		ioBit(m.CompReq, TxMetaCompReqMask) |
		m.ReservedLenCtrl&TxMetaLenCtrlRsvdMask
	w2 := uint32(m.L3HdrLen) |
		uint32(m.L3HdrOff)<<TxMetaL3HdrOffShift |
		uint32(m.L4HdrLen)<<TxMetaL4HdrLenShift&TxMetaL4HdrLenMask |
		uint32(m.MSS&0x3FF)<<TxMetaMSSLoShift
	binary.LittleEndian.PutUint32(b[0:], w0)
	binary.LittleEndian.PutUint32(b[4:], m.ReservedWord1)
	binary.LittleEndian.PutUint32(b[8:], w2)
	binary.LittleEndian.PutUint32(b[12:], m.ReservedWord3)
}

// DecodeTxMetaDesc reads a Tx meta descriptor from b[0:TxMetaDescSize].
func DecodeTxMetaDesc(b []byte) TxMetaDesc {
	_ = b[TxMetaDescSize-1]
	w0 := binary.LittleEndian.Uint32(b[0:])
	w2 := binary.LittleEndian.Uint32(b[8:])
	return TxMetaDesc{
		ExtValid:        w0&TxMetaExtValidMask != 0,
		MSS:             uint16((w0&TxMetaMSSHiMask)>>TxMetaMSSHiShift)<<10 | uint16(w2>>TxMetaMSSLoShift),
		MetaType:        w0&TxMetaEthMetaTypeMask != 0,
		MetaStore:       w0&TxMetaMetaStoreMask != 0,
		Meta:            w0&TxMetaMetaDescMask != 0,
		Phase:           w0&TxMetaPhaseMask != 0,
		First:           w0&TxMetaFirstMask != 0,
		Last:            w0&TxMetaLastMask != 0,
		CompReq:         w0&TxMetaCompReqMask != 0,
		L3HdrLen:        uint8(w2 & TxMetaL3HdrLenMask),
		L3HdrOff:        uint8((w2 & TxMetaL3HdrOffMask) >> TxMetaL3HdrOffShift),
		L4HdrLen:        uint8((w2 & TxMetaL4HdrLenMask) >> TxMetaL4HdrLenShift),
		ReservedLenCtrl: w0 & TxMetaLenCtrlRsvdMask,
		ReservedWord1:   binary.LittleEndian.Uint32(b[4:]),
		ReservedWord3:   binary.LittleEndian.Uint32(b[12:]),
	}
}

// ---------------------------------------------------------------------------
// Tx completion (§7.5)

// TxCompletionSize is the size of a base Tx completion descriptor
// (sizeof(struct ena_eth_io_tx_cdesc)); TxCompletionExtSize the size of the
// timestamped form.
const (
	TxCompletionSize    = 8
	TxCompletionExtSize = 16
)

// Tx completion fields. The Word0 masks apply to the first little-endian u32
// (req_id | status<<16 | flags<<24), so the rings package can check the
// phase with a single 32-bit load; the Flags masks apply to the flags byte
// at offset 3.
const (
	TxCdescFlagsPhaseMask uint8 = 0x01 // ENA_ETH_IO_TX_CDESC_PHASE_MASK
	TxCdescFlagsMBZShift        = 6    // ENA_ETH_IO_TX_CDESC_MBZ6_SHIFT
	TxCdescFlagsMBZMask   uint8 = 0xC0 // ENA_ETH_IO_TX_CDESC_MBZ6_MASK (checked when CDESC_MBZ capability is set)

	TxCdescPhaseMask  uint32 = uint32(TxCdescFlagsPhaseMask) << 24 // phase in word 0 (bit 24)
	TxCdescMBZMask    uint32 = uint32(TxCdescFlagsMBZMask) << 24   // mbz6 in word 0 (bits 31:30)
	TxCdescReqIDMask  uint32 = 0x0000FFFF                          // req_id in word 0
	TxCdescStatusMask uint32 = 0x00FF0000                          // status in word 0
)

// TxCompletion is a Tx completion descriptor (§7.5): one per transmitted
// packet, possibly out of order.
type TxCompletion struct {
	ReqID  uint16 // full req_id of the completed packet
	Status uint8  // drivers ignore it
	// Flags is the raw flags byte as decoded (PHASE, reserved 5:1, MBZ 7:6).
	// Encode takes the phase and MBZ bits from Phase and MBZ and only the
	// reserved bits 5:1 from Flags.
	Flags uint8
	Phase bool
	// MBZ is flags bits 7:6 in place (Flags & TxCdescFlagsMBZMask); non-zero
	// is a device error when the CDESC_MBZ capability is set.
	MBZ       uint8
	SubQID    uint16 // drivers ignore it
	SQHeadIdx uint16 // device's SQ head; drivers ignore it
}

// Encode writes the completion into b[0:TxCompletionSize].
func (c *TxCompletion) Encode(b []byte) {
	_ = b[TxCompletionSize-1]
	flags := c.Flags&^(TxCdescFlagsPhaseMask|TxCdescFlagsMBZMask) | c.MBZ&TxCdescFlagsMBZMask
	if c.Phase {
		flags |= TxCdescFlagsPhaseMask
	}
	binary.LittleEndian.PutUint16(b[0:], c.ReqID)
	b[2] = c.Status
	b[3] = flags
	binary.LittleEndian.PutUint16(b[4:], c.SubQID)
	binary.LittleEndian.PutUint16(b[6:], c.SQHeadIdx)
}

// DecodeTxCompletion reads a Tx completion from b[0:TxCompletionSize].
func DecodeTxCompletion(b []byte) TxCompletion {
	_ = b[TxCompletionSize-1]
	f := b[3]
	return TxCompletion{
		ReqID:     binary.LittleEndian.Uint16(b[0:]),
		Status:    b[2],
		Flags:     f,
		Phase:     f&TxCdescFlagsPhaseMask != 0,
		MBZ:       f & TxCdescFlagsMBZMask,
		SubQID:    binary.LittleEndian.Uint16(b[4:]),
		SQHeadIdx: binary.LittleEndian.Uint16(b[6:]),
	}
}

// TxCompletionExt is the 16-byte Tx completion used when the driver asks for
// hardware timestamps (§7.5; DPDK/Linux only, the FreeBSD header lacks it):
// the base form followed by timestamp_low and timestamp_high.
type TxCompletionExt struct {
	TxCompletion
	Timestamp uint64 // timestamp_high<<32 | timestamp_low
}

// Encode writes the extended completion into b[0:TxCompletionExtSize].
func (c *TxCompletionExt) Encode(b []byte) {
	_ = b[TxCompletionExtSize-1]
	c.TxCompletion.Encode(b)
	binary.LittleEndian.PutUint32(b[8:], uint32(c.Timestamp))
	binary.LittleEndian.PutUint32(b[12:], uint32(c.Timestamp>>32))
}

// DecodeTxCompletionExt reads an extended Tx completion from
// b[0:TxCompletionExtSize].
func DecodeTxCompletionExt(b []byte) TxCompletionExt {
	_ = b[TxCompletionExtSize-1]
	return TxCompletionExt{
		TxCompletion: DecodeTxCompletion(b),
		Timestamp:    uint64(binary.LittleEndian.Uint32(b[12:]))<<32 | uint64(binary.LittleEndian.Uint32(b[8:])),
	}
}

// ---------------------------------------------------------------------------
// Rx descriptor (§7.6)

// RxDescSize is the size of one Rx SQ descriptor
// (sizeof(struct ena_eth_io_rx_desc)).
const RxDescSize = 16

// Rx descriptor ctrl byte (offset 3) bits, §7.6.
const (
	RxDescCtrlPhase   uint8 = 0x01 // ENA_ETH_IO_RX_DESC_PHASE_MASK
	RxDescCtrlFirst   uint8 = 0x04 // ENA_ETH_IO_RX_DESC_FIRST_MASK
	RxDescCtrlLast    uint8 = 0x08 // ENA_ETH_IO_RX_DESC_LAST_MASK
	RxDescCtrlCompReq uint8 = 0x10 // ENA_ETH_IO_RX_DESC_COMP_REQ_MASK
	// RxDescCtrlMBO is reserved5, documented "MBO" in the header; no driver
	// sets it (§7.6), so a model must not require it.
	RxDescCtrlMBO uint8 = 0x20
	// RxDescCtrlRsvdMask covers reserved1 (bit 1) and reserved6 (7:6), MBZ.
	RxDescCtrlRsvdMask uint8 = 0xC2

	// RxDescCtrlPosted1 and RxDescCtrlPosted0 are the ctrl bytes every
	// driver writes: a single-buffer "packet" FIRST|LAST|COMP_REQ with
	// phase 1 or 0.
	RxDescCtrlPosted1 uint8 = RxDescCtrlFirst | RxDescCtrlLast | RxDescCtrlCompReq | RxDescCtrlPhase // 0x1D
	RxDescCtrlPosted0 uint8 = RxDescCtrlFirst | RxDescCtrlLast | RxDescCtrlCompReq                   // 0x1C
)

// RxMaxBufferLength is the buffer size an Rx descriptor length of 0 stands
// for (§7.6: "0 means 64KB").
const RxMaxBufferLength = 65536

// RxDesc is an Rx submission descriptor (§7.6): one empty buffer posted to
// the device.
type RxDesc struct {
	// Length is the buffer size in bytes; 0 means 64 KiB (see BufferLen).
	Length  uint16
	Phase   bool
	First   bool
	Last    bool
	CompReq bool
	// MBO is ctrl bit 5 (header: reserved, must be one; no driver sets it).
	MBO bool
	// ReservedCtrl is ctrl bits 1 and 7:6 in place (RxDescCtrlRsvdMask);
	// drivers write 0.
	ReservedCtrl uint8
	ReqID        uint16 // echoed in the Rx completion
	BufAddr      uint64 // 48-bit device address
}

// BufferLen is the effective buffer size: Length, or 65536 when Length is 0.
func (d *RxDesc) BufferLen() int { return RxBufferLen(d.Length) }

// RxBufferLen maps an Rx descriptor length field to a byte count (0 means
// 64 KiB, §7.6).
func RxBufferLen(length uint16) int {
	if length == 0 {
		return RxMaxBufferLength
	}
	return int(length)
}

// Ctrl returns the ctrl byte the descriptor encodes.
func (d *RxDesc) Ctrl() uint8 {
	c := d.ReservedCtrl & RxDescCtrlRsvdMask
	if d.Phase {
		c |= RxDescCtrlPhase
	}
	if d.First {
		c |= RxDescCtrlFirst
	}
	if d.Last {
		c |= RxDescCtrlLast
	}
	if d.CompReq {
		c |= RxDescCtrlCompReq
	}
	if d.MBO {
		c |= RxDescCtrlMBO
	}
	return c
}

// Encode writes the descriptor into b[0:RxDescSize]; reserved bytes are 0.
func (d *RxDesc) Encode(b []byte) {
	PutRxDesc(b, d.Length, d.Ctrl(), d.ReqID, d.BufAddr)
}

// PutRxDesc writes an Rx descriptor from its raw fields without building an
// RxDesc: the form the Rx refill loop uses with ctrl = RxDescCtrlPosted1 or
// RxDescCtrlPosted0. Reserved bytes are written 0.
func PutRxDesc(b []byte, length uint16, ctrl uint8, reqID uint16, addr uint64) {
	_ = b[RxDescSize-1]
	binary.LittleEndian.PutUint32(b[0:], uint32(length)|uint32(ctrl)<<24)
	binary.LittleEndian.PutUint32(b[4:], uint32(reqID))
	binary.LittleEndian.PutUint64(b[8:], addr&ioAddrMask)
}

// DecodeRxDesc reads an Rx descriptor from b[0:RxDescSize]. The reserved
// bytes 2, 6-7 and 14-15 are not reported.
func DecodeRxDesc(b []byte) RxDesc {
	_ = b[RxDescSize-1]
	c := b[3]
	return RxDesc{
		Length:       binary.LittleEndian.Uint16(b[0:]),
		Phase:        c&RxDescCtrlPhase != 0,
		First:        c&RxDescCtrlFirst != 0,
		Last:         c&RxDescCtrlLast != 0,
		CompReq:      c&RxDescCtrlCompReq != 0,
		MBO:          c&RxDescCtrlMBO != 0,
		ReservedCtrl: c & RxDescCtrlRsvdMask,
		ReqID:        binary.LittleEndian.Uint16(b[4:]),
		BufAddr:      uint64(binary.LittleEndian.Uint16(b[12:]))<<32 | uint64(binary.LittleEndian.Uint32(b[8:])),
	}
}

// ---------------------------------------------------------------------------
// Rx completion (§7.7)

// RxCompletionSize is the size of the base Rx completion
// (sizeof(struct ena_eth_io_rx_cdesc_base)); RxCompletionExtSize the size of
// the 8-word form (struct ena_eth_io_rx_cdesc_ext).
const (
	RxCompletionSize    = 16
	RxCompletionExtSize = 32
)

// Rx completion word 0 (status) fields, §7.7.
const (
	RxCdescL3ProtoMask       uint32 = 0x0000001F // ENA_ETH_IO_RX_CDESC_BASE_L3_PROTO_IDX_MASK
	RxCdescSrcVlanCntShift          = 5          // ENA_ETH_IO_RX_CDESC_BASE_SRC_VLAN_CNT_SHIFT
	RxCdescSrcVlanCntMask    uint32 = 0x00000060 // ENA_ETH_IO_RX_CDESC_BASE_SRC_VLAN_CNT_MASK
	RxCdescMBZ7Mask          uint32 = 1 << 7     // ENA_ETH_IO_RX_CDESC_BASE_MBZ7_MASK
	RxCdescL4ProtoShift             = 8          // ENA_ETH_IO_RX_CDESC_BASE_L4_PROTO_IDX_SHIFT
	RxCdescL4ProtoMask       uint32 = 0x00001F00 // ENA_ETH_IO_RX_CDESC_BASE_L4_PROTO_IDX_MASK
	RxCdescL3CsumErrMask     uint32 = 1 << 13    // ENA_ETH_IO_RX_CDESC_BASE_L3_CSUM_ERR_MASK
	RxCdescL4CsumErrMask     uint32 = 1 << 14    // ENA_ETH_IO_RX_CDESC_BASE_L4_CSUM_ERR_MASK
	RxCdescIPv4FragMask      uint32 = 1 << 15    // ENA_ETH_IO_RX_CDESC_BASE_IPV4_FRAG_MASK
	RxCdescL4CsumCheckedMask uint32 = 1 << 16    // ENA_ETH_IO_RX_CDESC_BASE_L4_CSUM_CHECKED_MASK
	RxCdescMBZ17Mask         uint32 = 1 << 17    // ENA_ETH_IO_RX_CDESC_BASE_MBZ17_MASK
	RxCdescPhaseMask         uint32 = 1 << 24    // ENA_ETH_IO_RX_CDESC_BASE_PHASE_MASK
	RxCdescL3Csum2Mask       uint32 = 1 << 25    // ENA_ETH_IO_RX_CDESC_BASE_L3_CSUM2_MASK
	RxCdescFirstMask         uint32 = 1 << 26    // ENA_ETH_IO_RX_CDESC_BASE_FIRST_MASK
	RxCdescLastMask          uint32 = 1 << 27    // ENA_ETH_IO_RX_CDESC_BASE_LAST_MASK
	RxCdescBufferMask        uint32 = 1 << 30    // ENA_ETH_IO_RX_CDESC_BASE_BUFFER_MASK

	// RxCdescMBZMask is both must-be-zero bits (mbz7, mbz17), checked by
	// drivers when the CDESC_MBZ capability is set.
	RxCdescMBZMask = RxCdescMBZ7Mask | RxCdescMBZ17Mask
	// RxCdescReservedMask covers reserved18 (23:18), reserved28 (29:28) and
	// reserved31; nobody checks them.
	RxCdescReservedMask uint32 = 0x3F<<18 | 0x3<<28 | 1<<31
)

// RxCompletion is a base Rx completion descriptor (§7.7): one per consumed
// Rx buffer. Parsing fields (protocols, checksums, hash, fragment) are valid
// only in the packet's LAST completion; Offset only in the FIRST.
type RxCompletion struct {
	L3Proto       L3Proto // 5 bits
	SrcVlanCnt    uint8   // 2 bits
	L4Proto       L4Proto // 5 bits
	L3CsumErr     bool    // IPv4 header checksum bad or not validated
	L4CsumErr     bool    // L4 checksum bad or not validated (only if L4CsumChecked)
	IPv4Frag      bool
	L4CsumChecked bool
	Phase         bool
	L3Csum2       bool // second checksum engine result; unused by drivers
	First         bool
	Last          bool
	Buffer        bool // 1 = a buffer descriptor was used, 0 = metadata descriptor
	// MBZ is status bits 7 and 17 in place (mask RxCdescMBZMask); non-zero is
	// a device error when CDESC_MBZ is set. Encode writes it as given.
	MBZ uint32
	// Reserved is the remaining reserved status bits in place
	// (RxCdescReservedMask); Encode writes them as given.
	Reserved uint32

	Length uint16 // bytes written into this buffer
	ReqID  uint16 // copied from the consumed Rx descriptor
	Hash   uint32 // RSS hash
	SubQID uint16
	Offset uint8 // start of packet data in the first buffer (if rx_offset advertised)
}

// Status returns word 0 as Encode writes it.
func (c *RxCompletion) Status() uint32 {
	return uint32(c.L3Proto)&RxCdescL3ProtoMask |
		uint32(c.SrcVlanCnt)<<RxCdescSrcVlanCntShift&RxCdescSrcVlanCntMask |
		uint32(c.L4Proto)<<RxCdescL4ProtoShift&RxCdescL4ProtoMask |
		ioBit(c.L3CsumErr, RxCdescL3CsumErrMask) |
		ioBit(c.L4CsumErr, RxCdescL4CsumErrMask) |
		ioBit(c.IPv4Frag, RxCdescIPv4FragMask) |
		ioBit(c.L4CsumChecked, RxCdescL4CsumCheckedMask) |
		ioBit(c.Phase, RxCdescPhaseMask) |
		ioBit(c.L3Csum2, RxCdescL3Csum2Mask) |
		ioBit(c.First, RxCdescFirstMask) |
		ioBit(c.Last, RxCdescLastMask) |
		ioBit(c.Buffer, RxCdescBufferMask) |
		c.MBZ&RxCdescMBZMask |
		c.Reserved&RxCdescReservedMask
}

// Encode writes the completion into b[0:RxCompletionSize]; the reserved byte
// 15 is 0.
func (c *RxCompletion) Encode(b []byte) {
	_ = b[RxCompletionSize-1]
	binary.LittleEndian.PutUint32(b[0:], c.Status())
	binary.LittleEndian.PutUint32(b[4:], uint32(c.Length)|uint32(c.ReqID)<<16)
	binary.LittleEndian.PutUint32(b[8:], c.Hash)
	binary.LittleEndian.PutUint32(b[12:], uint32(c.SubQID)|uint32(c.Offset)<<16)
}

// DecodeRxCompletion reads a base Rx completion from b[0:RxCompletionSize].
func DecodeRxCompletion(b []byte) RxCompletion {
	_ = b[RxCompletionSize-1]
	return DecodeRxCompletionWords(
		binary.LittleEndian.Uint32(b[0:]),
		binary.LittleEndian.Uint32(b[4:]),
		binary.LittleEndian.Uint32(b[8:]),
		binary.LittleEndian.Uint32(b[12:]))
}

// DecodeRxCompletionWords decodes a base Rx completion from its four
// little-endian words, for a consumer that already loaded word 0 to check
// the phase (§7.8) and must not re-read it.
func DecodeRxCompletionWords(w0, w1, w2, w3 uint32) RxCompletion {
	return RxCompletion{
		L3Proto:       L3Proto(w0 & RxCdescL3ProtoMask),
		SrcVlanCnt:    uint8((w0 & RxCdescSrcVlanCntMask) >> RxCdescSrcVlanCntShift),
		L4Proto:       L4Proto((w0 & RxCdescL4ProtoMask) >> RxCdescL4ProtoShift),
		L3CsumErr:     w0&RxCdescL3CsumErrMask != 0,
		L4CsumErr:     w0&RxCdescL4CsumErrMask != 0,
		IPv4Frag:      w0&RxCdescIPv4FragMask != 0,
		L4CsumChecked: w0&RxCdescL4CsumCheckedMask != 0,
		Phase:         w0&RxCdescPhaseMask != 0,
		L3Csum2:       w0&RxCdescL3Csum2Mask != 0,
		First:         w0&RxCdescFirstMask != 0,
		Last:          w0&RxCdescLastMask != 0,
		Buffer:        w0&RxCdescBufferMask != 0,
		MBZ:           w0 & RxCdescMBZMask,
		Reserved:      w0 & RxCdescReservedMask,
		Length:        uint16(w1),
		ReqID:         uint16(w1 >> 16),
		Hash:          w2,
		SubQID:        uint16(w3),
		Offset:        uint8(w3 >> 16),
	}
}

// RxCompletionExt is the 32-byte Rx completion (§7.7, struct
// ena_eth_io_rx_cdesc_ext): the base form, the address of the buffer used,
// and a timestamp (DPDK/Linux; reserved words in the FreeBSD header).
type RxCompletionExt struct {
	RxCompletion
	BufAddr   uint64 // 48 bits, bytes 16-21
	Timestamp uint64 // bytes 28-31 high, 24-27 low
}

// Encode writes the extended completion into b[0:RxCompletionExtSize].
func (c *RxCompletionExt) Encode(b []byte) {
	_ = b[RxCompletionExtSize-1]
	c.RxCompletion.Encode(b)
	binary.LittleEndian.PutUint64(b[16:], c.BufAddr&ioAddrMask)
	binary.LittleEndian.PutUint32(b[24:], uint32(c.Timestamp))
	binary.LittleEndian.PutUint32(b[28:], uint32(c.Timestamp>>32))
}

// DecodeRxCompletionExt reads an extended Rx completion from
// b[0:RxCompletionExtSize]; reserved bytes 22-23 are not reported.
func DecodeRxCompletionExt(b []byte) RxCompletionExt {
	_ = b[RxCompletionExtSize-1]
	return RxCompletionExt{
		RxCompletion: DecodeRxCompletion(b),
		BufAddr:      uint64(binary.LittleEndian.Uint16(b[20:]))<<32 | uint64(binary.LittleEndian.Uint32(b[16:])),
		Timestamp:    uint64(binary.LittleEndian.Uint32(b[28:]))<<32 | uint64(binary.LittleEndian.Uint32(b[24:])),
	}
}
