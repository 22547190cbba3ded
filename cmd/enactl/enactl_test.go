package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enanet/enanet/ena/control"
	"github.com/enanet/enanet/vfio/pci"
	"github.com/enanet/enanet/vfio/pci/pcitest"
)

// enactl runs one command line and returns exit code, stdout and stderr.
// Control sockets go to a fresh directory, so that no process running on
// the machine is mistaken for the device under test.
func enactl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return enactlIn(t, t.TempDir(), args...)
}

// enactlIn runs one command line with control sockets in dir.
func enactlIn(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	getenv := func(k string) string {
		if k == control.DirEnv {
			return dir
		}
		return ""
	}
	code := run(args, &env{stdout: &out, stderr: &errb, getenv: getenv})
	return code, out.String(), errb.String()
}

const route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
	"eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"

func tree(t *testing.T) (*pcitest.Tree, string) {
	tr := pcitest.New(t)
	tr.AddDriver("vfio-pci")
	tr.SetNoIOMMU("Y")
	tr.AddDevice(pcitest.Dev{Addr: "0000:00:05.0", Vendor: 0x1d0f, Device: 0xec20, Driver: "ena", Ifaces: []string{"eth0"}, Group: -1, WC: true})
	tr.AddDevice(pcitest.Dev{Addr: "0000:00:06.0", Vendor: 0x1d0f, Device: 0xec21, Driver: "ena", Ifaces: []string{"eth1"}, Group: -1, NUMA: 0})
	tr.AddDevice(pcitest.Dev{Addr: "0000:00:01.0", Vendor: 0x1af4, Device: 0x1045, Driver: "virtio-pci", Group: -1})
	return tr, tr.WriteFile("proc/net/route", route)
}

func TestListNoENA(t *testing.T) {
	tr := pcitest.New(t)
	tr.AddDevice(pcitest.Dev{Addr: "0000:00:01.0", Vendor: 0x1af4, Device: 0x1045, Driver: "virtio-pci", Group: -1})
	code, out, _ := enactl(t, "list", "--sysfs", tr.Root)
	if code != 0 || !strings.Contains(out, "No ENA devices found: scanned 1 PCI devices") || !strings.Contains(out, "ec20, ec21, 0ec2, 1ec2") {
		t.Fatalf("code %d, out:\n%s", code, out)
	}
}

func TestListENA(t *testing.T) {
	tr, rt := tree(t)
	code, out, errs := enactl(t, "list", "--sysfs", tr.Root, "--route-file", rt)
	if code != 0 {
		t.Fatalf("code %d: %s", code, errs)
	}
	for _, want := range []string{"0000:00:05.0", "1d0f:ec20", "eth0*", "0000:00:06.0", "1d0f:ec21", "eth1 ",
		"0xfe800000+1M mem64,pref", "2 ENA device(s) of 3 PCI devices", "no-IOMMU mode is on"} {
		if !strings.Contains(out, want) {
			t.Errorf("list output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = enactl(t, "list", "--device", "sim")
	if code != 0 || !strings.Contains(out, "sim0") {
		t.Fatalf("list --device sim: %d %s", code, out)
	}
	code, out, _ = enactl(t, "list", "--sysfs", tr.Root, "--device", "00:06.0", "--route-file", rt)
	if code != 0 || strings.Contains(out, "0000:00:05.0") || !strings.Contains(out, "0000:00:06.0") {
		t.Fatalf("list --device: %d %s", code, out)
	}
}

func TestBindUnbind(t *testing.T) {
	tr, rt := tree(t)
	// The CLI uses a plain pci.Sysfs, so play the kernel with the tree's
	// hook by binding through the library first for the refusal check.
	code, _, errs := enactl(t, "bind", "--sysfs", tr.Root, "--route-file", rt, "0000:00:05.0")
	if code != 1 || !strings.Contains(errs, "eth0 carries the default route") {
		t.Fatalf("bind of the default-route device: %d %s", code, errs)
	}
	code, out, errs := enactl(t, "bind", "--sysfs", tr.Root, "--route-file", rt, "--dry-run", "0000:00:06.0")
	if code != 0 || !strings.Contains(out, `echo "vfio-pci" > `+tr.Root+"/bus/pci/devices/0000:00:06.0/driver_override") {
		t.Fatalf("dry run: %d %s %s", code, out, errs)
	}
	// A real bind against the fixture: nothing plays the kernel here, so
	// the writes land but the driver does not change, which bind reports.
	code, _, errs = enactl(t, "bind", "--sysfs", tr.Root, "--route-file", rt, "0000:00:06.0")
	if code != 1 || !strings.Contains(errs, "did not bind") {
		t.Fatalf("bind without a kernel: %d %s", code, errs)
	}
	b, _ := os.ReadFile(filepath.Join(tr.Root, "bus/pci/devices/0000:00:06.0/driver_override"))
	if string(b) != "vfio-pci" {
		t.Fatalf("driver_override = %q", b)
	}
	if code, _, errs := enactl(t, "bind", "--sysfs", tr.Root); code != 2 || !strings.Contains(errs, "at least one PCI address") {
		t.Fatalf("bind without address: %d %s", code, errs)
	}
	// Unbind clears the override again.
	if code, _, errs := enactl(t, "unbind", "--sysfs", tr.Root, "0000:00:06.0"); code != 0 {
		t.Fatalf("unbind: %d %s", code, errs)
	}
	b, _ = os.ReadFile(filepath.Join(tr.Root, "bus/pci/devices/0000:00:06.0/driver_override"))
	if string(b) != "\n" {
		t.Fatalf("driver_override after unbind = %q", b)
	}
}

// TestBindUnbindWithKernel runs the CLI against a fixture that plays the
// kernel, so the device really moves to vfio-pci and back.
func TestBindUnbindWithKernel(t *testing.T) {
	tr, rt := tree(t)
	old := sysfsAt
	sysfsAt = func(string) pci.Sysfs { return tr.Sysfs() }
	t.Cleanup(func() { sysfsAt = old })
	code, out, errs := enactl(t, "bind", "--sysfs", tr.Root, "--route-file", rt, "0000:00:06.0")
	if code != 0 || strings.Count(out, "echo ") != 3 {
		t.Fatalf("bind: %d\n%s%s", code, out, errs)
	}
	_, out, _ = enactl(t, "list", "--sysfs", tr.Root, "--route-file", rt)
	if !strings.Contains(out, "vfio-pci") {
		t.Fatalf("list after bind:\n%s", out)
	}
	if code, _, errs := enactl(t, "unbind", "--sysfs", tr.Root, "0000:00:06.0"); code != 0 {
		t.Fatalf("unbind: %d %s", code, errs)
	}
	if d, _ := tr.Sysfs().Lookup("0000:00:06.0"); d.Driver != "ena" || len(d.Interfaces) != 1 {
		t.Fatalf("after unbind: %+v", d)
	}
}

func TestSetup(t *testing.T) {
	tr, _ := tree(t)
	tr.SetNoIOMMU("N")
	nr := tr.WriteFile("proc/sys/vm/nr_hugepages", "0\n")
	proc := filepath.Join(tr.Root, "proc")

	code, out, errs := enactl(t, "setup", "--sysfs", tr.Root, "--proc", proc, "--dry-run")
	if code != 0 || !strings.Contains(out, "would change: hugepages 0 -> 64") || !strings.Contains(out, "would change: VFIO no-IOMMU mode N -> Y") {
		t.Fatalf("dry run: %d\n%s%s", code, out, errs)
	}
	if b, _ := os.ReadFile(nr); strings.TrimSpace(string(b)) != "0" {
		t.Fatal("dry run changed nr_hugepages")
	}
	code, out, errs = enactl(t, "setup", "--sysfs", tr.Root, "--proc", proc, "--hugepages", "32")
	if code != 0 {
		t.Fatalf("setup: %d %s", code, errs)
	}
	for _, want := range []string{"changed: hugepages 0 -> 32 (64 MiB)", "changed: VFIO no-IOMMU mode N -> Y", "vfio-pci: loaded",
		"0000:00:05.0: LLQ BAR can be mapped write-combining", "0000:00:06.0: WARNING: no resource2_wc"} {
		if !strings.Contains(out, want) {
			t.Errorf("setup output lacks %q:\n%s", want, out)
		}
	}
	if b, _ := os.ReadFile(nr); strings.TrimSpace(string(b)) != "32" {
		t.Fatalf("nr_hugepages = %q", b)
	}
	if on, _ := (pci.Sysfs{Root: tr.Root}).NoIOMMUMode(); !on {
		t.Fatal("no-IOMMU mode not enabled")
	}
	// Second run changes nothing.
	_, out, _ = enactl(t, "setup", "--sysfs", tr.Root, "--proc", proc, "--hugepages", "32")
	if strings.Contains(out, "changed:") {
		t.Fatalf("second setup changed something:\n%s", out)
	}
	// A vfio without no-IOMMU support is an error that says why.
	os.Remove(pci.Sysfs{Root: tr.Root}.NoIOMMUPath())
	code, _, errs = enactl(t, "setup", "--sysfs", tr.Root, "--proc", proc)
	if code != 1 || !strings.Contains(errs, "CONFIG_VFIO_NOIOMMU") {
		t.Fatalf("setup without no-IOMMU support: %d %s", code, errs)
	}
}

func TestDeviceCommandsOnSim(t *testing.T) {
	code, out, errs := enactl(t, "info", "--device", "sim", "--profile", "nitro-v4")
	if code != 0 {
		t.Fatalf("info --device sim: exit %d: %s", code, errs)
	}
	for _, want := range []string{"1d0f:ec20", "LLQ: 256 B entries", "224 B pushed header", "max 9216", "AENQ_CONFIG"} {
		if !strings.Contains(out, want) {
			t.Errorf("info on nitro-v4 lacks %q:\n%s", want, out)
		}
	}
	code, out, errs = enactl(t, "info", "--device", "sim", "--profile", "no-llq", "--json")
	if code != 0 || !strings.Contains(out, `"llq": false`) {
		t.Errorf("info --json on no-llq: exit %d, %s\n%s", code, errs, out)
	}
	code, out, errs = enactl(t, "stats", "--device", "sim", "--interval", "10ms", "--count", "2")
	if code != 0 || strings.Count(out, "bw_in_allowance_exceeded") != 2 || !strings.Contains(out, "QUEUE") || !strings.Contains(out, "pkt/s") {
		t.Errorf("stats twice: exit %d, %s\n%s", code, errs, out)
	}
	code, out, errs = enactl(t, "trace", "--device", "sim")
	if code != 0 {
		t.Fatalf("trace: exit %d: %s", code, errs)
	}
	// The trace shows ena-com's order: reset before admin init, AENQ
	// registered with the admin queues, before the first admin command.
	order := []string{"DEV_CTL 0x00000001", "AQ_BASE_LO", "ACQ_CAPS", "AENQ_CAPS", "set host attributes", "get device attributes", "set AENQ config", "AENQ_HEAD_DB", "CREATE_CQ", "CREATE_SQ"}
	last := -1
	for _, step := range order {
		i := strings.Index(out, step)
		if i < 0 || i < last {
			t.Fatalf("trace: %q missing or out of order (at %d, previous step at %d):\n%s", step, i, last, out)
		}
		last = i
	}
}

func TestDeviceCommandErrors(t *testing.T) {
	tr := pcitest.New(t)
	for _, cmd := range []string{"info", "stats", "trace"} {
		code, _, errs := enactl(t, cmd, "--device", "0000:00:06.0", "--mode", "noiommu", "--sysfs", tr.Root)
		if code != 1 || !strings.Contains(errs, "no such PCI device") {
			t.Errorf("%s with a missing address: %d %q", cmd, code, errs)
		}
		code, _, errs = enactl(t, cmd, "--device", "eth0")
		if code != 2 || !strings.Contains(errs, "want a PCI address") {
			t.Errorf("%s with bad device: %d %q", cmd, code, errs)
		}
		code, _, errs = enactl(t, cmd)
		if code != 2 || !strings.Contains(errs, "--device is required") {
			t.Errorf("%s without device: %d %q", cmd, code, errs)
		}
		code, _, errs = enactl(t, cmd, "--device", "sim", "--profile", "nitro-v9")
		if code != 1 || !strings.Contains(errs, "nitro-v9") {
			t.Errorf("%s with an unknown profile: %d %q", cmd, code, errs)
		}
	}
}
