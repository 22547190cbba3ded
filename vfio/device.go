// Package vfio drives a PCI ENA function from userspace through Linux VFIO
// and implements hw.Device for the driver in package ena.
//
// Open walks the VFIO steps in order (kernel vfio.rst): find the IOMMU group in
// sysfs, open the container and check the API, open the group and check it is
// viable, attach it and pick the IOMMU type, get the device fd, enable bus
// mastering, map BAR0 (registers) and BAR2 (LLQ memory), set up DMA memory and
// MSI-X eventfds.
//
// Two IOMMU modes are supported:
//
//   - Type1 (an IOMMU is present: EC2 .metal instances booted with
//     intel_iommu=on): DMA memory is mapped with VFIO_IOMMU_MAP_DMA at IOVAs
//     we choose, and the device can reach nothing else.
//   - No-IOMMU (every other EC2 instance): the group is /dev/vfio/noiommu-N,
//     nothing is mapped, and the device sees physical addresses, which we
//     read from /proc/self/pagemap. This needs root and taints the kernel.
//
// DMA memory always comes from 2 MiB hugepages. Every failure is an *Error
// that says what to do about it.
//
// In comments, "§n.m" refers to that section of docs/protocol.md.
package vfio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/enanet/enanet/ena/hw"
	"github.com/enanet/enanet/vfio/pci"
)

// Mode is the VFIO IOMMU mode.
type Mode int

const (
	// ModeAuto uses type1 when the group has a /dev/vfio/N node and
	// no-IOMMU when it has /dev/vfio/noiommu-N.
	ModeAuto Mode = iota
	// ModeIOMMU requires a real IOMMU (VFIO type1).
	ModeIOMMU
	// ModeNoIOMMU requires VFIO no-IOMMU mode.
	ModeNoIOMMU
)

// String returns the name ParseMode accepts.
func (m Mode) String() string {
	switch m {
	case ModeIOMMU:
		return "iommu"
	case ModeNoIOMMU:
		return "noiommu"
	}
	return "auto"
}

// ParseMode parses "auto", "iommu" or "noiommu" (for command-line flags).
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "auto":
		return ModeAuto, nil
	case "iommu", "type1":
		return ModeIOMMU, nil
	case "noiommu", "no-iommu":
		return ModeNoIOMMU, nil
	}
	return ModeAuto, fmt.Errorf("vfio: unknown IOMMU mode %q (want auto, iommu or noiommu)", s)
}

// Options configure Open. The zero value is right for production.
type Options struct {
	// Mode selects the IOMMU mode; ModeAuto picks from /dev/vfio.
	Mode Mode
	// SysfsRoot is the sysfs mount point; "" means /sys.
	SysfsRoot string
	// DevDir is the VFIO device directory; "" means /dev/vfio.
	DevDir string
	// Meminfo and Pagemap are /proc/meminfo and /proc/self/pagemap unless
	// set (tests).
	Meminfo, Pagemap string
	// IOVAIsPhys (type1 only) maps each DMA chunk at IOVA == its physical
	// address instead of allocating IOVAs. The QEMU proxy rig needs it: its
	// remote device model sees guest-physical addresses, bypassing the
	// guest's vIOMMU.
	IOVAIsPhys bool
	// VFIOMapsWC says the loaded vfio-pci is AWS's write-combining patched
	// module (amzn-drivers enav2-vfio-patch), whose own BAR2 mapping is WC.
	// Then a BAR2 mapped through VFIO counts as write-combined.
	VFIOMapsWC bool
	// MaxVectors caps the MSI-X vectors enabled: 0 means every vector the
	// device offers, a negative value means none (the driver polls).
	MaxVectors int
	// UseMSI takes the vectors from plain MSI (VFIO IRQ index 1) instead of
	// MSI-X. ENA always has MSI-X; this is for other functions the test rig
	// drives through the same code, such as QEMU's edu device.
	UseMSI bool
	// Logger receives the summary and warnings (write-combining); nil
	// means slog.Default().
	Logger *slog.Logger
}

// Device is an ENA function opened through VFIO. It implements hw.Device.
type Device struct {
	addr  string
	id    hw.Identity
	mode  Mode
	group int
	log   *slog.Logger

	container, groupFD, devFD int
	cfgOff                    int64 // config space offset in the device fd
	cfgOK                     bool  // cfgOff is known

	bar0 *mapping
	bar2 *mapping // nil when the device has no BAR2
	wc   bool

	dma      *dmaPool
	irq      *interrupts
	irqIndex uint32 // VFIO IRQ index the vectors come from (MSI-X, or MSI)

	closeMu sync.Mutex
	closed  bool
}

var _ hw.Device = (*Device)(nil)

// Identity implements hw.Device.
func (d *Device) Identity() hw.Identity { return d.id }

// Registers implements hw.Device.
func (d *Device) Registers() hw.RegisterBAR { return regBAR{d.bar0} }

// LLQ implements hw.Device; nil when there is no BAR2.
func (d *Device) LLQ() hw.MemoryBAR {
	if d.bar2 == nil {
		return nil
	}
	return memBAR{d.bar2}
}

// DMA implements hw.Device.
func (d *Device) DMA() hw.DMA { return d.dma }

// Interrupts implements hw.Device.
func (d *Device) Interrupts() hw.Interrupts { return d.irq }

// WriteCombined reports whether BAR2 (LLQ) is mapped write-combining.
// Without it every 64-bit LLQ store is a separate uncached PCIe write and
// LLQ Tx is far slower (§8.4).
func (d *Device) WriteCombined() bool { return d.wc }

// Mode is the IOMMU mode in use (never ModeAuto).
func (d *Device) Mode() Mode { return d.mode }

// IOMMUGroup is the VFIO group number.
func (d *Device) IOMMUGroup() int { return d.group }

// Open opens the ENA function at addr ("0000:00:06.0" or "00:06.0"), which
// must be bound to vfio-pci (see `enactl bind`).
func Open(addr string, o Options) (*Device, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	devDir := o.DevDir
	if devDir == "" {
		devDir = "/dev/vfio"
	}
	sys := pci.Sysfs{Root: o.SysfsRoot}
	info, err := preflight(sys, addr)
	if err != nil {
		return nil, err
	}
	d := &Device{addr: info.Address, group: info.IOMMUGroup, log: log, container: -1, groupFD: -1, devFD: -1}
	op := "open " + d.addr
	d.mode, err = pickMode(o.Mode, devDir, d.group, op)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = d.Close()
		}
	}()
	if err := d.openContainer(devDir, op); err != nil {
		return nil, err
	}
	if err := d.openGroup(sys, devDir, op); err != nil {
		return nil, err
	}
	if err := d.openDevice(op); err != nil {
		return nil, err
	}
	if err := d.mapBARs(sys, info, o.VFIOMapsWC, op); err != nil {
		return nil, err
	}
	if err := d.setupDMA(o); err != nil {
		return nil, err
	}
	d.irqIndex = pciMSIXIRQIndex
	if o.UseMSI {
		d.irqIndex = pciMSIIRQIndex
	}
	if err := d.setupIRQs(o.MaxVectors, op); err != nil {
		return nil, err
	}
	ok = true
	log.Info("vfio: device open", "addr", d.addr, "id", d.id.String(), "mode", d.mode.String(),
		"group", d.group, "bar0", d.bar0.size, "llq", d.bar2 != nil, "write_combined", d.wc,
		"vectors", d.irq.NumVectors(), "dma_addr_width", d.dma.width)
	return d, nil
}

// preflight reads the function from sysfs and explains, before any VFIO
// call, why it cannot be opened: missing, bound elsewhere, or unbindable.
func preflight(sys pci.Sysfs, addr string) (pci.Device, error) {
	info, err := sys.Lookup(addr)
	if err != nil {
		if errors.Is(err, pci.ErrNotFound) {
			return info, &Error{Op: "open " + addr, Kind: ErrNoDevice, Err: err,
				Fix: "check the address with `enactl list` (ENA functions have ids 1d0f:ec20/ec21/0ec2/1ec2)"}
		}
		return info, &Error{Op: "open " + addr, Err: err, Fix: "pass a PCI address such as 0000:00:06.0 (see `enactl list`)"}
	}
	op := "open " + info.Address
	bindFix := fmt.Sprintf("run `enactl bind %s`, or by hand: echo vfio-pci > %s/driver_override; echo %s > %s/driver/unbind; echo %s > %s",
		info.Address, sys.DevicePath(info.Address), info.Address, sys.DevicePath(info.Address), info.Address,
		filepath.Join(filepath.Dir(sys.DevicesDir()), "drivers_probe"))
	switch info.Driver {
	case pci.DriverVFIO:
	case "":
		if info.IOMMUGroup < 0 {
			if on, supported := sys.NoIOMMUMode(); !on {
				fix := "run `enactl setup` (it enables VFIO no-IOMMU mode; EC2 instances other than .metal have no IOMMU), then `enactl bind " + info.Address + "`"
				if !supported && sys.ModuleLoaded("vfio") {
					fix = "this kernel's vfio lacks CONFIG_VFIO_NOIOMMU: use a kernel built with it, or a .metal instance with intel_iommu=on iommu=pt"
				}
				return info, &Error{Op: op, Kind: ErrNoIOMMU,
					Cause: "the device has no IOMMU group and VFIO no-IOMMU mode is off, so vfio-pci cannot take it", Fix: fix}
			}
		}
		return info, &Error{Op: op, Kind: ErrNotBound, Cause: "the device is not bound to any driver", Fix: bindFix}
	default:
		cause := fmt.Sprintf("the device is bound to driver %s, not vfio-pci", info.Driver)
		if len(info.Interfaces) > 0 {
			cause = fmt.Sprintf("the device is bound to driver %s (interface %s), not vfio-pci", info.Driver, strings.Join(info.Interfaces, ", "))
		}
		return info, &Error{Op: op, Kind: ErrNotBound, Cause: cause, Fix: bindFix}
	}
	if info.IOMMUGroup < 0 {
		return info, &Error{Op: op, Kind: ErrNoIOMMU, Cause: "vfio-pci owns the device but sysfs shows no iommu_group",
			Fix: "rebind it: `enactl unbind " + info.Address + "` then `enactl bind " + info.Address + "`"}
	}
	return info, nil
}

// pickMode chooses type1 or no-IOMMU from the group nodes in devDir.
func pickMode(want Mode, devDir string, group int, op string) (Mode, error) {
	typed := filepath.Join(devDir, strconv.Itoa(group))
	noio := filepath.Join(devDir, fmt.Sprintf("noiommu-%d", group))
	_, errT := os.Stat(typed)
	_, errN := os.Stat(noio)
	switch {
	case want == ModeIOMMU && errT == nil, want == ModeAuto && errT == nil:
		return ModeIOMMU, nil
	case want == ModeNoIOMMU && errN == nil, want == ModeAuto && errN == nil:
		return ModeNoIOMMU, nil
	}
	if _, err := os.Stat(filepath.Join(devDir, "vfio")); err != nil {
		return 0, &Error{Op: op, Kind: ErrVFIOMissing, Err: err, Cause: "no VFIO container node",
			Fix: "load VFIO: `modprobe vfio-pci` (or run `enactl setup`)"}
	}
	switch want {
	case ModeIOMMU:
		return 0, &Error{Op: op, Kind: ErrNoIOMMU, Cause: fmt.Sprintf("IOMMU mode requested but %s does not exist (the group is a no-IOMMU group)", typed),
			Fix: "use no-IOMMU mode, or a .metal instance booted with intel_iommu=on iommu=pt"}
	case ModeNoIOMMU:
		return 0, &Error{Op: op, Kind: ErrNoIOMMU, Cause: fmt.Sprintf("no-IOMMU mode requested but %s does not exist (the device is behind a real IOMMU)", noio),
			Fix: "use IOMMU mode (the default, --mode auto)"}
	}
	return 0, &Error{Op: op, Kind: ErrVFIOMissing, Cause: fmt.Sprintf("neither %s nor %s exists", typed, noio),
		Fix: "rebind the device (`enactl unbind` then `enactl bind`) and check `dmesg | grep -i vfio`"}
}

// openErr explains a failed open of a /dev/vfio node.
func openErr(op, path string, noiommu bool, err error) error {
	switch {
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		fix := "run as root, or give your user the node: `sudo chown $USER " + path + "` (and raise `ulimit -l`)"
		if noiommu {
			fix = "run as root: no-IOMMU groups need CAP_SYS_RAWIO"
		}
		return &Error{Op: op, Kind: ErrPermission, Err: err, Cause: "cannot open " + path, Fix: fix}
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENODEV):
		return &Error{Op: op, Kind: ErrVFIOMissing, Err: err, Cause: "cannot open " + path,
			Fix: "load VFIO with `modprobe vfio-pci` (or `enactl setup`)"}
	case errors.Is(err, unix.EBUSY):
		return &Error{Op: op, Err: err, Cause: "cannot open " + path + ": another process holds the group",
			Fix: "stop the other VFIO user (another enanet or DPDK process: `fuser " + path + "`)"}
	}
	return &Error{Op: op, Err: err, Cause: "cannot open " + path}
}

// openContainer opens /dev/vfio/vfio and checks the API version and IOMMU
// backend.
func (d *Device) openContainer(devDir, op string) error {
	path := filepath.Join(devDir, "vfio")
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return openErr(op, path, false, err)
	}
	d.container = fd
	v, err := ioctlInt(fd, ioctlGetAPIVersion, 0)
	if err != nil || v != apiVersion {
		return errorf(op, err, "VFIO API version %d, want %d", v, apiVersion)
	}
	if d.mode == ModeNoIOMMU {
		if ok, _ := ioctlInt(fd, ioctlCheckExtension, noIOMMU); ok <= 0 {
			return &Error{Op: op, Kind: ErrNoIOMMU, Cause: "the VFIO container does not offer no-IOMMU mode",
				Fix: "enable it: `echo Y > /sys/module/vfio/parameters/enable_unsafe_noiommu_mode` (or `enactl setup`)"}
		}
		return nil
	}
	if ok, _ := ioctlInt(fd, ioctlCheckExtension, type1IOMMU); ok <= 0 {
		return &Error{Op: op, Kind: ErrNoIOMMU, Cause: "the VFIO container does not offer the type1 IOMMU",
			Fix: "load it with `modprobe vfio_iommu_type1`"}
	}
	return nil
}

// openGroup opens the group, checks viability and attaches it to the
// container, then sets the IOMMU type (allowed only once a group is attached).
func (d *Device) openGroup(sys pci.Sysfs, devDir, op string) error {
	name := strconv.Itoa(d.group)
	if d.mode == ModeNoIOMMU {
		name = "noiommu-" + name
	}
	path := filepath.Join(devDir, name)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return openErr(op, path, d.mode == ModeNoIOMMU, err)
	}
	d.groupFD = fd
	st := groupStatus{Argsz: uint32(unsafe.Sizeof(groupStatus{}))}
	if _, err := ioctl(fd, ioctlGroupGetStatus, unsafe.Pointer(&st)); err != nil {
		return errorf(op, err, "VFIO_GROUP_GET_STATUS on %s", path)
	}
	if st.Flags&groupFlagsViable == 0 {
		return groupNotViable(sys, d.addr, d.group, op)
	}
	c := int32(d.container)
	if _, err := ioctl(fd, ioctlGroupSetContainer, unsafe.Pointer(&c)); err != nil {
		return errorf(op, err, "attach group %s to the VFIO container", path)
	}
	typ := uintptr(noIOMMU)
	if d.mode == ModeIOMMU {
		typ = type1IOMMU
		if ok, _ := ioctlInt(d.container, ioctlCheckExtension, type1v2IOMMU); ok > 0 {
			typ = type1v2IOMMU
		}
	}
	if _, err := ioctlInt(d.container, ioctlSetIOMMU, typ); err != nil {
		return errorf(op, err, "VFIO_SET_IOMMU(%d)", typ)
	}
	return nil
}

// groupNotViable names the devices that keep the group from being viable.
func groupNotViable(sys pci.Sysfs, addr string, group int, op string) error {
	devs, err := sys.GroupDevices(group)
	others := pci.Other(devs, addr)
	cause := fmt.Sprintf("IOMMU group %d is not viable: every device in it must be bound to vfio-pci or to no driver", group)
	if err == nil && len(others) > 0 {
		cause += "; these are not: " + strings.Join(others, ", ")
	}
	return &Error{Op: op, Kind: ErrGroupNotViable, Cause: cause,
		Fix: "bind each of them to vfio-pci (`enactl bind ADDR`) or unbind them (`echo ADDR > /sys/bus/pci/devices/ADDR/driver/unbind`)"}
}

// openDevice gets the device fd, reads the identity from config space and
// turns on memory decoding and bus mastering (§6 step 1).
func (d *Device) openDevice(op string) error {
	name, err := unix.BytePtrFromString(d.addr)
	if err != nil {
		return errorf(op, err, "bad address")
	}
	fd, err := ioctl(d.groupFD, ioctlGroupGetDeviceFD, unsafe.Pointer(name))
	if err != nil {
		return errorf(op, err, "VFIO_GROUP_GET_DEVICE_FD")
	}
	d.devFD = fd
	di := deviceInfo{Argsz: uint32(unsafe.Sizeof(deviceInfo{}))}
	if _, err := ioctl(fd, ioctlDeviceGetInfo, unsafe.Pointer(&di)); err != nil {
		return errorf(op, err, "VFIO_DEVICE_GET_INFO")
	}
	if di.Flags&deviceFlagsPCI == 0 || di.NumRegions <= pciConfigRegionIndex {
		return &Error{Op: op, Kind: ErrUnsupported, Cause: fmt.Sprintf("not a VFIO PCI device (flags %#x, %d regions)", di.Flags, di.NumRegions)}
	}
	cfg, _, err := d.regionInfo(pciConfigRegionIndex)
	if err != nil {
		return errorf(op, err, "config space region info")
	}
	d.cfgOff, d.cfgOK = int64(cfg.Offset), true
	var hdr [12]byte
	if _, err := unix.Pread(fd, hdr[:], d.cfgOff); err != nil {
		return errorf(op, err, "read config space")
	}
	d.id = hw.Identity{
		Vendor:   binary.LittleEndian.Uint16(hdr[0:]),
		Device:   binary.LittleEndian.Uint16(hdr[2:]),
		Revision: hdr[8],
		Address:  d.addr,
	}
	if !d.id.IsENA() {
		d.log.Warn("vfio: device is not an ENA function; continuing (test rig?)", "addr", d.addr, "id", d.id.String())
	}
	return d.setCommand(pciCommandMemory|pciCommandMaster, 0, op)
}

// PCI command register bits (PCI spec; config offset 4).
const (
	pciCommandOff    = 4
	pciCommandMemory = 1 << 1
	pciCommandMaster = 1 << 2
)

// setCommand sets and clears bits in the PCI command register.
func (d *Device) setCommand(set, clr uint16, op string) error {
	var b [2]byte
	if _, err := unix.Pread(d.devFD, b[:], d.cfgOff+pciCommandOff); err != nil {
		return errorf(op, err, "read PCI command register")
	}
	v := (binary.LittleEndian.Uint16(b[:]) | set) &^ clr
	binary.LittleEndian.PutUint16(b[:], v)
	if _, err := unix.Pwrite(d.devFD, b[:], d.cfgOff+pciCommandOff); err != nil {
		return errorf(op, err, "write PCI command register")
	}
	return nil
}

// regionInfo returns one region's info and its capability chain bytes
// (the whole buffer, offsets relative to its start).
func (d *Device) regionInfo(index uint32) (regionInfo, []byte, error) {
	sz := uint32(unsafe.Sizeof(regionInfo{}))
	buf := make([]byte, sz)
	for range 2 {
		ri := (*regionInfo)(unsafe.Pointer(&buf[0]))
		ri.Argsz, ri.Index = uint32(len(buf)), index
		if _, err := ioctl(d.devFD, ioctlDeviceGetRegionInfo, unsafe.Pointer(&buf[0])); err != nil {
			return regionInfo{}, nil, err
		}
		// The kernel sets argsz to the size the capabilities need.
		if ri.Flags&regionInfoFlagCaps == 0 || ri.Argsz <= uint32(len(buf)) || ri.Argsz > 1<<16 {
			return *ri, buf, nil
		}
		buf = make([]byte, ri.Argsz)
	}
	return *(*regionInfo)(unsafe.Pointer(&buf[0])), buf, nil
}

// findCap walks a VFIO capability chain in buf starting at off and returns
// the offset of the capability with id, or -1. Offsets come from the kernel
// but are bounds-checked anyway.
func findCap(buf []byte, off uint32, id uint16) int {
	hsz := uint32(unsafe.Sizeof(infoCapHeader{}))
	for range 64 {
		if off == 0 || off < hsz || uint64(off)+uint64(hsz) > uint64(len(buf)) {
			return -1
		}
		capID := binary.NativeEndian.Uint16(buf[off:])
		next := binary.NativeEndian.Uint32(buf[off+4:])
		if capID == id {
			return int(off)
		}
		if next <= off {
			return -1
		}
		off = next
	}
	return -1
}

// mapRegion mmaps a whole BAR region through the device fd, honouring a
// sparse-mmap capability.
func (d *Device) mapRegion(index uint32, op string) (*mapping, error) {
	ri, buf, err := d.regionInfo(index)
	if err != nil {
		return nil, errorf(op, err, "region info of BAR%d", index)
	}
	if ri.Size == 0 {
		return nil, nil
	}
	if ri.Flags&regionInfoFlagMmap == 0 {
		return nil, &Error{Op: op, Kind: ErrUnsupported, Cause: fmt.Sprintf("vfio-pci does not allow mmap of BAR%d (flags %#x)", index, ri.Flags)}
	}
	if ri.Size > 1<<40 {
		return nil, errorf(op, nil, "BAR%d size %#x is implausible", index, ri.Size)
	}
	if ri.Flags&regionInfoFlagCaps != 0 {
		if c := findCap(buf, ri.CapOffset, regionInfoCapSparseMmap); c >= 0 {
			var areas []sparseMmapArea
			if c+16 <= len(buf) {
				n := binary.NativeEndian.Uint32(buf[c+8:])
				for i := range min(n, 64) {
					o := c + 16 + int(i)*16
					if o+16 > len(buf) {
						break
					}
					areas = append(areas, sparseMmapArea{
						Offset: binary.NativeEndian.Uint64(buf[o:]),
						Size:   binary.NativeEndian.Uint64(buf[o+8:]),
					})
				}
			}
			m, err := mmapSparse(d.devFD, int64(ri.Offset), uintptr(ri.Size), areas)
			if err != nil {
				return nil, errorf(op, err, "mmap BAR%d (sparse)", index)
			}
			return m, nil
		}
	}
	m, err := mmapShared(d.devFD, int64(ri.Offset), uintptr(ri.Size))
	if err != nil {
		return nil, errorf(op, err, "mmap BAR%d", index)
	}
	return m, nil
}

// mapBARs maps BAR0 through VFIO and BAR2 write-combining when sysfs offers
// resource2_wc, falling back to VFIO's uncached mapping with a warning.
func (d *Device) mapBARs(sys pci.Sysfs, info pci.Device, vfioWC bool, op string) error {
	m, err := d.mapRegion(pciBAR0RegionIndex, op)
	if err != nil {
		return err
	}
	if m == nil {
		return &Error{Op: op, Kind: ErrUnsupported, Cause: "BAR0 (registers) is empty"}
	}
	d.bar0 = m
	if info.WCPossible {
		wcPath := filepath.Join(sys.DevicePath(d.addr), "resource2_wc")
		wm, err := mapSysfsWC(wcPath)
		if err == nil {
			d.bar2, d.wc = wm, true
			return nil
		}
		d.log.Warn("vfio: cannot map the LLQ BAR write-combining through sysfs; falling back to VFIO's uncached mapping",
			"path", wcPath, "err", err)
	}
	m2, err := d.mapRegion(pciBAR2RegionIndex, op)
	if err != nil {
		d.log.Warn("vfio: LLQ BAR2 cannot be mapped; the driver will use host-mode Tx", "addr", d.addr, "err", err)
		return nil
	}
	d.bar2 = m2
	if m2 != nil && vfioWC {
		d.wc = true
		d.log.Info("vfio: LLQ BAR2 mapped through the WC-patched vfio-pci (trusted as write-combining)", "addr", d.addr)
	} else if m2 != nil {
		d.log.Warn("vfio: LLQ BAR2 is mapped UNCACHED, not write-combining: LLQ Tx will be slow "+
			"(each 64-bit store is its own PCIe write). Stock vfio-pci maps BARs uncached and this kernel offers no "+
			"resource2_wc in sysfs; use a kernel that has it (x86 with PAT), or AWS's WC-patched vfio-pci "+
			"(amzn-drivers userspace/dpdk/enav2-vfio-patch)", "addr", d.addr)
	}
	return nil
}

// mapSysfsWC maps a sysfs resourceN_wc file: the kernel maps it with
// write-combining page attributes (x86 PAT WC, arm64 Normal-NC), which is
// what LLQ needs (protocol §8.3).
func mapSysfsWC(path string) (*mapping, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Size <= 0 || st.Size > 1<<40 {
		return nil, fmt.Errorf("%s has size %d", path, st.Size)
	}
	return mmapShared(fd, 0, uintptr(st.Size))
}

// containerMapper maps DMA memory through the VFIO container (type1).
type containerMapper struct{ fd int }

func (c containerMapper) mapDMA(va uintptr, iova, size uint64) error {
	m := dmaMap{Argsz: uint32(unsafe.Sizeof(dmaMap{})), Flags: dmaMapFlagRead | dmaMapFlagWrite,
		Vaddr: uint64(va), IOVA: iova, Size: size}
	if _, err := ioctl(c.fd, ioctlIOMMUMapDMA, unsafe.Pointer(&m)); err != nil {
		if errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.EPERM) {
			return memlockError("map DMA memory in the IOMMU", int(size), err)
		}
		return errorf("map DMA memory in the IOMMU", err, "VFIO_IOMMU_MAP_DMA iova %#x size %#x", iova, size)
	}
	return nil
}

func (c containerMapper) unmapDMA(iova, size uint64) error {
	u := dmaUnmap{Argsz: uint32(unsafe.Sizeof(dmaUnmap{})), IOVA: iova, Size: size}
	if _, err := ioctl(c.fd, ioctlIOMMUUnmapDMA, unsafe.Pointer(&u)); err != nil {
		return errorf("unmap DMA memory from the IOMMU", err, "VFIO_IOMMU_UNMAP_DMA iova %#x size %#x", iova, size)
	}
	return nil
}

// iovaRanges asks the type1 IOMMU which IOVA ranges it can translate.
func (d *Device) iovaRanges() []iovaRange {
	sz := uint32(unsafe.Sizeof(iommuType1Info{}))
	buf := make([]byte, sz)
	for range 2 {
		in := (*iommuType1Info)(unsafe.Pointer(&buf[0]))
		in.Argsz = uint32(len(buf))
		if _, err := ioctl(d.container, ioctlIOMMUGetInfo, unsafe.Pointer(&buf[0])); err != nil {
			return nil
		}
		if in.Flags&iommuInfoCaps == 0 {
			return nil
		}
		if in.Argsz > uint32(len(buf)) && in.Argsz <= 1<<16 {
			buf = make([]byte, in.Argsz)
			continue
		}
		c := findCap(buf, in.CapOffset, iommuType1InfoCapIOVARange)
		if c < 0 || c+16 > len(buf) {
			return nil
		}
		n := binary.NativeEndian.Uint32(buf[c+8:])
		var rs []iovaRange
		for i := range min(n, 256) {
			o := c + 16 + int(i)*16
			if o+16 > len(buf) {
				break
			}
			r := iovaRange{binary.NativeEndian.Uint64(buf[o:]), binary.NativeEndian.Uint64(buf[o+8:])}
			if r.End >= r.Start {
				rs = append(rs, r)
			}
		}
		return rs
	}
	return nil
}

// setupDMA builds the hugepage pool for the mode in use.
func (d *Device) setupDMA(o Options) error {
	p := &dmaPool{meminfo: o.Meminfo, pmPath: o.Pagemap}
	if p.meminfo == "" {
		p.meminfo = "/proc/meminfo"
	}
	if p.pmPath == "" {
		p.pmPath = "/proc/self/pagemap"
	}
	switch {
	case d.mode == ModeNoIOMMU:
		p.mode, p.width = addrPhys, physAddrBits()
	case o.IOVAIsPhys:
		p.mode, p.width = addrPhysMapped, physAddrBits()
		p.mapper = containerMapper{d.container}
	default:
		rs := d.iovaRanges()
		if len(rs) == 0 {
			rs = defaultIOVARanges
		}
		p.iova = &iovaAllocator{ranges: rs}
		p.mode, p.width = addrIOVA, min(p.iova.width(), 64)
		p.mapper = containerMapper{d.container}
	}
	d.dma = p
	return nil
}

// setupIRQs creates one eventfd per MSI-X vector and hands them to VFIO.
// A device without MSI-X (the QEMU proxy rig) gets zero vectors and the
// driver polls.
func (d *Device) setupIRQs(maxVec int, op string) error {
	d.irq = newInterrupts(nil)
	if maxVec < 0 {
		return nil
	}
	ii := irqInfo{Argsz: uint32(unsafe.Sizeof(irqInfo{})), Index: d.irqIndex}
	if _, err := ioctl(d.devFD, ioctlDeviceGetIRQInfo, unsafe.Pointer(&ii)); err != nil || ii.Count == 0 || ii.Flags&irqInfoEventfd == 0 {
		d.log.Info("vfio: no MSI-X vectors; the driver will poll", "addr", d.addr, "count", ii.Count, "err", err)
		return nil
	}
	n := int(ii.Count)
	if maxVec > 0 {
		n = min(n, maxVec)
	}
	fds, err := newEventfds(n)
	if err != nil {
		return err
	}
	irq := newInterrupts(fds)
	if err := d.setIRQs(irq.fds()); err != nil {
		_ = irq.close()
		return errorf(op, err, "enable %d MSI-X vectors (VFIO_DEVICE_SET_IRQS)", n)
	}
	d.irq = irq
	return nil
}

// setIRQs attaches eventfds to MSI-X vectors 0..len-1; an empty list
// disables MSI-X.
func (d *Device) setIRQs(fds []int32) error {
	hsz := int(unsafe.Sizeof(irqSetHeader{}))
	buf := make([]byte, hsz+4*len(fds))
	h := (*irqSetHeader)(unsafe.Pointer(&buf[0]))
	h.Argsz = uint32(len(buf))
	h.Index = d.irqIndex
	h.Count = uint32(len(fds))
	h.Flags = irqSetDataEventfd | irqSetActionTrigger
	if len(fds) == 0 {
		h.Flags = irqSetDataNone | irqSetActionTrigger
	}
	for i, fd := range fds {
		binary.NativeEndian.PutUint32(buf[hsz+4*i:], uint32(fd))
	}
	_, err := ioctl(d.devFD, ioctlDeviceSetIRQs, unsafe.Pointer(&buf[0]))
	return err
}

// Close implements hw.Device. It stops the device from raising interrupts
// and doing DMA (bus mastering off) before it frees the memory the device
// could write, then drops the mappings and file descriptors. Safe twice; the
// driver must have stopped using the BARs and regions first.
func (d *Device) Close() error {
	d.closeMu.Lock()
	defer d.closeMu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	var errs []error
	if d.irq != nil && d.irq.NumVectors() > 0 && d.devFD >= 0 {
		if err := d.setIRQs(nil); err != nil {
			errs = append(errs, fmt.Errorf("vfio: close %s: disable MSI-X: %w", d.addr, err))
		}
	}
	if d.irq != nil {
		if err := d.irq.close(); err != nil {
			errs = append(errs, err)
		}
	}
	if d.devFD >= 0 && d.cfgOK {
		if err := d.setCommand(0, pciCommandMaster, "close "+d.addr); err != nil {
			errs = append(errs, err)
		}
	}
	for _, m := range []*mapping{d.bar0, d.bar2} {
		if m != nil {
			if err := m.unmap(); err != nil {
				errs = append(errs, fmt.Errorf("vfio: close %s: unmap BAR: %w", d.addr, err))
			}
		}
	}
	if d.dma != nil {
		if err := d.dma.close(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, fd := range []*int{&d.devFD, &d.groupFD, &d.container} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
	return errors.Join(errs...)
}
