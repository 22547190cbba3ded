package ena

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/enanet/enanet/ena/spec"
)

// Recovery (§9.3) never gives up on a device that is still there: a
// userspace driver cannot be reloaded the way a kernel module can, so after
// a failed attempt the watchdog tries again with a backoff that doubles from
// recoveryBackoffMin to recoveryBackoffMax, until the device comes back or
// the Device is closed. Meanwhile Send returns ErrResetting, Poll returns
// nothing, the link reads down and Health says which attempt failed how.
// Only a device that is gone (registers read all-ones: surprise removal, or
// a function reset behind our back) is declared dead, once.
const (
	recoveryBackoffMin = 100 * time.Millisecond
	recoveryBackoffMax = 3 * time.Second
)

// txRecoveryWait bounds how long Send waits for a recovery attempt in
// progress. A Tx queue is stopped during a reset, as a NIC driver stops its
// netdev queues: frames wait in the stack's queue instead of being dropped,
// because dropping a whole congestion window costs TCP far more than the
// milliseconds a recovery takes (a hole of a thousand segments took gVisor
// minutes to repair, one retransmission timeout per segment). The bound keeps
// a sender from waiting out an attempt stuck in admin timeouts; between
// failed attempts Send fails at once and the link reads down.
const txRecoveryWait = 500 * time.Millisecond

// ErrDeviceGone means the device no longer answers register reads (they
// return all-ones): it was removed or its function was reset from outside.
// Nothing but closing the Device helps.
var ErrDeviceGone = errors.New("ena: device is gone (registers read 0xffffffff): surprise removal or an outside function reset; close it and re-open the device if it comes back")

// DeviceState is the Device's life-cycle state as Health reports it.
type DeviceState int

// Device states as reported by Health.
const (
	StateRunning    DeviceState = iota // moving traffic
	StateRecovering                    // reset in progress or being retried
	StateFailed                        // gone for good; the fatal handler ran
	StateClosed                        // Close was called
)

// String names the state in snake_case, as JSON and metrics show it.
func (s DeviceState) String() string {
	switch s {
	case StateRunning:
		return "running"
	case StateRecovering:
		return "recovering"
	case StateFailed:
		return "failed"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("DeviceState(%d)", int(s))
}

// MarshalText lets JSON show the state by name.
func (s DeviceState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Health is the device's state as the watchdog sees it: whether it moves
// traffic, and while it does not, why and how recovery is going.
type Health struct {
	State  DeviceState `json:"state"`
	LinkUp bool        `json:"link_up"` // false while recovering
	// Reason is the reset reason of the current recovery, or of the last
	// one when running again; Resets counts every reset since Open.
	Reason spec.ResetReason `json:"reset_reason"`
	Resets uint64           `json:"resets"`
	// Attempt is how many recovery attempts the current recovery made
	// (0 while running); LastError is why the last one failed.
	Attempt   int    `json:"attempt"`
	LastError string `json:"last_error,omitempty"`
	// Since is when the current recovery began (zero while running);
	// NextAttempt when the watchdog tries again.
	Since       time.Time `json:"since,omitzero"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// LastRecovery is how long the last completed recovery took, from the
	// reset decision to traffic flowing again.
	LastRecovery time.Duration `json:"last_recovery_ns"`
}

// recoveryState is the recovery in progress; under mu. active is set from
// the first attempt until success, Close or death.
type recoveryState struct {
	mu           sync.Mutex
	active       bool
	reason       spec.ResetReason
	attempt      int
	lastErr      error
	since, next  time.Time
	lastDuration time.Duration
	dataStopped  bool // stopForReset locked the queue pairs; under resetMu
	// attemptEnd is open while a recovery attempt runs and closed when it
	// ends, either way; nil between attempts. Send waits on it, once per
	// attempt: waitedOut says a sender already waited the whole bound.
	attemptEnd chan struct{}
	waitedOut  bool
}

// recover resets the device with reason and rebuilds everything (§9.3):
// the data path is stopped, the device reset, the whole bring-up re-run
// in recovery mode (with reason NORMAL), the queues re-created and bound,
// Rx refilled and MTU and RSS restored. QueuePair handles stay valid. If
// the attempt fails the device stays in recovery and the watchdog retries
// (retryRecovery); the returned error then says so.
func (d *Device) recover(reason spec.ResetReason) error {
	d.resetMu.Lock()
	// The attempt is announced before the state changes, so a Send that
	// sees the device resetting finds it to wait on.
	d.beginAttempt()
	if !d.state.CompareAndSwap(stateRunning, stateResetting) {
		d.endAttempt()
		d.resetMu.Unlock()
		switch d.state.Load() {
		case stateDead:
			return ErrDeviceDead
		case stateClosed:
			return ErrClosed
		}
		return ErrResetting
	}
	d.counters.countReset(reason)
	d.log.Warn("ena: resetting device", "reason", reason)
	d.tr.printf("recover %v\n", reason)
	d.rec.mu.Lock()
	d.rec.active, d.rec.reason, d.rec.attempt, d.rec.lastErr = true, reason, 0, nil
	d.rec.since, d.rec.next = time.Now(), time.Time{}
	d.rec.mu.Unlock()
	d.stopForReset()
	err := d.attemptRecovery()
	d.resetMu.Unlock()
	d.notifyHealth()
	return err
}

// retryRecovery makes the next attempt of a recovery whose previous one
// failed; the watchdog calls it when the backoff has passed.
func (d *Device) retryRecovery() error {
	d.resetMu.Lock()
	if d.state.Load() != stateResetting {
		d.resetMu.Unlock()
		return nil // closed meanwhile
	}
	err := d.attemptRecovery()
	d.resetMu.Unlock()
	d.notifyHealth()
	return err
}

// attemptRecovery resets the device and re-runs bring-up once; resetMu held,
// data path stopped. On success the device runs again; on failure the next
// attempt is scheduled, or the device is declared dead if it is gone.
func (d *Device) attemptRecovery() error {
	d.rec.mu.Lock()
	d.rec.attempt++
	attempt, reason := d.rec.attempt, d.rec.reason
	d.rec.mu.Unlock()
	d.beginAttempt()
	defer d.endAttempt()
	err := d.resetAndRebuild(reason)
	if err == nil {
		d.pendingReset.Store(0)
		d.lastKeepAlive.Store(time.Now().UnixNano())
		d.state.Store(stateRunning)
		d.resumeDataPath()
		d.rec.mu.Lock()
		took := time.Since(d.rec.since)
		d.rec.active, d.rec.lastErr, d.rec.lastDuration = false, nil, took
		d.rec.mu.Unlock()
		d.log.Info("ena: device recovered", "reason", reason, "attempts", attempt, "took", took.Round(time.Millisecond))
		return nil
	}
	if d.regs.gone() {
		d.state.Store(stateDead)
		d.rec.mu.Lock()
		d.rec.active, d.rec.lastErr = false, ErrDeviceGone
		d.rec.mu.Unlock()
		return fmt.Errorf("ena: recovery after %v reset: %w", reason, ErrDeviceGone)
	}
	backoff := min(recoveryBackoffMin<<min(attempt-1, 16), recoveryBackoffMax)
	d.rec.mu.Lock()
	d.rec.lastErr, d.rec.next = err, time.Now().Add(backoff)
	d.rec.mu.Unlock()
	d.log.Warn("ena: recovery attempt failed; retrying", "reason", reason, "attempt", attempt, "in", backoff, "err", err)
	return fmt.Errorf("ena: recovery after %v reset, attempt %d failed (retrying in %v): %w", reason, attempt, backoff, err)
}

// beginAttempt opens the channel Send waits on during a recovery attempt,
// unless it is open already.
func (d *Device) beginAttempt() {
	d.rec.mu.Lock()
	if d.rec.attemptEnd == nil {
		d.rec.attemptEnd, d.rec.waitedOut = make(chan struct{}), false
	}
	d.rec.mu.Unlock()
}

// endAttempt releases the senders waiting for the attempt.
func (d *Device) endAttempt() {
	d.rec.mu.Lock()
	end := d.rec.attemptEnd
	d.rec.attemptEnd = nil
	d.rec.mu.Unlock()
	if end != nil {
		close(end)
	}
}

// awaitRecovery waits, at most txRecoveryWait, for the recovery attempt in
// progress to end, and reports whether the device runs again. Without an
// attempt in progress, or once a sender waited this attempt out, it
// returns at once.
func (d *Device) awaitRecovery() bool {
	d.rec.mu.Lock()
	end, waitedOut := d.rec.attemptEnd, d.rec.waitedOut
	d.rec.mu.Unlock()
	if end == nil || waitedOut {
		return d.state.Load() == stateRunning
	}
	t := time.NewTimer(txRecoveryWait)
	defer t.Stop()
	select {
	case <-end:
	case <-d.stop:
	case <-t.C:
		// The rest of this attempt's frames fail at once: a batch must
		// not wait the bound once per frame.
		d.rec.mu.Lock()
		if d.rec.attemptEnd == end {
			d.rec.waitedOut = true
		}
		d.rec.mu.Unlock()
	}
	return d.state.Load() == stateRunning
}

// recoveryDue reports whether a failed recovery waits for its next attempt,
// and when that is.
func (d *Device) recoveryDue() (time.Time, bool) {
	d.rec.mu.Lock()
	defer d.rec.mu.Unlock()
	return d.rec.next, d.rec.active && !d.rec.next.IsZero()
}

// stopForReset stops the data path and the admin queue (§9.3 step 1): every
// queue pair is locked until resumeDataPath, and admin commands fail with
// ErrResetting. resetMu held.
func (d *Device) stopForReset() {
	for _, p := range d.queues {
		p.lock()
	}
	d.rec.dataStopped = true
	d.admin.stop(ErrResetting)
}

// resumeDataPath unlocks the queue pairs stopForReset locked; waiters
// blocked on a vector re-check the state and re-arm. resetMu held.
func (d *Device) resumeDataPath() {
	if !d.rec.dataStopped {
		return
	}
	d.rec.dataStopped = false
	for _, p := range d.queues {
		p.unlock()
	}
	for _, p := range d.queues {
		p.Wake()
	}
}

// resetAndRebuild resets the device with reason (§9.3 step 2), forgets the
// host side's ring state (§9.3 step 3) and re-runs bring-up (§9.3 step 4).
func (d *Device) resetAndRebuild(reason spec.ResetReason) error {
	if err := d.resetDevice(reason); err != nil {
		return err
	}
	d.releaseRings()
	if err := d.bringUp(recovery); err != nil {
		d.admin.stop(ErrResetting)
		return err
	}
	return nil
}

// releaseRings returns every ring to its just-allocated state: the reset
// discarded the device's queues (§9.3 step 3), and createQueues makes them
// again.
func (d *Device) releaseRings() {
	fresh := d.installNewRings() // a reconfiguration's new rings start fresh
	for i, p := range d.queues {
		if p.tx == nil || fresh != nil && fresh[i] { // disabled pair, or new rings
			continue
		}
		p.tx.Reset()
		p.rx.Reset()
		p.created = false
	}
}

// Health reports whether the device moves traffic and, while it does not,
// how recovery is going.
func (d *Device) Health() Health {
	h := Health{LinkUp: d.linkUp.Load()}
	switch d.state.Load() {
	case stateRunning:
		h.State = StateRunning
	case stateResetting:
		h.State, h.LinkUp = StateRecovering, false
	case stateDead:
		h.State, h.LinkUp = StateFailed, false
	default:
		h.State, h.LinkUp = StateClosed, false
	}
	for i := range d.counters.resets {
		h.Resets += d.counters.resets[i].Load()
	}
	d.rec.mu.Lock()
	h.Reason, h.LastRecovery = d.rec.reason, d.rec.lastDuration
	if d.rec.active {
		h.Attempt, h.Since, h.NextAttempt = d.rec.attempt, d.rec.since, d.rec.next
	}
	if d.rec.lastErr != nil {
		h.LastError = d.rec.lastErr.Error()
	}
	d.rec.mu.Unlock()
	return h
}

// SetHealthHandler registers fn to be called with the new Health whenever
// a recovery starts, an attempt fails, the device is back, or it is gone.
// It runs on the watchdog goroutine (or the caller of Reset), outside the
// driver's locks, and must not block for long.
func (d *Device) SetHealthHandler(fn func(Health)) {
	d.hmu.Lock()
	d.healthHandler = fn
	d.hmu.Unlock()
}

// notifyHealth tells the health and link handlers what recovery did; no
// driver lock held. The link reads down while the device recovers.
func (d *Device) notifyHealth() {
	h := d.Health()
	d.hmu.Lock()
	hh, lh := d.healthHandler, d.linkHandler
	d.hmu.Unlock()
	if hh != nil {
		hh(h)
	}
	if lh != nil && h.State != StateClosed {
		if up := h.State == StateRunning && d.linkUp.Load(); up != d.linkShown.Swap(up) {
			lh(up)
		}
	}
}

// callFatal runs the fatal handler once, outside every driver lock, on the
// calling goroutine (the watchdog, or the caller of Reset).
func (d *Device) callFatal(err error) {
	if d.state.Load() != stateDead || !d.fatalCalled.CompareAndSwap(false, true) {
		return
	}
	d.log.Error("ena: device failed for good", "err", err)
	d.hmu.Lock()
	h := d.fatalHandler
	d.hmu.Unlock()
	if h != nil {
		h(err)
	}
}

// requestReset asks the watchdog to reset the device with reason; used from
// contexts that must not block (data path, event handler).
func (d *Device) requestReset(reason spec.ResetReason) {
	if d.state.Load() != stateRunning {
		return
	}
	if d.pendingReset.CompareAndSwap(0, uint32(reason)+1) {
		select {
		case d.resetKick <- struct{}{}:
		default:
		}
	}
}

// Reset resets the device with reason and rebuilds it (§9.3), as the
// watchdog would; queue handles stay valid. If the first attempt fails
// the error says so and the watchdog keeps retrying (see Health).
func (d *Device) Reset(reason spec.ResetReason) error {
	err := d.recover(reason)
	if err != nil {
		d.callFatal(err)
	}
	return err
}

// declareGone marks a device whose registers read all-ones as dead and
// reports it once (watchdog goroutine, no lock held).
func (d *Device) declareGone() {
	d.resetMu.Lock()
	if !d.state.CompareAndSwap(stateRunning, stateDead) {
		d.resetMu.Unlock()
		return
	}
	d.rec.mu.Lock()
	d.rec.lastErr = ErrDeviceGone
	d.rec.mu.Unlock()
	d.resetMu.Unlock()
	d.notifyHealth()
	d.callFatal(ErrDeviceGone)
}
