package rings

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestTxPoolBuffers: buffers up to the default size get one per slot;
// larger ones as many as fit in depth default-size buffers' memory.
func TestTxPoolBuffers(t *testing.T) {
	for _, c := range []struct{ depth, size, want int }{
		{1024, 2048, 1024},
		{1024, 1024, 1024},
		{1024, 4096, 512},
		{1024, 9216, 228},
		{64, 9216, 15},
		{64, 65535, 3},
	} {
		got := txPoolBuffers(c.depth, c.size)
		assert.Equal(t, c.want, got, "depth %d, %d-byte buffers", c.depth, c.size)
		if c.size > DefaultTxBufSize {
			assert.LessOrEqual(t, got*c.size, c.depth*DefaultTxBufSize+c.size, "pool memory")
		}
	}
}
