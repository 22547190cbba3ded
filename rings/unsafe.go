package rings

// The package's unsafe views of memory, apart from store64 (store_le.go:
// a plain 64-bit store, built only for little-endian architectures).

import (
	"encoding/binary"
	"unsafe"

	"github.com/enanet/enanet/ena/spec"
)

// entries16 views a ring as its 16-byte entries (SQ descriptors, Rx
// completions). The hot paths index these views: taking entry i is one
// bounds check, where slicing the ring's bytes at i*16 and converting the
// slice to an array pointer takes two and the slice arithmetic. The ring
// is 4 KiB aligned (ringAlign), so every entry is.
func entries16(b []byte) [][16]byte {
	return unsafe.Slice((*[16]byte)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/16)
}

// entries8 views a ring as its 8-byte entries (Tx completions), like
// entries16.
func entries8(b []byte) [][8]byte {
	return unsafe.Slice((*[8]byte)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/8)
}

// txOffloadSize is the size of a TxOffload: nine one-byte fields, no
// padding. The array below fails to compile if a field is added or widened,
// since txOffloadKey must then change.
const txOffloadSize = 9

var _ = [1]struct{}{}[unsafe.Sizeof(TxOffload{})-txOffloadSize]

// txOffloadKey is off's nine bytes as a word and a byte, so comparing two
// requests takes two compares (comparing the structs takes nine byte
// compares and their branches).
func txOffloadKey(off *TxOffload) (uint64, uint8) {
	b := (*[txOffloadSize]byte)(unsafe.Pointer(off))
	return binary.LittleEndian.Uint64(b[0:8]), b[8]
}

// rxParseOff is where RxPacket's parse result starts: Hash, then L3, L4,
// L3CsumErr, L4CsumErr, L4CsumChecked and IPv4Frag, one byte each, which
// storeParse writes as a 64-bit and a 16-bit word. The arrays below fail
// to compile if a field moves.
const rxParseOff = unsafe.Offsetof(RxPacket{}.Hash)

var (
	_ = [1]struct{}{}[unsafe.Offsetof(RxPacket{}.L3)-rxParseOff-4]
	_ = [1]struct{}{}[unsafe.Offsetof(RxPacket{}.L4)-rxParseOff-5]
	_ = [1]struct{}{}[unsafe.Offsetof(RxPacket{}.L3CsumErr)-rxParseOff-6]
	_ = [1]struct{}{}[unsafe.Offsetof(RxPacket{}.L4CsumErr)-rxParseOff-7]
	_ = [1]struct{}{}[unsafe.Offsetof(RxPacket{}.L4CsumChecked)-rxParseOff-8]
	_ = [1]struct{}{}[unsafe.Offsetof(RxPacket{}.IPv4Frag)-rxParseOff-9]
	_ = [1]struct{}{}[unsafe.Sizeof(spec.L3Proto(0))+unsafe.Sizeof(spec.L4Proto(0))-2]
)

// parseBytes views p's parse result (see rxParseOff).
func (p *RxPacket) parseBytes() *[10]byte { return (*[10]byte)(unsafe.Pointer(&p.Hash)) }
