package rings

// The package's unsafe views of memory, apart from store64 (store_le.go:
// a plain 64-bit store, built only for little-endian architectures).

import (
	"encoding/binary"
	"unsafe"
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
