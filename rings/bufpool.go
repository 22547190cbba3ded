package rings

import (
	"github.com/enanet/enanet/ena/hw"
)

// bufPool is a queue's packet buffers: n buffers of size bytes, carved from
// DMA slabs of at most hw.MaxAlloc. One slab would be simpler, but a ring of
// 1024 × 2 KiB buffers plus spares exceeds a 2 MiB hugepage, and without an
// IOMMU (EC2 non-metal) the device sees physical addresses, so nothing larger
// than a hugepage is guaranteed contiguous. Lookups by buffer id are two
// slice indexes on the hot path.
type bufPool struct {
	mem     [][]byte // buffer id -> its bytes (len size)
	addr    []uint64 // buffer id -> its device address
	regions []*hw.Region
}

// newBufPool allocates n buffers of size bytes (size a multiple of 64 and at
// most hw.MaxAlloc).
func newBufPool(dma hw.DMA, name, what string, n, size int) (*bufPool, error) {
	p := &bufPool{mem: make([][]byte, 0, n), addr: make([]uint64, 0, n)}
	perSlab := max(1, hw.MaxAlloc/size)
	for len(p.mem) < n {
		k := min(perSlab, n-len(p.mem))
		r, err := alloc(dma, name, what, k*size, ringAlign)
		if err != nil {
			p.free()
			return nil, err
		}
		p.regions = append(p.regions, r)
		for i := 0; i < k; i++ {
			p.mem = append(p.mem, r.Bytes[i*size:(i+1)*size:(i+1)*size])
			p.addr = append(p.addr, r.Addr+uint64(i*size))
		}
	}
	return p, nil
}

// free releases every slab; it returns the first error.
func (p *bufPool) free() error {
	if p == nil {
		return nil
	}
	var first error
	for i := range p.regions {
		if err := freeRegions(&p.regions[i]); err != nil && first == nil {
			first = err
		}
	}
	p.regions, p.mem, p.addr = nil, nil, nil
	return first
}
