package spec

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

// hx parses space-separated hex bytes ("01 00 58 00") written by hand in
// the tests.
func cpHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(strings.ReplaceAll(s, " ", ""), "\n", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// at builds a zeroed buffer of size n and places hand-written byte runs at
// the given offsets: cpAt(t, 64, 0, "07 00 03 01", 12, "00 50 34 12").
func cpAt(t testing.TB, n int, runs ...any) []byte {
	t.Helper()
	b := make([]byte, n)
	for i := 0; i+1 < len(runs); i += 2 {
		off := runs[i].(int)
		copy(b[off:], cpHex(t, runs[i+1].(string)))
	}
	return b
}

// checkBytes fails with a readable diff when got != want.
func cpCheck(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s encoding mismatch\n got: % x\nwant: % x", what, got, want)
	}
}

// dirty returns n bytes of 0xA5 so encoders are seen to overwrite reserved
// bytes with zero.
func cpDirty(n int) []byte { return bytes.Repeat([]byte{0xA5}, n) }

// ena_common_defs.h struct ena_common_mem_addr: mem_addr_low u32 @0,
// mem_addr_high u16 @4, reserved16 u16 @6.
func TestMemAddrVector(t *testing.T) {
	b := cpDirty(MemAddrSize)
	PutMemAddr(b, 0x0000_BEEF_1234_5678)
	cpCheck(t, "mem_addr", b, cpHex(t, "78 56 34 12 ef be 00 00"))
	if got := GetMemAddr(b); got != 0xBEEF_1234_5678 {
		t.Errorf("GetMemAddr = %#x", got)
	}
	// Bits above 47 are dropped, never smeared into the reserved half-word.
	PutMemAddr(b, 0xFFFF_0000_0000_0001)
	cpCheck(t, "mem_addr >48 bits", b, cpHex(t, "01 00 00 00 00 00 00 00"))
	// A garbage reserved half-word is visible, and ignored by GetMemAddr.
	g := cpHex(t, "01 02 03 04 05 06 07 08")
	if GetMemAddr(g) != 0x0605_0403_0201 || MemAddrReserved(g) != 0x0807 {
		t.Errorf("GetMemAddr/Reserved = %#x/%#x", GetMemAddr(g), MemAddrReserved(g))
	}
}
