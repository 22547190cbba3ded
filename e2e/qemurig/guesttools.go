package qemurig

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// GuestTools are dynamically linked Debian programs (ethtool, dpdk-testpmd)
// unpacked from their packages into a cache directory, so the initramfs
// can carry them with every shared library they load.
type GuestTools struct {
	Root string // the packages unpacked with dpkg-deb -x
}

// PrepareGuestTools downloads pkgs with apt-get download and unpacks them
// under cacheDir/tools-NAME, once; name labels the set.
func PrepareGuestTools(ctx context.Context, cacheDir, name string, pkgs []string, logf Logf) (*GuestTools, error) {
	root := filepath.Join(cacheDir, "tools-"+name)
	stamp := filepath.Join(root, ".unpacked")
	if exists(stamp) {
		return &GuestTools{Root: root}, nil
	}
	logf("qemurig: downloading %s for the guest", strings.Join(pkgs, " "))
	debs := filepath.Join(cacheDir, "debs-"+name)
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return nil, err
	}
	if err := run(ctx, debs, "apt-get", append([]string{"download"}, pkgs...)...); err != nil {
		return nil, fmt.Errorf("qemurig: download %s (run apt-get update first): %w", strings.Join(pkgs, " "), err)
	}
	matches, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
	for _, deb := range matches {
		if err := run(ctx, "", "dpkg-deb", "-x", deb, root); err != nil {
			return nil, fmt.Errorf("qemurig: unpack %s: %w", filepath.Base(deb), err)
		}
	}
	if err := os.WriteFile(stamp, nil, 0o644); err != nil {
		return nil, err
	}
	return &GuestTools{Root: root}, nil
}

// libDirs are searched, in order, for a program's shared libraries: the
// unpacked packages first, then the host's (a Debian host of the same
// release, which provides libc).
func (g *GuestTools) libDirs() []string {
	var dirs []string
	for _, d := range []string{"lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0", "lib64"} {
		dirs = append(dirs, filepath.Join(g.Root, d))
	}
	return append(dirs, "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64")
}

// find returns the host path of library lib.
func (g *GuestTools) find(lib string) (string, error) {
	for _, d := range g.libDirs() {
		if p := filepath.Join(d, lib); exists(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("qemurig: shared library %s not found in %s or the host", lib, g.Root)
}

// AddProgram puts the program at rel (inside Root) into ir at guestPath,
// with its interpreter and, recursively, every DT_NEEDED library at
// /lib/x86_64-linux-gnu (symlinked names resolved to files).
func (g *GuestTools) AddProgram(ir *Initramfs, rel, guestPath string) error {
	if err := ir.AddFile(guestPath, filepath.Join(g.Root, rel), 0o755); err != nil {
		return err
	}
	return g.addLibsOf(ir, filepath.Join(g.Root, rel), map[string]bool{})
}

// AddLibrary puts a library (for example a DPDK driver loaded with dlopen)
// and its dependencies into the guest.
func (g *GuestTools) AddLibrary(ir *Initramfs, lib string) error {
	return g.addLib(ir, lib, map[string]bool{})
}

func (g *GuestTools) addLib(ir *Initramfs, lib string, seen map[string]bool) error {
	if seen[lib] {
		return nil
	}
	seen[lib] = true
	p, err := g.find(lib)
	if err != nil {
		return err
	}
	if err := ir.AddFile("/lib/x86_64-linux-gnu/"+lib, p, 0o755); err != nil {
		return err
	}
	return g.addLibsOf(ir, p, seen)
}

func (g *GuestTools) addLibsOf(ir *Initramfs, path string, seen map[string]bool) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("qemurig: read ELF %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return err
			}
			interp := strings.TrimRight(string(b), "\x00")
			if err := ir.AddFile(interp, interp, 0o755); err != nil {
				return err
			}
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return fmt.Errorf("qemurig: read %s's libraries: %w", path, err)
	}
	for _, l := range libs {
		if err := g.addLib(ir, l, seen); err != nil {
			return err
		}
	}
	return nil
}
