package qemurig

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// VFIOMode is how the guest kernel's VFIO reaches the device.
type VFIOMode int

const (
	// Type1 uses QEMU's emulated intel-iommu and the stock modules. The
	// proxied device bypasses the vIOMMU, so the driver maps IOVA == GPA
	// (GPA); in-QEMU devices such as edu go through it for real.
	Type1 VFIOMode = iota
	// NoIOMMU uses vfio.ko rebuilt with CONFIG_VFIO_NOIOMMU: the EC2
	// non-metal path, where device addresses are physical addresses.
	NoIOMMU
)

func (m VFIOMode) String() string {
	if m == NoIOMMU {
		return "noiommu"
	}
	return "type1"
}

// modulesInOrder are the VFIO modules with their dependencies first (from
// each module's depends= string; there is no modules.dep in the initramfs).
var modulesInOrder = []string{
	"virt/lib/irqbypass.ko",
	"drivers/vfio/vfio.ko",
	"drivers/vfio/vfio_virqfd.ko",
	"drivers/vfio/vfio_iommu_type1.ko",
	"drivers/vfio/pci/vfio-pci-core.ko",
	"drivers/vfio/pci/vfio-pci.ko",
}

// Image describes an initramfs: the kit, the VFIO mode, static Go programs
// to include, and the shell script the guest runs after loading VFIO.
type Image struct {
	Kit      *Kit
	Mode     VFIOMode
	Programs map[string]string // guest path (e.g. /bin/enactl) -> host binary
	Script   string            // runs under busybox sh after modules are loaded
	// NoVFIO leaves the VFIO modules out (a guest whose kernel driver,
	// such as ena.ko, takes the device).
	NoVFIO bool
	// Modules are more kernel modules (paths under Kit.ModulesDir), loaded
	// in order after the VFIO ones.
	Modules []string
	// Extra adds files to the archive (for example GuestTools programs).
	Extra func(*Initramfs) error
}

// BuildStatic builds a Go main package as a static binary (CGO_ENABLED=0)
// for the guest.
func BuildStatic(ctx context.Context, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("qemurig: build %s for the guest: %v\n%s", pkg, err, b)
	}
	return nil
}

// Write assembles the initramfs at path.
func (im Image) Write(path string) error {
	var ir Initramfs
	for _, d := range []string{"/proc", "/sys", "/dev", "/tmp", "/root"} {
		ir.AddDir(d)
	}
	if err := ir.AddFile("/bin/busybox", im.Kit.Busybox, 0o755); err != nil {
		return err
	}
	var load strings.Builder
	mods := append([]string(nil), modulesInOrder...)
	if im.NoVFIO {
		mods = nil
	}
	for _, m := range im.Modules {
		if err := ir.AddFile("/lib/modules/"+filepath.Base(m), filepath.Join(im.Kit.ModulesDir, m), 0o644); err != nil {
			return err
		}
	}
	for _, m := range mods {
		src := filepath.Join(im.Kit.ModulesDir, m)
		base := filepath.Base(m)
		args := ""
		if im.Mode == NoIOMMU && (base == "vfio.ko" || base == "vfio_iommu_type1.ko") {
			if im.Kit.NoIOMMUDir == "" {
				return fmt.Errorf("qemurig: no-IOMMU image needs the rebuilt vfio modules (PrepareKit withNoIOMMU)")
			}
			src = filepath.Join(im.Kit.NoIOMMUDir, base)
			if base == "vfio.ko" {
				args = " enable_unsafe_noiommu_mode=1"
			}
		}
		if im.Mode == Type1 && base == "vfio_iommu_type1.ko" {
			// The rig runs intel-iommu with interrupt remapping off (its
			// MSI-X reaches the APIC through qtest, qemu.go), and type1
			// refuses VFIO_SET_IOMMU without remapping unless told the
			// platform's interrupts are trusted.
			args = " allow_unsafe_interrupts=1"
		}
		if err := ir.AddFile("/lib/modules/"+base, src, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(&load, "insmod /lib/modules/%s%s || echo \"GUEST-FAIL insmod %s\"\n", base, args, base)
	}
	for _, m := range im.Modules {
		base := filepath.Base(m)
		fmt.Fprintf(&load, "insmod /lib/modules/%s || echo \"GUEST-FAIL insmod %s\"\n", base, base)
	}
	if im.Extra != nil {
		if err := im.Extra(&ir); err != nil {
			return err
		}
	}
	for guestPath, host := range im.Programs {
		if err := ir.AddFile(guestPath, host, 0o755); err != nil {
			return err
		}
	}
	ir.Add("/init", 0o755, []byte(`#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo 64 > /proc/sys/vm/nr_hugepages
ulimit -l unlimited
`+load.String()+`echo "GUEST-READY mode=`+im.Mode.String()+`"
`+im.Script+`
echo GUEST-DONE
poweroff -f
`))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := ir.Write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
