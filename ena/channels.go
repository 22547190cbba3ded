package ena

import (
	"fmt"
	"sync/atomic"
)

// Channels (queue pairs) at runtime, what `ethtool -L` does on Linux and
// the io_queues_nb sysctl on FreeBSD. Open makes one QueuePair handle for
// every queue pair the device can run (its MAX_QUEUES_EXT/NUM answer, §4.8,
// capped by LLQ and by the interrupt vectors; Config.MaxQueues can lower
// it), so a link endpoint sized from NumQueues at Open already holds the
// handles of every channel count SetChannels may choose later. Only the
// enabled pairs have rings and device queues: SetChannels allocates the
// rings of pairs it enables and frees those of pairs it disables. A
// disabled pair hands its Tx to enabled pair idx %% n and receives
// nothing; RSS spreads flows over the enabled pairs only. The change is
// the recovery rebuild (§9.3) with the new count.

// channelState is the enabled pair count; written under resetMu with
// every pair locked (or before Open returns), read by the data path.
type channelState struct {
	active atomic.Int32
	// deviceMax is the most pairs the device can run with this
	// backend: MAX_QUEUES (§6 step 14), LLQ's max_llq_num and the I/O
	// interrupt vectors; set by the first boot.
	deviceMax int
}

// activeQueues are the pairs with device queues.
func (d *Device) activeQueues() []*QueuePair {
	return d.queues[:min(int(d.active.Load()), len(d.queues))]
}

// Channels returns how many queue pairs have device queues now.
func (d *Device) Channels() int { return int(d.active.Load()) }

// MaxChannels is the most SetChannels accepts: the device's queue-pair
// maximum (ethtool -l "pre-set maximums"), bounded by LLQ and the interrupt
// vectors, or Config.MaxQueues if that is lower.
func (d *Device) MaxChannels() int { return len(d.queues) }

// SetChannels enables n queue pairs (1..MaxChannels) on the running
// device. A user-set RSS table that names a pair beyond n goes back to the
// default round-robin spread. Pairs it enables get rings of the current
// sizes; pairs it disables lose theirs (and their ring counters).
func (d *Device) SetChannels(n int) error {
	switch {
	case n < 1:
		return fmt.Errorf("ena: %d channels: at least one queue pair is needed", n)
	case n > len(d.queues) && len(d.queues) < d.deviceMax:
		return fmt.Errorf("ena: %d channels exceeds Config.MaxQueues %d given at Open (the device offers %d; open with a higher MaxQueues, or 0 for all)",
			n, len(d.queues), d.deviceMax)
	case n > len(d.queues):
		return fmt.Errorf("ena: %d channels exceeds the %d queue pairs the device offers (MAX_QUEUES, LLQ queues and interrupt vectors)", n, len(d.queues))
	}
	return d.reconfigure("channels", func() error {
		cur := d.Rings()
		built := make([]ringPair, n)
		for i := d.Channels(); i < n; i++ {
			tx, rx, err := d.newRings(i, cur.TxDepth, cur.RxDepth, cur.TxBufSize, cur.RxBufSize)
			if err != nil {
				for _, r := range built {
					if r.tx != nil {
						_ = r.tx.Close()
						_ = r.rx.Close()
					}
				}
				return fmt.Errorf("ena: set channels: %w (nothing changed)", err)
			}
			built[i] = ringPair{tx, rx}
		}
		for _, q := range d.rss.table {
			if q >= n {
				d.rss.table = nil
				break
			}
		}
		d.pendingRings = built
		d.pendingChannels = n // applied by releaseRings, every pair locked
		err := d.rebuild("channels")
		if d.pendingRings != nil { // the reset failed before releaseRings
			d.dropPendingRings()
		}
		d.pendingChannels = 0
		d.log.Info("ena: channels changed", "channels", n, "err", err)
		return err
	})
}

// enabled reports whether p has device queues.
func (p *QueuePair) enabled() bool { return p.idx < int(p.d.active.Load()) }

// txTarget is the pair that carries p's Tx: p itself when enabled, else
// enabled pair idx %% n.
func (p *QueuePair) txTarget() *QueuePair {
	n := int(p.d.active.Load())
	if p.idx < n || n <= 0 {
		return p
	}
	return p.d.queues[p.idx%n]
}
