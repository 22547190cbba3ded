package pci_test

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enanet/enanet/vfio/pci"
	"github.com/enanet/enanet/vfio/pci/pcitest"
)

const (
	routeDefaultEth0 = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
		"eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
		"eth1\t000300C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
)

// ec2Tree is a c6in-like instance: eth0 (primary, default route) and eth1
// (secondary ENA), a virtio device that is not ENA, an IOMMU-less kernel
// with vfio-pci loaded.
func ec2Tree(t *testing.T) (*pcitest.Tree, pci.BindOptions) {
	tr := pcitest.New(t)
	tr.AddDriver("vfio-pci")
	tr.AddDevice(pcitest.Dev{Addr: "0000:00:05.0", Vendor: 0x1d0f, Device: 0xec20, Driver: "ena", Ifaces: []string{"eth0"}, Group: -1, WC: true})
	tr.AddDevice(pcitest.Dev{Addr: "0000:00:06.0", Vendor: 0x1d0f, Device: 0xec20, Driver: "ena", Ifaces: []string{"eth1"}, Group: -1, NUMA: 1, WC: true})
	tr.AddDevice(pcitest.Dev{Addr: "0000:00:01.0", Vendor: 0x1af4, Device: 0x1045, Driver: "virtio-pci", Group: -1, Resource: "0x0 0x0 0x0\n"})
	o := pci.BindOptions{
		RouteFile:     tr.WriteFile("proc/route", routeDefaultEth0),
		Route6File:    filepath.Join(tr.Root, "proc/absent"),
		SSHConnection: "198.51.100.7 50000 192.0.2.10 22",
		InterfaceAddrs: func(name string) ([]netip.Addr, error) {
			switch name {
			case "eth0":
				return []netip.Addr{netip.MustParseAddr("192.0.2.10")}, nil
			case "eth1":
				return []netip.Addr{netip.MustParseAddr("192.0.3.20")}, nil
			}
			return nil, errors.New("no such interface")
		},
	}
	return tr, o
}

func TestScanENA(t *testing.T) {
	tr, _ := ec2Tree(t)
	ena, scanned, err := tr.Sysfs().ENA()
	if err != nil {
		t.Fatal(err)
	}
	if scanned != 3 || len(ena) != 2 {
		t.Fatalf("scanned %d, found %d ENA; want 3, 2", scanned, len(ena))
	}
	d := ena[1]
	if d.Address != "0000:00:06.0" || d.Driver != "ena" || d.NUMANode != 1 || !d.WCPossible ||
		len(d.Interfaces) != 1 || d.Interfaces[0] != "eth1" || d.IOMMUGroup != -1 {
		t.Fatalf("device parsed wrong: %+v", d)
	}
	if len(d.BARs) != 2 {
		t.Fatalf("BARs = %v, want BAR0 and BAR2", d.BARs)
	}
	b2, ok := d.BAR(2)
	if !ok || b2.Size() != 1<<20 || !b2.Prefetchable() || !b2.Is64() || !b2.IsMemory() {
		t.Fatalf("BAR2 = %v", b2)
	}
	if b0, _ := d.BAR(0); b0.Size() != 16<<10 || b0.Prefetchable() {
		t.Fatalf("BAR0 = %v", b0)
	}
	if got := b2.String(); got != "BAR2 0xfe800000+1M mem64,pref" {
		t.Fatalf("BAR2 string %q", got)
	}
}

func TestNormalizeAndLookup(t *testing.T) {
	tr, _ := ec2Tree(t)
	d, err := tr.Sysfs().Lookup("00:06.0")
	if err != nil || d.Address != "0000:00:06.0" {
		t.Fatalf("Lookup short form: %v %+v", err, d)
	}
	if _, err := tr.Sysfs().Lookup("0000:00:09.0"); !errors.Is(err, pci.ErrNotFound) || !strings.Contains(err.Error(), "enactl list") {
		t.Fatalf("missing device error = %v", err)
	}
	if _, err := pci.NormalizeAddress("eth0"); err == nil {
		t.Fatal("eth0 accepted as a PCI address")
	}
}

func TestBindRefusesDefaultRoute(t *testing.T) {
	tr, o := ec2Tree(t)
	tr.SetNoIOMMU("Y")
	_, err := tr.Sysfs().Bind("0000:00:05.0", o)
	if !errors.Is(err, pci.ErrInUse) || !strings.Contains(err.Error(), "eth0 carries the default route") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("err = %v", err)
	}
	if d, _ := tr.Sysfs().Lookup("0000:00:05.0"); d.Driver != "ena" {
		t.Fatalf("refused bind still moved the device to %q", d.Driver)
	}
}

func TestBindRefusesSSHInterface(t *testing.T) {
	tr, o := ec2Tree(t)
	tr.SetNoIOMMU("Y")
	o.RouteFile = tr.WriteFile("proc/route2", "Iface\tDestination\n") // no default route at all
	o.SSHConnection = "198.51.100.7 50000 192.0.3.20 22"              // session arrives on eth1
	_, err := tr.Sysfs().Bind("0000:00:06.0", o)
	if !errors.Is(err, pci.ErrInUse) || !strings.Contains(err.Error(), "192.0.3.20") || !strings.Contains(err.Error(), "SSH") {
		t.Fatalf("err = %v", err)
	}
	o.Force = true
	if _, err := tr.Sysfs().Bind("0000:00:06.0", o); err != nil {
		t.Fatalf("forced bind: %v", err)
	}
}

func TestBindNoIOMMUMode(t *testing.T) {
	tr, o := ec2Tree(t)
	tr.SetNoIOMMU("Y")
	steps, err := tr.Sysfs().Bind("0000:00:06.0", o)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`echo "vfio-pci" > ` + tr.Root + `/bus/pci/devices/0000:00:06.0/driver_override`,
		`echo "0000:00:06.0" > ` + tr.Root + `/bus/pci/devices/0000:00:06.0/driver/unbind`,
		`echo "0000:00:06.0" > ` + tr.Root + `/bus/pci/drivers_probe`,
	}
	if strings.Join(steps, "\n") != strings.Join(want, "\n") {
		t.Fatalf("steps:\n%s\nwant:\n%s", strings.Join(steps, "\n"), strings.Join(want, "\n"))
	}
	d, _ := tr.Sysfs().Lookup("0000:00:06.0")
	if d.Driver != "vfio-pci" || d.IOMMUGroup < 0 || len(d.Interfaces) != 0 {
		t.Fatalf("after bind: %+v", d)
	}
	// Binding again is a no-op.
	if steps, err := tr.Sysfs().Bind("0000:00:06.0", o); err != nil || !strings.Contains(steps[0], "already") {
		t.Fatalf("rebind: %v %v", steps, err)
	}
	// And back to ena.
	tr.AddDriver("ena")
	if _, err := tr.Sysfs().Unbind("0000:00:06.0", o); err != nil {
		t.Fatal(err)
	}
	d, _ = tr.Sysfs().Lookup("0000:00:06.0")
	if d.Driver != "ena" || d.DriverOverride != "" || len(d.Interfaces) != 1 {
		t.Fatalf("after unbind: %+v", d)
	}
}

func TestBindNoIOMMUOff(t *testing.T) {
	tr, o := ec2Tree(t)
	tr.SetNoIOMMU("N")
	_, err := tr.Sysfs().Bind("0000:00:06.0", o)
	if !errors.Is(err, pci.ErrNoIOMMU) || !strings.Contains(err.Error(), "enactl setup") {
		t.Fatalf("err = %v", err)
	}
	// A vfio built without CONFIG_VFIO_NOIOMMU: module present, no parameter.
	if err := os.Remove(tr.Sysfs().NoIOMMUPath()); err != nil {
		t.Fatal(err)
	}
	_, err = tr.Sysfs().Bind("0000:00:06.0", o)
	if !errors.Is(err, pci.ErrNoIOMMU) || !strings.Contains(err.Error(), "CONFIG_VFIO_NOIOMMU") {
		t.Fatalf("err = %v", err)
	}
}

func TestBindKernelRefuses(t *testing.T) {
	tr, o := ec2Tree(t)
	tr.SetNoIOMMU("Y")
	s := tr.Sysfs()
	s.OnWrite = nil // the "kernel" ignores every write
	_, err := s.Bind("0000:00:06.0", o)
	if err == nil || !strings.Contains(err.Error(), "did not bind") || !strings.Contains(err.Error(), "dmesg") {
		t.Fatalf("err = %v", err)
	}
}

func TestBindVFIONotLoaded(t *testing.T) {
	tr, o := ec2Tree(t)
	if err := os.RemoveAll(tr.Sysfs().DriverPath("vfio-pci")); err != nil {
		t.Fatal(err)
	}
	_, err := tr.Sysfs().Bind("0000:00:06.0", o)
	if err == nil || !strings.Contains(err.Error(), "modprobe vfio-pci") {
		t.Fatalf("err = %v", err)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	tr, o := ec2Tree(t)
	tr.SetNoIOMMU("Y")
	o.DryRun = true
	steps, err := tr.Sysfs().Bind("0000:00:06.0", o)
	if err != nil || len(steps) != 3 {
		t.Fatalf("dry run: %v %v", steps, err)
	}
	if d, _ := tr.Sysfs().Lookup("0000:00:06.0"); d.Driver != "ena" || d.DriverOverride != "" {
		t.Fatalf("dry run changed the device: %+v", d)
	}
}

func TestGroupOthers(t *testing.T) {
	tr := pcitest.New(t)
	tr.AddDevice(pcitest.Dev{Addr: "0000:00:06.0", Vendor: 0x1d0f, Device: 0xec20, Driver: "vfio-pci", Group: 7})
	tr.AddDevice(pcitest.Dev{Addr: "0000:00:07.0", Vendor: 0x8086, Device: 0x1234, Driver: "nvme", Group: 7})
	tr.AddDevice(pcitest.Dev{Addr: "0000:00:08.0", Vendor: 0x8086, Device: 0x1235, Group: 7})
	devs, err := tr.Sysfs().GroupDevices(7)
	if err != nil || len(devs) != 3 {
		t.Fatalf("group: %v %v", devs, err)
	}
	others := pci.Other(devs, "0000:00:06.0")
	if len(others) != 1 || others[0] != "0000:00:07.0 (driver nvme)" {
		t.Fatalf("others = %v", others)
	}
	if !tr.Sysfs().IOMMUPresent() {
		t.Fatal("IOMMUPresent false with a group")
	}
}

func TestDefaultRouteIPv6(t *testing.T) {
	tr := pcitest.New(t)
	r6 := tr.WriteFile("proc/ipv6_route",
		"00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth2\n"+
			"00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n")
	r4 := tr.WriteFile("proc/route", "Iface\tDestination\n")
	m, err := pci.DefaultRouteInterfaces(r4, r6)
	if err != nil || !m["eth2"] || m["lo"] {
		t.Fatalf("defaults = %v, %v", m, err)
	}
}
