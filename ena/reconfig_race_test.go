package ena

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena/enasim"
)

// openSimRace is openSim with a ringDecided hook: after arm is called,
// the next ring setter that has decided and not yet applied its change
// runs other first, once.
func openSimRace(t *testing.T, other func(d *Device) error) (d *Device, sim *enasim.Device, arm func()) {
	t.Helper()
	wire := enasim.NewLoopback()
	sim, err := enasim.New(enasim.Config{Profile: enasim.ProfileNitroV3, Wire: wire, KeepAlivePeriod: 50 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sim.Close(); _ = wire.Close() })
	var armed, fired atomic.Bool
	hooks := testHooks{ringDecided: func() {
		if armed.Load() && fired.CompareAndSwap(false, true) {
			assert.NoError(t, other(d), "the change that completes in the window")
		}
	}}
	d, err = openWithHooks(sim, Config{Logger: quietLog, TxDepth: 256, RxDepth: 256}, hooks)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	t.Cleanup(func() { assert.True(t, fired.Load(), "the hook ran") })
	return d, sim, func() { armed.Store(true) }
}

// TestSetMTUKeepsConcurrentRxBufSize: a SetRxBufSize(RxBuf4K) that
// completes after SetMTU(9001) decided to rebuild for automatic 9 KiB
// buffers is not undone: SetMTU sees the buffer size is no longer
// automatic and only changes the MTU.
func TestSetMTUKeepsConcurrentRxBufSize(t *testing.T) {
	d, sim, arm := openSimRace(t, func(d *Device) error { return d.SetRxBufSize(RxBuf4K) })
	require.True(t, d.Rings().RxBufAuto)
	arm()
	require.NoError(t, d.SetMTU(9001))
	assert.Equal(t, RxBuf4K, d.Rings().RxBufSize)
	assert.False(t, d.Rings().RxBufAuto)
	assert.Equal(t, 9001, d.MTU())
	assert.Equal(t, 9001, sim.State().MTU)
	checkRxBuffers(t, d, sim, RxBuf4K)
}

// TestSetMTUFollowsConcurrentRxBufAuto: a SetRxBufSize(RxBufAuto) that
// completes after SetMTU(9001) decided the (fixed 4 KiB) buffers stay
// makes SetMTU rebuild after all, so the automatic size fits the new MTU.
func TestSetMTUFollowsConcurrentRxBufAuto(t *testing.T) {
	d, sim, arm := openSimRace(t, func(d *Device) error { return d.SetRxBufSize(RxBufAuto) })
	require.NoError(t, d.SetRxBufSize(RxBuf4K))
	arm()
	require.NoError(t, d.SetMTU(9001))
	assert.Equal(t, RxBuf9K, d.Rings().RxBufSize)
	assert.True(t, d.Rings().RxBufAuto)
	assert.Equal(t, 9001, sim.State().MTU)
	checkRxBuffers(t, d, sim, RxBuf9K)
}

// TestSetRxBufAutoFollowsConcurrentMTU: SetRxBufSize(RxBufAuto) decided
// at MTU 1500 (2 KiB); a SetMTU(9001) completing in between makes it
// decide again, for 9 KiB.
func TestSetRxBufAutoFollowsConcurrentMTU(t *testing.T) {
	d, sim, arm := openSimRace(t, func(d *Device) error { return d.SetMTU(9001) })
	require.NoError(t, d.SetRxBufSize(RxBuf4K))
	arm()
	require.NoError(t, d.SetRxBufSize(RxBufAuto))
	assert.Equal(t, RxBuf9K, d.Rings().RxBufSize)
	assert.True(t, d.Rings().RxBufAuto)
	assert.Equal(t, 9001, sim.State().MTU)
	checkRxBuffers(t, d, sim, RxBuf9K)
}

// checkRxBuffers sends a frame through and checks the device filled
// buffers of size n (enasim's state, not the driver's bookkeeping).
func checkRxBuffers(t *testing.T, d *Device, sim *enasim.Device, n int) {
	t.Helper()
	loopbackOK(t, d, 1)
	used := false
	for _, sq := range sim.State().RxSQs {
		if sq.LastRxBufLen != 0 {
			used = true
			assert.Equal(t, n, sq.LastRxBufLen, "the device filled a buffer of another size")
		}
	}
	assert.True(t, used, "a frame arrived")
}
