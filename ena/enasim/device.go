package enasim

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/enanet/enanet/ena/hw"
)

// Memory is how the model reaches host memory: by device address, never by
// CPU pointer, so the same model can serve memory that is not its own
// process's (a QEMU guest's RAM). An error is an IOMMU fault: the model
// records it and goes FATAL, as a device behind an IOMMU would.
type Memory interface {
	// Read copies len(p) bytes at device address addr into p.
	Read(addr uint64, p []byte) error
	// Write copies p to device address addr.
	Write(addr uint64, p []byte) error
	// Slice returns a zero-copy view of n bytes at addr when they are
	// contiguous in this process; callers must not keep it after releasing
	// Model.mu (the driver may free the memory).
	Slice(addr uint64, n int) ([]byte, error)
}

// IRQSink receives the model's MSI-X messages.
type IRQSink interface {
	// Raise delivers one interrupt on vector. It must not block or call back
	// into the model.
	Raise(vector int)
}

// Config configures an in-process simulated device.
type Config struct {
	// Profile is the instance class; the zero value means ProfileNitroV3.
	Profile Profile
	// DeviceID overrides the profile's PCI device id (0xEC20, 0xEC21, 0x0EC2
	// or 0x1EC2, §1.1); 0 keeps the profile's.
	DeviceID uint16
	// Revision is the PCI revision id; bit 0 set tells the driver not to use
	// readless register reads (§1.1). The model answers both kinds of read
	// either way, as real hardware does.
	Revision uint8
	// Wire is where transmitted frames go and received frames come from;
	// nil means an unplugged cable (Tx frames are dropped after completion).
	Wire Wire
	// MAC is the device's address; zero means a random locally administered
	// unicast address.
	MAC [6]byte
	// KeepAlivePeriod is the AENQ keep-alive interval (§5.3); 0 = 1 s.
	KeepAlivePeriod time.Duration
	// Trace, if not nil, receives one human-readable line per register
	// access, admin command, completion and AENQ event (see trace.go).
	Trace io.Writer
	// Logger receives notable device events (fatal errors, resets); nil
	// discards them.
	Logger *slog.Logger
	// Name appears in Identity.Address and trace lines; "" = "sim0".
	Name string
}

// Device is an in-process simulated ENA function: it implements hw.Device
// for the driver and owns the Model, a DMA allocator that doubles as the
// IOMMU, the BARs and the interrupt vectors.
type Device struct {
	id    hw.Identity
	model *Model
	dma   *iommu
	regs  regBAR
	llq   *memBAR
	intr  *interrupts
	wire  Wire

	closeOnce sync.Once
}

var _ hw.Device = (*Device)(nil)

// New builds a simulated device. The device starts out READY, as after
// power-on; the driver resets it first (§6 step 3).
func New(cfg Config) (*Device, error) {
	prof := cfg.Profile
	if prof.Name == "" {
		prof = ProfileNitroV3
	}
	if err := prof.validate(); err != nil {
		return nil, err
	}
	devID := prof.DeviceID
	if cfg.DeviceID != 0 {
		devID = cfg.DeviceID
	}
	id := hw.Identity{Vendor: hw.VendorAmazon, Device: devID, Revision: cfg.Revision, Address: cfg.Name}
	if id.Address == "" {
		id.Address = "sim0"
	}
	if !id.IsENA() {
		return nil, fmt.Errorf("enasim: device id 0x%04x is not an ENA function (want ec20, ec21, 0ec2 or 1ec2)", devID)
	}
	mac := cfg.MAC
	if mac == ([6]byte{}) {
		if _, err := rand.Read(mac[:]); err != nil {
			return nil, fmt.Errorf("enasim: random MAC: %w", err)
		}
		mac[0] = mac[0]&^0x01 | 0x02 // unicast, locally administered
	}
	d := &Device{id: id, dma: newIOMMU(), intr: newInterrupts(prof.Vectors), wire: cfg.Wire}
	m, err := NewModel(ModelConfig{
		Profile:         prof,
		Memory:          d.dma,
		IRQ:             d.intr,
		Wire:            cfg.Wire,
		MAC:             mac,
		KeepAlivePeriod: cfg.KeepAlivePeriod,
		Trace:           cfg.Trace,
		Logger:          cfg.Logger,
		Name:            id.Address,
	})
	if err != nil {
		return nil, err
	}
	d.model = m
	d.dma.lock = &m.mu
	d.regs = regBAR{m: m, size: prof.BAR0Size}
	if prof.HasLLQ() {
		d.llq = &memBAR{m: m, size: prof.LLQ.BAR2Size}
	}
	if w, ok := cfg.Wire.(modelWire); ok {
		w.attachModel(m)
	} else if cfg.Wire != nil {
		cfg.Wire.SetReceiver(m.receive)
	}
	return d, nil
}

// Identity returns the PCI identity (§1.1).
func (d *Device) Identity() hw.Identity { return d.id }

// Registers returns BAR0; every access is one call into the model.
func (d *Device) Registers() hw.RegisterBAR { return d.regs }

// LLQ returns BAR2, or nil for a profile without LLQ.
func (d *Device) LLQ() hw.MemoryBAR {
	if d.llq == nil {
		return nil
	}
	return d.llq
}

// DMA returns the allocator; only memory allocated here is visible to the
// model (an IOMMU).
func (d *Device) DMA() hw.DMA { return d.dma }

// Interrupts returns the MSI-X vectors.
func (d *Device) Interrupts() hw.Interrupts { return d.intr }

// Model returns the device model for register-level access and inspection.
func (d *Device) Model() *Model { return d.model }

// Faults returns the fault-injection handle.
func (d *Device) Faults() *Faults { return d.model.Faults() }

// Stats returns the model-side counters.
func (d *Device) Stats() Stats { return d.model.Stats() }

// FatalReason returns why the device went FATAL, or "" if it has not.
func (d *Device) FatalReason() string { return d.model.FatalReason() }

// Close stops the model's goroutines, wakes interrupt waiters, detaches the
// wire and releases all DMA memory. Safe to call twice.
func (d *Device) Close() error {
	var err error
	d.closeOnce.Do(func() {
		d.model.Close()
		if d.wire != nil {
			d.wire.SetReceiver(nil)
		}
		d.intr.close()
		err = d.dma.close()
	})
	return err
}

// ---------------------------------------------------------------------------
// BARs

// regBAR is BAR0: each access is a call into the model (so accesses
// arrive as calls, never by polling shared memory).
type regBAR struct {
	m    *Model
	size uint32
}

func (b regBAR) Read32(off uint32) uint32       { return b.m.RegRead(off) }
func (b regBAR) Write32(off uint32, val uint32) { b.m.RegWrite(off, val) }
func (b regBAR) Size() uint32                   { return b.size }

// memBAR is BAR2: LLQ stores go straight to the model; there is no write
// combining to flush in process.
type memBAR struct {
	m    *Model
	size uint32
}

func (b *memBAR) WriteBlock(off uint32, src []byte) { b.m.MemWrite(off, src) }
func (b *memBAR) Flush()                            {}
func (b *memBAR) Size() uint32                      { return b.size }

// ---------------------------------------------------------------------------
// DMA allocator and IOMMU

// dmaBase is the first device address handed out. It is far above any
// address a test would invent and never equals a CPU pointer of this
// process, so a driver that writes a CPU pointer into a descriptor gets an
// IOMMU fault instead of silently working.
const dmaBase = 0x10_0000_0000

// dmaGuard is the unmapped gap left after every region so that running off
// the end of a ring faults instead of landing in the next allocation.
const dmaGuard = 64 << 10

type dmaRegion struct {
	addr uint64
	mem  []byte // mmap'd, outside the Go heap
	// mapping is the whole mmap'd range mem lies in (larger when mem was
	// aligned for a hugepage, see mapDMA); it is what free unmaps.
	mapping []byte
}

// iommu allocates DMA memory with anonymous mmap and translates device
// addresses back to it. Only allocated ranges are mapped.
type iommu struct {
	// lock is Model.mu: Free takes it so the model is never in the middle
	// of an access to memory being unmapped.
	lock *sync.Mutex

	mu      sync.RWMutex
	regions []dmaRegion // sorted by addr
	next    uint64
	closed  bool
	// maxAlloc is the largest allocation served: hw.MaxAlloc, so drivers
	// cannot come to depend on more than real no-IOMMU hardware promises.
	// The model's own tests raise it for their oversized test buffers.
	maxAlloc int
}

var _ Memory = (*iommu)(nil)
var _ hw.DMA = (*iommu)(nil)

func newIOMMU() *iommu { return &iommu{next: dmaBase, maxAlloc: hw.MaxAlloc} }

// AddrWidth is 48 bits, the mem_addr limit (§4.2).
func (a *iommu) AddrWidth() int { return 48 }

// Alloc maps size bytes of zeroed memory and assigns a device address
// aligned to align.
func (a *iommu) Alloc(size, align int) (*hw.Region, error) {
	if size <= 0 {
		return nil, fmt.Errorf("enasim: DMA alloc: size %d must be positive", size)
	}
	if align <= 0 {
		align = 4096
	}
	if align&(align-1) != 0 {
		return nil, fmt.Errorf("enasim: DMA alloc: alignment %d is not a power of two", align)
	}
	// Refuse what the real backend cannot promise: without an IOMMU only
	// one 2 MiB hugepage is physically contiguous (hw.MaxAlloc), so a driver
	// that works here must not depend on larger allocations.
	if limit := a.maxAlloc; limit > 0 && size > limit {
		return nil, fmt.Errorf("enasim: DMA alloc: %d bytes is more than hw.MaxAlloc (%d): on EC2 without an IOMMU larger blocks are not physically contiguous", size, limit)
	}
	mem, mapping, err := mapDMA(size)
	if err != nil {
		return nil, fmt.Errorf("enasim: DMA alloc of %d bytes: mmap: %w", size, err)
	}
	mapLen := len(mem)
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		_ = syscall.Munmap(mapping)
		return nil, hw.ErrClosed
	}
	addr := (a.next + uint64(align) - 1) &^ (uint64(align) - 1)
	if addr+uint64(mapLen) > 1<<48 {
		a.mu.Unlock()
		_ = syscall.Munmap(mapping)
		return nil, fmt.Errorf("enasim: DMA alloc: device address space exhausted")
	}
	a.next = addr + uint64(mapLen) + dmaGuard
	a.regions = append(a.regions, dmaRegion{addr: addr, mem: mem, mapping: mapping})
	a.mu.Unlock()
	return hw.NewRegion(mem[:size:size], addr, func() error { return a.free(addr) }), nil
}

func (a *iommu) free(addr uint64) error {
	// Hold the model lock so no model access is in progress while the
	// mapping goes away; later accesses fault cleanly.
	if a.lock != nil {
		a.lock.Lock()
		defer a.lock.Unlock()
	}
	a.mu.Lock()
	i := sort.Search(len(a.regions), func(i int) bool { return a.regions[i].addr >= addr })
	if i == len(a.regions) || a.regions[i].addr != addr {
		a.mu.Unlock()
		return fmt.Errorf("enasim: DMA free: no region at %#x", addr)
	}
	mapping := a.regions[i].mapping
	a.regions = append(a.regions[:i], a.regions[i+1:]...)
	a.mu.Unlock()
	return syscall.Munmap(mapping)
}

func (a *iommu) close() error {
	if a.lock != nil {
		a.lock.Lock()
		defer a.lock.Unlock()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	var errs []error
	for _, r := range a.regions {
		if err := syscall.Munmap(r.mapping); err != nil {
			errs = append(errs, err)
		}
	}
	a.regions = nil
	return errors.Join(errs...)
}

// IOMMUFault is the error Memory returns for an access outside every
// allocation; the model puts it in FatalReason.
type IOMMUFault struct {
	Addr  uint64
	Len   int
	Write bool
}

func (f *IOMMUFault) Error() string {
	dir := "read"
	if f.Write {
		dir = "write"
	}
	return fmt.Sprintf("IOMMU fault: DMA %s of %d bytes at %#x is outside every allocated region", dir, f.Len, f.Addr)
}

// lookup returns the bytes of [addr, addr+n) if they lie inside one region.
func (a *iommu) lookup(addr uint64, n int, write bool) ([]byte, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if n < 0 {
		return nil, &IOMMUFault{Addr: addr, Len: n, Write: write}
	}
	// Last region starting at or below addr.
	i := sort.Search(len(a.regions), func(i int) bool { return a.regions[i].addr > addr }) - 1
	if i >= 0 {
		r := a.regions[i]
		off := addr - r.addr
		if off <= uint64(len(r.mem)) && uint64(n) <= uint64(len(r.mem))-off {
			return r.mem[off : off+uint64(n) : off+uint64(n)], nil
		}
	}
	return nil, &IOMMUFault{Addr: addr, Len: n, Write: write}
}

func (a *iommu) Read(addr uint64, p []byte) error {
	b, err := a.lookup(addr, len(p), false)
	if err != nil {
		return err
	}
	copy(p, b)
	return nil
}

func (a *iommu) Write(addr uint64, p []byte) error {
	b, err := a.lookup(addr, len(p), true)
	if err != nil {
		return err
	}
	copy(b, p)
	return nil
}

func (a *iommu) Slice(addr uint64, n int) ([]byte, error) { return a.lookup(addr, n, true) }

// ---------------------------------------------------------------------------
// Interrupts

// vector is one MSI-X vector: a counter of undelivered interrupts and a
// one-slot doorbell channel for waiters.
type vector struct {
	count atomic.Uint64
	wake  atomic.Bool
	ch    chan struct{}
}

type interrupts struct {
	vecs   []vector
	done   chan struct{}
	closed sync.Once
}

var _ hw.Interrupts = (*interrupts)(nil)
var _ IRQSink = (*interrupts)(nil)

func newInterrupts(n int) *interrupts {
	it := &interrupts{vecs: make([]vector, n), done: make(chan struct{})}
	for i := range it.vecs {
		it.vecs[i].ch = make(chan struct{}, 1)
	}
	return it
}

// Raise is the model's MSI-X message; it never blocks or allocates.
func (it *interrupts) Raise(v int) {
	if v < 0 || v >= len(it.vecs) {
		return
	}
	it.vecs[v].count.Add(1)
	select {
	case it.vecs[v].ch <- struct{}{}:
	default:
	}
}

func (it *interrupts) NumVectors() int { return len(it.vecs) }

// Wait returns the interrupts collected on v since the last Wait, blocking
// until there is at least one, ctx is done, Wake is called, or the device
// closes.
func (it *interrupts) Wait(ctx context.Context, v int) (uint64, error) {
	if v < 0 || v >= len(it.vecs) {
		return 0, fmt.Errorf("enasim: wait on vector %d: device has %d vectors", v, len(it.vecs))
	}
	vec := &it.vecs[v]
	for {
		if n := vec.count.Swap(0); n > 0 {
			return n, nil
		}
		if vec.wake.Swap(false) {
			return 0, nil
		}
		select {
		case <-vec.ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-it.done:
			return 0, hw.ErrClosed
		}
	}
}

// Wake releases one current or future Wait on v without an interrupt.
func (it *interrupts) Wake(v int) {
	if v < 0 || v >= len(it.vecs) {
		return
	}
	it.vecs[v].wake.Store(true)
	select {
	case it.vecs[v].ch <- struct{}{}:
	default:
	}
}

func (it *interrupts) close() { it.closed.Do(func() { close(it.done) }) }
