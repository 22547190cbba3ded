package qemurig

import (
	"encoding/binary"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// GuestMemory is the guest's RAM as QEMU shares it through SYNC_SYSMEM
// (QEMU 7.2 hw/remote/memory.c): a list of memfd sections, each mapped here at its guest
// physical address. The device model reaches guest memory only through it, by
// guest-physical address, which is what the guest driver programs into the
// device (the proxy bypasses any vIOMMU).
type GuestMemory struct {
	mu      sync.RWMutex
	regions []ramRegion
	// retired holds mappings replaced by a later SYNC_SYSMEM. They stay
	// mapped until Close: the model may still hold a slice of one, and a
	// mapping of the same memfd costs only address space.
	retired []ramRegion
}

type ramRegion struct {
	gpa  uint64
	mem  []byte // mmap(fd, off, size, MAP_SHARED)
	size uint64
}

// sync replaces the whole map with the one in a SYNC_SYSMEM message: each
// message carries the complete new map, so old mappings are dropped and
// their fds closed.
func (g *GuestMemory) sync(payload []byte, fds []int) error {
	defer closeFDs(fds)
	if len(payload) < syncSysmemSize {
		return fmt.Errorf("qemurig: SYNC_SYSMEM payload of %d bytes, want %d", len(payload), syncSysmemSize)
	}
	var next []ramRegion
	for i, fd := range fds {
		gpa := binary.LittleEndian.Uint64(payload[8*i:])
		size := binary.LittleEndian.Uint64(payload[64+8*i:])
		off := int64(binary.LittleEndian.Uint64(payload[128+8*i:]))
		if size == 0 {
			continue
		}
		mem, err := unix.Mmap(fd, off, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			for _, r := range next {
				unix.Munmap(r.mem)
			}
			return fmt.Errorf("qemurig: map guest RAM section %d (gpa %#x, %d bytes, offset %#x): %w", i, gpa, size, off, err)
		}
		next = append(next, ramRegion{gpa: gpa, mem: mem, size: size})
	}
	g.mu.Lock()
	g.retired = append(g.retired, g.regions...)
	g.regions = next
	g.mu.Unlock()
	return nil
}

// Close unmaps every section.
func (g *GuestMemory) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range append(g.regions, g.retired...) {
		unix.Munmap(r.mem)
	}
	g.regions, g.retired = nil, nil
}

// Slice returns the n bytes at guest-physical addr, or an error when the range
// is not inside one RAM section (a DMA fault).
func (g *GuestMemory) Slice(addr uint64, n int) ([]byte, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, r := range g.regions {
		if addr >= r.gpa && addr-r.gpa < r.size && uint64(n) <= r.size-(addr-r.gpa) {
			o := addr - r.gpa
			return r.mem[o : o+uint64(n) : o+uint64(n)], nil
		}
	}
	return nil, fmt.Errorf("qemurig: DMA to guest address %#x (+%d) is outside guest RAM", addr, n)
}

// Read copies guest memory at addr into p.
func (g *GuestMemory) Read(addr uint64, p []byte) error {
	b, err := g.Slice(addr, len(p))
	if err != nil {
		return err
	}
	copy(p, b)
	return nil
}

// Write copies p into guest memory at addr.
func (g *GuestMemory) Write(addr uint64, p []byte) error {
	b, err := g.Slice(addr, len(p))
	if err != nil {
		return err
	}
	copy(b, p)
	return nil
}
