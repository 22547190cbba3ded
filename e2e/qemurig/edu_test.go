package qemurig

import (
	"context"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/enanet/enanet/internal/testenv"
)

// TestEduType1 runs package vfio inside the guest against QEMU's edu device
// behind the emulated intel-iommu: type1 DMA mappings with IOVAs that differ
// from guest-physical addresses, and MSI delivery through eventfds — the
// paths the ENA proxy cannot reach (it has no MSI and bypasses the vIOMMU).
func TestEduType1(t *testing.T) {
	testenv.RequireTool(t, QEMUBinary, "apt-get install qemu-system-x86")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	kit, err := PrepareKit(ctx, cacheDir(t), false, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "edutest")
	if err := BuildStatic(ctx, "./guest/edutest", bin); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(dir, "initrd.gz")
	im := Image{Kit: kit, Mode: Type1, Programs: map[string]string{"/bin/edutest": bin}, Script: "/bin/edutest"}
	if err := im.Write(initrd); err != nil {
		t.Fatal(err)
	}
	var vm *VM
	for attempt := 1; ; attempt++ {
		vm, err = StartVM(ctx, VMConfig{Kernel: kit.VMLinux, Initrd: initrd, IOMMU: true, Edu: true})
		if err != nil {
			t.Fatal(err)
		}
		crashed, err := waitGuestReady(vm)
		if err == nil {
			break
		}
		vm.Close()
		if !crashed || attempt == IOMMUBootAttempts {
			t.Fatalf("%v\nconsole:\n%s", err, vm.Console())
		}
		t.Logf("qemurig: QEMU 7.2 crashed (SIGSEGV) while the guest kernel booted with intel-iommu (see IOMMUBootAttempts); booting again")
	}
	defer vm.Close()
	if _, err := vm.WaitFor(regexp.MustCompile(`GUEST-DONE`), 3*time.Minute); err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, vm.Console())
	}
	out := vm.Console()
	for _, want := range []string{`EDU-OK dma 2048 bytes`, `EDU-OK msi [1-9]`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("guest console lacks %q:\n%s", want, out)
		}
	}
	if m := regexp.MustCompile(`EDU-INFO src iova=(\S+) gpa=(\S+)`).FindStringSubmatch(out); m == nil || m[1] == m[2] {
		t.Errorf("edu DMA did not use an IOVA distinct from the guest-physical address (%v); the IOMMU path was not exercised", m)
	}
}
