// Package disasm lets tests check the machine code of their own package for
// each architecture: the ordering and single-access guarantees of packages
// mmio and dmamem live in the instructions the compiler emits, which no
// functional test on one machine can see.
package disasm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Build compiles the test binary of the package in the current directory
// for goarch and returns its path. It skips the test when the go tool is not
// in PATH.
func Build(t *testing.T, goarch string) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not in PATH; cannot disassemble")
	}
	bin := filepath.Join(t.TempDir(), "pkg."+goarch+".test")
	cmd := exec.Command("go", "test", "-c", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "GOARCH="+goarch, "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s test binary: %v\n%s", goarch, err, out)
	}
	return bin
}

// Func returns the instructions (Go assembler syntax) of the out-of-line
// copy of function pkg.name in binary bin; pkg is the last element of the
// package path. The test must reference the function as a value so that
// the linker keeps an out-of-line copy even when every call is inlined.
func Func(t *testing.T, bin, pkg, name string) []string {
	t.Helper()
	out, err := exec.Command("go", "tool", "objdump", "-s", pkg+`\.`+name+`(\.abi0)?$`, bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool objdump: %v\n%s", err, out)
	}
	var insns []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "TEXT") {
			continue
		}
		var f []string
		for _, s := range strings.Split(line, "\t") {
			if s = strings.TrimSpace(s); s != "" {
				f = append(f, s)
			}
		}
		if len(f) < 4 {
			continue
		}
		insns = append(insns, f[len(f)-1])
	}
	if len(insns) == 0 {
		t.Fatalf("no instructions found for %s.%s in %s:\n%s", pkg, name, bin, out)
	}
	return insns
}
