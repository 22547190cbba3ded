package ena

import (
	"context"
	"fmt"
	"time"

	"github.com/enanet/enanet/ena/spec"
)

// mgmtPoll is how often the management goroutine looks at the AENQ when no
// interrupt arrives (admin polling mode, or a missed interrupt); DPDK's
// control-path poll interval is 500-1000 ms, we are more eager.
const mgmtPoll = 100 * time.Millisecond

// mgmtLoop serves the management vector (§1.2 vector 0): admin completions
// when interrupt-driven, and AENQ events. Without the interrupt it polls
// the AENQ every mgmtPoll.
func (d *Device) mgmtLoop() {
	defer d.wg.Done()
	t := time.NewTicker(mgmtPoll)
	defer t.Stop()
	for {
		fired := false
		if d.adminIntr.Load() {
			ctx, cancel := context.WithTimeout(d.ctx, mgmtPoll)
			n, _ := d.intr.Wait(ctx, 0)
			cancel()
			fired = n > 0
		} else {
			select {
			case <-d.stop:
			case <-t.C:
			case <-d.mgmtKick:
			}
		}
		select {
		case <-d.stop:
			return
		default:
		}
		if fired {
			d.admin.process()
		}
		d.aenq.process(d.handleAENQ)
	}
}

// watchdogLoop runs the health checks every WatchdogInterval (§9.1) and
// performs resets that other goroutines request.
func (d *Device) watchdogLoop() {
	defer d.wg.Done()
	t := time.NewTicker(d.cfg.WatchdogInterval)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-d.resetKick:
		case <-t.C:
		}
		if d.state.Load() != stateRunning {
			continue
		}
		if reason, bad := d.healthCheck(); bad {
			if err := d.recover(reason); err != nil {
				d.log.Error("ena: recovery failed", "err", err)
				d.callFatal(err)
			}
		}
	}
}

// healthCheck returns the reset reason if the device needs a reset (§9.2).
func (d *Device) healthCheck() (spec.ResetReason, bool) {
	if r := d.pendingReset.Swap(0); r != 0 {
		return spec.ResetReason(r - 1), true
	}
	if reason, broken := d.admin.broken(); broken {
		d.log.Error("ena: admin queue is not running", "reason", reason)
		return reason, true
	}
	if kto := d.keepAliveTimeout.Load(); kto > 0 {
		since := time.Since(time.Unix(0, d.lastKeepAlive.Load()))
		if since > time.Duration(kto) {
			reason := spec.ResetKeepAliveTO
			if d.adminIntr.Load() && d.aenq.pending() {
				reason = spec.ResetMissingAdminInterrupt
			}
			d.log.Error("ena: no keep-alive from the device", "since", since.Round(time.Millisecond), "reason", reason)
			return reason, true
		}
	}
	if err := d.checkFatal(); err != nil {
		d.log.Error("ena: device fatal", "err", err)
		return spec.ResetGeneric, true
	}
	ticks := uint32(0)
	if to := d.missTxTimeout.Load(); to > 0 {
		ticks = uint32(max(1, (time.Duration(to)+d.cfg.WatchdogInterval-1)/d.cfg.WatchdogInterval))
	}
	for _, p := range d.queues {
		if !p.txMu.TryLock() {
			continue // busy sending: it reclaims itself; check next tick
		}
		if d.state.Load() != stateRunning {
			p.txMu.Unlock()
			break
		}
		p.reclaimLocked()
		p.tx.Tick()
		missing := 0
		if ticks > 0 {
			missing = p.tx.Overdue(ticks)
		}
		p.txMu.Unlock()
		if th := d.missTxThreshold.Load(); ticks > 0 && int64(missing) > th {
			d.log.Error("ena: Tx completions missing", "queue", p.idx, "missing", missing, "threshold", th)
			return spec.ResetMissTxCmpl, true
		}
	}
	if d.rxStalled() {
		d.log.Error("ena: Rx stalled: the device reports dropped frames (rx_overruns) while buffers are posted and no Rx completion arrives",
			"overruns", d.stall.overruns, "ticks", d.stall.ticks)
		d.stall.ticks = 0
		return spec.ResetGeneric, true
	}
	if r := d.pendingReset.Swap(0); r != 0 {
		return spec.ResetReason(r - 1), true
	}
	return 0, false
}

// rxStallTicks is how many watchdog ticks in a row must show the Rx stall
// symptom before the watchdog resets the device.
const rxStallTicks = 3

// rxStallState is the watchdog's view of Rx progress; only the watchdog
// goroutine touches it.
type rxStallState struct {
	overruns uint64 // rx_overruns from the last keep-alive seen
	packets  uint64 // Rx packets delivered, summed over the queues
	ticks    int    // consecutive ticks with the stall symptom
}

// rxStalled reports a device whose receive path has stopped: the keep-alive
// drop counter rx_overruns (§5.3) keeps growing although every Rx queue has
// buffers posted and no completion is waiting or arriving. No protocol
// reset reason names this; vendor drivers catch the related "completions
// but no interrupt" case as MISS_INTERRUPT (§9.2). A queue the application
// is not draining (completions pending) or a ring that ran out of buffers is
// not a stall: the device is then right to drop.
func (d *Device) rxStalled() bool {
	overruns := d.counters.kaRxOverruns.Load()
	var packets uint64
	healthyRing := true
	for _, p := range d.queues {
		packets += p.rx.Stats().Packets
		if !p.rxMu.TryLock() {
			healthyRing = false // being polled: progress is likely
			continue
		}
		if p.rx.Pending() || p.rx.Posted() < p.rx.Depth()/2 {
			healthyRing = false
		}
		p.rxMu.Unlock()
	}
	st := &d.stall
	grew, delivered := overruns > st.overruns, packets > st.packets
	st.overruns, st.packets = overruns, packets
	switch {
	case delivered || !healthyRing:
		st.ticks = 0
	case grew:
		st.ticks++
	}
	return st.ticks >= rxStallTicks
}

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
