// Package hw is the one seam through which the ENA driver touches a device.
//
// The driver (package ena and rings) imports only this package. Two backends
// implement it: package vfio drives a real ENA through Linux VFIO, and package
// ena/enasim serves a software model of the device. Neither backend is imported
// by the driver, so the same driver code runs on EC2 and on a laptop.
//
// The seam is deliberately small; it is what a PCI function offers a driver:
//
//   - Registers: 32-bit loads and stores to BAR0 (protocol §2). A backend must
//     issue exactly one device access per call: no merging, no read-for-write.
//   - LLQ memory: ordered 64-bit stores into BAR2 and a flush that makes them
//     visible before the next doorbell (protocol §8.3).
//   - DMA memory: allocate device-visible memory outside the Go heap and learn
//     its device address (the address written into descriptors).
//   - Interrupts: wait on an MSI-X vector with a context; wake waiters on
//     shutdown.
//   - Identity: PCI vendor, device and revision (revision bit 0 chooses plain
//     or readless register reads, protocol §1.1).
//
// Ordering contract. Writes the driver makes to DMA memory must be visible to
// the device before a later register store (a doorbell). Backends implement
// RegisterBAR.Write32 so that a plain call is enough on amd64, where stores are
// not reordered with each other; the driver still calls mmio.StoreBarrier before
// every doorbell, which is what arm64 needs (DMB OSHST). In the other
// direction, the word that hands a device-written entry to the driver (a
// completion's phase, a readless response's req_id) is read with
// dmamem.Acquire32 before anything else of the entry, and the device model
// writes it last with dmamem.Publish32: package dmamem documents that
// ordering for both architectures.
//
// In comments, "§n.m" refers to that section of docs/protocol.md.
package hw

import (
	"context"
	"errors"
	"fmt"
)

// PCI identity constants (protocol §1.1).
const (
	VendorAmazon  = 0x1D0F
	DeviceENAVF   = 0xEC20 // ENA virtual function: what EC2 guests see.
	DeviceENALLQ  = 0xEC21 // ENA VF "with LLQ".
	DeviceENAPF   = 0x0EC2 // ENA physical function.
	DeviceENAPFLQ = 0x1EC2 // ENA PF "with LLQ".

	// RevisionNoReadless is revision-id bit 0: when set the driver must use
	// plain register loads instead of readless reads (protocol §1.1, §3).
	RevisionNoReadless = 0x01
)

// Identity is what PCI config space says about the function.
type Identity struct {
	Vendor   uint16
	Device   uint16
	Revision uint8
	// Address is a human-readable location: a PCI address such as
	// "0000:00:06.0" for real hardware, or "sim0" for the model.
	Address string
}

// IsENA reports whether the vendor and device id name an ENA function.
func (id Identity) IsENA() bool {
	if id.Vendor != VendorAmazon {
		return false
	}
	switch id.Device {
	case DeviceENAVF, DeviceENALLQ, DeviceENAPF, DeviceENAPFLQ:
		return true
	}
	return false
}

// Readless reports whether the driver must use readless register reads.
func (id Identity) Readless() bool { return id.Revision&RevisionNoReadless == 0 }

func (id Identity) String() string {
	return fmt.Sprintf("%s %04x:%04x rev %02x", id.Address, id.Vendor, id.Device, id.Revision)
}

// RegisterBAR is BAR0, the register space. Offsets are byte offsets from the
// start of the BAR and must be 4-byte aligned and inside the BAR; an offset
// outside it is a driver bug and backends may panic on it.
//
// Each call is exactly one 32-bit device access. Read32 of a register that has
// side effects on read is never issued by the driver (no ENA register has read
// side effects, but the proxy rig checks that the driver never reads a register
// it only writes).
type RegisterBAR interface {
	Read32(off uint32) uint32
	Write32(off uint32, val uint32)
	// Size is the BAR's length in bytes.
	Size() uint32
}

// MemoryBAR is BAR2, the LLQ device memory, mapped write-combining on real
// hardware. Stores may be buffered and combined; Flush makes every earlier
// store visible to the device before any later register store. The driver
// only ever writes whole LLQ entries, so a block store is the one write.
type MemoryBAR interface {
	// WriteBlock stores src (length a multiple of 8) at off with 64-bit stores
	// in ascending address order, as every ENA driver does for LLQ entries
	// (protocol §8.3).
	WriteBlock(off uint32, src []byte)
	// Flush orders the stores above before later stores (SFENCE on amd64,
	// DSB ST on arm64). The driver calls it before ringing a doorbell.
	Flush()
	// Size is the BAR's length in bytes.
	Size() uint32
}

// DMA allocates memory the device can read and write.
type DMA interface {
	// Alloc returns size bytes aligned to align (a power of two, at least
	// 4096 for rings), zeroed, outside the Go heap, physically contiguous
	// (one IOVA range). The memory stays valid until Free.
	//
	// Keep each allocation at or below MaxAlloc: on real hardware without an
	// IOMMU the device sees physical addresses, and only a single 2 MiB
	// hugepage is guaranteed to be physically contiguous. Larger requests
	// may fail there even when they succeed in the model.
	Alloc(size, align int) (*Region, error)
	// AddrWidth is the number of address bits the backend can hand out
	// (device addresses are below 1<<AddrWidth).
	AddrWidth() int
}

// MaxAlloc is the largest DMA allocation that is portable across backends:
// one 2 MiB hugepage (see DMA.Alloc).
const MaxAlloc = 2 << 20

// Region is one DMA allocation.
type Region struct {
	// Bytes is the memory as the CPU sees it. It is not Go heap memory:
	// never store Go pointers in it.
	Bytes []byte
	// Addr is the device (bus) address of Bytes[0]: an IOVA under an IOMMU,
	// a physical address in VFIO no-IOMMU mode, a model address in enasim.
	Addr uint64
	// free releases the region; set by the backend.
	free func() error
}

// NewRegion is for backends: it builds a Region whose Free calls free.
func NewRegion(b []byte, addr uint64, free func() error) *Region {
	return &Region{Bytes: b, Addr: addr, free: free}
}

// Free returns the region to its backend. It is safe to call twice.
func (r *Region) Free() error {
	if r == nil || r.free == nil {
		return nil
	}
	f := r.free
	r.free = nil
	r.Bytes = nil
	return f()
}

// ErrClosed is returned by waits and operations on a closed device.
var ErrClosed = errors.New("hw: device closed")

// Interrupts are the MSI-X vectors. Vector 0 is the management vector (admin
// completions and AENQ events); vector 1+q belongs to I/O queue pair q
// (protocol §1.2).
type Interrupts interface {
	// NumVectors is how many vectors the device offers; 0 means the backend
	// cannot deliver interrupts (polling only, as under the QEMU proxy).
	NumVectors() int
	// Wait blocks until vector fires at least once since the previous Wait
	// returned, ctx is done, or Wake is called for that vector. It returns
	// the number of interrupts collected (0 after a Wake or ctx error).
	Wait(ctx context.Context, vector int) (uint64, error)
	// Wake releases current and future waiters on vector once, without an
	// interrupt; used on shutdown.
	Wake(vector int)
}

// Device is a PCI ENA function as the driver sees it.
type Device interface {
	Identity() Identity
	Registers() RegisterBAR
	// LLQ returns BAR2, or nil when the device has no memory BAR (the driver
	// then falls back to host-mode Tx).
	LLQ() MemoryBAR
	DMA() DMA
	Interrupts() Interrupts
	// Close releases the device (mappings, vectors, file descriptors). Safe
	// to call twice.
	Close() error
}
