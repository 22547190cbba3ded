package vfio

import (
	"bufio"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/enanet/enanet/ena/hw"
)

// HugePageSize is the page size all DMA memory comes from. 2 MiB pages keep
// IOTLB misses away under an IOMMU and give physically contiguous blocks in
// no-IOMMU mode, where the device sees physical addresses.
const HugePageSize = 2 << 20

// addrMode says how a DMA chunk gets its device address.
type addrMode int

const (
	// addrIOVA: type1 IOMMU; we pick IOVAs from the ranges the IOMMU
	// translates and VFIO_IOMMU_MAP_DMA maps them to our pages.
	addrIOVA addrMode = iota
	// addrPhysMapped: type1 IOMMU, but each chunk is mapped at IOVA ==
	// its physical address. The QEMU proxy rig needs it because the
	// remote device model bypasses the guest's vIOMMU.
	addrPhysMapped
	// addrPhys: no-IOMMU; the device address is the physical address
	// (from /proc/self/pagemap) and nothing is mapped.
	addrPhys
)

// dmaMapper maps and unmaps IOVA ranges in the IOMMU (the VFIO container).
type dmaMapper interface {
	mapDMA(va uintptr, iova, size uint64) error
	unmapDMA(iova, size uint64) error
}

// dmaPool implements hw.DMA: a bump allocator over 2 MiB hugepage chunks.
// Small allocations share a chunk; a chunk whose allocations are all freed
// is reused from its start. Allocations larger than a hugepage get a chunk
// of their own (and must be physically contiguous when the device sees
// physical addresses).
type dmaPool struct {
	mu      sync.Mutex
	mode    addrMode
	mapper  dmaMapper // nil in no-IOMMU mode
	iova    *iovaAllocator
	width   int
	meminfo string // /proc/meminfo, for error messages
	pmPath  string // /proc/self/pagemap
	pm      *os.File
	chunks  []*chunk
	cur     *chunk
	closed  bool
}

// chunk is one hugepage mapping.
type chunk struct {
	mem       []byte
	addr      uint64 // device address of mem[0]
	off       int    // bump pointer
	live      int    // allocations not yet freed
	mapped    bool   // IOVA mapping to undo
	dedicated bool   // one large allocation; released on Free
}

var _ hw.DMA = (*dmaPool)(nil)

// AddrWidth implements hw.DMA.
func (p *dmaPool) AddrWidth() int { return p.width }

// Alloc implements hw.DMA.
func (p *dmaPool) Alloc(size, align int) (*hw.Region, error) {
	if size <= 0 {
		return nil, fmt.Errorf("vfio: DMA alloc: size %d must be positive", size)
	}
	if align <= 0 {
		align = 1
	}
	if align&(align-1) != 0 || align > HugePageSize {
		return nil, fmt.Errorf("vfio: DMA alloc: alignment %d must be a power of two no larger than 2 MiB", align)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, hw.ErrClosed
	}
	if size > HugePageSize {
		c, err := p.newChunk((size + HugePageSize - 1) &^ (HugePageSize - 1))
		if err != nil {
			return nil, err
		}
		c.dedicated = true
		return p.carve(c, 0, size), nil
	}
	c := p.cur
	if c == nil || alignUp(c.off, align)+size > len(c.mem) {
		c = nil
		for _, o := range p.chunks {
			if !o.dedicated && o.live == 0 {
				c = o
				break
			}
		}
		if c == nil {
			var err error
			if c, err = p.newChunk(HugePageSize); err != nil {
				return nil, err
			}
		}
		p.cur = c
	}
	return p.carve(c, alignUp(c.off, align), size), nil
}

// carve hands out c.mem[off:off+size], zeroed, and counts it live.
func (p *dmaPool) carve(c *chunk, off, size int) *hw.Region {
	b := c.mem[off : off+size : off+size]
	clear(b)
	c.off = off + size
	c.live++
	return hw.NewRegion(b, c.addr+uint64(off), func() error { return p.free(c) })
}

// free drops one allocation from c. Memory of a closed pool is already
// gone, so freeing after Close is a no-op.
func (p *dmaPool) free(c *chunk) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	c.live--
	if c.live > 0 {
		return nil
	}
	c.off = 0
	if !c.dedicated {
		return nil
	}
	for i, o := range p.chunks {
		if o == c {
			p.chunks = append(p.chunks[:i], p.chunks[i+1:]...)
			break
		}
	}
	return p.release(c)
}

// newChunk maps n bytes of hugepages, locks and pre-faults them, finds their
// device address and maps them in the IOMMU when there is one.
func (p *dmaPool) newChunk(n int) (*chunk, error) {
	mem, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_SHARED|unix.MAP_ANONYMOUS|unix.MAP_HUGETLB|unix.MAP_HUGE_2MB|unix.MAP_POPULATE)
	if err != nil {
		if errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.EINVAL) {
			return nil, hugepageError(p.meminfo, n, err)
		}
		return nil, errorf("allocate DMA memory", err, "mmap %d bytes of 2 MiB hugepages", n)
	}
	c := &chunk{mem: mem}
	if err := unix.Mlock(mem); err != nil {
		_ = unix.Munmap(mem)
		return nil, memlockError("lock DMA memory", n, err)
	}
	// The child of a fork must not share (and copy-on-write) pages the
	// device writes into.
	_ = unix.Madvise(mem, unix.MADV_DONTFORK)
	// Pre-fault: MAP_POPULATE already did, but a write makes sure every
	// page is present and writable before its address goes to the device.
	for off := 0; off < n; off += HugePageSize {
		mem[off] = 0
	}
	switch p.mode {
	case addrPhys, addrPhysMapped:
		pa, err := p.physContiguous(mem)
		if err != nil {
			_ = unix.Munmap(mem)
			return nil, err
		}
		c.addr = pa
	case addrIOVA:
		a, err := p.iova.alloc(uint64(n))
		if err != nil {
			_ = unix.Munmap(mem)
			return nil, err
		}
		c.addr = a
	}
	if p.mapper != nil {
		if err := p.mapper.mapDMA(uintptr(unsafe.Pointer(&mem[0])), c.addr, uint64(n)); err != nil {
			_ = unix.Munmap(mem)
			return nil, err
		}
		c.mapped = true
	}
	if w := bits.Len64(c.addr + uint64(n) - 1); w > p.width {
		_ = p.release(c)
		return nil, &Error{Op: "allocate DMA memory", Kind: ErrUnsupported,
			Cause: fmt.Sprintf("device address %#x is wider than %d bits", c.addr, p.width)}
	}
	p.chunks = append(p.chunks, c)
	return c, nil
}

// physContiguous returns the physical address of mem and checks that every
// hugepage in it follows the previous one physically.
func (p *dmaPool) physContiguous(mem []byte) (uint64, error) {
	if p.pm == nil {
		f, err := os.Open(p.pmPath)
		if err != nil {
			return 0, pagemapError(p.pmPath, err)
		}
		p.pm = f
	}
	var first uint64
	for off := 0; off < len(mem); off += HugePageSize {
		pa, err := physAddr(p.pm, uintptr(unsafe.Pointer(&mem[off])))
		if err != nil {
			return 0, err
		}
		if off == 0 {
			first = pa
		} else if pa != first+uint64(off) {
			return 0, &Error{Op: "allocate DMA memory", Kind: ErrUnsupported,
				Cause: fmt.Sprintf("%d bytes are not physically contiguous (hugepage at +%#x is at %#x, not %#x)", len(mem), off, pa, first+uint64(off)),
				Fix:   "keep each DMA allocation within 2 MiB when the device sees physical addresses (no-IOMMU mode)"}
		}
	}
	return first, nil
}

// release undoes newChunk.
func (p *dmaPool) release(c *chunk) error {
	var err error
	if c.mapped && p.mapper != nil {
		err = p.mapper.unmapDMA(c.addr, uint64(len(c.mem)))
	}
	if e := unix.Munmap(c.mem); e != nil && err == nil {
		err = fmt.Errorf("vfio: unmap DMA memory: %w", e)
	}
	c.mem = nil
	return err
}

// close releases every chunk. The caller must have stopped the device
// (bus mastering off) first, since the memory goes back to the kernel.
func (p *dmaPool) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	for _, c := range p.chunks {
		if err := p.release(c); err != nil {
			errs = append(errs, err)
		}
	}
	p.chunks, p.cur = nil, nil
	if p.pm != nil {
		p.pm.Close()
		p.pm = nil
	}
	return errors.Join(errs...)
}

func alignUp(n, a int) int { return (n + a - 1) &^ (a - 1) }

// Pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst).
const (
	pagemapPresent = 1 << 63
	pagemapPFNMask = 1<<55 - 1
)

// physAddr translates one virtual address through an open
// /proc/self/pagemap. The page must be present (locked memory is).
func physAddr(pm *os.File, va uintptr) (uint64, error) {
	ps := uintptr(os.Getpagesize())
	var e [8]byte
	if _, err := pm.ReadAt(e[:], int64(va/ps)*8); err != nil {
		return 0, pagemapError(pm.Name(), err)
	}
	ent := uint64(e[0]) | uint64(e[1])<<8 | uint64(e[2])<<16 | uint64(e[3])<<24 |
		uint64(e[4])<<32 | uint64(e[5])<<40 | uint64(e[6])<<48 | uint64(e[7])<<56
	if ent&pagemapPresent == 0 {
		return 0, errorf("translate DMA address", nil, "page at %#x is not present in memory", va)
	}
	pfn := ent & pagemapPFNMask
	if pfn == 0 {
		return 0, &Error{Op: "translate DMA address", Kind: ErrPermission,
			Cause: pm.Name() + " hides physical addresses (page frame 0) from this process",
			Fix:   "run as root (reading physical addresses needs CAP_SYS_ADMIN; no-IOMMU mode needs it anyway)"}
	}
	return pfn*uint64(ps) + uint64(va%ps), nil
}

// PhysAddr returns the physical address of b[0] from /proc/self/pagemap.
// b must be locked memory (mlock or a hugepage mapping); it is exported for
// diagnostics and tests.
func PhysAddr(b []byte) (uint64, error) {
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return 0, pagemapError("/proc/self/pagemap", err)
	}
	defer f.Close()
	pa, err := physAddr(f, uintptr(unsafe.Pointer(&b[0])))
	runtime.KeepAlive(b)
	return pa, err
}

func pagemapError(path string, err error) error {
	if errors.Is(err, os.ErrPermission) {
		return &Error{Op: "open " + path, Kind: ErrPermission, Err: err,
			Fix: "run as root (no-IOMMU mode needs physical addresses)"}
	}
	return errorf("read "+path, err, "")
}

// hugepageError explains a failed hugepage mapping with the numbers from
// /proc/meminfo and the commands that reserve more.
func hugepageError(meminfo string, n int, err error) error {
	total, free := meminfoHuge(meminfo)
	need := n / HugePageSize
	want := max(64, total+need)
	return &Error{Op: "allocate DMA memory", Kind: ErrHugepages, Err: err,
		Cause: fmt.Sprintf("need %d free 2 MiB hugepage(s), have %d free of %d reserved", need, free, total),
		Fix: fmt.Sprintf("reserve more with `echo %d > /proc/sys/vm/nr_hugepages` (or `enactl setup`), or boot with hugepagesz=2M hugepages=%d",
			want, want)}
}

// meminfoHuge reads HugePages_Total and HugePages_Free; -1 when unknown.
func meminfoHuge(path string) (total, free int) {
	total, free = -1, -1
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			continue
		}
		switch k {
		case "HugePages_Total":
			total = n
		case "HugePages_Free":
			free = n
		}
	}
	return
}

// memlockError explains a failure to pin memory.
func memlockError(op string, n int, err error) error {
	var lim unix.Rlimit
	cur := "unknown"
	if unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim) == nil {
		if lim.Cur == unix.RLIM_INFINITY {
			cur = "unlimited"
		} else {
			cur = fmt.Sprintf("%d KiB", lim.Cur/1024)
		}
	}
	return &Error{Op: op, Kind: ErrMemlock, Err: err,
		Cause: fmt.Sprintf("cannot pin %d bytes (locked-memory limit %s)", n, cur),
		Fix:   "raise the limit: `ulimit -l unlimited` in the shell, LimitMEMLOCK=infinity in a systemd unit, or `* - memlock unlimited` in /etc/security/limits.conf; or run as root"}
}

// iovaAllocator hands out 2 MiB-aligned IOVA ranges from the ranges the
// IOMMU reports. It never reuses space: the IOVA space is far larger than
// any hugepage reservation.
type iovaAllocator struct {
	ranges []iovaRange
	next   uint64
}

// defaultIOVARanges are used when the kernel does not report ranges: 48-bit
// space without the x86 MSI window.
var defaultIOVARanges = []iovaRange{{0, 0xfedfffff}, {0xfef00000, 1<<48 - 1}}

func (a *iovaAllocator) alloc(n uint64) (uint64, error) {
	for _, r := range a.ranges {
		start := max(a.next, r.Start, HugePageSize) // never hand out address 0
		start = (start + HugePageSize - 1) &^ (HugePageSize - 1)
		if start < r.Start || start > r.End || r.End-start < n-1 {
			continue
		}
		a.next = start + n
		return start, nil
	}
	return 0, errorf("allocate IOVA", nil, "no room for %d bytes in the IOMMU's ranges %v", n, a.ranges)
}

// width is the number of bits of the highest address the allocator could
// hand out.
func (a *iovaAllocator) width() int {
	w := 0
	for _, r := range a.ranges {
		w = max(w, bits.Len64(r.End))
	}
	return w
}

// physAddrBits is the CPU's physical address width from /proc/cpuinfo (x86
// "address sizes"), or 48 when unknown, the width of EC2's Graviton and x86
// instances.
func physAddrBits() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "address sizes" {
				var n int
				if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d bits physical", &n); err == nil && n > 0 {
					return n
				}
			}
		}
	}
	return 48
}
