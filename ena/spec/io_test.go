package spec

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// Expected bytes in this file were worked out by hand from the field layouts
// of ena_eth_io_defs.h (DPDK drivers/net/ena/base/ena_defs and amzn-drivers
// kernel/fbsd/ena/ena-com/ena_defs, identical for these structs), never by
// running the encoders. Every field carries a distinct non-zero value so a
// field at the wrong offset or shift cannot produce the same bytes.

func ioCheckBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s:\n got % X\nwant % X", what, got, want)
	}
}

// garbage returns n bytes of 0xEE, so an encoder that skips a reserved byte
// is caught.
func ioGarbage(n int) []byte { return bytes.Repeat([]byte{0xEE}, n) }

func TestL3L4ProtoString(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{L3ProtoIPv4.String(), "IPV4"},
		{L3ProtoIPv6.String(), "IPV6"},
		{L3ProtoUnknown.String(), "UNKNOWN"},
		{L3ProtoFCoE.String(), "FCOE"},
		{L3ProtoRoCE.String(), "ROCE"},
		{L3Proto(5).String(), "L3Proto(5)"},
		{L4ProtoTCP.String(), "TCP"},
		{L4ProtoUDP.String(), "UDP"},
		{L4ProtoRoutableRoCE.String(), "ROUTEABLE_ROCE"},
		{L4ProtoUnknown.String(), "UNKNOWN"},
		{L4Proto(31).String(), "L4Proto(31)"},
	} {
		if c.got != c.want {
			t.Errorf("String() = %q, want %q", c.got, c.want)
		}
	}
	// enum ena_eth_io_l3_proto_index / ena_eth_io_l4_proto_index values.
	if L3ProtoIPv4 != 8 || L3ProtoIPv6 != 11 || L3ProtoFCoE != 21 || L3ProtoRoCE != 22 ||
		L4ProtoTCP != 12 || L4ProtoUDP != 13 || L4ProtoRoutableRoCE != 23 {
		t.Fatal("protocol index values differ from ena_eth_io_defs.h")
	}
}

// struct ena_eth_io_tx_desc: len_ctrl at byte 0 (length 15:0, req_id_hi
// 21:16, meta_desc 23, phase 24, first 26, last 27, comp_req 28), meta_ctrl
// at byte 4 (l3_proto_idx 3:0, DF 4, tso_en 7, l4_proto_idx 12:8,
// l3_csum_en 13, l4_csum_en 14, ethernet_fcs_dis 15, l4_csum_partial 17,
// req_id_lo 31:22), buff_addr_lo at byte 8, buff_addr_hi_hdr_sz at byte 12
// (addr_hi 15:0, header_length 31:24).
func TestTxDescVectors(t *testing.T) {
	cases := []struct {
		name string
		d    TxDesc
		want []byte
	}{
		{
			// ReqID 0xA5C3: bits 15:10 = 0x29, bits 9:0 = 0x1C3.
			// len_ctrl = 0x1234 | 0x29<<16 | phase | last | comp_req = 0x19291234
			// meta_ctrl = 8 | DF 0x10 | TSO 0x80 | 12<<8 | 0x2000 | 0x4000 |
			//             0x20000 | 0x1C3<<22 = 0x70C26C98
			// buff_addr_lo = 0x12345678; hi_hdr = 0xBEEF | 0x2A<<24 = 0x2A00BEEF
			name: "offload first desc",
			d: TxDesc{
				Length: 0x1234, ReqID: 0xA5C3, Phase: true, Last: true, CompReq: true,
				L3Proto: L3ProtoIPv4, DF: true, TSO: true, L4Proto: L4ProtoTCP,
				L3Csum: true, L4Csum: true, L4CsumPartial: true,
				BufAddr: 0xBEEF12345678, HeaderLen: 0x2A,
			},
			want: []byte{
				0x34, 0x12, 0x29, 0x19,
				0x98, 0x6C, 0xC2, 0x70,
				0x78, 0x56, 0x34, 0x12,
				0xEF, 0xBE, 0x00, 0x2A,
			},
		},
		{
			// len_ctrl = 0xFFFF | 0x3F<<16 | first 1<<26 = 0x043FFFFF
			// meta_ctrl = 11 | 13<<8 | fcs_dis 0x8000 | 0x3FF<<22 = 0xFFC08D0B
			// buff_addr_lo = 1; hi_hdr = 0x0001 | 0xFF<<24 = 0xFF000001
			name: "all-ones req_id, first, fcs disabled",
			d: TxDesc{
				Length: 0xFFFF, ReqID: 0xFFFF, First: true,
				L3Proto: L3ProtoIPv6, L4Proto: L4ProtoUDP, FCSDisable: true,
				BufAddr: 0x000100000001, HeaderLen: 0xFF,
			},
			want: []byte{
				0xFF, 0xFF, 0x3F, 0x04,
				0x0B, 0x8D, 0xC0, 0xFF,
				0x01, 0x00, 0x00, 0x00,
				0x01, 0x00, 0x00, 0xFF,
			},
		},
		{
			// Continuation descriptor: only length, address, phase.
			// len_ctrl = 0x0100 | phase = 0x01000100; address 0x0000_7F00_0000_1000
			name: "continuation desc",
			d:    TxDesc{Length: 0x0100, Phase: true, BufAddr: 0x7F0000001000},
			want: []byte{
				0x00, 0x01, 0x00, 0x01,
				0x00, 0x00, 0x00, 0x00,
				0x00, 0x10, 0x00, 0x00,
				0x00, 0x7F, 0x00, 0x00,
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := ioGarbage(TxDescSize)
			c.d.Encode(b)
			ioCheckBytes(t, "Encode", b, c.want)
			if got := DecodeTxDesc(c.want); got != c.d {
				t.Fatalf("Decode = %+v, want %+v", got, c.d)
			}
			if IsMetaDesc(c.want) {
				t.Fatal("IsMetaDesc reports a data descriptor as meta")
			}
		})
	}
}

func TestTxDescMetaBitAndReserved(t *testing.T) {
	// A data-descriptor encoder asked for META_DESC sets bit 23 (byte 2 bit
	// 7); reserved bits are kept visible on decode.
	d := TxDesc{Meta: true, ReservedLenCtrl: 1 << 22, ReservedMetaCtrl: 1 << 16, ReservedAddrHdr: 0x00AB0000}
	b := ioGarbage(TxDescSize)
	d.Encode(b)
	ioCheckBytes(t, "Encode", b, []byte{
		0x00, 0x00, 0xC0, 0x00, // bits 22 and 23
		0x00, 0x00, 0x01, 0x00, // reserved16 of meta_ctrl
		0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0xAB, 0x00, // reserved16_w2
	})
	if !IsMetaDesc(b) {
		t.Fatal("IsMetaDesc false with bit 23 set")
	}
	if got := DecodeTxDesc(b); got != d {
		t.Fatalf("Decode = %+v, want %+v", got, d)
	}
	// Reserved values outside their masks never leak into other fields.
	d = TxDesc{ReservedLenCtrl: 0xFFFFFFFF, ReservedMetaCtrl: 0xFFFFFFFF, ReservedAddrHdr: 0xFFFFFFFF}
	d.Encode(b)
	got := DecodeTxDesc(b)
	if got.Length != 0 || got.ReqID != 0 || got.Meta || got.Phase || got.BufAddr != 0 || got.HeaderLen != 0 || got.L3Proto != 0 {
		t.Fatalf("reserved bits leaked into fields: %+v", got)
	}
}

func TestIsMetaDescShort(t *testing.T) {
	if IsMetaDesc(nil) || IsMetaDesc([]byte{0, 0, 0x80}) {
		t.Fatal("IsMetaDesc on a short slice must be false")
	}
}

// struct ena_eth_io_tx_meta_desc: len_ctrl at byte 0 (ext_valid 14, mss_hi
// 19:16, eth_meta_type 20, meta_store 21, meta_desc 23, phase 24, first 26,
// last 27, comp_req 28), word1 at byte 4, word2 at byte 8 (l3_hdr_len 7:0,
// l3_hdr_off 15:8, l4_hdr_len_in_words 21:16, mss_lo 31:22), reserved at 12.
func TestTxMetaDescVectors(t *testing.T) {
	cases := []struct {
		name string
		m    TxMetaDesc
		want []byte
	}{
		{
			// MSS 0x2345: bits 13:10 = 0x8, bits 9:0 = 0x345.
			// len_ctrl = 0x4000 | 0x8<<16 | 0x100000 | 0x200000 | 0x800000 |
			//            0x1000000 | 0x4000000 = 0x05B84000
			// word2 = 0x14 | 0x0E<<8 | 0x08<<16 | 0x345<<22 = 0xD1480E14
			name: "TSO meta",
			m: TxMetaDesc{
				ExtValid: true, MSS: 0x2345, MetaType: true, MetaStore: true, Meta: true,
				Phase: true, First: true, L3HdrLen: 0x14, L3HdrOff: 0x0E, L4HdrLen: 0x08,
			},
			want: []byte{
				0x00, 0x40, 0xB8, 0x05,
				0x00, 0x00, 0x00, 0x00,
				0x14, 0x0E, 0x48, 0xD1,
				0x00, 0x00, 0x00, 0x00,
			},
		},
		{
			// iPXE's zero-information meta: META_DESC | PHASE | FIRST = 0x05800000.
			name: "zero-information meta",
			m:    TxMetaDesc{Meta: true, Phase: true, First: true},
			want: []byte{
				0x00, 0x00, 0x80, 0x05,
				0x00, 0x00, 0x00, 0x00,
				0x00, 0x00, 0x00, 0x00,
				0x00, 0x00, 0x00, 0x00,
			},
		},
		{
			// MSS 0x3FFF (max): hi 0xF<<16, lo 0x3FF<<22; last | comp_req set
			// (no driver does this, but both bits must land right):
			// len_ctrl = 0x000F0000 | 0x800000 | 0x08000000 | 0x10000000 = 0x188F0000
			// word2 = 0xFF | 0xFF<<8 | 0x3F<<16 | 0x3FF<<22 = 0xFFFFFFFF
			name: "max fields",
			m: TxMetaDesc{
				MSS: 0x3FFF, Meta: true, Last: true, CompReq: true,
				L3HdrLen: 0xFF, L3HdrOff: 0xFF, L4HdrLen: 0x3F,
			},
			want: []byte{
				0x00, 0x00, 0x8F, 0x18,
				0x00, 0x00, 0x00, 0x00,
				0xFF, 0xFF, 0xFF, 0xFF,
				0x00, 0x00, 0x00, 0x00,
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := ioGarbage(TxMetaDescSize)
			c.m.Encode(b)
			ioCheckBytes(t, "Encode", b, c.want)
			if got := DecodeTxMetaDesc(c.want); got != c.m {
				t.Fatalf("Decode = %+v, want %+v", got, c.m)
			}
			if !IsMetaDesc(c.want) {
				t.Fatal("IsMetaDesc false for a meta descriptor")
			}
		})
	}
}

func TestTxMetaDescEncodeForcesMetaBit(t *testing.T) {
	var m TxMetaDesc // Meta false
	b := ioGarbage(TxMetaDescSize)
	m.Encode(b)
	if !IsMetaDesc(b) {
		t.Fatal("Encode must always set META_DESC")
	}
	// Out-of-range MSS and L4HdrLen are masked, not spread into neighbours.
	m = TxMetaDesc{MSS: 0xFFFF, L4HdrLen: 0xFF}
	m.Encode(b)
	got := DecodeTxMetaDesc(b)
	if got.MSS != 0x3FFF || got.L4HdrLen != 0x3F || got.L3HdrLen != 0 || got.L3HdrOff != 0 || got.MetaType || got.ExtValid {
		t.Fatalf("masking: %+v", got)
	}
}

// struct ena_eth_io_tx_cdesc: req_id u16 at 0, status u8 at 2, flags u8 at 3
// (phase bit 0, mbz6 7:6), sub_qid u16 at 4, sq_head_idx u16 at 6. The
// extended form appends timestamp_low (8) and timestamp_high (12).
func TestTxCompletionVectors(t *testing.T) {
	c := TxCompletion{ReqID: 0x1234, Status: 0x56, Flags: 0x01, Phase: true, SubQID: 0x9ABC, SQHeadIdx: 0xDEF0}
	want := []byte{0x34, 0x12, 0x56, 0x01, 0xBC, 0x9A, 0xF0, 0xDE}
	b := ioGarbage(TxCompletionSize)
	c.Encode(b)
	ioCheckBytes(t, "Encode", b, want)
	if got := DecodeTxCompletion(want); got != c {
		t.Fatalf("Decode = %+v, want %+v", got, c)
	}
	// Hot path: one u32 load of word 0 = 0x01561234; phase is bit 24.
	w0 := binary.LittleEndian.Uint32(want)
	if w0&TxCdescPhaseMask == 0 || w0&TxCdescMBZMask != 0 || w0&TxCdescReqIDMask != 0x1234 || (w0&TxCdescStatusMask)>>16 != 0x56 {
		t.Fatalf("word-0 masks wrong on 0x%08X", w0)
	}

	// flags 0xC2: phase 0, reserved bit 1, mbz6 = 0b11.
	bad := []byte{0x01, 0x00, 0x00, 0xC2, 0x00, 0x00, 0x00, 0x00}
	got := DecodeTxCompletion(bad)
	if got.Phase || got.MBZ != 0xC0 || got.Flags != 0xC2 || got.ReqID != 1 {
		t.Fatalf("Decode(mbz) = %+v", got)
	}
	w0 = binary.LittleEndian.Uint32(bad)
	if w0&TxCdescPhaseMask != 0 || w0&TxCdescMBZMask != 0xC0000000 {
		t.Fatalf("word-0 masks wrong on 0x%08X", w0)
	}
	// Encode keeps reserved flag bits from Flags, phase/MBZ from the fields.
	b = ioGarbage(TxCompletionSize)
	got.Encode(b)
	ioCheckBytes(t, "re-Encode", b, bad)

	ext := TxCompletionExt{TxCompletion: c, Timestamp: 0x0102030405060708}
	wantExt := append(append([]byte{}, want...), 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01)
	b = ioGarbage(TxCompletionExtSize)
	ext.Encode(b)
	ioCheckBytes(t, "ext Encode", b, wantExt)
	if got := DecodeTxCompletionExt(wantExt); got != ext {
		t.Fatalf("ext Decode = %+v, want %+v", got, ext)
	}
}

// struct ena_eth_io_rx_desc: length u16 at 0, reserved2 u8 at 2, ctrl u8 at
// 3 (phase 0, first 2, last 3, comp_req 4, reserved5 MBO 5), req_id u16 at 4,
// reserved6 u16 at 6, buff_addr_lo u32 at 8, buff_addr_hi u16 at 12,
// reserved16_w3 u16 at 14.
func TestRxDescVectors(t *testing.T) {
	d := RxDesc{Length: 0x07F0, Phase: true, First: true, Last: true, CompReq: true, ReqID: 0x0123, BufAddr: 0xABCD87654320}
	want := []byte{
		0xF0, 0x07, 0x00, 0x1D,
		0x23, 0x01, 0x00, 0x00,
		0x20, 0x43, 0x65, 0x87,
		0xCD, 0xAB, 0x00, 0x00,
	}
	b := ioGarbage(RxDescSize)
	d.Encode(b)
	ioCheckBytes(t, "Encode", b, want)
	if got := DecodeRxDesc(want); got != d {
		t.Fatalf("Decode = %+v, want %+v", got, d)
	}
	b = ioGarbage(RxDescSize)
	PutRxDesc(b, 0x07F0, RxDescCtrlPosted1, 0x0123, 0xABCD87654320)
	ioCheckBytes(t, "PutRxDesc", b, want)
	if d.Ctrl() != 0x1D || RxDescCtrlPosted1 != 0x1D || RxDescCtrlPosted0 != 0x1C {
		t.Fatal("posted ctrl bytes must be 0x1D / 0x1C (§7.6)")
	}

	// Phase 0, MBO bit 5 and reserved bits 1, 6, 7 set; length 0; address
	// bits above 47 dropped. ctrl = 0x20 | 0xC2 = 0xE2.
	d = RxDesc{MBO: true, ReservedCtrl: 0xC2, ReqID: 0xFEDC, BufAddr: 0xFFFF000000000001}
	want = []byte{
		0x00, 0x00, 0x00, 0xE2,
		0xDC, 0xFE, 0x00, 0x00,
		0x01, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00,
	}
	b = ioGarbage(RxDescSize)
	d.Encode(b)
	ioCheckBytes(t, "Encode reserved", b, want)
	got := DecodeRxDesc(want)
	if !got.MBO || got.ReservedCtrl != 0xC2 || got.Phase || got.BufAddr != 1 || got.BufferLen() != 65536 {
		t.Fatalf("Decode = %+v", got)
	}
	if RxBufferLen(0) != RxMaxBufferLength || RxBufferLen(2048) != 2048 {
		t.Fatal("RxBufferLen")
	}
}

// struct ena_eth_io_rx_cdesc_base: status u32 at 0 (l3_proto_idx 4:0,
// src_vlan_cnt 6:5, mbz7 7, l4_proto_idx 12:8, l3_csum_err 13, l4_csum_err
// 14, ipv4_frag 15, l4_csum_checked 16, mbz17 17, phase 24, l3_csum2 25,
// first 26, last 27, buffer 30), length u16 at 4, req_id u16 at 6, hash u32
// at 8, sub_qid u16 at 12, offset u8 at 14, reserved u8 at 15.
// struct ena_eth_io_rx_cdesc_ext (DPDK): base, buff_addr_lo at 16,
// buff_addr_hi at 20, reserved16 at 22, timestamp words at 24 and 28.
func TestRxCompletionVectors(t *testing.T) {
	cases := []struct {
		name string
		c    RxCompletion
		want []byte
	}{
		{
			// status = 8 | 2<<5 | 13<<8 | 0x2000 | 0x8000 | 0x10000 |
			//          0x1000000 | 0x4000000 | 0x8000000 | 0x40000000 = 0x4D01AD48
			name: "ipv4 udp frag, first+last",
			c: RxCompletion{
				L3Proto: L3ProtoIPv4, SrcVlanCnt: 2, L4Proto: L4ProtoUDP, L3CsumErr: true,
				IPv4Frag: true, L4CsumChecked: true, Phase: true, First: true, Last: true, Buffer: true,
				Length: 0x05EA, ReqID: 0x0321, Hash: 0xCAFEBABE, SubQID: 0x0007, Offset: 0x02,
			},
			want: []byte{
				0x48, 0xAD, 0x01, 0x4D,
				0xEA, 0x05, 0x21, 0x03,
				0xBE, 0xBA, 0xFE, 0xCA,
				0x07, 0x00, 0x02, 0x00,
			},
		},
		{
			// status = 11 | 0x80 | 12<<8 | 0x4000 | 0x20000 | 0x2000000 = 0x02024C8B
			name: "ipv6 tcp, mbz bits, csum2, phase 0",
			c: RxCompletion{
				L3Proto: L3ProtoIPv6, L4Proto: L4ProtoTCP, L4CsumErr: true, L3Csum2: true,
				MBZ: 0x20080, Length: 0xFFFF, ReqID: 0xFFFE, Hash: 0x01020304, SubQID: 0xA0B0, Offset: 0xFF,
			},
			want: []byte{
				0x8B, 0x4C, 0x02, 0x02,
				0xFF, 0xFF, 0xFE, 0xFF,
				0x04, 0x03, 0x02, 0x01,
				0xB0, 0xA0, 0xFF, 0x00,
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := ioGarbage(RxCompletionSize)
			c.c.Encode(b)
			ioCheckBytes(t, "Encode", b, c.want)
			if got := DecodeRxCompletion(c.want); got != c.c {
				t.Fatalf("Decode = %+v, want %+v", got, c.c)
			}
			w0 := binary.LittleEndian.Uint32(c.want)
			if (w0&RxCdescPhaseMask != 0) != c.c.Phase || (w0&RxCdescMBZMask) != c.c.MBZ ||
				(w0&RxCdescFirstMask != 0) != c.c.First || (w0&RxCdescLastMask != 0) != c.c.Last {
				t.Fatalf("word-0 masks disagree with the decoder on 0x%08X", w0)
			}
		})
	}

	// Reserved status bits 23:18, 29:28, 31 are kept apart from the fields.
	all := []byte{0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	got := DecodeRxCompletion(all)
	if got.Reserved != 0xB0FC0000 || got.MBZ != 0x20080 || got.L3Proto != 0x1F || got.L4Proto != 0x1F || got.SrcVlanCnt != 3 {
		t.Fatalf("Decode(all ones) = %+v", got)
	}
	b := ioGarbage(RxCompletionSize)
	got.Encode(b)
	ioCheckBytes(t, "re-Encode all ones", b, all)

	ext := RxCompletionExt{RxCompletion: cases[0].c, BufAddr: 0x112233445566, Timestamp: 0x0A0B0C0D01020304}
	wantExt := append(append([]byte{}, cases[0].want...),
		0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x00, 0x00,
		0x04, 0x03, 0x02, 0x01, 0x0D, 0x0C, 0x0B, 0x0A)
	b = ioGarbage(RxCompletionExtSize)
	ext.Encode(b)
	ioCheckBytes(t, "ext Encode", b, wantExt)
	if got := DecodeRxCompletionExt(wantExt); got != ext {
		t.Fatalf("ext Decode = %+v, want %+v", got, ext)
	}
}

// TestCompletionPhaseIsBit24 pins the hot-path promise: PHASE is bit 24 of
// the first little-endian u32 in both completion formats (§7.5, §7.7).
func TestCompletionPhaseIsBit24(t *testing.T) {
	if TxCdescPhaseMask != 1<<24 || RxCdescPhaseMask != 1<<24 {
		t.Fatal("phase masks must be bit 24")
	}
	tx := TxCompletion{Phase: true}
	b := make([]byte, TxCompletionSize)
	tx.Encode(b)
	if binary.LittleEndian.Uint32(b) != 1<<24 {
		t.Fatalf("tx word0 = 0x%08X", binary.LittleEndian.Uint32(b))
	}
	rx := RxCompletion{Phase: true}
	b = make([]byte, RxCompletionSize)
	rx.Encode(b)
	if binary.LittleEndian.Uint32(b) != 1<<24 {
		t.Fatalf("rx word0 = 0x%08X", binary.LittleEndian.Uint32(b))
	}
}

func TestRoundTripFromRandomBytes(t *testing.T) {
	// Decode(Encode(Decode(x))) is stable for every layout: decoders keep
	// all bits they do not drop on purpose.
	seed := uint64(0x9E3779B97F4A7C15)
	next := func() byte { seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17; return byte(seed) }
	for range 2000 {
		raw := make([]byte, 32)
		for i := range raw {
			raw[i] = next()
		}
		b := make([]byte, 32)

		td := DecodeTxDesc(raw)
		td.Encode(b)
		ioCheckBytes(t, "TxDesc", b[:TxDescSize], raw[:TxDescSize]) // every bit is a field

		tc := DecodeTxCompletionExt(raw)
		tc.Encode(b)
		ioCheckBytes(t, "TxCompletionExt", b[:TxCompletionExtSize], raw[:TxCompletionExtSize])

		rc := DecodeRxCompletion(raw)
		rc.Encode(b)
		ioCheckBytes(t, "RxCompletion word0-14", b[:15], raw[:15])

		md := DecodeTxMetaDesc(raw)
		md.Encode(b)
		if DecodeTxMetaDesc(b) != func() TxMetaDesc { m := md; m.Meta = true; return m }() {
			t.Fatal("TxMetaDesc round trip")
		}
		rd := DecodeRxDesc(raw)
		rd.Encode(b)
		if DecodeRxDesc(b) != rd {
			t.Fatal("RxDesc round trip")
		}
	}
}

func TestEncodersDoNotAllocate(t *testing.T) {
	b := make([]byte, 32)
	d := TxDesc{Length: 60, ReqID: 7, Phase: true, First: true, Last: true, CompReq: true, BufAddr: 0x1000}
	rc := RxCompletion{Phase: true, Length: 60}
	if n := testing.AllocsPerRun(100, func() {
		d.Encode(b)
		_ = DecodeTxDesc(b)
		PutRxDesc(b, 2048, RxDescCtrlPosted1, 3, 0x2000)
		PutTxDesc(b, 60, 7, TxDescPhaseMask, 0, 0x1000, 0)
		rc.Encode(b)
		_ = DecodeRxCompletion(b)
		_ = DecodeTxCompletion(b)
	}); n != 0 {
		t.Fatalf("%v allocations per run, want 0", n)
	}
}

var (
	benchSinkRx RxCompletion
	benchSinkTx TxCompletion
)

func BenchmarkTxDescEncode(b *testing.B) {
	buf := make([]byte, TxDescSize)
	d := TxDesc{Length: 1500, ReqID: 0x1AB, Phase: true, First: true, Last: true, CompReq: true,
		L3Proto: L3ProtoIPv4, DF: true, L4Proto: L4ProtoTCP, L4Csum: true, BufAddr: 0x12345000}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		d.ReqID = uint16(i)
		d.Encode(buf)
	}
}

func BenchmarkPutRxDesc(b *testing.B) {
	buf := make([]byte, RxDescSize)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		PutRxDesc(buf, 2048, RxDescCtrlPosted1, uint16(i), 0x12345000)
	}
}

func BenchmarkRxCompletionDecode(b *testing.B) {
	buf := make([]byte, RxCompletionSize)
	c := RxCompletion{L3Proto: L3ProtoIPv4, L4Proto: L4ProtoTCP, Phase: true, First: true, Last: true, Buffer: true, Length: 1514, ReqID: 9, Hash: 0xDEADBEEF}
	c.Encode(buf)
	b.ReportAllocs()
	for b.Loop() {
		benchSinkRx = DecodeRxCompletion(buf)
	}
}

func BenchmarkTxCompletionDecode(b *testing.B) {
	buf := []byte{0x34, 0x12, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00}
	b.ReportAllocs()
	for b.Loop() {
		benchSinkTx = DecodeTxCompletion(buf)
	}
}

func FuzzDecodeCompletions(f *testing.F) {
	f.Add(make([]byte, 32))
	f.Add(bytes.Repeat([]byte{0xFF}, 32))
	f.Add([]byte{0x48, 0xAD, 0x01, 0x4D, 0xEA, 0x05, 0x21, 0x03})
	f.Fuzz(func(t *testing.T, data []byte) {
		// Decoders need full-size slices; pad the way a ring slot would be.
		b := make([]byte, 32)
		copy(b, data)
		rc := DecodeRxCompletionExt(b)
		tc := DecodeTxCompletionExt(b)
		_ = rc.L3Proto.String() + rc.L4Proto.String()
		out := make([]byte, 32)
		rc.Encode(out)
		if !bytes.Equal(out[:15], b[:15]) {
			t.Fatalf("Rx completion round trip changed bytes: % X -> % X", b[:16], out[:16])
		}
		tc.Encode(out)
		if !bytes.Equal(out[:TxCompletionExtSize], b[:TxCompletionExtSize]) {
			t.Fatalf("Tx completion round trip changed bytes")
		}
		_ = DecodeTxDesc(b)
		_ = DecodeTxMetaDesc(b)
		_ = DecodeRxDesc(b)
		_ = IsMetaDesc(data)
	})
}

func TestPutTxDesc(t *testing.T) {
	// Same bytes as the first TestTxDescVectors case, from raw parts:
	// ctrl = phase|last|comp_req, offloads = 0x00026C98 (meta_ctrl without
	// req_id_lo).
	want := []byte{
		0x34, 0x12, 0x29, 0x19,
		0x98, 0x6C, 0xC2, 0x70,
		0x78, 0x56, 0x34, 0x12,
		0xEF, 0xBE, 0x00, 0x2A,
	}
	b := ioGarbage(TxDescSize)
	PutTxDesc(b, 0x1234, 0xA5C3, TxDescPhaseMask|TxDescLastMask|TxDescCompReqMask, 0x00026C98, 0xBEEF12345678, 0x2A)
	ioCheckBytes(t, "PutTxDesc", b, want)
	// Bits of ctrl/offloads that overlap length or req_id are ignored, and
	// the address is cut to 48 bits.
	b = ioGarbage(TxDescSize)
	PutTxDesc(b, 0x1234, 0xA5C3, 0xFFFFFFFF&^(TxDescMetaDescMask|TxDescFirstMask|TxDescLenCtrlRsvdMask), 0x00026C98|TxDescReqIDLoMask, 0xFFFFBEEF12345678, 0x2A)
	ioCheckBytes(t, "PutTxDesc masked", b, want)
}

func BenchmarkPutTxDesc(b *testing.B) {
	buf := make([]byte, TxDescSize)
	offloads := uint32(L3ProtoIPv4) | TxDescDFMask | uint32(L4ProtoTCP)<<TxDescL4ProtoShift | TxDescL4CsumEnMask
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		PutTxDesc(buf, 1500, uint16(i), TxDescPhaseMask|TxDescFirstMask|TxDescLastMask|TxDescCompReqMask, offloads, 0x12345000, 0)
	}
}
