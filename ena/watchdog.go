package ena

import (
	"errors"
	"time"

	"github.com/enanet/enanet/ena/spec"
)

// watchdogLoop runs the health checks every WatchdogInterval (§9.1),
// performs resets that other goroutines request, and retries a failed
// recovery when its backoff has passed (recovery.go).
func (d *Device) watchdogLoop() {
	defer d.wg.Done()
	t := time.NewTicker(d.cfg.WatchdogInterval)
	defer t.Stop()
	var retry *time.Timer
	for {
		var retryC <-chan time.Time
		if next, due := d.recoveryDue(); due {
			if retry == nil {
				retry = time.NewTimer(time.Until(next))
				defer retry.Stop()
			} else {
				retry.Reset(time.Until(next))
			}
			retryC = retry.C
		}
		select {
		case <-d.stop:
			return
		case <-d.resetKick:
		case <-t.C:
		case <-retryC:
		}
		if next, due := d.recoveryDue(); due {
			if time.Now().Before(next) {
				continue
			}
			if err := d.retryRecovery(); err != nil {
				d.callFatal(err)
			}
			continue
		}
		if d.state.Load() != stateRunning {
			continue
		}
		if reason, bad := d.healthCheck(); bad {
			if err := d.recover(reason); err != nil {
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
		if errors.Is(err, ErrDeviceGone) {
			d.declareGone()
			return 0, false
		}
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
		if p.tx == nil { // disabled pair (SetChannels)
			p.txMu.Unlock()
			continue
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
	if reason, bad := d.checkMissedInterrupts(); bad {
		return reason, true
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
	gen      uint64 // ringGen the counts below were taken at
	overruns uint64 // rx_overruns from the last keep-alive seen
	packets  uint64 // Rx packets delivered, summed over the enabled queues
	ticks    int    // consecutive ticks with the stall symptom
}

// rxStalled reports a device whose receive path has stopped: the keep-alive
// drop counter rx_overruns (§5.3) keeps growing although every Rx queue has
// buffers posted and no completion is waiting or arriving. No protocol
// reset reason names this; vendor drivers catch the related "completions
// but no interrupt" case as MISS_INTERRUPT (§9.2). A queue the application
// is not draining (completions pending) or a ring that ran out of buffers is
// not a stall: the device is then right to drop. Only the enabled pairs
// count: a pair SetChannels disabled has no ring to deliver to, post to
// or stall. The packet total restarts when a reconfiguration replaces the
// rings or changes the channel count (ringGen), so that a smaller sum is
// not taken for a stall or a larger one for progress.
func (d *Device) rxStalled() bool {
	overruns := d.counters.kaRxOverruns.Load()
	gen := d.ringGen.Load()
	var packets uint64
	healthyRing := true
	for _, p := range d.activeQueues() {
		_, rx := p.ringStats()
		packets += rx.Packets
		if !p.rxMu.TryLock() {
			healthyRing = false // being polled (or reconfigured): progress is likely
			continue
		}
		if !p.enabled() || p.rx == nil { // disabled since activeQueues looked
			p.rxMu.Unlock()
			healthyRing = false
			continue
		}
		if p.rx.Pending() || p.rx.Posted() < p.rx.Depth()/2 {
			healthyRing = false
		}
		p.rxMu.Unlock()
	}
	st := &d.stall
	if gen != st.gen || gen != d.ringGen.Load() {
		// The rings or the enabled set changed: start over from here.
		st.gen, st.overruns, st.packets, st.ticks = d.ringGen.Load(), overruns, packets, 0
		return false
	}
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
