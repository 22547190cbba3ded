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

// newBufPool allocates n buffers of size bytes (at most hw.MaxAlloc - 64),
// bufStride bytes apart.
func newBufPool(dma hw.DMA, name, what string, n, size int) (*bufPool, error) {
	p := &bufPool{mem: make([][]byte, 0, n), addr: make([]uint64, 0, n)}
	stride := bufStride(size)
	perSlab := max(1, hw.MaxAlloc/stride)
	for len(p.mem) < n {
		k := min(perSlab, n-len(p.mem))
		r, err := alloc(dma, name, what, k*stride, ringAlign)
		if err != nil {
			p.free()
			return nil, err
		}
		p.regions = append(p.regions, r)
		for i := 0; i < k; i++ {
			off := i * stride
			p.mem = append(p.mem, r.Bytes[off:off+size:off+size])
			p.addr = append(p.addr, r.Addr+uint64(off))
		}
	}
	return p, nil
}

// bufStride is the distance from one buffer of size bytes to the next in
// a slab: size rounded up to whole 64-byte cache lines, plus one line when
// that makes an even number of lines. Every frame touches its buffer's
// first line (the headers: the driver's Tx copy, the device's DMA, link's
// Rx copy). At a stride of a power of two, as with 2 KiB buffers, those
// first lines fall into 2 of the 64 sets of a 32 KiB 8-way L1 cache (and
// into as few of L2's), so 32 buffers in use already evict each other;
// at an odd number of lines they spread over every set. The cost is at
// most one line per buffer (3 % for 2 KiB).
func bufStride(size int) int {
	stride := (size + 63) &^ 63
	if stride/64%2 == 0 {
		stride += 64
	}
	return stride
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
