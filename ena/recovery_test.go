package ena

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/ena/spec"
	"github.com/enanet/enanet/rings"
	"github.com/stretchr/testify/require"
)

// fastHints shorten the device's watchdog timings (§4.8 HW_HINTS) so fault
// tests take milliseconds instead of seconds.
var fastHints = spec.HWHints{
	DriverWatchdogTimeout:       400,
	MissingTxCompletionTimeout:  60,
	MissedTxCompletionThreshold: 2,
	AdminCompletionTxTimeout:    150,
}

// openFast is openSim with the profile's hints replaced by fastHints and a
// 20 ms watchdog.
func openFast(t *testing.T, profile string, cfg Config) (*Device, *enasim.Device) {
	t.Helper()
	return openFastRev(t, profile, cfg, 0)
}

// openFastRev is openFast with a PCI revision (bit 0: no readless reads).
func openFastRev(t *testing.T, profile string, cfg Config, revision uint8) (*Device, *enasim.Device) {
	t.Helper()
	prof, err := enasim.ProfileByName(profile)
	require.NoError(t, err)
	prof.Hints = fastHints
	wire := enasim.NewLoopback()
	sim, err := enasim.New(enasim.Config{Profile: prof, Wire: wire, Revision: revision, KeepAlivePeriod: 50 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sim.Close(); _ = wire.Close() })
	if cfg.Logger == nil {
		cfg.Logger = quietLog
	}
	if cfg.TxDepth == 0 {
		cfg.TxDepth, cfg.RxDepth = 256, 256
	}
	if cfg.WatchdogInterval == 0 {
		cfg.WatchdogInterval = 20 * time.Millisecond
	}
	d, err := Open(sim, cfg)
	require.NoError(t, err, "Open on %s", profile)
	t.Cleanup(func() { _ = d.Close() })
	return d, sim
}

// healthLog records every Health the driver reports.
type healthLog struct {
	mu sync.Mutex
	hs []Health
}

func (l *healthLog) add(h Health) { l.mu.Lock(); l.hs = append(l.hs, h); l.mu.Unlock() }
func (l *healthLog) all() []Health {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Health(nil), l.hs...)
}

func waitHealth(t *testing.T, d *Device, want DeviceState, timeout time.Duration) Health {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		h := d.Health()
		if h.State == want {
			return h
		}
		require.True(t, time.Now().Before(deadline), "device state %v after %v, want %v (%+v)", h.State, timeout, want, h)
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRecoveryKeepsTryingUntilTheDeviceIsBack(t *testing.T) {
	d, s := openFast(t, "nitro-v3", Config{Queues: 1})
	var hl healthLog
	d.SetHealthHandler(hl.add)
	var links []bool
	var lmu sync.Mutex
	d.SetLinkHandler(func(up bool) { lmu.Lock(); links = append(links, up); lmu.Unlock() })
	fatal := make(chan error, 1)
	d.SetFatalHandler(func(err error) { fatal <- err })
	loopbackOK(t, d, 1)

	// The admin path goes silent for 2 s: every bring-up fails until then.
	s.Faults().DropAdminCompletions(1 << 30)
	err := d.Reset(spec.ResetUserTrigger)
	require.Error(t, err)
	require.Contains(t, err.Error(), "retrying")
	h := d.Health()
	require.Equal(t, StateRecovering, h.State)
	require.False(t, h.LinkUp)
	require.GreaterOrEqual(t, h.Attempt, 1)
	require.NotEmpty(t, h.LastError)
	require.ErrorIs(t, d.Queue(0).Send([][]byte{testFrame(d.MAC(), 1, 64)}, rings.TxOffload{}), ErrResetting)

	time.Sleep(2 * time.Second)
	require.Equal(t, StateRecovering, d.Health().State)
	s.Faults().DropAdminCompletions(0)
	h = waitHealth(t, d, StateRunning, 5*time.Second)
	require.True(t, h.LinkUp)
	require.Positive(t, h.LastRecovery)
	loopbackOK(t, d, 2)

	attempts := 0
	for _, h := range hl.all() {
		attempts = max(attempts, h.Attempt)
	}
	// Each attempt waits out the CAPS admin timeout before the hints are
	// read again, so 2 s hold at least two.
	require.GreaterOrEqual(t, attempts, 2, "recovery did not retry")
	// The state turns Running before the recovering goroutine calls the
	// handlers (notifyHealth runs after the rebuild), so the link-up
	// notification may still be on its way.
	require.Eventually(t, func() bool {
		lmu.Lock()
		defer lmu.Unlock()
		return len(links) == 2
	}, 5*time.Second, 5*time.Millisecond, "no link-up notification after recovery")
	lmu.Lock()
	require.Equal(t, []bool{false, true}, links, "the link reads down while recovering, up after")
	lmu.Unlock()
	select {
	case err := <-fatal:
		t.Fatalf("fatal handler called for a device that came back: %v", err)
	default:
	}
}

func TestCloseWhileRecoveryRetries(t *testing.T) {
	d, s := openFast(t, "nitro-v4", Config{Queues: 2})
	s.Faults().DropAdminCompletions(1 << 30)
	require.Error(t, d.Reset(spec.ResetUserTrigger))
	time.Sleep(300 * time.Millisecond)
	done := make(chan error)
	go func() { done <- d.Close() }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung while recovery was retrying")
	}
	require.Equal(t, StateClosed, d.Health().State)
}

func TestSurpriseRemovalIsFatalOnce(t *testing.T) {
	for _, revision := range []uint8{0, 1} { // readless and plain reads
		d, s := openFastRev(t, "nitro-v3", Config{Queues: 1}, revision)
		var mu sync.Mutex
		var errs []error
		d.SetFatalHandler(func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() })
		loopbackOK(t, d, 1)
		s.Faults().SurpriseRemove()
		waitHealth(t, d, StateFailed, 3*time.Second)
		time.Sleep(100 * time.Millisecond) // more watchdog ticks: no second report
		mu.Lock()
		require.Len(t, errs, 1)
		require.ErrorIs(t, errs[0], ErrDeviceGone)
		mu.Unlock()
		require.Contains(t, d.Health().LastError, "surprise removal")
		err := d.Queue(0).Send([][]byte{testFrame(d.MAC(), 1, 64)}, rings.TxOffload{})
		require.True(t, errors.Is(err, ErrDeviceDead), "Send after removal: %v", err)
		require.NoError(t, d.Close())
	}
}
