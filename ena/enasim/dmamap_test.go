package enasim

import (
	"syscall"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMapDMAHugeAligned: a buffer slab (here 227 × 9 KiB, as rings' buffer
// pool allocates them) is mapped on a 2 MiB boundary, rounded to 4 KiB
// pages only, inside the range that gets unmapped; a small ring keeps an
// ordinary mapping.
func TestMapDMAHugeAligned(t *testing.T) {
	mem, mapping, err := mapDMA(227 * 9216)
	require.NoError(t, err)
	start := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	assert.Zero(t, start%hugePageSize, "2 MiB aligned")
	assert.Equal(t, 511*4096, len(mem), "page-rounded, not hugepage-rounded")
	base := uintptr(unsafe.Pointer(unsafe.SliceData(mapping)))
	assert.True(t, start >= base && start+uintptr(len(mem)) <= base+uintptr(len(mapping)), "mem inside the mapping")
	mem[0], mem[len(mem)-1] = 1, 2 // writable end to end
	require.NoError(t, syscall.Munmap(mapping))

	small, mapping, err := mapDMA(5000)
	require.NoError(t, err)
	assert.Equal(t, 2*syscall.Getpagesize(), len(small))
	assert.Equal(t, len(small), len(mapping))
	require.NoError(t, syscall.Munmap(mapping))
}

// TestDMAAllocHugeFree: a hugepage-backed allocation is reachable through
// the IOMMU at its device address and unmapped by Free, after which the
// device address faults.
func TestDMAAllocHugeFree(t *testing.T) {
	a := newIOMMU()
	r, err := a.Alloc(hw2MiBSlab, 4096)
	require.NoError(t, err)
	require.Len(t, r.Bytes, hw2MiBSlab)
	require.NoError(t, a.Write(r.Addr+hw2MiBSlab-4, []byte{1, 2, 3, 4}))
	assert.Equal(t, []byte{1, 2, 3, 4}, r.Bytes[hw2MiBSlab-4:])
	assert.Error(t, a.Write(r.Addr+511*4096, []byte{1}), "past the last page")
	require.NoError(t, r.Free())
	assert.Error(t, a.Write(r.Addr, []byte{1}), "after Free")
	require.NoError(t, a.close())
}

const hw2MiBSlab = 227 * 9216
