package enasim

import (
	"syscall"
	"unsafe"
)

// The real backend takes every DMA allocation from 2 MiB hugepages
// (vfio's dmaPool), so a ring of 9 KiB Rx buffers (2 MiB slabs, see
// rings' buffer pool) spans a few TLB entries there. With 4 KiB pages the
// model's Rx DMA writes and the driver's reads of the same buffers miss the
// TLB every few KiB, a cost the real system does not have. mapDMA
// therefore maps allocations of at least hugeDMAMin bytes on a 2 MiB
// boundary and asks the kernel to back the whole 2 MiB pages they touch
// with transparent hugepages (adviseHuge; a kernel that declines leaves
// ordinary pages, which only costs speed). The device still sees only the
// allocation, rounded to 4 KiB pages as before.

const (
	hugePageSize = 2 << 20
	// hugeDMAMin is the smallest allocation mapDMA puts on hugepages:
	// buffer slabs and large rings, not the many small rings and control
	// blocks, which would each waste most of a 2 MiB page.
	hugeDMAMin = 1 << 20
)

// mapDMA maps size bytes of zeroed memory and returns them as mem (the
// length rounded up to whole pages, so the IOMMU faults on what lies past
// it exactly as before) and the mmap'd range that contains it, which is
// what must be unmapped.
func mapDMA(size int) (mem, mapping []byte, err error) {
	prot, flags := syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE
	pg := syscall.Getpagesize()
	n := (size + pg - 1) &^ (pg - 1)
	if size < hugeDMAMin {
		mapping, err = syscall.Mmap(-1, 0, n, prot, flags)
		if err != nil {
			return nil, nil, err
		}
		return mapping[:n:n], mapping, nil
	}
	huge := (size + hugePageSize - 1) &^ (hugePageSize - 1)
	// One hugepage more than needed, so that an aligned range of whole
	// hugepages lies inside; the unused head and tail are never touched.
	mapping, err = syscall.Mmap(-1, 0, huge+hugePageSize, prot, flags)
	if err != nil {
		return nil, nil, err
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(mapping)))
	skip := int((hugePageSize - start%hugePageSize) % hugePageSize)
	adviseHuge(mapping[skip : skip+huge])
	return mapping[skip : skip+n : skip+n], mapping, nil
}
