package vfio

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// fileBacked maps a temporary file as a stand-in for a BAR, so loads and
// stores through the mmio accessors can be checked against the file.
func fileBacked(t *testing.T, size int) (string, *os.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "resource2_wc")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(size)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return path, f
}

func TestRegisterAndMemoryBAR(t *testing.T) {
	path, f := fileBacked(t, 3*4096)
	m, err := mapSysfsWC(path)
	require.NoError(t, err)
	defer m.unmap()
	r := regBAR{m}
	require.Equal(t, uint32(3*4096), r.Size())
	r.Write32(8, 0xdeadbeef)
	assert.Equal(t, uint32(0xdeadbeef), r.Read32(8))

	llq := memBAR{m}
	first := binary.LittleEndian.AppendUint64(nil, 0x1122334455667788)
	llq.WriteBlock(4096, first)
	blk := make([]byte, 64)
	for i := range blk {
		blk[i] = byte(i)
	}
	llq.WriteBlock(4096+64, blk)
	llq.Flush()
	var back [136]byte
	_, err = f.ReadAt(back[:], 4096)
	require.NoError(t, err)
	assert.Equal(t, uint64(0x1122334455667788), binary.LittleEndian.Uint64(back[:]), "8-byte block")
	assert.Equal(t, make([]byte, 56), back[8:64], "bytes between the blocks")
	assert.Equal(t, blk, back[64:128], "64-byte block")

	for name, bad := range map[string]func(){
		"unaligned register":   func() { r.Read32(2) },
		"register past BAR0":   func() { r.Write32(3*4096, 1) },
		"unaligned LLQ block":  func() { llq.WriteBlock(4, first) },
		"LLQ block past BAR2":  func() { llq.WriteBlock(3*4096-8, blk) },
		"LLQ block not 8-byte": func() { llq.WriteBlock(0, blk[:7]) },
	} {
		assert.Panics(t, bad, name)
	}
}

func TestSparseMapping(t *testing.T) {
	path, f := fileBacked(t, 3*4096)
	if _, err := f.WriteAt([]byte{0x2a, 0, 0, 0}, 2*4096); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(path, unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	// The middle page is a hole (as an MSI-X table would be); one area
	// lies outside the region and must be ignored.
	m, err := mmapSparse(fd, 0, 3*4096, []sparseMmapArea{{0, 4096}, {2 * 4096, 4096}, {5 * 4096, 4096}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.unmap()
	if !m.in(0, 4) || m.in(4096, 4) || !m.in(2*4096, 4) || m.in(4092, 8) || len(m.areas) != 2 {
		t.Fatalf("sparse bounds wrong: %v", m.areas)
	}
	if got := (regBAR{m}).Read32(2 * 4096); got != 0x2a {
		t.Fatalf("Read32 in second area = %#x", got)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("access to the hole did not panic")
			}
		}()
		(regBAR{m}).Read32(4096)
	}()
}
