package vfio

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/enanet/enanet/ena/hw"
	"github.com/enanet/enanet/ena/hw/mmio"
)

// mapping is one mmap of device memory. It may be built from several
// sparse areas over a PROT_NONE reservation, so it is kept as a raw base and
// length and indexed only after a bounds check.
type mapping struct {
	base unsafe.Pointer
	size uintptr
	// areas, when non-nil, are the [start, end) byte ranges actually
	// mapped; everything else in [0, size) is a hole (PROT_NONE) that the
	// kernel would not let us map (an MSI-X table).
	areas [][2]uintptr
}

// in reports whether [off, off+n) lies inside the mapping and, for a sparse
// mapping, inside one mapped area.
func (m *mapping) in(off uint32, n uintptr) bool {
	o := uintptr(off)
	if m.base == nil || o+n > m.size || o+n < o {
		return false
	}
	if m.areas == nil {
		return true
	}
	for _, a := range m.areas {
		if o >= a[0] && o+n <= a[1] {
			return true
		}
	}
	return false
}

func (m *mapping) unmap() error {
	if m.base == nil {
		return nil
	}
	err := unix.MunmapPtr(m.base, m.size)
	m.base = nil
	return err
}

// regBAR implements hw.RegisterBAR (BAR0) with one mmio.Load32/Store32 per
// call, so each call is exactly one uncached device access (protocol §2).
type regBAR struct{ m *mapping }

var _ hw.RegisterBAR = regBAR{}

// Read32 implements hw.RegisterBAR. An unaligned or out-of-range offset is a
// driver bug and panics rather than touching memory that is not the BAR.
func (r regBAR) Read32(off uint32) uint32 {
	r.check(off)
	return mmio.Load32(unsafe.Add(r.m.base, off))
}

// Write32 implements hw.RegisterBAR.
func (r regBAR) Write32(off, val uint32) {
	r.check(off)
	mmio.Store32(unsafe.Add(r.m.base, off), val)
}

// Size implements hw.RegisterBAR.
func (r regBAR) Size() uint32 { return uint32(r.m.size) }

func (r regBAR) check(off uint32) {
	if off&3 != 0 || !r.m.in(off, 4) {
		panic(fmt.Sprintf("vfio: register offset %#x is unaligned or outside BAR0 (size %#x)", off, r.m.size))
	}
}

// memBAR implements hw.MemoryBAR (BAR2, the LLQ memory) with 64-bit stores
// and an explicit flush (protocol §8.3).
type memBAR struct{ m *mapping }

var _ hw.MemoryBAR = memBAR{}

// WriteBlock implements hw.MemoryBAR.
func (b memBAR) WriteBlock(off uint32, src []byte) {
	if len(src) == 0 {
		return
	}
	if off&7 != 0 || len(src)&7 != 0 || !b.m.in(off, uintptr(len(src))) {
		panic(fmt.Sprintf("vfio: LLQ block of %d bytes at %#x is unaligned or outside BAR2 (size %#x)", len(src), off, b.m.size))
	}
	mmio.Copy64(unsafe.Add(b.m.base, off), unsafe.Pointer(&src[0]), len(src)/8)
}

// Flush implements hw.MemoryBAR.
func (b memBAR) Flush() { mmio.Flush() }

// Size implements hw.MemoryBAR.
func (b memBAR) Size() uint32 { return uint32(b.m.size) }

// mmapShared maps length bytes of fd at offset, read-write and shared.
func mmapShared(fd int, offset int64, length uintptr) (*mapping, error) {
	p, err := unix.MmapPtr(fd, offset, nil, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	return &mapping{base: p, size: length}, nil
}

// mmapSparse reserves size bytes of address space and maps only the given
// areas of fd (region offset + area offset) over it, leaving the rest
// inaccessible.
func mmapSparse(fd int, offset int64, size uintptr, areas []sparseMmapArea) (*mapping, error) {
	base, err := unix.MmapPtr(-1, 0, nil, size, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, err
	}
	m := &mapping{base: base, size: size, areas: [][2]uintptr{}}
	for _, a := range areas {
		if a.Size == 0 || a.Offset > uint64(size) || a.Size > uint64(size)-a.Offset {
			continue // an area outside the region: ignore rather than trust it
		}
		_, err := unix.MmapPtr(fd, offset+int64(a.Offset), unsafe.Add(base, a.Offset), uintptr(a.Size),
			unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_FIXED)
		if err != nil {
			_ = m.unmap()
			return nil, err
		}
		m.areas = append(m.areas, [2]uintptr{uintptr(a.Offset), uintptr(a.Offset + a.Size)})
	}
	return m, nil
}
