package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

const setupHelp = `
Prepares this machine for enanet and prints every change it makes:

  1. Reserves 2 MiB hugepages (vm.nr_hugepages) for DMA memory if fewer than
     --hugepages are reserved. If the kernel reserves fewer than asked (memory
     too fragmented), boot with hugepagesz=2M hugepages=N instead.
  2. Without an IOMMU (every EC2 instance except .metal ones booted with
     intel_iommu=on), loads vfio with enable_unsafe_noiommu_mode=1 or sets
     that parameter to Y. No-IOMMU mode lets the device reach all of memory
     and taints the kernel; it needs a kernel built with CONFIG_VFIO_NOIOMMU.
     With an IOMMU it changes nothing here (VFIO type1 mode is used).
  3. Loads vfio-pci if it is not loaded.
  4. Reports whether each ENA's LLQ BAR can be mapped write-combining
     (resource2_wc in sysfs). Without it LLQ Tx is slow.

Run it as root, then enactl bind ADDRESS. Nothing persists across reboots:
put the same steps in a boot script or the kernel command line.`

// cmdSetup implements `enactl setup`.
func cmdSetup(e *env, args []string) int {
	fs := flagSet("setup", "enactl setup [--hugepages N] [--dry-run] [--sysfs DIR]", setupHelp)
	huge := fs.Int("hugepages", 64, "2 MiB hugepages to reserve at least (64 = 128 MiB)")
	dry := fs.Bool("dry-run", false, "print what would change without changing it")
	procRoot := fs.String("proc", "/proc", "proc root (tests point this at a fixture tree)")
	modprobe := fs.String("modprobe", "modprobe", "modprobe command to load modules")
	_ = fs.MarkHidden("proc")
	_ = fs.MarkHidden("modprobe")
	if ok, code := parse(e, fs, args); !ok {
		return code
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(e.stderr, "enactl setup: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *huge < 0 {
		fmt.Fprintln(e.stderr, "enactl setup: --hugepages must not be negative")
		return exitUsage
	}
	if !*dry && geteuid() != 0 {
		fmt.Fprintln(e.stderr, "enactl setup: needs root: it writes /proc/sys/vm/nr_hugepages and vfio's module parameters and loads modules. Run it with sudo, or add --dry-run to see what it would change.")
		return exitFailure
	}
	sys := fs.sysfs()
	say := func(format string, a ...any) { fmt.Fprintf(e.stdout, format+"\n", a...) }
	// change makes one change and reports it only once it is made; with
	// --dry-run it only says what it would do.
	change := func(what string, do func() error) error {
		if *dry {
			say("would change: %s", what)
			return nil
		}
		if err := do(); err != nil {
			return err
		}
		say("changed: %s", what)
		return nil
	}
	load := func(args ...string) error {
		cmdline := *modprobe + " " + strings.Join(args, " ")
		return change(cmdline, func() error {
			if out, err := exec.Command(*modprobe, args...).CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %v: %s", cmdline, err, strings.TrimSpace(string(out)))
			}
			return nil
		})
	}

	// 1. Hugepages.
	nrPath := filepath.Join(*procRoot, "sys/vm/nr_hugepages")
	cur, err := readInt(nrPath)
	if err != nil {
		return fail(e, "setup", fmt.Errorf("read hugepage count: %w", err))
	}
	if cur >= *huge {
		say("hugepages: %d reserved (at least %d), unchanged", cur, *huge)
	} else {
		err := change(fmt.Sprintf("hugepages %d -> %d (%d MiB) in %s", cur, *huge, *huge*2, nrPath), func() error {
			if err := writeFile(nrPath, []byte(strconv.Itoa(*huge)), 0o644); err != nil {
				return fmt.Errorf("reserve hugepages: %w", err)
			}
			return nil
		})
		if err != nil {
			return fail(e, "setup", err)
		}
		if !*dry {
			if got, err := readInt(nrPath); err == nil && got < *huge {
				say("warning: the kernel reserved only %d of %d hugepages (memory fragmented); boot with hugepagesz=2M hugepages=%d", got, *huge, *huge)
			}
		}
	}

	// 2. IOMMU or no-IOMMU.
	if sys.IOMMUPresent() {
		say("iommu: present; VFIO will use type1 IOMMU mode, no-IOMMU mode unchanged")
	} else {
		if !sys.ModuleLoaded("vfio") {
			if err := load("vfio", "enable_unsafe_noiommu_mode=1"); err != nil {
				return fail(e, "setup", err)
			}
		}
		on, supported := sys.NoIOMMUMode()
		switch {
		case on:
			say("iommu: none; VFIO no-IOMMU mode already on, unchanged")
		case !supported && !*dry:
			return fail(e, "setup", fmt.Errorf("no IOMMU, and this kernel's vfio has no no-IOMMU mode (no %s): it was built without CONFIG_VFIO_NOIOMMU; use a kernel built with it, or a .metal instance with intel_iommu=on iommu=pt", sys.NoIOMMUPath()))
		default:
			err := change(fmt.Sprintf("VFIO no-IOMMU mode N -> Y in %s (no IOMMU on this machine; taints the kernel)", sys.NoIOMMUPath()), func() error {
				if err := writeFile(sys.NoIOMMUPath(), []byte("Y"), 0o644); err != nil {
					return fmt.Errorf("enable VFIO no-IOMMU mode: %w", err)
				}
				return nil
			})
			if err != nil {
				return fail(e, "setup", err)
			}
		}
	}

	// 3. vfio-pci.
	if sys.DriverLoaded("vfio-pci") {
		say("vfio-pci: loaded, unchanged")
	} else if err := load("vfio-pci"); err != nil {
		return fail(e, "setup", err)
	}

	// 4. Write-combining report.
	devs, _, err := sys.ENA()
	if err != nil {
		return fail(e, "setup", err)
	}
	for _, d := range devs {
		if d.WCPossible {
			say("%s: LLQ BAR can be mapped write-combining (resource2_wc)", d.Address)
		} else {
			say("%s: WARNING: no resource2_wc in sysfs: LLQ will run UNCACHED and slow (needs x86 PAT or arm64; or AWS's WC-patched vfio-pci)", d.Address)
		}
	}
	if len(devs) > 0 {
		say("next: enactl bind ADDRESS (see enactl list)")
	}
	return exitOK
}

// geteuid and writeFile are replaced by tests (running as another user,
// failing writes).
var (
	geteuid   = os.Geteuid
	writeFile = os.WriteFile
)

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
