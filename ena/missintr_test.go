package ena

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/ena/spec"
	"github.com/enanet/enanet/rings"
	"github.com/stretchr/testify/require"
)

// rxLoop runs the interrupt-driven receive loop a link layer runs (WaitRx,
// then Poll) on every queue and counts the test frames that arrive intact.
func rxLoop(t *testing.T, d *Device, want []byte) *atomic.Int64 {
	t.Helper()
	var got atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range d.NumQueues() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := d.Queue(i)
			for ctx.Err() == nil {
				_, _ = q.Poll(64, func(p *rings.RxPacket) {
					if p.NFrags == 1 && bytes.Equal(p.Frags[0], want) {
						got.Add(1)
					}
				})
				_ = q.WaitRx(ctx)
			}
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return &got
}

// sendUntil sends frame f every few milliseconds until got reaches n or the
// timeout passes.
func sendUntil(t *testing.T, d *Device, f []byte, got *atomic.Int64, n int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for got.Load() < n {
		require.True(t, time.Now().Before(deadline), "only %d of %d frames arrived in %v", got.Load(), n, timeout)
		if d.Queue(0).Send([][]byte{f}, rings.TxOffload{}) == nil {
			d.Queue(0).Flush()
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestMissedRxInterruptForAWhileIsPolled(t *testing.T) {
	d, s := openSim(t, "nitro-v3", Config{Queues: 1, WatchdogInterval: 100 * time.Millisecond}, 0)
	f := testFrame(d.MAC(), 3, 200)
	got := rxLoop(t, d, f)
	sendUntil(t, d, f, got, 5, 3*time.Second)
	s.Faults().DropInterrupts(1, 150*time.Millisecond)
	start := got.Load()
	sendUntil(t, d, f, got, start+100, 5*time.Second)
	st := d.driverStats()
	require.NotZero(t, st.MissedInterrupts, "no missed interrupt detected (%d dropped)", s.Faults().DroppedInterrupts())
	require.Zero(t, st.Resets[spec.ResetMissInterrupt], "a short interrupt loss must be polled, not reset")
	require.NotZero(t, s.Faults().DroppedInterrupts())
}

func TestMissedRxInterruptForGoodResets(t *testing.T) {
	for _, profile := range enasim.ProfileNames() {
		t.Run(profile, func(t *testing.T) {
			d, s := openSim(t, profile, Config{Queues: 2, WatchdogInterval: 20 * time.Millisecond}, 0)
			f := testFrame(d.MAC(), 4, 200)
			got := rxLoop(t, d, f)
			sendUntil(t, d, f, got, 5, 3*time.Second)
			s.Faults().DropIOInterrupts(enasim.UntilReset)
			start := got.Load()
			// Frames keep arriving (polled) while the watchdog decides.
			sendUntil(t, d, f, got, start+50, 5*time.Second)
			waitReset(t, d, spec.ResetMissInterrupt, 3*time.Second)
			sendUntil(t, d, f, got, got.Load()+50, 5*time.Second)
		})
	}
}

func TestMissedAdminInterrupt(t *testing.T) {
	d, s := openSim(t, "nitro-v3", Config{Queues: 1}, 0)
	require.True(t, d.Info().AdminInterrupts)
	s.Faults().DropInterrupts(0, enasim.UntilReset)
	// An admin command still completes: the management goroutine polls.
	_, err := d.Stats(context.Background())
	require.NoError(t, err)
	// Keep-alives keep arriving with no interrupt: the driver resets.
	waitReset(t, d, spec.ResetMissingAdminInterrupt, 3*time.Second)
	require.NotZero(t, d.driverStats().MissedAdminInterrupts)
	_, err = d.Stats(context.Background())
	require.NoError(t, err)
	loopbackOK(t, d, 9)
}
