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
// (with reason NORMAL), the queues re-created and bound, Rx refilled and
// MTU and RSS restored. QueuePair handles stay valid.
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

	// 1. Stop the data path and the admin queue (§9.3 step 1).
	for _, p := range d.queues {
		p.lock()
	}
	defer func() {
		for _, p := range d.queues {
			p.unlock()
		}
		// Waiters blocked on a vector re-check the state and re-arm.
		for _, p := range d.queues {
			p.Wake()
		}
	}()
	d.admin.stop(ErrResetting)

	// 2. Reset with the reason (§9.3 step 2); then 3-4, rebuild.
	var err error
	for attempt := range maxRecoveryAttempts {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
		}
		if err = d.resetDevice(reason); err != nil {
			continue
		}
		for _, p := range d.queues {
			p.tx.Reset()
			p.rx.Reset()
			p.created = false
		}
		if err = d.bringUp(true); err == nil {
			break
		}
		d.admin.stop(ErrResetting)
	}
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
