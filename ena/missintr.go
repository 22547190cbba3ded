package ena

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/enanet/enanet/ena/hw/dmamem"
	"github.com/enanet/enanet/ena/spec"
)

// Missing-interrupt detection (§9.2 MISS_INTERRUPT, MISSING_ADMIN_INTERRUPT).
//
// An interrupt can go missing between device and CPU; in auto-mask mode
// (§7.8) the vector then stays masked, so a waiter that relies on it sleeps
// while completions pile up. Vendor drivers look, from their periodic
// timer, for a completion ring that has work although its interrupt has not
// fired, and reset with MISS_INTERRUPT after a few such observations. We do
// the same in two steps:
//
//  1. Poll. The watchdog sees a queue whose WaitRx has been blocked for a
//     whole tick with a completion waiting: it wakes the waiter and puts
//     the queue in degraded mode, where WaitRx still unmasks and waits for
//     the interrupt but only for degradedWait before looking at the ring
//     itself. Traffic keeps flowing at polling latency; the first interrupt
//     that does arrive ends degraded mode. The management goroutine does
//     the same for the admin completion queue and the AENQ.
//  2. Reset. When missIntrResetTicks watchdog ticks in a row, spanning at
//     least missIntrMinStreak, saw completions found without an interrupt
//     and no interrupt at all, the vector is considered dead and the device
//     is reset with MISS_INTERRUPT (I/O) or MISSING_ADMIN_INTERRUPT
//     (management vector). The time floor keeps a short watchdog interval
//     on a busy machine (a waiter not scheduled for a few ticks) from
//     resetting a healthy device.

// missIntrResetTicks is how many consecutive watchdog ticks (or management
// polls) with missed interrupts and none delivered lead to a reset; Linux
// and FreeBSD use 3 timer rounds.
const missIntrResetTicks = 3

// missIntrMinStreak is the shortest streak of missed interrupts that resets.
const missIntrMinStreak = 300 * time.Millisecond

// degradedWait bounds WaitRx's wait for an interrupt while the queue's
// interrupt is known to go missing.
const degradedWait = time.Millisecond

// queueIRQ is one queue pair's interrupt bookkeeping. The atomics are
// written by the Rx goroutine (WaitRx) and the watchdog; the plain fields
// belong to the watchdog goroutine.
type queueIRQ struct {
	waiting  atomic.Bool   // WaitRx is blocked on the vector
	waitSeq  atomic.Uint64 // blocking waits started
	fired    atomic.Uint64 // interrupts WaitRx collected
	missed   atomic.Uint64 // completions found waiting without an interrupt
	degraded atomic.Bool   // polling until the interrupt comes back

	seenPending bool   // last tick: the waiter was blocked with work waiting
	seenSeq     uint64 // ... in this wait
	lastFired   uint64
	lastMissed  uint64
	missTicks   int
	missSince   time.Time // first tick of the current streak
}

// waitIntr waits for the pair's interrupt after WaitRx unmasked it. In
// degraded mode the wait is bounded and a completion found at its end
// counts as a missed interrupt.
func (p *QueuePair) waitIntr(ctx context.Context) error {
	ir := &p.irq
	if !ir.degraded.Load() {
		ir.waitSeq.Add(1)
		ir.waiting.Store(true)
		n, err := p.d.intr.Wait(ctx, p.vector)
		ir.waiting.Store(false)
		ir.fired.Add(n)
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, degradedWait)
	n, _ := p.d.intr.Wait(wctx, p.vector)
	cancel()
	if n > 0 {
		ir.fired.Add(n)
		if ir.degraded.CompareAndSwap(true, false) {
			p.d.log.Info("ena: Rx interrupts are back; leaving polling mode", "queue", p.idx)
		}
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p.rxMu.Lock()
	if p.d.state.Load() == stateRunning && p.rx != nil && p.rx.Pending() { // nil: SetChannels disabled p
		ir.missed.Add(1)
	}
	p.rxMu.Unlock()
	return nil
}

// checkMissedInterrupts is the watchdog's per-queue check (step 1 and 2
// above). It returns MISS_INTERRUPT when a queue's vector stays silent.
func (d *Device) checkMissedInterrupts() (spec.ResetReason, bool) {
	for _, p := range d.queues {
		if p.vector < 0 {
			continue
		}
		ir := &p.irq
		fired, missed := ir.fired.Load(), ir.missed.Load()
		if ir.waiting.Load() && p.rxMu.TryLock() {
			pending := d.state.Load() == stateRunning && p.rx != nil && p.rx.Pending()
			p.rxMu.Unlock()
			seq := ir.waitSeq.Load()
			if pending && ir.seenPending && seq == ir.seenSeq && fired == ir.lastFired {
				ir.missed.Add(1)
				missed++
				d.counters.missedIntr.Add(1)
				if !ir.degraded.Swap(true) {
					d.log.Warn("ena: Rx completions waiting with no interrupt; polling the queue", "queue", p.idx, "vector", p.vector)
				}
				d.intr.Wake(p.vector)
				ir.seenPending = false
			} else {
				ir.seenPending, ir.seenSeq = pending, seq
			}
		} else {
			ir.seenPending = false
		}
		switch {
		case fired != ir.lastFired:
			ir.missTicks = 0
		case missed != ir.lastMissed:
			if ir.missTicks == 0 {
				ir.missSince = time.Now()
			}
			ir.missTicks++
		}
		ir.lastFired, ir.lastMissed = fired, missed
		if ir.missTicks >= missIntrResetTicks && time.Since(ir.missSince) >= missIntrMinStreak {
			ir.missTicks = 0
			d.log.Error("ena: Rx interrupt keeps going missing", "queue", p.idx, "vector", p.vector,
				"ticks", missIntrResetTicks, "missed", missed, "for", time.Since(ir.missSince).Round(time.Millisecond))
			return spec.ResetMissInterrupt, true
		}
	}
	return 0, false
}

// mgmtIRQ is the management goroutine's view of vector 0; only it touches
// these fields.
type mgmtIRQ struct {
	misses int // consecutive missed interrupts with none delivered
}

// mgmtMissed is called by the management goroutine after a wait on vector
// 0 ended without an interrupt with admin or AENQ work waiting: it polls
// that work now and, after missIntrResetTicks such waits in
// a row, asks for a MISSING_ADMIN_INTERRUPT reset.
func (d *Device) mgmtMissed() {
	d.counters.missedAdminIntr.Add(1)
	d.mgmtIRQ.misses++
	if d.mgmtIRQ.misses == 1 {
		d.log.Warn("ena: admin/AENQ work waiting with no management interrupt; polling")
	}
	d.admin.process()
	if d.mgmtIRQ.misses >= missIntrResetTicks {
		d.mgmtIRQ.misses = 0
		d.log.Error("ena: management interrupt keeps going missing", "polls", missIntrResetTicks)
		d.requestReset(spec.ResetMissingAdminInterrupt)
	}
}

// completionWaiting reports whether an ACQ entry with the expected phase
// sits at the head (§4.1), without consuming it.
func (q *adminQueue) completionWaiting() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.state.Load() == adminStopped || q.outstanding == 0 {
		return false
	}
	slot := q.cq.Bytes[int(q.head&(q.depth-1))*spec.ACQEntrySize:][:spec.ACQEntrySize]
	w0 := dmamem.Acquire32(slot, 0)
	return (w0>>24)&spec.ACQFlagPhase != 0 == q.cqPhase
}
