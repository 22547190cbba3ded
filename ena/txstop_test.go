package ena

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena/spec"
	"github.com/enanet/enanet/rings"
)

// TestSendWaitsForRecovery: a frame sent while a recovery attempt runs
// waits for the attempt (the Tx queue is stopped) and goes out once the
// device is back, instead of failing with ErrResetting.
func TestSendWaitsForRecovery(t *testing.T) {
	d, s := openSim(t, "nitro-v3", Config{Queues: 1}, 0)
	f := testFrame(d.MAC(), 3, 200)
	got := rxLoop(t, d, f)
	sendUntil(t, d, f, got, 3, 5*time.Second)
	// Each admin command of the rebuild takes 5 ms more: the attempt
	// lasts tens of milliseconds.
	s.Faults().DelayAdminCompletions(5 * time.Millisecond)
	defer s.Faults().DelayAdminCompletions(0)
	done := make(chan error, 1)
	go func() { done <- d.Reset(spec.ResetUserTrigger) }()
	for d.Health().State != StateRecovering {
		select {
		case err := <-done:
			t.Fatalf("reset ended before the test saw it: %v", err)
		default:
		}
		time.Sleep(50 * time.Microsecond)
	}
	t0 := time.Now()
	err := d.Queue(0).Send([][]byte{f}, rings.TxOffload{})
	waited := time.Since(t0)
	if err != nil {
		// Only a recovery slower than the bound (a very busy machine)
		// may fail the frame, and only after the bound.
		require.True(t, errors.Is(err, ErrResetting), "Send: %v", err)
		require.GreaterOrEqual(t, waited, txRecoveryWait)
		t.Logf("the recovery outlasted the %v bound on this machine: the frame failed after it", txRecoveryWait)
		require.NoError(t, <-done)
		return
	}
	require.Equal(t, StateRunning, d.Health().State, "Send returned before the device was back")
	require.NoError(t, <-done)
	d.Queue(0).Flush()
	sendUntil(t, d, f, got, got.Load()+1, 5*time.Second)
	t.Logf("Send waited %v for the recovery", waited.Round(time.Microsecond))
}
