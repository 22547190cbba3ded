// Package devopen turns the --device flag every enanet command takes into a
// hw.Device: "sim" (the default) builds a simulated ENA, anything else is a
// PCI address opened through VFIO. enahttp, enaperf and enactl share it so
// the flag means the same everywhere.
package devopen

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/ena/hw"
	"github.com/enanet/enanet/vfio"
	"github.com/enanet/enanet/vfio/pci"
)

// Sim is the --device value for the software model.
const Sim = "sim"

// Options describe the device to open.
type Options struct {
	// Device is "sim" (or "") or a PCI address bound to vfio-pci.
	Device string
	// Profile is the enasim instance profile (sim only; "" = default).
	Profile string
	// Wire carries the simulated device's frames (sim only; nil = a
	// loopback wire, so the device sees its own frames).
	Wire enasim.Wire
	// SimTrace receives the model's register trace (sim only).
	SimTrace io.Writer
	// VFIOMode is auto, iommu or noiommu (real devices only).
	VFIOMode string
	// IOVAIsPhys maps DMA at IOVA == physical address in type1 mode; the
	// QEMU proxy rig needs it because its device model bypasses the vIOMMU.
	IOVAIsPhys bool
	// SysfsRoot is where sysfs is mounted ("" = /sys; tests use fixtures).
	SysfsRoot string
	// NoInterrupts enables no MSI-X vectors: the driver polls.
	NoInterrupts bool
	Logger       *slog.Logger
}

// Opened is an open device and what it is.
type Opened struct {
	hw.Device
	// Sim is the model when the device is simulated (for fault injection
	// and model statistics), else nil.
	Sim *enasim.Device
	// VFIO is the VFIO device when real, else nil.
	VFIO *vfio.Device
	// Kind describes the device for people: "simulated ENA, profile
	// nitro-v3" or "vfio 0000:00:06.0 (noiommu, LLQ write-combined)".
	Kind string
}

// IsSim reports whether a --device value names the software model.
func IsSim(device string) bool { return device == "" || device == Sim }

// Check says, before anything is built, whether --device names something
// that exists: the model, or a PCI function present in sysfs (sysfsRoot ""
// = /sys). Commands call it first, so a mistyped address is reported as
// such rather than as whatever other flag a real device would need.
func Check(device, sysfsRoot string) error {
	if IsSim(device) {
		return nil
	}
	a, err := pci.NormalizeAddress(device)
	if err != nil {
		return fmt.Errorf("--device %q: want \"sim\" or a PCI address such as 0000:00:06.0 (`enactl list` shows the ENA functions)", device)
	}
	sys := pci.Sysfs{Root: sysfsRoot}
	if _, err := os.Stat(sys.DevicePath(a)); err != nil {
		return fmt.Errorf("--device %s: no such PCI device in %s (`enactl list` shows the ENA functions; --device sim is the simulated ENA)", a, sys.DevicesDir())
	}
	return nil
}

// checkVFIOMode validates --vfio-mode for any device, so a typo is
// reported even where the mode does not apply.
func checkVFIOMode(mode string) (vfio.Mode, error) {
	m, err := vfio.ParseMode(mode)
	if err != nil {
		return m, fmt.Errorf("--vfio-mode %q: want auto, iommu or noiommu", mode)
	}
	return m, nil
}

// Open opens the device named by o.Device.
func Open(o Options) (*Opened, error) {
	mode, err := checkVFIOMode(o.VFIOMode)
	if err != nil {
		return nil, err
	}
	if IsSim(o.Device) {
		if mode != vfio.ModeAuto {
			return nil, fmt.Errorf("--vfio-mode %s applies to a real device only (--device %s is the simulated ENA)", o.VFIOMode, Sim)
		}
		prof, err := enasim.ProfileByName(o.Profile)
		if err != nil {
			return nil, err
		}
		w := o.Wire
		if w == nil {
			w = enasim.NewLoopback()
		}
		s, err := enasim.New(enasim.Config{Profile: prof, Wire: w, Logger: o.Logger, Trace: o.SimTrace})
		if err != nil {
			return nil, fmt.Errorf("simulated device: %w", err)
		}
		return &Opened{Device: s, Sim: s, Kind: "simulated ENA, profile " + prof.Name}, nil
	}
	if err := Check(o.Device, o.SysfsRoot); err != nil {
		return nil, err
	}
	if o.Profile != "" {
		return nil, fmt.Errorf("--profile applies to the simulated device only (--device %s is real hardware)", o.Device)
	}
	vo := vfio.Options{Mode: mode, IOVAIsPhys: o.IOVAIsPhys, SysfsRoot: o.SysfsRoot, Logger: o.Logger}
	if o.NoInterrupts {
		vo.MaxVectors = -1
	}
	d, err := vfio.Open(o.Device, vo)
	if err != nil {
		return nil, fmt.Errorf("open %s through VFIO: %w", o.Device, err)
	}
	kind := fmt.Sprintf("vfio %s (%s", o.Device, d.Mode())
	if d.LLQ() != nil {
		if d.WriteCombined() {
			kind += ", LLQ BAR write-combined"
		} else {
			kind += ", LLQ BAR uncached"
		}
	}
	return &Opened{Device: d, VFIO: d, Kind: kind + ")"}, nil
}
