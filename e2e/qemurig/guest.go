package qemurig

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Kit is a guest built from Debian packages: an uncompressed
// kernel booted through PVH, its VFIO modules, busybox, and, for no-IOMMU
// mode, vfio.ko and vfio_iommu_type1.ko rebuilt with CONFIG_VFIO_NOIOMMU
// (Debian's kernel ships without it).
type Kit struct {
	Dir           string // cache directory
	KernelRelease string // e.g. 6.1.0-56-amd64
	VMLinux       string // uncompressed ELF kernel
	Busybox       string
	ModulesDir    string // .../lib/modules/<release>/kernel
	NoIOMMUDir    string // rebuilt vfio.ko and vfio_iommu_type1.ko ("" if not built)
}

// Logf reports progress of long steps.
type Logf func(format string, args ...any)

// PrepareKit builds (or reuses from cacheDir) the guest pieces. withNoIOMMU
// also rebuilds the two VFIO modules, which needs linux-source and the
// matching linux-headers package (installed with apt-get when missing; root).
func PrepareKit(ctx context.Context, cacheDir string, withNoIOMMU bool, logf Logf) (*Kit, error) {
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("qemurig: create guest cache %s: %w", cacheDir, err)
	}
	k := &Kit{Dir: cacheDir}
	rel, err := kernelRelease(ctx)
	if err != nil {
		return nil, err
	}
	k.KernelRelease = rel
	root := filepath.Join(cacheDir, "root-"+rel)
	k.Busybox = filepath.Join(root, "bin", "busybox")
	k.ModulesDir = filepath.Join(root, "lib", "modules", rel, "kernel")
	k.VMLinux = filepath.Join(cacheDir, "vmlinux-"+rel)

	if !exists(k.Busybox) || !exists(filepath.Join(k.ModulesDir, "drivers", "vfio", "vfio.ko")) {
		logf("qemurig: downloading linux-image-%s and busybox-static", rel)
		debs := filepath.Join(cacheDir, "debs")
		if err := os.MkdirAll(debs, 0o755); err != nil {
			return nil, err
		}
		if err := run(ctx, debs, "apt-get", "download", "linux-image-"+rel, "busybox-static"); err != nil {
			return nil, fmt.Errorf("qemurig: download guest packages (run apt-get update first): %w", err)
		}
		matches, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
		for _, deb := range matches {
			if err := run(ctx, "", "dpkg-deb", "-x", deb, root); err != nil {
				return nil, fmt.Errorf("qemurig: unpack %s: %w", filepath.Base(deb), err)
			}
		}
		if !exists(k.Busybox) {
			return nil, fmt.Errorf("qemurig: busybox-static did not provide %s", k.Busybox)
		}
	}
	if !exists(k.VMLinux) {
		logf("qemurig: extracting the uncompressed kernel for a PVH boot")
		if err := extractVMLinux(ctx, filepath.Join(root, "boot", "vmlinuz-"+rel), k.VMLinux); err != nil {
			return nil, err
		}
	}
	if withNoIOMMU {
		dir, err := buildNoIOMMUModules(ctx, cacheDir, rel, logf)
		if err != nil {
			return nil, err
		}
		k.NoIOMMUDir = dir
	}
	return k, nil
}

// kernelRelease asks apt which kernel linux-image-amd64 currently depends on.
func kernelRelease(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", "linux-image-amd64").Output()
	if err != nil {
		return "", fmt.Errorf("qemurig: apt-cache depends linux-image-amd64 (run apt-get update first): %w", err)
	}
	m := regexp.MustCompile(`linux-image-([0-9][^\s]*-amd64)`).FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("qemurig: linux-image-amd64 names no kernel package:\n%s", out)
	}
	return string(m[1]), nil
}

// extractVMLinux finds the xz stream inside the bzImage and decompresses it:
// booting the ELF through PVH skips SeaBIOS's bzImage load and the in-guest
// decompression, about 5 s under TCG.
func extractVMLinux(ctx context.Context, vmlinuz, out string) error {
	img, err := os.ReadFile(vmlinuz)
	if err != nil {
		return fmt.Errorf("qemurig: read kernel image: %w", err)
	}
	i := bytes.Index(img, []byte{0xFD, '7', 'z', 'X', 'Z', 0x00})
	if i < 0 {
		return fmt.Errorf("qemurig: %s holds no xz stream; cannot extract vmlinux", vmlinuz)
	}
	cmd := exec.CommandContext(ctx, "xz", "-dc", "--single-stream")
	cmd.Stdin = bytes.NewReader(img[i:])
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("qemurig: decompress kernel with xz (apt-get install xz-utils): %v: %s", err, stderr.String())
	}
	if !bytes.HasPrefix(stdout.Bytes(), []byte("\x7fELF")) {
		return fmt.Errorf("qemurig: decompressed kernel is not an ELF file")
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, stdout.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

// buildNoIOMMUModules rebuilds vfio.ko and vfio_iommu_type1.ko from Debian's
// linux-source with CONFIG_VFIO_NOIOMMU on, out of tree against the matching
// headers.
func buildNoIOMMUModules(ctx context.Context, cacheDir, rel string, logf Logf) (string, error) {
	dir := filepath.Join(cacheDir, "noiommu-"+rel)
	if exists(filepath.Join(dir, "vfio.ko")) && exists(filepath.Join(dir, "vfio_iommu_type1.ko")) {
		return dir, nil
	}
	headers := "/usr/src/linux-headers-" + rel
	if !exists(headers) {
		logf("qemurig: installing linux-headers-%s", rel)
		cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "linux-headers-"+rel)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("qemurig: install linux-headers-%s (needs root): %v\n%s", rel, err, out)
		}
	}
	srcDeb := filepath.Join(cacheDir, "debs-src")
	if err := os.MkdirAll(srcDeb, 0o755); err != nil {
		return "", err
	}
	majmin := regexp.MustCompile(`^[0-9]+\.[0-9]+`).FindString(rel)
	tarball := filepath.Join(srcDeb, "usr", "src", "linux-source-"+majmin+".tar.xz")
	if !exists(tarball) {
		logf("qemurig: downloading linux-source-%s (about 140 MB)", majmin)
		if err := run(ctx, srcDeb, "apt-get", "download", "linux-source-"+majmin); err != nil {
			return "", fmt.Errorf("qemurig: download linux-source-%s: %w", majmin, err)
		}
		debs, _ := filepath.Glob(filepath.Join(srcDeb, "linux-source-*.deb"))
		if len(debs) == 0 {
			return "", fmt.Errorf("qemurig: linux-source-%s was not downloaded", majmin)
		}
		if err := run(ctx, "", "dpkg-deb", "-x", debs[0], srcDeb); err != nil {
			return "", err
		}
	}
	build := filepath.Join(cacheDir, "noiommu-build")
	os.RemoveAll(build)
	if err := os.MkdirAll(build, 0o755); err != nil {
		return "", err
	}
	logf("qemurig: building vfio.ko with CONFIG_VFIO_NOIOMMU")
	top := "linux-source-" + majmin
	if err := run(ctx, build, "tar", "xf", tarball, "--strip-components=3", top+"/drivers/vfio/"); err != nil {
		return "", fmt.Errorf("qemurig: extract drivers/vfio from linux-source: %w", err)
	}
	kbuild := "ccflags-y := -DCONFIG_VFIO_NOIOMMU=1\n" +
		"obj-m := vfio.o vfio_iommu_type1.o\n" +
		"vfio-y := vfio_main.o iova_bitmap.o container.o\n"
	if err := os.WriteFile(filepath.Join(build, "Kbuild"), []byte(kbuild), 0o644); err != nil {
		return "", err
	}
	if err := run(ctx, build, "make", "-s", "-C", headers, "M="+build, "modules"); err != nil {
		return "", fmt.Errorf("qemurig: build no-IOMMU vfio modules: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, ko := range []string{"vfio.ko", "vfio_iommu_type1.ko"} {
		b, err := os.ReadFile(filepath.Join(build, ko))
		if err != nil {
			return "", fmt.Errorf("qemurig: module %s was not built: %w", ko, err)
		}
		if err := os.WriteFile(filepath.Join(dir, ko), b, 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

func run(ctx context.Context, dir, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, lastLines(out, 20))
	}
	return nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
