//go:build amd64 || arm64

package rings

import "unsafe"

// store64 stores v little-endian into d with one 64-bit store, which is what
// binary.LittleEndian.PutUint64 means on these little-endian architectures.
// PutUint64 itself is not used on the hot paths: when the compiler can prove
// some bytes of v are zero (a 16-bit req_id, a 48-bit address) it no longer
// merges the eight byte stores into one and emits four or five smaller
// stores per word. Descriptor memory is ordinary memory (DMA memory or the
// LLQ bounce buffer), so a plain store is all a descriptor needs; the
// doorbell barrier orders it (§7.8).
func store64(d *[8]byte, v uint64) { *(*uint64)(unsafe.Pointer(d)) = v }

// storeParse stores a packed parse result and hash (rxParse) into p's
// fields with two stores, where setParse takes seven and the bit
// extractions.
func (p *RxPacket) storeParse(r rxParse) {
	b := p.parseBytes()
	*(*uint64)(unsafe.Pointer(&b[0])) = r.lo
	*(*uint16)(unsafe.Pointer(&b[8])) = r.hi
}
