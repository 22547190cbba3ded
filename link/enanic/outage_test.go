package enanic

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/ena/spec"
)

// TestConnectionsSurviveAdminOutage silences device A's admin path for 8 s
// in the middle of a full-duplex transfer: every recovery attempt fails
// until then, the driver keeps retrying with backoff and reports it, and
// once the device answers again the connection finishes with intact bytes.
func TestConnectionsSurviveAdminOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out an 8 s outage; skipped with -short")
	}
	wa, wb := enasim.NewPair()
	a := openFaultSide(t, wa, "10.9.1.1/24", "nitro-v4")
	b := openFaultSide(t, wb, "10.9.1.2/24", "nitro-v4")
	var seen []ena.Health
	healths := make(chan ena.Health, 64)
	a.dev.SetHealthHandler(func(h ena.Health) {
		select {
		case healths <- h:
		default:
		}
	})
	du := startDuplex(t, a, b, 6000)
	for du.total() < int64(transferBytes())/2 {
		time.Sleep(time.Millisecond)
	}
	const outage = 8 * time.Second
	t0 := time.Now()
	a.sim.Faults().DropAdminCompletions(1 << 30)
	_, _ = a.dev.Stats(context.Background()) // times out: ADMIN_TO reset
	time.Sleep(outage - time.Since(t0))
	h := a.dev.Health()
	require.Equal(t, ena.StateRecovering, h.State, "still recovering at the end of the outage")
	require.False(t, h.LinkUp)
	require.GreaterOrEqual(t, h.Attempt, 2)
	require.NotEmpty(t, h.LastError)
	t.Logf("after %v: %+v", outage, h)
	// The endpoint's stats say the same.
	eh := a.st.Endpoint.Stats().Health
	require.NotNil(t, eh)
	require.Equal(t, "recovering", eh.State)
	require.False(t, eh.LinkUp)
	require.Equal(t, "ADMIN_TO", eh.Reason)
	require.GreaterOrEqual(t, eh.Attempt, 2)
	require.NotEmpty(t, eh.LastError)
	a.sim.Faults().DropAdminCompletions(0)
	for a.dev.Health().State != ena.StateRunning {
		require.Less(t, time.Since(t0), outage+10*time.Second, "device not back: %+v", a.dev.Health())
		time.Sleep(time.Millisecond)
	}
	back := time.Since(t0)
	base := du.total()
	for du.total() < base+256<<10 && time.Since(t0) < 60*time.Second {
		time.Sleep(time.Millisecond)
	}
	t.Logf("device back %v after the outage began, traffic flowing after %v", back.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	du.wait(t)
	close(healths)
	for h := range healths {
		seen = append(seen, h)
	}
	require.NotEmpty(t, seen)
	require.Equal(t, ena.StateRunning, seen[len(seen)-1].State)
	st, _ := a.dev.Stats(context.Background())
	require.NotZero(t, st.Driver.Resets[spec.ResetAdminTO])
	eh = a.st.Endpoint.Stats().Health
	require.Equal(t, "running", eh.State)
	require.Zero(t, eh.Attempt)
	require.NotZero(t, eh.LastRecovery)
}
