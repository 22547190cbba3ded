package enasim

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// collect gathers the first byte of every frame a wire end receives.
type collect struct {
	mu  sync.Mutex
	got []byte
}

func (c *collect) fn(f []byte) { c.mu.Lock(); c.got = append(c.got, f[0]); c.mu.Unlock() }
func (c *collect) all() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.got...)
}

func TestImpairedWire(t *testing.T) {
	t.Run("loss", func(t *testing.T) {
		a, b := NewPair()
		w := NewImpaired(a, Impairment{Loss: 0.1, Seed: 1})
		defer w.Close()
		var c collect
		b.SetReceiver(c.fn)
		for i := range 10000 {
			w.Send([]byte{byte(i)})
		}
		st := w.Stats()
		require.InDelta(t, 1000, st.Dropped, 150)
		require.Equal(t, int(st.Sent-st.Dropped), len(c.all()))
	})
	t.Run("burst", func(t *testing.T) {
		a, b := NewPair()
		w := NewImpaired(a, Impairment{BurstLoss: 0.01, BurstLen: 5, Seed: 2})
		defer w.Close()
		b.SetReceiver(func([]byte) {})
		for range 10000 {
			w.Send([]byte{0})
		}
		require.Zero(t, w.Stats().Dropped%5, "bursts of 5")
		require.NotZero(t, w.Stats().Dropped)
	})
	t.Run("reorder-and-delay", func(t *testing.T) {
		a, b := NewPair()
		w := NewImpaired(a, Impairment{Reorder: 0.5, ReorderDelay: 5 * time.Millisecond, Delay: time.Millisecond, Seed: 3})
		var c collect
		b.SetReceiver(c.fn)
		for i := range 100 {
			w.Send([]byte{byte(i)})
		}
		require.Eventually(t, func() bool { return len(c.all()) == 100 }, 2*time.Second, time.Millisecond)
		got := c.all()
		inOrder := true
		for i := 1; i < len(got); i++ {
			inOrder = inOrder && got[i] > got[i-1]
		}
		require.False(t, inOrder, "half the frames held back 5 ms must arrive out of order")
		require.NoError(t, w.Close())
	})
}
