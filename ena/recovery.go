package ena

import (
	"fmt"
	"time"

	"github.com/enanet/enanet/ena/spec"
)

// maxRecoveryAttempts bounds how often recovery re-runs bring-up before
// the device is declared dead.
const maxRecoveryAttempts = 3

// recover resets the device with reason and rebuilds everything (§9.3):
// the data path is stopped, the device reset, the whole bring-up re-run
// in recovery mode (with reason NORMAL), the queues re-created and bound,
// Rx refilled and MTU and RSS restored. QueuePair handles stay valid.
func (d *Device) recover(reason spec.ResetReason) error {
	d.resetMu.Lock()
	defer d.resetMu.Unlock()
	if !d.state.CompareAndSwap(stateRunning, stateResetting) {
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

	d.stopForReset()
	defer d.resumeDataPath()
	err := d.resetAndRebuild(reason)
	d.pendingReset.Store(0)
	if err != nil {
		d.state.Store(stateDead)
		return fmt.Errorf("ena: recovery after %v reset failed: %w", reason, err)
	}
	d.lastKeepAlive.Store(time.Now().UnixNano())
	d.state.Store(stateRunning)
	d.log.Info("ena: device recovered", "reason", reason)
	return nil
}

// stopForReset stops the data path and the admin queue (§9.3 step 1): every
// queue pair is locked until resumeDataPath, and admin commands fail with
// ErrResetting.
func (d *Device) stopForReset() {
	for _, p := range d.queues {
		p.lock()
	}
	d.admin.stop(ErrResetting)
}

// resumeDataPath unlocks the queue pairs stopForReset locked; waiters
// blocked on a vector re-check the state and re-arm.
func (d *Device) resumeDataPath() {
	for _, p := range d.queues {
		p.unlock()
	}
	for _, p := range d.queues {
		p.Wake()
	}
}

// resetAndRebuild resets the device with reason (§9.3 step 2), forgets the
// host side's ring state (§9.3 step 3) and re-runs bring-up (§9.3 step 4),
// up to maxRecoveryAttempts times with a growing pause.
func (d *Device) resetAndRebuild(reason spec.ResetReason) error {
	var err error
	for attempt := range maxRecoveryAttempts {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
		}
		if err = d.resetDevice(reason); err != nil {
			continue
		}
		d.releaseRings()
		if err = d.bringUp(recovery); err == nil {
			return nil
		}
		d.admin.stop(ErrResetting)
	}
	return err
}

// releaseRings returns every ring to its just-allocated state: the reset
// discarded the device's queues (§9.3 step 3), and createQueues makes them
// again.
func (d *Device) releaseRings() {
	if d.installNewRings() { // a reconfiguration's new rings start fresh
		return
	}
	for _, p := range d.queues {
		p.tx.Reset()
		p.rx.Reset()
		p.created = false
	}
}

// callFatal runs the fatal handler once, outside every driver lock, on the
// calling goroutine (the watchdog, or the caller of Reset).
func (d *Device) callFatal(err error) {
	if d.state.Load() != stateDead || !d.fatalCalled.CompareAndSwap(false, true) {
		return
	}
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
// watchdog would; queue handles stay valid.
func (d *Device) Reset(reason spec.ResetReason) error {
	err := d.recover(reason)
	if err != nil {
		d.callFatal(err)
	}
	return err
}
