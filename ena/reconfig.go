package ena

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/enanet/enanet/ena/spec"
	"github.com/enanet/enanet/rings"
)

// Runtime reconfiguration: what `ethtool -G` does on Linux and the
// rx_queue_size / enable_9k_mbufs sysctls on FreeBSD. A change that needs
// new rings is the recovery rebuild (§9.3) with new parameters: the data
// path is stopped, the device reset, the rings replaced, and bring-up
// re-run, so QueuePair handles stay valid and TCP sees at most a few
// retransmissions. Changes the device takes with one admin command (RSS,
// interrupt moderation) do not rebuild anything.

// Rx buffer sizes SetRxBufSize and Config.RxBufSize accept. 9 KiB holds a
// 9001-byte MTU frame in one buffer, as FreeBSD's enable_9k_mbufs does.
const (
	RxBufAuto = 0    // chosen from the MTU (rxBufForMTU)
	RxBuf2K   = 2048 // the default: one page-half, as Linux posts
	RxBuf4K   = 4096
	RxBuf9K   = 9216
)

// TxBufAuto is Config.TxBufSize's automatic choice (txBufForMTU).
const TxBufAuto = 0

// RingParams are the ring sizes in use (ethtool -g).
type RingParams struct {
	TxDepth   int `json:"tx_depth"`
	RxDepth   int `json:"rx_depth"`
	RxBufSize int `json:"rx_buf_size"`
	// TxBufSize is the size of the Tx buffers frames are copied into.
	TxBufSize int `json:"tx_buf_size"`
	// RxBufAuto is true when RxBufSize follows the MTU.
	RxBufAuto bool `json:"rx_buf_auto"`
	// MaxTxDepth and MaxRxDepth are the device's limits (§6 step 14, LLQ).
	MaxTxDepth int `json:"max_tx_depth"`
	MaxRxDepth int `json:"max_rx_depth"`
}

// liveSettings is what the runtime setters change. All fields are written
// under resetMu; rings is also published for lock-free readers (Rings,
// Info).
type liveSettings struct {
	rxBufSize int  // bytes per Rx buffer in the current rings
	rxBufAuto bool // rxBufSize follows the MTU
	// rxDepthAuto: the Rx depth is the default, scaled to the buffer
	// size (scaleRxDepth); an MTU change that re-picks the buffer size
	// re-scales it. Config.RxDepth or a SetRings Rx depth clears it.
	rxDepthAuto bool
	// pendingRings, when set, replaces each pair's rings at the next
	// releaseRings (the rebuild's §9.3 step 3), after the device reset
	// has stopped all DMA into the old ones.
	pendingRings []ringPair
	// pendingChannels, when non-zero, becomes the enabled pair count at
	// the same point.
	pendingChannels int
	rings           atomic.Pointer[RingParams]
	// ringGen counts installNewRings calls: the watchdog's Rx progress
	// sums restart when the rings or the enabled pairs change.
	ringGen atomic.Uint64

	rss rssSettings
	mod moderation
	// planned is set while a reconfiguration holds the device in the
	// resetting state: Send then waits for the queue instead of failing.
	planned atomic.Bool
}

func (d *Device) reconfiguring() bool { return d.planned.Load() }

type ringPair struct {
	tx *rings.TxQueue
	rx *rings.RxQueue
}

// rxBufForMTU is the automatic Rx buffer size: the smallest of 2, 4 and
// 9 KiB that holds a whole frame of the MTU (Ethernet header and one VLAN
// tag included), so a 9001-byte frame lands in one buffer.
func rxBufForMTU(mtu int) int {
	frame := mtu + 18
	switch {
	case frame <= RxBuf2K:
		return RxBuf2K
	case frame <= RxBuf4K:
		return RxBuf4K
	}
	return RxBuf9K
}

// txBufForMTU is the automatic Tx buffer size: the Rx rule's sizes, so a
// whole frame of the MTU fits one buffer. Each extra buffer is one more
// descriptor to write, one more DMA read for the device and one more
// buffer to reclaim: at MTU 9001, five 2 KiB buffers per frame cost about
// 350 ns of driver and model CPU per frame more than one 9 KiB buffer
// (rings.BenchmarkEnasimLoopback, bench/README.md).
func txBufForMTU(mtu int) int { return rxBufForMTU(mtu) }

// txBufFor is the Tx buffer size for rings built while the MTU is mtu:
// Config.TxBufSize when set, else txBufForMTU.
func (d *Device) txBufFor(mtu int) int {
	if d.cfg.TxBufSize != TxBufAuto {
		return d.cfg.TxBufSize
	}
	return txBufForMTU(mtu)
}

// scaleRxDepth keeps the default Rx ring's memory near that of 4096 × 2 KiB
// when the buffers are larger: 4 KiB buffers get half the entries, 9 KiB a
// quarter (1024 × 9 KiB still holds more frame bytes than 4096 × 2 KiB).
func scaleRxDepth(depth, bufSize int) int {
	switch {
	case bufSize >= RxBuf9K:
		depth /= 4
	case bufSize >= RxBuf4K:
		depth /= 2
	}
	return max(depth, minDepth)
}

func checkRxBufSize(n int) error {
	switch n {
	case RxBufAuto, RxBuf2K, RxBuf4K, RxBuf9K:
		return nil
	}
	return fmt.Errorf("ena: Rx buffer size %d is not one of 2048, 4096, 9216 (or 0 for automatic from the MTU)", n)
}

// chooseRxBuf fills rxBufSize from Config.RxBufSize on first boot.
func (d *Device) chooseRxBuf(mtu int) {
	d.rxBufAuto = d.cfg.RxBufSize == RxBufAuto
	d.rxBufSize = d.cfg.RxBufSize
	if d.rxBufAuto {
		d.rxBufSize = rxBufForMTU(mtu)
	}
}

// maxDepths are the deepest Tx and Rx rings the device takes (§6 step 14;
// LLQ caps Tx, §8.1).
func (d *Device) maxDepths() (tx, rx int) {
	tx, rx = d.limits.txDepth, d.limits.rxDepth
	if d.llq != nil {
		tx = min(tx, d.llq.maxDepth)
	}
	return tx, rx
}

// publishRings makes the current ring parameters visible to Rings.
func (d *Device) publishRings() {
	mt, mr := d.maxDepths()
	p := &RingParams{MaxTxDepth: mt, MaxRxDepth: mr, RxBufSize: d.rxBufSize, RxBufAuto: d.rxBufAuto}
	if len(d.queues) > 0 {
		p.TxDepth, p.RxDepth = d.queues[0].tx.Depth(), d.queues[0].rx.Depth()
		p.TxBufSize = d.queues[0].tx.BufSize()
	}
	d.rings.Store(p)
}

// Rings returns the ring sizes in use.
func (d *Device) Rings() RingParams {
	if p := d.rings.Load(); p != nil {
		return *p
	}
	return RingParams{}
}

// SetRings changes the Tx and Rx ring depths on the running device (0
// keeps a depth). Depths are powers of two from 64 to the device's
// maximum. The device is reset and its queues rebuilt with the new rings;
// frames in flight are lost and TCP retransmits them.
func (d *Device) SetRings(txDepth, rxDepth int) error {
	return retryRingRace(func() error { return d.setRings(txDepth, rxDepth) })
}

func (d *Device) setRings(txDepth, rxDepth int) error {
	cur, mtu := d.Rings(), d.MTU()
	userRx := rxDepth != 0
	if txDepth == 0 {
		txDepth = cur.TxDepth
	}
	if rxDepth == 0 {
		rxDepth = cur.RxDepth
	}
	for _, c := range []struct {
		what       string
		depth, max int
	}{{"Tx", txDepth, cur.MaxTxDepth}, {"Rx", rxDepth, cur.MaxRxDepth}} {
		switch {
		case !isPow2(c.depth):
			return fmt.Errorf("ena: %s ring size %d is not a power of two", c.what, c.depth)
		case c.depth < minDepth:
			return fmt.Errorf("ena: %s ring size %d is below the minimum %d", c.what, c.depth, minDepth)
		case c.depth > c.max:
			return fmt.Errorf("ena: %s ring size %d exceeds the device maximum %d", c.what, c.depth, c.max)
		}
	}
	return d.rebuildRings(ringChange{txDepth, rxDepth, cur.RxBufSize, cur.RxBufAuto, 0, userRx, ringBasis{cur, mtu}})
}

// SetRxBufSize changes the Rx buffer size on the running device: 2048,
// 4096 or 9216 bytes, or RxBufAuto to follow the MTU. Like SetRings it
// rebuilds the queues.
func (d *Device) SetRxBufSize(n int) error {
	if err := checkRxBufSize(n); err != nil {
		return err
	}
	return retryRingRace(func() error {
		cur, mtu := d.Rings(), d.MTU()
		size, auto := n, n == RxBufAuto
		if auto {
			size = rxBufForMTU(mtu)
		}
		return d.rebuildRings(ringChange{cur.TxDepth, cur.RxDepth, size, auto, 0, false, ringBasis{cur, mtu}})
	})
}

// setMTURebuild is SetMTU when the automatic Rx buffer size changes with
// the MTU: the rings are rebuilt with the buffer size for the new MTU
// (and, while the Rx depth is the default, the depth scaled to it).
func (d *Device) setMTURebuild(cur RingParams, mtu int) error {
	basis := ringBasis{cur, d.MTU()}
	buf := rxBufForMTU(mtu)
	rxDepth := cur.RxDepth
	if d.rxDepthAutoNow() {
		rxDepth = scaleRxDepth(min(defaultRxDepth, floorPow2(cur.MaxRxDepth)), buf)
	}
	return d.rebuildRings(ringChange{cur.TxDepth, rxDepth, buf, true, mtu, false, basis})
}

// rxDepthAutoNow reads rxDepthAuto, which SetRings writes under resetMu.
func (d *Device) rxDepthAutoNow() bool {
	d.resetMu.Lock()
	defer d.resetMu.Unlock()
	return d.rxDepthAuto
}

// ringChange is what rebuildRings installs.
type ringChange struct {
	txDepth, rxDepth, bufSize int
	auto                      bool // bufSize follows the MTU
	// mtu, when non-zero, is set on the device (SET MTU, §4.8) before
	// the rebuild; a refusal changes nothing.
	mtu int
	// fixedRxDepth: the user chose the Rx depth (SetRings).
	fixedRxDepth bool
	// basis is what the change was decided from; see ringBasis.
	basis ringBasis
}

// rebuildRings allocates new rings for the enabled pairs first, while
// traffic still flows (a failure changes nothing), then runs the recovery
// rebuild, which installs them after the device reset.
func (d *Device) rebuildRings(c ringChange) error {
	t0 := time.Now()
	n := d.Channels()
	built := make([]ringPair, n)
	mtu := c.mtu
	if mtu == 0 {
		mtu = d.MTU()
	}
	txBuf := d.txBufFor(mtu)
	for i := range n {
		tx, rx, err := d.newRings(i, c.txDepth, c.rxDepth, txBuf, c.bufSize)
		if err != nil {
			closeRings(built)
			return fmt.Errorf("ena: set rings: %w (nothing changed)", err)
		}
		built[i] = ringPair{tx, rx}
	}
	alloc := time.Since(t0)
	if h := d.hooks.ringDecided; h != nil {
		h()
	}
	ran := false
	err := d.reconfigure("rings", func() error {
		ran = true
		if !c.basis.current(d) {
			closeRings(built)
			return errRingRace
		}
		if d.Channels() != n {
			closeRings(built)
			return fmt.Errorf("ena: set rings: the channel count changed while the rings were allocated (nothing changed; try again)")
		}
		if c.mtu != 0 {
			if err := d.setMTU(c.mtu); err != nil {
				closeRings(built)
				return fmt.Errorf("ena: set MTU %d: %w (nothing changed)", c.mtu, err)
			}
			d.mtu.Store(int32(c.mtu))
		}
		d.pendingRings = built
		d.rxBufSize, d.rxBufAuto = c.bufSize, c.auto
		if c.fixedRxDepth {
			d.rxDepthAuto = false
		}
		err := d.rebuild("rings")
		if d.pendingRings != nil { // the reset failed before releaseRings
			d.dropPendingRings()
		}
		return err
	})
	if !ran {
		closeRings(built)
	}
	d.log.Info("ena: rings changed", "tx_depth", c.txDepth, "rx_depth", c.rxDepth, "rx_buf", c.bufSize,
		"mtu", d.MTU(), "alloc", alloc, "outage", time.Since(t0)-alloc, "err", err)
	return err
}

// closeRings frees rings that were never installed; nil entries are
// skipped.
func closeRings(rs []ringPair) {
	for _, r := range rs {
		if r.tx != nil {
			_ = r.tx.Close()
			_ = r.rx.Close()
		}
	}
}

// dropPendingRings frees the rings a reconfiguration allocated when its
// reset failed before installing them; resetMu held.
func (d *Device) dropPendingRings() {
	closeRings(d.pendingRings)
	d.pendingRings = nil
}

// reconfigure runs change under resetMu with the device in the resetting
// state (the data path sees ErrResetting, the watchdog stays out) and
// back to running afterwards unless change killed it; the fatal handler
// runs after resetMu is released.
func (d *Device) reconfigure(what string, change func() error) error {
	d.resetMu.Lock()
	if err := d.enterReconfig(); err != nil {
		d.resetMu.Unlock()
		return err
	}
	d.planned.Store(true)
	err := change()
	d.state.CompareAndSwap(stateResetting, stateRunning)
	d.planned.Store(false)
	d.resetMu.Unlock()
	if err != nil && d.state.Load() == stateDead {
		d.callFatal(err)
	}
	return err
}

// enterReconfig moves a running device to resetting; resetMu held.
func (d *Device) enterReconfig() error {
	if d.state.CompareAndSwap(stateRunning, stateResetting) {
		return nil
	}
	switch d.state.Load() {
	case stateDead:
		return ErrDeviceDead
	case stateClosed:
		return ErrClosed
	}
	return ErrResetting
}

// rebuild is recover's body with reason NORMAL and without counting a
// fault: stop the data path, reset, rebuild with the current parameters,
// resume. resetMu held, state resetting.
func (d *Device) rebuild(what string) error {
	d.tr.printf("reconfigure %s\n", what)
	d.stopForReset()
	defer d.resumeDataPath()
	err := d.resetAndRebuild(spec.ResetNormal)
	d.pendingReset.Store(0)
	if err != nil {
		d.state.Store(stateDead)
		return fmt.Errorf("ena: rebuild for new %s failed: %w", what, err)
	}
	d.lastKeepAlive.Store(time.Now().UnixNano())
	d.state.Store(stateRunning)
	return nil
}

// installNewRings applies a reconfiguration at the rebuild's §9.3 step 3
// (releaseRings: after the reset, every pair locked, no DMA in flight):
// the new channel count, the rings allocated for it or for new ring
// sizes, and freeing the rings of pairs no longer enabled. It reports
// which pairs got new rings (they start fresh and need no Reset); nil
// means none.
func (d *Device) installNewRings() []bool {
	if d.pendingChannels != 0 || d.pendingRings != nil {
		d.ringGen.Add(1)
	}
	if d.pendingChannels != 0 {
		d.active.Store(int32(d.pendingChannels))
		d.pendingChannels = 0
	}
	var fresh []bool
	if d.pendingRings != nil {
		fresh = make([]bool, len(d.queues))
		for i, r := range d.pendingRings {
			if r.tx == nil {
				continue
			}
			p := d.queues[i]
			p.setRings(r.tx, r.rx)
			fresh[i] = true
		}
		d.pendingRings = nil
	}
	for _, p := range d.queues[d.Channels():] {
		if p.tx != nil {
			p.setRings(nil, nil)
		}
	}
	return fresh
}

// setRings replaces p's rings, freeing the old ones; the pair's device
// queues are gone (after a reset) and it is locked, or not yet in use.
func (p *QueuePair) setRings(tx *rings.TxQueue, rx *rings.RxQueue) {
	if tx == nil {
		p.published.Store(nil)
	} else {
		p.published.Store(&ringPair{tx, rx})
	}
	if p.tx != nil {
		_ = p.tx.Close()
		_ = p.rx.Close()
	}
	p.tx, p.rx = tx, rx
	p.created = false
}
