package qemurig

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/enanet/enanet/internal/testenv"
	"golang.org/x/sys/unix"
)

// regFile is a trivial device: BAR0 is 16 registers that read back what was
// written, register 0 reads as a magic value.
type regFile struct {
	mu     sync.Mutex
	regs   [16]uint32
	resets int
}

func (d *regFile) ReadBAR(bar int, off uint32, size int) uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off == 0 {
		return 0x1d0fec20
	}
	if off/4 < 16 {
		return uint64(d.regs[off/4])
	}
	return 0
}

func (d *regFile) WriteBAR(bar int, off uint32, size int, val uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off/4 < 16 {
		d.regs[off/4] = uint32(val)
	}
}

func (d *regFile) Reset() { d.mu.Lock(); d.resets++; d.mu.Unlock() }

// cacheDir is where guest pieces are kept between runs (git ignores it).
func cacheDir(t *testing.T) string {
	if d := os.Getenv("ENANET_GUEST_CACHE"); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(wd, "..", ".cache", "guest")
}

// TestProxyBoot boots a guest with a proxied device and reads a register
// from the guest with busybox devmem: the whole proxy path without VFIO.
func TestProxyBoot(t *testing.T) {
	testenv.RequireTool(t, QEMUBinary, "apt-get install qemu-system-x86")
	testenv.RequireTool(t, "apt-get", "a Debian system")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	kit, err := PrepareKit(ctx, cacheDir(t), false, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	var ir Initramfs
	if err := ir.AddFile("/bin/busybox", kit.Busybox, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"/proc", "/sys", "/dev", "/tmp"} {
		ir.AddDir(d)
	}
	ir.Add("/init", 0o755, []byte(`#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for d in /sys/bus/pci/devices/*; do
  if [ "$(cat $d/vendor)" = "0x1d0f" ]; then
    bar=$(awk 'NR==1{print $1}' $d/resource)
    echo 1 > $d/enable 2>/dev/null
    setpci() { :; }
    echo "FOUND $(basename $d) $(cat $d/device) bar0=$bar"
    echo "DEVMEM $(devmem $bar 32)"
    devmem $((bar + 8)) 32 0xabcd1234
    echo "READBACK $(devmem $((bar + 8)) 32)"
  fi
done
echo RIG-DONE
poweroff -f
`))
	initrd := filepath.Join(t.TempDir(), "initrd.gz")
	f, err := os.Create(initrd)
	if err != nil {
		t.Fatal(err)
	}
	if err := ir.Write(f); err != nil {
		t.Fatal(err)
	}
	f.Close()

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "proxy-remote"), os.NewFile(uintptr(fds[1]), "proxy-qemu")
	defer ours.Close()
	dev := &regFile{}
	mem := &GuestMemory{}
	defer mem.Close()
	srv := NewServer(ours, ServerConfig{Vendor: 0x1d0f, DeviceID: 0xec20, Class: 0x020000,
		BARs: map[int]BAR{0: {Size: 16 << 10}, 2: {Size: 1 << 20, Prefetch: true}}}, dev, mem)
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()

	vm, err := StartVM(ctx, VMConfig{Kernel: kit.VMLinux, Initrd: initrd, Proxy: theirs})
	theirs.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	m, err := vm.WaitFor(regexp.MustCompile(`(?s)FOUND (\S+) (\S+).*DEVMEM (\S+).*READBACK (\S+).*RIG-DONE`), 2*time.Minute)
	if err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, vm.Console())
	}
	if m[2] != "0xec20" || m[3] != "0x1D0FEC20" || m[4] != "0xABCD1234" {
		t.Errorf("guest saw device %s, register 0 = %s, readback %s; want 0xec20, 0x1D0FEC20, 0xABCD1234", m[2], m[3], m[4])
	}
	vm.Close()
	if err := <-served; err != nil {
		t.Errorf("proxy server: %v", err)
	}
	st := srv.Stats()
	if st.SyncSysmem == 0 || st.Resets == 0 || st.BarRead == 0 {
		t.Errorf("proxy stats %+v: want SYNC_SYSMEM, DEVICE_RESET and BAR reads", st)
	}
	t.Logf("proxy stats: %+v", st)
}
