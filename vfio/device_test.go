package vfio

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/enanet/enanet/vfio/pci"
	"github.com/enanet/enanet/vfio/pci/pcitest"
)

// wantErr checks an Open-style error's kind and that its text contains every
// fragment (the cause and the fix the user needs).
func wantErr(t *testing.T, err error, kind error, frags ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", kind)
	}
	if kind != nil && !errors.Is(err, kind) {
		t.Fatalf("error %q is not %v", err, kind)
	}
	for _, f := range frags {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not mention %q", err, f)
		}
	}
}

func fixture(t *testing.T) *pcitest.Tree {
	tr := pcitest.New(t)
	tr.AddDriver("vfio-pci")
	tr.AddDevice(pcitest.Dev{Addr: "0000:00:05.0", Vendor: 0x1d0f, Device: 0xec20, Driver: "ena", Ifaces: []string{"eth0"}, Group: -1, WC: true})
	tr.AddDevice(pcitest.Dev{Addr: "0000:00:06.0", Vendor: 0x1d0f, Device: 0xec20, Group: -1, WC: true})
	tr.AddDevice(pcitest.Dev{Addr: "0000:00:07.0", Vendor: 0x1d0f, Device: 0xec20, Driver: "vfio-pci", Group: 5})
	tr.AddDevice(pcitest.Dev{Addr: "0000:00:08.0", Vendor: 0x8086, Device: 0x1234, Driver: "nvme", Group: 5})
	return tr
}

func TestOpenNoDevice(t *testing.T) {
	tr := fixture(t)
	_, err := Open("0000:00:09.0", Options{SysfsRoot: tr.Root, DevDir: t.TempDir()})
	wantErr(t, err, ErrNoDevice, "0000:00:09.0", "enactl list")
	_, err = Open("eth0", Options{SysfsRoot: tr.Root})
	wantErr(t, err, nil, "not a PCI address", "0000:00:06.0")
}

func TestOpenBoundToOtherDriver(t *testing.T) {
	tr := fixture(t)
	_, err := Open("00:05.0", Options{SysfsRoot: tr.Root, DevDir: t.TempDir()})
	wantErr(t, err, ErrNotBound, "bound to driver ena (interface eth0)", "enactl bind 0000:00:05.0",
		"echo vfio-pci > "+tr.Root+"/bus/pci/devices/0000:00:05.0/driver_override", tr.Root+"/bus/pci/drivers_probe")
}

func TestOpenNoIOMMUOff(t *testing.T) {
	tr := fixture(t)
	tr.SetNoIOMMU("N")
	_, err := Open("0000:00:06.0", Options{SysfsRoot: tr.Root, DevDir: t.TempDir()})
	wantErr(t, err, ErrNoIOMMU, "no IOMMU group", "no-IOMMU mode is off", "enactl setup")

	// A vfio built without no-IOMMU support says so instead.
	if err := os.Remove(pci.Sysfs{Root: tr.Root}.NoIOMMUPath()); err != nil {
		t.Fatal(err)
	}
	_, err = Open("0000:00:06.0", Options{SysfsRoot: tr.Root, DevDir: t.TempDir()})
	wantErr(t, err, ErrNoIOMMU, "CONFIG_VFIO_NOIOMMU")

	// With no-IOMMU on, an unbound device just needs binding.
	tr.SetNoIOMMU("Y")
	_, err = Open("0000:00:06.0", Options{SysfsRoot: tr.Root, DevDir: t.TempDir()})
	wantErr(t, err, ErrNotBound, "not bound to any driver", "enactl bind 0000:00:06.0")
}

func TestOpenVFIOMissing(t *testing.T) {
	tr := fixture(t)
	_, err := Open("0000:00:07.0", Options{SysfsRoot: tr.Root, DevDir: filepath.Join(t.TempDir(), "vfio")})
	wantErr(t, err, ErrVFIOMissing, "modprobe vfio-pci")
}

func TestPickMode(t *testing.T) {
	dev := t.TempDir()
	for _, n := range []string{"vfio", "noiommu-5"} {
		if err := os.WriteFile(filepath.Join(dev, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if m, err := pickMode(ModeAuto, dev, 5, "open x"); err != nil || m != ModeNoIOMMU {
		t.Fatalf("auto with noiommu-5: %v %v", m, err)
	}
	_, err := pickMode(ModeIOMMU, dev, 5, "open x")
	wantErr(t, err, ErrNoIOMMU, "IOMMU mode requested", "intel_iommu=on")
	if err := os.WriteFile(filepath.Join(dev, "6"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if m, err := pickMode(ModeAuto, dev, 6, "open x"); err != nil || m != ModeIOMMU {
		t.Fatalf("auto with 6: %v %v", m, err)
	}
	_, err = pickMode(ModeAuto, dev, 7, "open x")
	wantErr(t, err, ErrVFIOMissing, "neither", "enactl bind")
	if _, err := ParseMode("bogus"); err == nil {
		t.Fatal("ParseMode accepted bogus")
	}
}

// TestOpenNotAVFIONode drives Open into the VFIO ioctls against plain files:
// the container check fails and Open must clean up without crashing.
func TestOpenNotAVFIONode(t *testing.T) {
	tr := fixture(t)
	dev := t.TempDir()
	for _, n := range []string{"vfio", "5"} {
		if err := os.WriteFile(filepath.Join(dev, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Open("0000:00:07.0", Options{SysfsRoot: tr.Root, DevDir: dev})
	wantErr(t, err, nil, "VFIO API version")
}

func TestOpenErrors(t *testing.T) {
	wantErr(t, openErr("open a", "/dev/vfio/5", false, unix.EACCES), ErrPermission, "/dev/vfio/5", "run as root", "chown")
	wantErr(t, openErr("open a", "/dev/vfio/noiommu-5", true, unix.EPERM), ErrPermission, "CAP_SYS_RAWIO")
	wantErr(t, openErr("open a", "/dev/vfio/vfio", false, unix.ENOENT), ErrVFIOMissing, "modprobe vfio-pci")
	wantErr(t, openErr("open a", "/dev/vfio/5", false, unix.EBUSY), unix.EBUSY, "another process", "fuser")
}

func TestGroupNotViable(t *testing.T) {
	tr := fixture(t)
	err := groupNotViable(pci.Sysfs{Root: tr.Root}, "0000:00:07.0", 5, "open 0000:00:07.0")
	wantErr(t, err, ErrGroupNotViable, "IOMMU group 5 is not viable", "0000:00:08.0 (driver nvme)", "enactl bind")
	if strings.Contains(err.Error(), "0000:00:07.0 (driver") {
		t.Errorf("error names the device itself: %v", err)
	}
}

func TestHugepageAndMemlockErrors(t *testing.T) {
	mi := filepath.Join(t.TempDir(), "meminfo")
	if err := os.WriteFile(mi, []byte("MemTotal: 1000 kB\nHugePages_Total:       0\nHugePages_Free:        0\nHugepagesize:       2048 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantErr(t, hugepageError(mi, HugePageSize, unix.ENOMEM), ErrHugepages,
		"need 1 free 2 MiB hugepage(s), have 0 free of 0 reserved", "echo 64 > /proc/sys/vm/nr_hugepages", "enactl setup")
	wantErr(t, memlockError("lock DMA memory", 4096, unix.ENOMEM), ErrMemlock, "locked-memory limit", "ulimit -l unlimited", "LimitMEMLOCK")
	wantErr(t, pagemapError("/proc/self/pagemap", os.ErrPermission), ErrPermission, "run as root")
}

func TestFindCap(t *testing.T) {
	buf := make([]byte, 64)
	// cap id 3 at 32 -> cap id 1 at 48 -> end.
	buf[32], buf[36] = 3, 48
	buf[48] = 1
	if got := findCap(buf, 32, 1); got != 48 {
		t.Fatalf("findCap = %d, want 48", got)
	}
	if got := findCap(buf, 32, 9); got != -1 {
		t.Fatalf("missing cap found at %d", got)
	}
	buf[52] = 32 // a loop back: must stop
	if got := findCap(buf, 32, 9); got != -1 {
		t.Fatalf("looping chain: %d", got)
	}
	if got := findCap(buf, 60, 1); got != -1 {
		t.Fatalf("header past end: %d", got)
	}
}

func TestIOVAAllocator(t *testing.T) {
	a := &iovaAllocator{ranges: []iovaRange{{0, 0x5fffff}, {0xfef00000, 1<<39 - 1}}}
	got := []uint64{}
	for _, n := range []uint64{HugePageSize, HugePageSize, HugePageSize} {
		v, err := a.alloc(n)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	// 0 is never handed out; the third chunk does not fit below 6 MiB.
	if got[0] != 0x200000 || got[1] != 0x400000 || got[2] != 0xff000000 {
		t.Fatalf("IOVAs %#x", got)
	}
	if a.width() != 39 {
		t.Fatalf("width %d", a.width())
	}
	if _, err := a.alloc(1 << 40); err == nil {
		t.Fatal("oversized IOVA allocation succeeded")
	}
}
