// Package pcitest builds fixture sysfs trees for tests of PCI discovery,
// binding and VFIO diagnostics, and plays the kernel's part when a test
// writes to driver_override, unbind or drivers_probe.
package pcitest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/enanet/enanet/vfio/pci"
)

// Tree is a fixture sysfs root.
type Tree struct {
	Root string
	t    testing.TB
	// nextGroup numbers groups vfio-pci creates in no-IOMMU mode.
	nextGroup int
	nextIf    int
}

// Dev describes one fixture PCI function.
type Dev struct {
	Addr           string
	Vendor, Device uint16
	Revision       uint8
	Driver         string   // "" for unbound
	Ifaces         []string // net/ entries
	Group          int      // IOMMU group, -1 for none
	NUMA           int
	Resource       string // sysfs `resource` contents; "" for an ENA-like default
	WC             bool   // create resource2_wc
}

// ENAResource is a typical ENA `resource`: 16 KiB BAR0, 64-bit prefetchable
// BAR2 (LLQ), BAR4 empty.
const ENAResource = "0x00000000febf8000 0x00000000febfbfff 0x0000000000040200\n" +
	"0x0000000000000000 0x0000000000000000 0x0000000000000000\n" +
	"0x00000000fe800000 0x00000000fe8fffff 0x000000000014220c\n" +
	"0x0000000000000000 0x0000000000000000 0x0000000000000000\n" +
	"0x0000000000000000 0x0000000000000000 0x0000000000000000\n" +
	"0x0000000000000000 0x0000000000000000 0x0000000000000000\n" +
	"0x0000000000000000 0x0000000000000000 0x0000000000000000\n"

// New makes an empty tree: the PCI bus, drivers_probe and iommu_groups.
func New(t testing.TB) *Tree {
	t.Helper()
	tr := &Tree{Root: t.TempDir(), t: t, nextGroup: 100}
	tr.mkdir("bus/pci/devices")
	tr.mkdir("bus/pci/drivers")
	tr.mkdir("kernel/iommu_groups")
	tr.write("bus/pci/drivers_probe", "")
	return tr
}

// Sysfs returns a pci.Sysfs over the tree whose writes the fixture answers
// the way the kernel would.
func (tr *Tree) Sysfs() pci.Sysfs {
	return pci.Sysfs{Root: tr.Root, OnWrite: tr.kernel}
}

func (tr *Tree) path(rel string) string { return filepath.Join(tr.Root, rel) }

func (tr *Tree) mkdir(rel string) {
	tr.t.Helper()
	if err := os.MkdirAll(tr.path(rel), 0o755); err != nil {
		tr.t.Fatal(err)
	}
}

func (tr *Tree) write(rel, val string) {
	tr.t.Helper()
	if err := os.MkdirAll(filepath.Dir(tr.path(rel)), 0o755); err != nil {
		tr.t.Fatal(err)
	}
	if err := os.WriteFile(tr.path(rel), []byte(val), 0o644); err != nil {
		tr.t.Fatal(err)
	}
}

func (tr *Tree) symlink(target, rel string) {
	tr.t.Helper()
	_ = os.Remove(tr.path(rel))
	if err := os.Symlink(target, tr.path(rel)); err != nil {
		tr.t.Fatal(err)
	}
}

// AddDriver registers a PCI driver (creates bus/pci/drivers/name/unbind).
func (tr *Tree) AddDriver(name string) {
	tr.write("bus/pci/drivers/"+name+"/unbind", "")
	tr.write("bus/pci/drivers/"+name+"/bind", "")
}

// SetNoIOMMU creates the vfio module's no-IOMMU parameter with val ("N" or
// "Y"). Without it the tree looks like a vfio built without no-IOMMU support.
func (tr *Tree) SetNoIOMMU(val string) {
	tr.write("module/vfio/parameters/enable_unsafe_noiommu_mode", val+"\n")
}

// AddDevice adds one function, its driver link, interfaces and group.
func (tr *Tree) AddDevice(d Dev) {
	tr.t.Helper()
	dir := "bus/pci/devices/" + d.Addr
	tr.mkdir(dir)
	tr.write(dir+"/vendor", fmt.Sprintf("0x%04x\n", d.Vendor))
	tr.write(dir+"/device", fmt.Sprintf("0x%04x\n", d.Device))
	tr.write(dir+"/revision", fmt.Sprintf("0x%02x\n", d.Revision))
	tr.write(dir+"/class", "0x020000\n")
	tr.write(dir+"/numa_node", strconv.Itoa(d.NUMA)+"\n")
	tr.write(dir+"/driver_override", "(null)\n")
	res := d.Resource
	if res == "" {
		res = ENAResource
	}
	tr.write(dir+"/resource", res)
	if d.WC {
		tr.write(dir+"/resource2_wc", "")
	}
	if d.Driver != "" {
		tr.bindTo(d.Addr, d.Driver, d.Ifaces)
	}
	if d.Group >= 0 {
		tr.joinGroup(d.Addr, d.Group)
	}
}

func (tr *Tree) bindTo(addr, drv string, ifaces []string) {
	if _, err := os.Stat(tr.path("bus/pci/drivers/" + drv)); err != nil {
		tr.AddDriver(drv)
	}
	dir := "bus/pci/devices/" + addr
	tr.symlink("../../drivers/"+drv, dir+"/driver")
	for _, ifn := range ifaces {
		tr.mkdir(dir + "/net/" + ifn)
	}
}

func (tr *Tree) joinGroup(addr string, g int) {
	gdir := "kernel/iommu_groups/" + strconv.Itoa(g)
	tr.mkdir(gdir + "/devices")
	tr.symlink("../../../bus/pci/devices/"+addr, gdir+"/devices/"+addr)
	tr.symlink("../../../"+gdir, "bus/pci/devices/"+addr+"/iommu_group")
}

// kernel plays the kernel's reaction to control-file writes: unbind drops
// the driver link, drivers_probe binds to driver_override (or to ena), and
// vfio-pci refuses a device without a group unless no-IOMMU mode is on, in
// which case it creates a group the way vfio does.
func (tr *Tree) kernel(path, val string) {
	rel, err := filepath.Rel(tr.Root, path)
	if err != nil {
		return
	}
	val = strings.TrimSpace(val)
	switch {
	case strings.HasSuffix(rel, "/driver_override"):
		if val == "" {
			val = "(null)"
		}
		tr.write(rel, val+"\n")
	case strings.HasSuffix(rel, "/driver/unbind"):
		dir := "bus/pci/devices/" + val
		_ = os.Remove(tr.path(dir + "/driver"))
		_ = os.RemoveAll(tr.path(dir + "/net"))
	case rel == "bus/pci/drivers_probe":
		dir := "bus/pci/devices/" + val
		if _, err := os.Lstat(tr.path(dir + "/driver")); err == nil {
			return
		}
		b, _ := os.ReadFile(tr.path(dir + "/driver_override"))
		ov := strings.TrimSpace(string(b))
		switch ov {
		case "(null)", "":
			if _, err := os.Stat(tr.path("bus/pci/drivers/ena")); err == nil {
				tr.nextIf++
				tr.bindTo(val, "ena", []string{fmt.Sprintf("eth%d", tr.nextIf)})
			}
		case "vfio-pci":
			if _, err := os.Lstat(tr.path(dir + "/iommu_group")); err != nil {
				b, _ := os.ReadFile(tr.path(pci.NoIOMMUParam))
				if strings.TrimSpace(string(b)) != "Y" {
					return // probe fails with -22
				}
				tr.nextGroup++
				tr.joinGroup(val, tr.nextGroup)
			}
			tr.bindTo(val, "vfio-pci", nil)
		default:
			tr.bindTo(val, ov, nil)
		}
	}
}

// WriteFile writes a file under the root (for routes, meminfo and other
// odds and ends a test needs).
func (tr *Tree) WriteFile(rel, val string) string {
	tr.write(rel, val)
	return tr.path(rel)
}
