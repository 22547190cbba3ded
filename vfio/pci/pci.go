// Package pci finds ENA functions in Linux sysfs and moves them between the
// kernel's ena driver and vfio-pci.
//
// Everything goes through a configurable sysfs root, so tests run against
// fixture trees built in a temporary directory and the same code serves
// `enactl list`, `enactl bind` and the diagnostics in package vfio.
//
// In comments, "§n.m" refers to that section of docs/protocol.md.
package pci

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/enanet/enanet/ena/hw"
)

// Resource flags in sysfs `resource` (the kernel's IORESOURCE_* bits).
const (
	resourceIO       = 0x00000100
	resourceMem      = 0x00000200
	resourcePrefetch = 0x00002000
	resourceMem64    = 0x00100000
)

// ENADeviceIDs are the PCI device ids (vendor 0x1d0f) that name an ENA
// function (protocol §1.1).
var ENADeviceIDs = []uint16{hw.DeviceENAVF, hw.DeviceENALLQ, hw.DeviceENAPF, hw.DeviceENAPFLQ}

// Sysfs is a sysfs tree. The zero value is the real one at /sys.
type Sysfs struct {
	// Root is the sysfs mount point; "" means "/sys".
	Root string

	// OnWrite, when set, is called after every write to a sysfs control
	// file. Fixture trees (package pcitest) use it to play the kernel's
	// part; production code leaves it nil.
	OnWrite func(path, val string)
}

// root returns the sysfs mount point.
func (s Sysfs) root() string {
	if s.Root == "" {
		return "/sys"
	}
	return s.Root
}

// DevicesDir is where the PCI functions are listed.
func (s Sysfs) DevicesDir() string { return filepath.Join(s.root(), "bus/pci/devices") }

// DevicePath is the sysfs directory of one function.
func (s Sysfs) DevicePath(addr string) string { return filepath.Join(s.DevicesDir(), addr) }

// DriverPath is the sysfs directory of a PCI driver.
func (s Sysfs) DriverPath(name string) string {
	return filepath.Join(s.root(), "bus/pci/drivers", name)
}

// BAR is one line of sysfs `resource`.
type BAR struct {
	Index      int
	Start, End uint64 // inclusive bus addresses
	Flags      uint64 // IORESOURCE_* bits
}

// Size is the BAR length in bytes.
func (b BAR) Size() uint64 {
	if b.End < b.Start || (b.Start == 0 && b.End == 0) {
		return 0
	}
	return b.End - b.Start + 1
}

// IsMemory reports a memory (not I/O port) BAR.
func (b BAR) IsMemory() bool { return b.Flags&resourceMem != 0 }

// Prefetchable reports a prefetchable memory BAR, the kind the kernel lets
// userspace map write-combining.
func (b BAR) Prefetchable() bool { return b.Flags&resourcePrefetch != 0 }

// Is64 reports a 64-bit memory BAR.
func (b BAR) Is64() bool { return b.Flags&resourceMem64 != 0 }

// String is the form `enactl list` prints: "BAR2 0xfe800000+1M mem64,pref".
func (b BAR) String() string {
	kind := "io"
	if b.IsMemory() {
		kind = "mem32"
		if b.Is64() {
			kind = "mem64"
		}
		if b.Prefetchable() {
			kind += ",pref"
		}
	}
	return fmt.Sprintf("BAR%d %#x+%s %s", b.Index, b.Start, humanSize(b.Size()), kind)
}

// humanSize prints a BAR size compactly (16K, 1M).
func humanSize(n uint64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dG", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return strconv.FormatUint(n, 10)
}

// Device is what sysfs says about one PCI function.
type Device struct {
	Address  string // domain:bus:slot.func, e.g. 0000:00:06.0
	Vendor   uint16
	Device   uint16
	Revision uint8
	Class    uint32
	// Driver is the bound driver's name, "" when unbound.
	Driver string
	// DriverOverride is the driver_override contents, "" when unset.
	DriverOverride string
	// Interfaces are the kernel network interfaces of the function (only
	// while the ena driver owns it).
	Interfaces []string
	// IOMMUGroup is the group number, -1 when the function has none (no
	// IOMMU, and not yet bound to vfio-pci in no-IOMMU mode).
	IOMMUGroup int
	// NUMANode is the function's NUMA node, -1 when unknown.
	NUMANode int
	// BARs are the non-empty BARs (indexes 0-5).
	BARs []BAR
	// WCPossible reports that sysfs offers resource2_wc, a write-combining
	// mapping of the LLQ BAR (protocol §8.3).
	WCPossible bool
}

// IsENA reports whether the ids name an ENA function.
func (d Device) IsENA() bool {
	return hw.Identity{Vendor: d.Vendor, Device: d.Device}.IsENA()
}

// BAR returns the BAR with index i, if present.
func (d Device) BAR(i int) (BAR, bool) {
	for _, b := range d.BARs {
		if b.Index == i {
			return b, true
		}
	}
	return BAR{}, false
}

// ErrNotFound is returned when no function exists at an address.
var ErrNotFound = errors.New("no such PCI device")

var addrRE = regexp.MustCompile(`^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$`)

// NormalizeAddress accepts "00:06.0" or "0000:00:06.0" and returns the
// full lower-case form sysfs uses.
func NormalizeAddress(addr string) (string, error) {
	if !addrRE.MatchString(addr) {
		return "", fmt.Errorf("pci: %q is not a PCI address (want domain:bus:slot.func, e.g. 0000:00:06.0)", addr)
	}
	if len(addr) == 7 {
		addr = "0000:" + addr
	}
	return strings.ToLower(addr), nil
}

// Scan reads every PCI function in sysfs.
func (s Sysfs) Scan() ([]Device, error) {
	ents, err := os.ReadDir(s.DevicesDir())
	if err != nil {
		return nil, fmt.Errorf("pci: list PCI devices: %w", err)
	}
	var devs []Device
	for _, e := range ents {
		d, err := s.read(e.Name())
		if err != nil {
			return nil, err
		}
		devs = append(devs, d)
	}
	return devs, nil
}

// ENA returns the ENA functions and how many PCI functions were scanned.
func (s Sysfs) ENA() (ena []Device, scanned int, err error) {
	all, err := s.Scan()
	if err != nil {
		return nil, 0, err
	}
	for _, d := range all {
		if d.IsENA() {
			ena = append(ena, d)
		}
	}
	return ena, len(all), nil
}

// Lookup reads one function.
func (s Sysfs) Lookup(addr string) (Device, error) {
	a, err := NormalizeAddress(addr)
	if err != nil {
		return Device{}, err
	}
	if _, err := os.Stat(s.DevicePath(a)); err != nil {
		return Device{}, fmt.Errorf("pci: %s: %w (looked in %s; run `enactl list`)", a, ErrNotFound, s.DevicesDir())
	}
	return s.read(a)
}

// read parses one device directory. Missing optional files are tolerated;
// a missing vendor or device id is an error because nothing else makes
// sense without it.
func (s Sysfs) read(addr string) (Device, error) {
	dir := s.DevicePath(addr)
	d := Device{Address: addr, IOMMUGroup: -1, NUMANode: -1}
	v, err := readHex(filepath.Join(dir, "vendor"))
	if err != nil {
		return d, fmt.Errorf("pci: %s: read vendor id: %w", addr, err)
	}
	id, err := readHex(filepath.Join(dir, "device"))
	if err != nil {
		return d, fmt.Errorf("pci: %s: read device id: %w", addr, err)
	}
	d.Vendor, d.Device = uint16(v), uint16(id)
	if r, err := readHex(filepath.Join(dir, "revision")); err == nil {
		d.Revision = uint8(r)
	}
	if c, err := readHex(filepath.Join(dir, "class")); err == nil {
		d.Class = uint32(c)
	}
	if l, err := os.Readlink(filepath.Join(dir, "driver")); err == nil {
		d.Driver = filepath.Base(l)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "driver_override")); err == nil {
		if o := strings.TrimSpace(string(b)); o != "(null)" {
			d.DriverOverride = o
		}
	}
	if ents, err := os.ReadDir(filepath.Join(dir, "net")); err == nil {
		for _, e := range ents {
			d.Interfaces = append(d.Interfaces, e.Name())
		}
	}
	if l, err := os.Readlink(filepath.Join(dir, "iommu_group")); err == nil {
		if g, err := strconv.Atoi(filepath.Base(l)); err == nil {
			d.IOMMUGroup = g
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "numa_node")); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			d.NUMANode = n
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "resource")); err == nil {
		d.BARs = parseResource(string(b))
	}
	if _, err := os.Stat(filepath.Join(dir, "resource2_wc")); err == nil {
		d.WCPossible = true
	}
	return d, nil
}

// parseResource parses sysfs `resource`: one "start end flags" line per
// resource, BARs 0-5 first. Malformed lines are skipped.
func parseResource(s string) []BAR {
	var bars []BAR
	for i, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if i > 5 {
			break
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		var v [3]uint64
		ok := true
		for j := range f {
			n, err := strconv.ParseUint(strings.TrimPrefix(f[j], "0x"), 16, 64)
			if err != nil {
				ok = false
				break
			}
			v[j] = n
		}
		b := BAR{Index: i, Start: v[0], End: v[1], Flags: v[2]}
		if ok && b.Size() > 0 {
			bars = append(bars, b)
		}
	}
	return bars
}

// readHex reads a sysfs file holding one 0x-prefixed hex number.
func readHex(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(string(b)), "0x"), 16, 64)
}

// GroupDevices lists the functions in an IOMMU group.
func (s Sysfs) GroupDevices(group int) ([]Device, error) {
	dir := filepath.Join(s.root(), "kernel/iommu_groups", strconv.Itoa(group), "devices")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("pci: list IOMMU group %d: %w", group, err)
	}
	var devs []Device
	for _, e := range ents {
		d, err := s.read(e.Name())
		if err != nil {
			return nil, err
		}
		devs = append(devs, d)
	}
	return devs, nil
}

// IOMMUPresent reports whether the kernel has any IOMMU groups, which it
// creates only when an IOMMU is active.
func (s Sysfs) IOMMUPresent() bool {
	ents, err := os.ReadDir(filepath.Join(s.root(), "kernel/iommu_groups"))
	return err == nil && len(ents) > 0
}

// NoIOMMUParam is the vfio module parameter that enables no-IOMMU mode,
// relative to the sysfs root.
const NoIOMMUParam = "module/vfio/parameters/enable_unsafe_noiommu_mode"

// NoIOMMUPath is the absolute path of the no-IOMMU parameter.
func (s Sysfs) NoIOMMUPath() string { return filepath.Join(s.root(), NoIOMMUParam) }

// NoIOMMUMode reports whether VFIO no-IOMMU mode is on, and whether the
// loaded vfio module supports it at all (it needs CONFIG_VFIO_NOIOMMU).
// Both are false when vfio is not loaded.
func (s Sysfs) NoIOMMUMode() (enabled, supported bool) {
	b, err := os.ReadFile(s.NoIOMMUPath())
	if err != nil {
		return false, false
	}
	v := strings.TrimSpace(string(b))
	return v == "Y" || v == "1", true
}

// DriverLoaded reports whether a PCI driver is registered.
func (s Sysfs) DriverLoaded(name string) bool {
	_, err := os.Stat(s.DriverPath(name))
	return err == nil
}

// ModuleLoaded reports whether a kernel module is loaded (or built in
// with parameters), from /sys/module.
func (s Sysfs) ModuleLoaded(name string) bool {
	_, err := os.Stat(filepath.Join(s.root(), "module", name))
	return err == nil
}

// Other lists the addresses in devs that are not at addr and are bound to a
// driver other than vfio-pci: the devices that make a group not viable.
func Other(devs []Device, addr string) []string {
	var out []string
	for _, d := range devs {
		if d.Address == addr || d.Driver == "" || d.Driver == "vfio-pci" || d.Driver == "pci-stub" || d.Driver == "pcieport" {
			continue
		}
		out = append(out, fmt.Sprintf("%s (driver %s)", d.Address, d.Driver))
	}
	slices.Sort(out)
	return out
}
