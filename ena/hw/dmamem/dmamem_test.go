package dmamem

import (
	"encoding/binary"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena/hw/internal/disasm"
)

func TestPublishAcquireRoundTrip(t *testing.T) {
	b := make([]byte, 16)
	require.True(t, Aligned32(b, 4))
	Publish32(b, 4, 0x11223344)
	assert.Equal(t, []byte{0, 0, 0, 0, 0x44, 0x33, 0x22, 0x11, 0, 0, 0, 0, 0, 0, 0, 0}, b,
		"Publish32 must store exactly 4 little-endian bytes (the wire order)")
	assert.Equal(t, uint32(0x11223344), Acquire32(b, 4))
	binary.LittleEndian.PutUint32(b[12:], 0xA5A5A5A5)
	assert.Equal(t, uint32(0xA5A5A5A5), Acquire32(b, 12))
}

func TestBoundsAndAlignment(t *testing.T) {
	b := make([]byte, 16)
	for _, off := range []int{0, 4, 8, 12} {
		assert.True(t, Aligned32(b, off), "offset %d", off)
	}
	for _, off := range []int{-4, 1, 2, 3, 13, 16, 20} {
		assert.False(t, Aligned32(b, off), "offset %d", off)
	}
	assert.False(t, Aligned32(b[1:], 0), "a slice starting off the boundary")
	assert.Panics(t, func() { Acquire32(b, 14) }, "a word running past the slice")
	assert.Panics(t, func() { Publish32(b, 16, 1) }, "a word past the slice")
}

// TestHandOver plays device and driver on two goroutines: the device writes
// each entry's body with plain stores and publishes its phase word last; the
// driver waits for the phase with Acquire32 and then reads the body with
// plain loads. Run under -race it checks that the pair orders the body.
func TestHandOver(t *testing.T) {
	const entries, size = 64, 16
	ring := make([]byte, entries*size)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the device
		defer wg.Done()
		for i := range entries {
			e := ring[i*size : (i+1)*size]
			binary.LittleEndian.PutUint64(e[8:], uint64(i)*0x0101010101)
			binary.LittleEndian.PutUint32(e[4:], uint32(i))
			Publish32(e, 0, 1<<24|uint32(i))
		}
	}()
	for i := range entries { // the driver
		e := ring[i*size : (i+1)*size]
		for Acquire32(e, 0)>>24 != 1 {
		}
		assert.Equal(t, uint32(i), binary.LittleEndian.Uint32(e[4:]))
		assert.Equal(t, uint64(i)*0x0101010101, binary.LittleEndian.Uint64(e[8:]))
	}
	wg.Wait()
}

// keep holds the functions as values so the linker keeps out-of-line copies
// for TestMachineCode even though every call above is inlined.
var keep = []any{Acquire32, Publish32}

// TestMachineCode checks, in the code the compiler emits for each supported
// architecture, the instructions the package documentation promises: a
// load-acquire and a store-release on arm64, a plain load and a locked
// exchange on amd64.
func TestMachineCode(t *testing.T) {
	require.Len(t, keep, 2)
	want := []struct {
		goarch, fn string
		insn       *regexp.Regexp
	}{
		{"amd64", "Acquire32", regexp.MustCompile(`^MOVL \S*\(`)},
		{"amd64", "Publish32", regexp.MustCompile(`^XCHGL `)},
		{"arm64", "Acquire32", regexp.MustCompile(`^LDARW `)},
		{"arm64", "Publish32", regexp.MustCompile(`^STLRW `)},
	}
	bins := map[string]string{}
	for _, w := range want {
		if bins[w.goarch] == "" {
			bins[w.goarch] = disasm.Build(t, w.goarch)
		}
		insns := disasm.Func(t, bins[w.goarch], "dmamem", w.fn)
		found := false
		for _, in := range insns {
			found = found || w.insn.MatchString(in)
		}
		assert.True(t, found, "%s %s: no %v in\n%s", w.goarch, w.fn, w.insn, strings.Join(insns, "\n"))
	}
}
