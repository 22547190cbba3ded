package qemurig

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/ena/hw"
)

// ENA BAR layout presented to the guest: BAR0 registers (16 KiB, as on x86
// Nitro), BAR2 LLQ memory (1 MiB, prefetchable). Only 32-bit BARs, because
// the 7.2 proxy mis-probes 64-bit ones.
const (
	ENARegBARSize = 16 << 10
	ENAMemBARSize = 1 << 20
)

// ENAServerConfig is the PCI function of an ENA VF: 1d0f:ec20, class
// Ethernet controller, revision 0 (readless register reads), pin A, and
// msix (nil = no MSI-X capability) as its interrupts.
func ENAServerConfig(deviceID uint16, msix *MSIX) ServerConfig {
	if deviceID == 0 {
		deviceID = hw.DeviceENAVF
	}
	return ServerConfig{
		Vendor:   hw.VendorAmazon,
		DeviceID: deviceID,
		Class:    0x020000,
		BARs: map[int]BAR{
			0: {Size: ENARegBARSize},
			2: {Size: ENAMemBARSize, Prefetch: true},
		},
		MSIX: msix,
	}
}

// NewENAMSIX is an ENA's MSI-X: nine vectors in BAR0 (msix.go).
func NewENAMSIX(d Deliverer) *MSIX {
	return NewMSIX(ENAMSIXVectors, 0, ENAMSIXTableOffset, ENAMSIXPBAOffset, d)
}

// ENADevice puts an enasim Model behind the proxy. DEVICE_RESET (every
// machine reset) replaces the model with a fresh one, as a PCI reset returns
// a real function to its power-on state.
type ENADevice struct {
	mu    sync.Mutex
	cfg   enasim.ModelConfig
	model *enasim.Model
	// retired is the refusal score of models replaced by a reset.
	retired enasim.RefusalReport
}

// NewENADevice builds the device; cfg.Memory and cfg.IRQ are filled in here
// (guest RAM and the function's MSI-X).
func NewENADevice(cfg enasim.ModelConfig, mem *GuestMemory, msix *MSIX) (*ENADevice, error) {
	cfg.Memory = mem
	cfg.IRQ = msix
	m, err := enasim.NewModel(cfg)
	if err != nil {
		return nil, fmt.Errorf("qemurig: create ENA model: %w", err)
	}
	if cfg.Wire != nil {
		cfg.Wire.SetReceiver(m.Receive)
	}
	return &ENADevice{cfg: cfg, model: m}, nil
}

// Model returns the current model (for fault injection and stats).
func (d *ENADevice) Model() *enasim.Model {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.model
}

// ReadBAR serves a register read. ENA registers are 32 bits wide; narrower
// reads return the addressed bytes of the containing register.
func (d *ENADevice) ReadBAR(bar int, off uint32, size int) uint64 {
	m := d.Model()
	if bar != 0 {
		return ^uint64(0) // the LLQ BAR is write-only
	}
	v := uint64(m.RegRead(off &^ 3))
	return (v >> (8 * (off & 3))) & (1<<(8*uint(size)) - 1)
}

// WriteBAR forwards register stores to the model's registers and LLQ stores
// (8-byte stores from the driver's ordered copy) to its memory BAR.
func (d *ENADevice) WriteBAR(bar int, off uint32, size int, val uint64) {
	m := d.Model()
	switch bar {
	case 0:
		if size == 4 && off&3 == 0 {
			m.RegWrite(off, uint32(val))
		}
	case 2:
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], val)
		m.MemWrite(off, b[:size])
	}
}

// Reset returns the device to its power-on state.
func (d *ENADevice) Reset() {
	m, err := enasim.NewModel(d.cfg)
	if err != nil {
		return // the config was valid once; keep the old model
	}
	d.mu.Lock()
	old := d.model
	d.model = m
	d.retired.Merge(old.Refusals())
	d.mu.Unlock()
	if d.cfg.Wire != nil {
		d.cfg.Wire.SetReceiver(m.Receive)
	}
	old.Close()
}

// Refusals is the model's score across every PCI reset: every rule it
// refused the guest's driver, by name (enasim/refusals.go).
func (d *ENADevice) Refusals() enasim.RefusalReport {
	d.mu.Lock()
	defer d.mu.Unlock()
	var r enasim.RefusalReport
	r.Merge(d.retired)
	r.Merge(d.model.Refusals())
	return r
}

// Close detaches the model from its wire and stops it.
func (d *ENADevice) Close() {
	if d.cfg.Wire != nil {
		d.cfg.Wire.SetReceiver(nil)
	}
	d.Model().Close()
}
