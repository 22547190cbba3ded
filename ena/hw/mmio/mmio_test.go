package mmio

import (
	"regexp"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"

	"github.com/enanet/enanet/ena/hw/internal/disasm"
)

func TestLoadStore(t *testing.T) {
	var buf [4]uint64
	p := unsafe.Pointer(&buf[0])
	Store32(p, 0xdeadbeef)
	assert.Equal(t, uint32(0xdeadbeef), Load32(p), "Load32 after Store32")
	assert.Equal(t, uint64(0xdeadbeef), buf[0], "Store32 must touch only the low 4 bytes")

	src := [3]uint64{1, 2, 3}
	var dst [4]uint64
	Copy64(unsafe.Pointer(&dst[0]), unsafe.Pointer(&src[0]), 3)
	assert.Equal(t, [4]uint64{1, 2, 3, 0}, dst, "Copy64 of 3 words")
	Copy64(unsafe.Pointer(&dst[0]), unsafe.Pointer(&src[0]), 0)
	assert.Equal(t, [4]uint64{1, 2, 3, 0}, dst, "Copy64 of 0 words")
	StoreBarrier()
	Flush()
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

// TestDoorbellIsOneStore checks, in the machine code, that a register access
// is exactly one load or store instruction with no locked or exchanging
// instruction and no load of the target, on both architectures, and that
// the barriers are the instructions their documentation names.
func TestDoorbellIsOneStore(t *testing.T) {
	type arch struct {
		goarch   string
		deviceOp *regexp.Regexp // an access through a pointer register, not the frame
		bad      *regexp.Regexp
		barriers map[string]*regexp.Regexp
	}
	arches := []arch{
		{"amd64", regexp.MustCompile(`\(AX\)`), regexp.MustCompile(`XCHG|LOCK|CMPXCHG`),
			map[string]*regexp.Regexp{"Flush": regexp.MustCompile(`^SFENCE`)}},
		{"arm64", regexp.MustCompile(`\(R0\)`), regexp.MustCompile(`LDAXR|STLXR|SWP|LDADD|CAS`),
			map[string]*regexp.Regexp{"StoreBarrier": regexp.MustCompile(`^DMB \$2$`), "Flush": regexp.MustCompile(`^DSB \$14$`)}},
	}
	for _, a := range arches {
		bin := disasm.Build(t, a.goarch)
		for _, fn := range []string{"Store32", "Load32"} {
			insns := disasm.Func(t, bin, "mmio", fn)
			assert.Equal(t, 1, memOps(insns, a.deviceOp), "%s %s: device accesses in %q", a.goarch, fn, insns)
			for _, in := range insns {
				assert.NotRegexp(t, a.bad, in, "%s %s: a doorbell must be a plain store", a.goarch, fn)
			}
		}
		for fn, want := range a.barriers {
			insns := disasm.Func(t, bin, "mmio", fn)
			assert.Equal(t, 1, memOps(insns, want), "%s %s: want one %v in %q", a.goarch, fn, want, insns)
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
