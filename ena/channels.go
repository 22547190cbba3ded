package ena

import (
	"fmt"
	"sync/atomic"
)

// Channels (queue pairs) at runtime, what `ethtool -L` does on Linux and
// the io_queues_nb sysctl on FreeBSD. The QueuePair handles a link
// endpoint holds are fixed at Open (Config.MaxQueues of them); SetChannels
// chooses how many of them have device queues. A disabled pair hands its
// Tx to enabled pair idx %% n and receives nothing; RSS spreads flows over
// the enabled pairs only. The change is the recovery rebuild (§9.3) with
// the new count.

// channelState is the enabled pair count; written under resetMu with
// every pair locked (or before Open returns), read by the data path.
type channelState struct {
	active atomic.Int32
}

// activeQueues are the pairs with device queues.
func (d *Device) activeQueues() []*QueuePair {
	return d.queues[:min(int(d.active.Load()), len(d.queues))]
}

// Channels returns how many queue pairs have device queues now.
func (d *Device) Channels() int { return int(d.active.Load()) }

// MaxChannels is the most SetChannels accepts: Config.MaxQueues.
func (d *Device) MaxChannels() int { return len(d.queues) }

// SetChannels enables n queue pairs (1..MaxChannels) on the running
// device. A user-set RSS table that names a pair beyond n goes back to the
// default round-robin spread.
func (d *Device) SetChannels(n int) error {
	switch {
	case n < 1:
		return fmt.Errorf("ena: %d channels: at least one queue pair is needed", n)
	case n > len(d.queues):
		return fmt.Errorf("ena: %d channels exceeds the %d queue pairs opened (Config.MaxQueues; the device offers %d)", n, len(d.queues), d.limits.queues)
	}
	return d.reconfigure("channels", func() error {
		for _, q := range d.rss.table {
			if q >= n {
				d.rss.table = nil
				break
			}
		}
		d.pendingChannels = n // applied by releaseRings, every pair locked
		err := d.rebuild("channels")
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
