package rings

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCopyHeader: copyHeader copies exactly what copy does, for first
// segments around its two-word range (8 to 16 bytes) and destinations
// shorter than, equal to and longer than the segment.
func TestCopyHeader(t *testing.T) {
	for n := 0; n <= 20; n++ {
		h := make([]byte, n)
		for i := range h {
			h[i] = byte(i + 1)
		}
		for _, size := range []int{n / 2, n, n + 7} {
			want := make([]byte, size)
			got := make([]byte, size)
			for i := range want {
				want[i], got[i] = 0xEE, 0xEE
			}
			wn := copy(want, h)
			gn := copyHeader(got, h)
			require.Equal(t, wn, gn, "segment %d bytes, destination %d", n, size)
			require.Equal(t, want, got, "segment %d bytes, destination %d", n, size)
		}
	}
}
