package vfio

import (
	"errors"
	"github.com/enanet/enanet/internal/testenv"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func needRoot(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t) // pagemap physical addresses, hugepage reservation
}

const nrHugepages = "/proc/sys/vm/nr_hugepages"

// setHugepages sets nr_hugepages for the test and restores the old value.
func setHugepages(t *testing.T, f func(old int) int) {
	t.Helper()
	b, err := os.ReadFile(nrHugepages)
	if err != nil {
		testenv.Missing(t, "hugepage support (%s): %v", nrHugepages, err)
	}
	old, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(nrHugepages, []byte(strconv.Itoa(old)), 0o644); err != nil {
			t.Errorf("restore %s to %d: %v", nrHugepages, old, err)
		}
	})
	if err := os.WriteFile(nrHugepages, []byte(strconv.Itoa(f(old))), 0o644); err != nil {
		testenv.Missing(t, "permission to set %s: %v", nrHugepages, err)
	}
}

func TestPagemapLockedMemory(t *testing.T) {
	needRoot(t)
	ps := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, 4*ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	if err := unix.Mlock(mem); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		mem[i*ps] = byte(i + 1)
	}
	pa, err := PhysAddr(mem)
	if err != nil {
		t.Fatal(err)
	}
	if pa == 0 || pa%uint64(ps) != 0 {
		t.Fatalf("physical address %#x: want non-zero and page aligned", pa)
	}
	again, err := PhysAddr(mem)
	if err != nil || again != pa {
		t.Fatalf("locked page moved: %#x then %#x (%v)", pa, again, err)
	}
	off, err := PhysAddr(mem[100:])
	if err != nil || off != pa+100 {
		t.Fatalf("offset within the page: %#x, want %#x (%v)", off, pa+100, err)
	}
}

// fakeMapper records IOMMU map calls.
type fakeMapper struct{ mapped map[uint64]uint64 }

func (f *fakeMapper) mapDMA(va uintptr, iova, size uint64) error {
	f.mapped[iova] = size
	return nil
}

func (f *fakeMapper) unmapDMA(iova, size uint64) error {
	if f.mapped[iova] != size {
		return errors.New("unmap of something never mapped")
	}
	delete(f.mapped, iova)
	return nil
}

func TestHugepagePoolPhysical(t *testing.T) {
	needRoot(t)
	setHugepages(t, func(old int) int { return old + 4 })
	p := &dmaPool{mode: addrPhys, width: physAddrBits(), meminfo: "/proc/meminfo", pmPath: "/proc/self/pagemap"}
	defer p.close()
	a, err := p.Alloc(4096, 4096)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Alloc(100, 64)
	if err != nil {
		t.Fatal(err)
	}
	if a.Addr == 0 || a.Addr%4096 != 0 || b.Addr != a.Addr+4096 || len(b.Bytes) != 100 {
		t.Fatalf("regions a=%#x b=%#x len %d", a.Addr, b.Addr, len(b.Bytes))
	}
	for _, r := range []struct {
		b    []byte
		addr uint64
	}{{a.Bytes, a.Addr}, {b.Bytes, b.Addr}, {a.Bytes[4000:], a.Addr + 4000}} {
		pa, err := PhysAddr(r.b)
		if err != nil || pa != r.addr {
			t.Fatalf("pagemap says %#x, region says %#x (%v)", pa, r.addr, err)
		}
	}
	for i := range a.Bytes {
		if a.Bytes[i] != 0 {
			t.Fatal("fresh region not zeroed")
		}
	}
	a.Bytes[0] = 0xaa
	// Free both; the chunk is reused from the start and zeroed again.
	if err := a.Free(); err != nil {
		t.Fatal(err)
	}
	if err := b.Free(); err != nil {
		t.Fatal(err)
	}
	if err := b.Free(); err != nil {
		t.Fatal("second Free:", err)
	}
	c, err := p.Alloc(8192, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != a.Addr || c.Bytes[0] != 0 {
		t.Fatalf("reused region at %#x (want %#x), first byte %#x", c.Addr, a.Addr, c.Bytes[0])
	}
	if _, err := p.Alloc(100, 3); err == nil {
		t.Fatal("alignment 3 accepted")
	}
	if _, err := p.Alloc(0, 8); err == nil {
		t.Fatal("size 0 accepted")
	}
	// A region larger than a hugepage must be physically contiguous; it
	// may or may not be, but the answer must be consistent.
	big, err := p.Alloc(3<<20, 4096)
	if err == nil {
		end, perr := PhysAddr(big.Bytes[len(big.Bytes)-1:])
		if perr != nil || end != big.Addr+uint64(len(big.Bytes))-1 {
			t.Fatalf("large region not contiguous: end %#x, start %#x", end, big.Addr)
		}
		if err := big.Free(); err != nil {
			t.Fatal(err)
		}
	} else if !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrHugepages) {
		t.Fatalf("large region: %v", err)
	}
	if err := p.close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Free(); err != nil {
		t.Fatal("Free after close:", err)
	}
	if _, err := p.Alloc(64, 64); err == nil {
		t.Fatal("Alloc after close succeeded")
	}
}

func TestHugepagePoolIOVA(t *testing.T) {
	needRoot(t)
	setHugepages(t, func(old int) int { return old + 2 })
	m := &fakeMapper{mapped: map[uint64]uint64{}}
	p := &dmaPool{mode: addrIOVA, iova: &iovaAllocator{ranges: defaultIOVARanges}, mapper: m, width: 48, meminfo: "/proc/meminfo"}
	r, err := p.Alloc(1<<20, 4096)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := p.Alloc(1<<20+1, 64) // does not fit the rest of the first chunk
	if err != nil {
		t.Fatal(err)
	}
	if r.Addr != HugePageSize || r2.Addr != 2*HugePageSize || len(m.mapped) != 2 {
		t.Fatalf("IOVAs %#x %#x, mapped %v", r.Addr, r2.Addr, m.mapped)
	}
	if err := p.close(); err != nil {
		t.Fatal(err)
	}
	if len(m.mapped) != 0 {
		t.Fatalf("close left IOMMU mappings %v", m.mapped)
	}
}

func TestHugepagesMissing(t *testing.T) {
	needRoot(t)
	setHugepages(t, func(int) int { return 0 })
	if _, free := meminfoHuge("/proc/meminfo"); free != 0 {
		t.Skipf("%d hugepages still free (surplus or in use elsewhere)", free)
	}
	p := &dmaPool{mode: addrPhys, width: 64, meminfo: "/proc/meminfo", pmPath: "/proc/self/pagemap"}
	defer p.close()
	_, err := p.Alloc(4096, 4096)
	wantErr(t, err, ErrHugepages, "have 0 free", "echo 64 > /proc/sys/vm/nr_hugepages", "enactl setup")
}
