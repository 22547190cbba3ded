package ena

import (
	"context"
	"time"
)

// mgmtPoll is how often the management goroutine looks at the AENQ when no
// interrupt arrives (admin polling mode, or a missed interrupt); DPDK's
// control-path poll interval is 500-1000 ms, we are more eager.
const mgmtPoll = 100 * time.Millisecond

// mgmtLoop serves the management vector (§1.2 vector 0): admin completions
// when interrupt-driven, and AENQ events. Without the interrupt it polls
// the AENQ every mgmtPoll. A wait that ends without the interrupt with work
// waiting is a missed interrupt (missintr.go).
func (d *Device) mgmtLoop() {
	defer d.wg.Done()
	t := time.NewTicker(mgmtPoll)
	defer t.Stop()
	for {
		fired, missed := false, false
		if d.adminIntr.Load() {
			ctx, cancel := context.WithTimeout(d.ctx, mgmtPoll)
			n, _ := d.intr.Wait(ctx, 0)
			cancel()
			fired = n > 0
			// Work found after a whole wait without the interrupt was
			// written during it: its interrupt went missing.
			missed = !fired && d.ctx.Err() == nil && (d.admin.completionWaiting() || d.aenq.pending())
			if fired {
				d.mgmtIRQ.misses = 0
			}
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
		} else if missed {
			d.mgmtMissed()
		}
		d.aenq.process(d.handleAENQ)
	}
}
