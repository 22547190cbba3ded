// Package mmio holds the only code that touches device memory: 32-bit
// register loads and stores and 64-bit LLQ block stores as single machine
// instructions, and the barriers that order DMA-memory writes before
// doorbells (protocol §7.8, §8.3).
//
// Reading what the device wrote into DMA memory (completions, readless
// responses) needs no barrier from this package: the phase word is read
// with an acquire load from package dmamem, which orders the loads of the
// rest of the entry after it on both architectures.
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
//
// In comments, "§n.m" refers to that section of docs/protocol.md.
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
