package spec

import "encoding/binary"

// MemAddrSize is the size of the mem_addr form every DMA address takes inside
// admin commands and descriptors (§4.2): u32 address bits 31:0, u16 bits
// 47:32, u16 reserved (must be zero).
// ena_common_defs.h struct ena_common_mem_addr.
const MemAddrSize = 8

// MaxMemAddr is the largest address mem_addr can carry: ENA addresses are 48
// bits wide (§4.2). ena_common_defs.h struct ena_common_mem_addr (mem_addr_low
// 32 bits + mem_addr_high 16 bits).
const MaxMemAddr = 1<<48 - 1

// Spec version the package implements; sent in the host-info page (§4.8).
const (
	// SpecVersionMajor is ena_common_defs.h ENA_COMMON_SPEC_VERSION_MAJOR.
	SpecVersionMajor = 2
	// SpecVersionMinor is ena_common_defs.h ENA_COMMON_SPEC_VERSION_MINOR.
	SpecVersionMinor = 0
)

// PutMemAddr writes addr in the 8-byte mem_addr form (§4.2). Only bits 47:0
// fit; higher bits are dropped, so callers must check addresses against
// MaxMemAddr (and the device's DMA width) before they get here.
// b must hold MemAddrSize bytes.
func PutMemAddr(b []byte, addr uint64) {
	_ = b[MemAddrSize-1]
	binary.LittleEndian.PutUint32(b[0:], uint32(addr))
	binary.LittleEndian.PutUint16(b[4:], uint16(addr>>32))
	binary.LittleEndian.PutUint16(b[6:], 0)
}

// GetMemAddr reads the 48-bit address of a mem_addr (§4.2). The reserved
// high u16 is ignored here; use MemAddrReserved to check it.
// b must hold MemAddrSize bytes.
func GetMemAddr(b []byte) uint64 {
	_ = b[MemAddrSize-1]
	return uint64(binary.LittleEndian.Uint32(b[0:])) |
		uint64(binary.LittleEndian.Uint16(b[4:]))<<32
}

// MemAddrReserved returns the must-be-zero u16 at offset 6 of a mem_addr
// (§4.2), so the device model can reject addresses with garbage there.
// ena_common_defs.h struct ena_common_mem_addr reserved16.
func MemAddrReserved(b []byte) uint16 {
	return binary.LittleEndian.Uint16(b[6:8])
}

// le is the byte order of every ENA structure (§ Notation).
var le = binary.LittleEndian

// putLoHi writes v as the u32 low / u32 high pair ENA uses for 64-bit
// counters (GET_STATS BASIC §4.7, keep-alive §5.3).
func putLoHi(b []byte, v uint64) {
	le.PutUint32(b[0:], uint32(v))
	le.PutUint32(b[4:], uint32(v>>32))
}

// getLoHi reads a u32 low / u32 high pair.
func getLoHi(b []byte) uint64 {
	return uint64(le.Uint32(b[0:])) | uint64(le.Uint32(b[4:]))<<32
}

// boolBit returns bit if v is true, else 0.
func boolBit[T ~uint8 | ~uint16 | ~uint32](v bool, bit T) T {
	if v {
		return bit
	}
	return 0
}
