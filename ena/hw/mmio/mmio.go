// Package mmio holds the only code that touches device memory: 32- and 64-bit
// register loads and stores as single machine instructions, and the barriers
// that order DMA-memory writes before doorbells.
//
// Why assembly: plain Go loads and stores through an unsafe pointer may be
// merged, forwarded or elided by the compiler (a store forwarded to the next
// load never reaches the device), and sync/atomic stores compile to XCHG on
// amd64, a locked read-then-write that would issue a device read before every
// doorbell. Each function here is one instruction plus RET, and a call into
// assembly is also a compiler barrier.
//
// Only amd64 and arm64 are supported: those are the architectures EC2 runs
// ENA on (x86 Nitro and Graviton).
package mmio

import "unsafe"

// Load32 performs one 32-bit load from device memory at addr
// (amd64 MOVL, arm64 LDR W).
//
//go:noescape
func Load32(addr unsafe.Pointer) uint32

// Store32 performs one 32-bit store to device memory at addr
// (amd64 MOVL, arm64 STR W). It never reads the location.
//
//go:noescape
func Store32(addr unsafe.Pointer, val uint32)

// Store64 performs one 64-bit store to device memory at addr
// (amd64 MOVQ, arm64 STR X).
//
//go:noescape
func Store64(addr unsafe.Pointer, val uint64)

// Copy64 copies words 64-bit words from src to dst with one 64-bit store per
// word in ascending address order, the way ENA drivers push LLQ entries into
// the write-combined memory BAR (protocol §8.3). It issues no barrier: call
// Flush after the last entry.
//
//go:noescape
func Copy64(dst, src unsafe.Pointer, words int)

// StoreBarrier orders all earlier stores to DMA memory before any later store
// to a device register (a doorbell).
//
// amd64: stores are not reordered with other stores (TSO) and uncached
// register stores are not buffered, so only a compiler barrier is needed,
// which the call itself is. arm64: DMB OSHST, the barrier Linux uses for
// dma_wmb/__iowmb, which orders stores to normal memory before stores to
// device memory in the outer-shareable domain.
//
//go:noescape
func StoreBarrier()

// Flush drains write-combining buffers: every earlier store, including stores
// to the WC-mapped LLQ BAR, is visible to the device before any later store.
//
// amd64: SFENCE (WC stores are weakly ordered). arm64: DSB ST.
//
//go:noescape
func Flush()

// ReadBarrier orders an earlier load (the phase word of a completion) before
// later loads of the rest of that completion.
//
// amd64: loads are not reordered with other loads; compiler barrier only.
// arm64: DMB OSHLD (Linux dma_rmb). Callers that load the phase word with
// sync/atomic (LDAR on arm64, acquire) already have this ordering; the
// barrier is for code that does not.
//
//go:noescape
func ReadBarrier()
