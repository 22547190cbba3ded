// Package dmamem is the one home of every access to DMA memory that needs
// ordering: the word a producer writes last to hand an entry over (a
// completion's phase, a readless response's req_id) and the word a consumer
// reads first to find out whether the entry is its own yet. The driver
// (package ena and rings) reads with Acquire32; the device model (package
// ena/enasim) and test fakes, which play the device, write with Publish32.
// Everything else in an entry is read or written with plain loads and
// stores, ordered by these two calls.
//
// The package knows no layout: which word carries the phase and what it must
// equal stays with each side, so the model still decides on its own what a
// device writes, and the driver what it accepts. Shared here is only how a
// word crosses between them.
//
// # The protocol
//
// A device writes a completion body first and its phase word last; the
// driver loads the phase word first and reads the body only when the phase
// is the one it expects on this lap (protocol §4.1 ACQ, §5.4 AENQ, §7.8 I/O
// CQs). The readless register read is the same hand-over with the req_id
// word in the phase's place (§3). Vendor drivers write this as a plain load
// of the phase, then a read barrier (Linux dma_rmb), then the body.
//
// # What sync/atomic gives on each architecture
//
// Both architectures EC2 runs ENA on are little-endian, so a native 32-bit
// load or store is the wire byte order and needs no swapping.
//
//   - amd64 (x86-TSO): atomic.LoadUint32 is a plain MOVL, and x86 never
//     reorders a load with a later load, so the body loads cannot pass the
//     phase load; the compiler treats the atomic as a barrier, so it cannot
//     hoist them either. atomic.StoreUint32 is XCHGL, a locked store that
//     is a full fence: every earlier store is visible first.
//   - arm64: atomic.LoadUint32 is LDARW, a load-acquire: no later load or
//     store is performed before it, which is what DMB OSHLD after a plain
//     load gives Linux. atomic.StoreUint32 is STLRW, a store-release: every
//     earlier load and store is observed before it.
//
// DMA memory is ordinary cacheable memory on both (coherent DMA: VFIO maps
// hugepages, the model uses process memory), so the CPU's memory model is
// the whole story for these words. Go's memory model also makes the pair a
// synchronisation edge, so the race detector understands a model goroutine
// publishing an entry that the driver's goroutine then reads.
//
// # What is not here
//
// Ordering DMA writes before a device register store (the doorbell) and
// draining write-combined LLQ stores are about device memory, not DMA
// memory: they belong to package mmio (StoreBarrier, Flush), which holds the
// assembly that touches registers (§7.8 SQ doorbell, §8.3). Descriptors the
// driver writes into a host-memory SQ need no ordering among themselves: the
// device reads them only after the doorbell, and StoreBarrier orders them
// before it.
//
// Words must be 4-byte aligned: arm64 faults on an unaligned LDAR or STLR.
// Rings and response buffers are allocated page-aligned, so driver offsets
// always are; code that takes addresses from an untrusted driver (the model)
// checks Aligned32 first.
//
// In comments, "§n.m" refers to that section of docs/protocol.md.
package dmamem

import (
	"sync/atomic"
	"unsafe"
)

// Acquire32 loads the 32-bit little-endian word at b[off] with one atomic
// load-acquire: loads of the rest of the entry made after it see at least
// what the writer stored before publishing this word. Use it for the phase
// or req_id word of an entry the device hands over, before reading anything
// else of that entry. b[off:off+4] must lie inside b and be 4-byte aligned.
func Acquire32(b []byte, off int) uint32 {
	return atomic.LoadUint32(word(b, off))
}

// Publish32 stores the 32-bit little-endian word v at b[off] with one
// atomic store-release: a reader that sees v with Acquire32 also sees every
// store made before this call. The device side (the model, test fakes)
// uses it to hand an entry over after writing its body; the driver uses it
// for a word the device may write at the same time (the readless poison
// value, §3). b[off:off+4] must lie inside b and be 4-byte aligned.
func Publish32(b []byte, off int, v uint32) {
	atomic.StoreUint32(word(b, off), v)
}

// Aligned32 reports whether b[off:off+4] lies inside b and starts on a
// 4-byte boundary, as Acquire32 and Publish32 require.
func Aligned32(b []byte, off int) bool {
	return off >= 0 && off+4 <= len(b) && (uintptr(unsafe.Pointer(unsafe.SliceData(b)))+uintptr(off))&3 == 0
}

// word points at b[off:off+4], panicking like an index expression when that
// is not inside b. It slices rather than indexes b[off+3], because the race
// detector counts an index expression as a plain read of that byte, which
// would race with the other side's atomic access to the same word.
func word(b []byte, off int) *uint32 {
	w := b[off : off+4 : len(b)]
	return (*uint32)(unsafe.Pointer(unsafe.SliceData(w)))
}
