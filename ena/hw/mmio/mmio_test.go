package mmio

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unsafe"
)

func TestLoadStore(t *testing.T) {
	var buf [4]uint64
	p := unsafe.Pointer(&buf[0])
	Store32(p, 0xdeadbeef)
	if got := Load32(p); got != 0xdeadbeef {
		t.Fatalf("Load32 after Store32 = %#x, want 0xdeadbeef", got)
	}
	if buf[0] != 0xdeadbeef {
		t.Fatalf("Store32 wrote %#x; it must touch only the low 4 bytes", buf[0])
	}
	Store64(unsafe.Pointer(&buf[1]), 0x0102030405060708)
	if buf[1] != 0x0102030405060708 {
		t.Fatalf("Store64 wrote %#x", buf[1])
	}
	src := [3]uint64{1, 2, 3}
	var dst [4]uint64
	Copy64(unsafe.Pointer(&dst[0]), unsafe.Pointer(&src[0]), 3)
	if dst != [4]uint64{1, 2, 3, 0} {
		t.Fatalf("Copy64 = %v, want [1 2 3 0]", dst)
	}
	Copy64(unsafe.Pointer(&dst[0]), unsafe.Pointer(&src[0]), 0)
	StoreBarrier()
	Flush()
	ReadBarrier()
}

// disassemble returns the instructions of function name in binary bin.
func disassemble(t *testing.T, bin, name string) []string {
	t.Helper()
	out, err := exec.Command("go", "tool", "objdump", "-s", `mmio\.`+name+`(\.abi0)?$`, bin).CombinedOutput()
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
		t.Fatalf("no instructions found for %s in %s:\n%s", name, bin, out)
	}
	return insns
}

// memOps counts instructions that access memory through a register, which
// excludes argument loads from the frame (FP/SP based).
func memOps(insns []string, re *regexp.Regexp) (n int) {
	for _, in := range insns {
		if re.MatchString(in) {
			n++
		}
	}
	return n
}

// TestDoorbellIsOneStore checks, in the machine code, that a register store is
// exactly one store instruction with no locked or exchanging instruction and
// no load of the target, on both architectures.
func TestDoorbellIsOneStore(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not in PATH; cannot disassemble")
	}
	type arch struct {
		goarch   string
		deviceOp *regexp.Regexp // an access through a pointer register, not the frame
		bad      *regexp.Regexp
	}
	arches := []arch{
		{"amd64", regexp.MustCompile(`\(AX\)`), regexp.MustCompile(`XCHG|LOCK|CMPXCHG`)},
		{"arm64", regexp.MustCompile(`\(R0\)`), regexp.MustCompile(`LDAXR|STLXR|SWP|LDADD|CAS`)},
	}
	dir := t.TempDir()
	for _, a := range arches {
		bin := filepath.Join(dir, "mmio."+a.goarch+".test")
		cmd := exec.Command("go", "test", "-c", "-o", bin, ".")
		cmd.Env = append(os.Environ(), "GOARCH="+a.goarch, "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s test binary: %v\n%s", a.goarch, err, out)
		}
		for _, fn := range []string{"Store32", "Store64", "Load32"} {
			insns := disassemble(t, bin, fn)
			if n := memOps(insns, a.deviceOp); n != 1 {
				t.Errorf("%s %s: %d device accesses, want exactly 1: %q", a.goarch, fn, n, insns)
			}
			for _, in := range insns {
				if a.bad.MatchString(in) {
					t.Errorf("%s %s uses %q: a doorbell must be a plain store", a.goarch, fn, in)
				}
			}
		}
	}
}

func BenchmarkStore32(b *testing.B) {
	var x uint64
	p := unsafe.Pointer(&x)
	for i := 0; i < b.N; i++ {
		Store32(p, uint32(i))
	}
}
