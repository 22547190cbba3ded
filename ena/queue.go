package ena

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/enanet/enanet/ena/spec"
	"github.com/enanet/enanet/rings"
)

// QueuePair is one Tx queue and one Rx queue with the pair's interrupt
// vector (§1.2: vector 1+q) on its Rx CQ; Tx completions are reclaimed
// inline and need none. Its methods are what the link layer needs. One
// goroutine may send (Send, Flush) while another receives (Poll, WaitRx);
// a device reset underneath is invisible apart from ErrResetting from Send
// and empty Polls for a moment.
type QueuePair struct {
	d      *Device
	idx    int
	vector int // MSI-X vector, -1 when polling

	txMu sync.Mutex
	rxMu sync.Mutex
	tx   *rings.TxQueue
	rx   *rings.RxQueue
	// published mirrors tx and rx for readers that take neither lock
	// (Stats, the watchdog's Rx progress check); reconfiguration replaces
	// the rings.
	published atomic.Pointer[ringPair]

	// Device indexes from the CREATE responses (§4.7); under both locks.
	txCQIdx, txSQIdx, rxCQIdx, rxSQIdx uint16
	unmaskOff                          uint32 // 0: none
	created                            bool

	dim dimState // adaptive moderation, under rxMu
	irq queueIRQ // missing-interrupt bookkeeping (missintr.go)

	wake  chan struct{} // poll-mode Wake
	timer *time.Timer   // poll-mode WaitRx sleep, owned by the Rx goroutine
}

// pollSleep is how long WaitRx sleeps in poll mode: short enough for
// latency, long enough not to burn a core while idle.
const pollSleep = 200 * time.Microsecond

// allocQueues builds the host side (§7.1): a handle for each of the
// Config.MaxQueues pairs, rings for the Config.Queues enabled ones
// (SetChannels allocates the others' when it enables them).
func (d *Device) allocQueues() error {
	d.active.Store(int32(d.cfg.Queues))
	for i := range d.cfg.MaxQueues {
		p := &QueuePair{d: d, idx: i, vector: -1, wake: make(chan struct{}, 1)}
		if d.ioIntr {
			p.vector = 1 + i
		}
		d.queues = append(d.queues, p)
		if i >= d.cfg.Queues {
			continue
		}
		tx, rx, err := d.newRings(i, d.cfg.TxDepth, d.cfg.RxDepth, d.txBufFor(d.MTU()), d.rxBufSize)
		if err != nil {
			return err
		}
		p.setRings(tx, rx)
	}
	return nil
}

// newRings allocates queue pair i's Tx and Rx rings with the given depths
// and buffer sizes; the device-side queues are created later (create).
func (d *Device) newRings(i, txDepth, rxDepth, txBufSize, rxBufSize int) (*rings.TxQueue, *rings.RxQueue, error) {
	dma, bar0 := d.dev.DMA(), d.dev.Registers()
	maxFrame := min(int(d.attrs.MaxMTU)+18, 65535)
	tc := rings.TxConfig{
		Name:        fmt.Sprintf("tx %d", i),
		Depth:       txDepth,
		DMA:         dma,
		Regs:        bar0,
		MaxDescs:    min(d.limits.maxTxDescs, maxSGL),
		MetaCaching: true,
		BufSize:     cmp.Or(txBufSize, rings.DefaultTxBufSize),
		MaxHeader:   0, // host mode: no header_length hint, as FreeBSD (§7.9)
		CheckMBZ:    spec.CapCDescMBZ.In(d.attrs.Capabilities),
		MaxFrame:    max(maxFrame, rings.DefaultMaxTxFrame),
	}
	if d.limits.maxTxDescs == 0 {
		tc.MaxDescs = 0
	}
	if d.llq != nil {
		tc.LLQ = d.bar2
		tc.Layout = d.llq.layout
		tc.BurstEntries = d.llq.burst
		tc.MetaCaching = d.llq.metaCaching
	}
	tx, err := rings.NewTx(tc)
	if err != nil {
		return nil, nil, fmt.Errorf("ena: queue %d: %w", i, err)
	}
	rx, err := rings.NewRx(rings.RxConfig{
		Name:     fmt.Sprintf("rx %d", i),
		Depth:    rxDepth,
		DMA:      dma,
		Regs:     bar0,
		BufSize:  rxBufSize,
		MaxDescs: d.limits.maxRxDescs,
		CheckMBZ: tc.CheckMBZ,
	})
	if err != nil {
		_ = tx.Close()
		return nil, nil, fmt.Errorf("ena: queue %d: %w", i, err)
	}
	return tx, rx, nil
}

// create makes the four device queues, CQ before SQ, Tx before Rx
// (§6 step 28), and binds the rings to the returned offsets.
func (p *QueuePair) create() error {
	d, i := p.d, p.idx
	p.created = false
	// The Tx CQ gets no interrupt vector, as DPDK does (§4.7 "Vector
	// usage"): Tx completions are reclaimed inline by Send and Flush (and
	// by the watchdog), so an interrupt per Tx doorbell would only wake the
	// Rx goroutine sharing the vector for nothing.
	tcq, err := d.createCQ(fmt.Sprintf("create Tx CQ %d", i), p.tx.Depth(), spec.CQEntryWordsTx, -1, p.tx.CQAddr())
	if err != nil {
		return err
	}
	if err := d.checkCQ(tcq, p.tx.Depth(), fmt.Sprintf("Tx CQ %d", i)); err != nil {
		return err
	}
	placement, sqAddr := spec.PlacementHost, p.tx.SQAddr()
	if d.llq != nil {
		placement, sqAddr = spec.PlacementDev, 0 // §4.7: sq_ba 0 for LLQ
	}
	tsq, err := d.createSQ(fmt.Sprintf("create Tx SQ %d", i), spec.SQDirectionTx, placement, tcq.CQIdx, p.tx.Depth(), sqAddr)
	if err != nil {
		return err
	}
	if err := d.checkDoorbell(tsq.DoorbellOffset, fmt.Sprintf("Tx SQ %d", i)); err != nil {
		return err
	}
	if d.llq != nil {
		end := uint64(tsq.LLQDescriptorsOffset) + uint64(p.tx.Depth())*uint64(d.llq.layout.EntrySize())
		if end > uint64(d.bar2.Size()) || tsq.LLQDescriptorsOffset%8 != 0 {
			return fmt.Errorf("ena: create Tx SQ %d: LLQ ring at 0x%x (+%d entries) does not fit BAR2 (%d bytes)", i, tsq.LLQDescriptorsOffset, p.tx.Depth(), d.bar2.Size())
		}
	}
	rcq, err := d.createCQ(fmt.Sprintf("create Rx CQ %d", i), p.rx.Depth(), spec.CQEntryWordsRx, p.vector, p.rx.CQAddr())
	if err != nil {
		return err
	}
	if err := d.checkCQ(rcq, p.rx.Depth(), fmt.Sprintf("Rx CQ %d", i)); err != nil {
		return err
	}
	rsq, err := d.createSQ(fmt.Sprintf("create Rx SQ %d", i), spec.SQDirectionRx, spec.PlacementHost, rcq.CQIdx, p.rx.Depth(), p.rx.SQAddr())
	if err != nil {
		return err
	}
	if err := d.checkDoorbell(rsq.DoorbellOffset, fmt.Sprintf("Rx SQ %d", i)); err != nil {
		return err
	}
	p.txCQIdx, p.txSQIdx, p.rxCQIdx, p.rxSQIdx = tcq.CQIdx, tsq.SQIdx, rcq.CQIdx, rsq.SQIdx
	// Only the Rx CQ has the vector, so its unmask register is the one
	// (§7.8).
	p.unmaskOff = rcq.UnmaskRegOffset
	if p.vector >= 0 && (p.unmaskOff == 0 || d.checkDoorbell(p.unmaskOff, "unmask register") != nil) {
		return fmt.Errorf("ena: create Rx CQ %d: device returned no usable interrupt unmask register (0x%x)", i, p.unmaskOff)
	}
	p.tx.Bind(tsq.DoorbellOffset, tsq.LLQDescriptorsOffset)
	p.rx.Bind(rsq.DoorbellOffset)
	p.created = true
	return nil
}

// checkCQ rejects a CQ the device shrank below the ring we built.
func (d *Device) checkCQ(r spec.CreateCQResp, depth int, what string) error {
	if r.ActualDepth != 0 && int(r.ActualDepth) < depth {
		return fmt.Errorf("ena: create %s: device shrank the CQ to %d entries, ring has %d", what, r.ActualDepth, depth)
	}
	return nil
}

// checkDoorbell validates a device-chosen BAR0 offset before we write to it.
func (d *Device) checkDoorbell(off uint32, what string) error {
	if off%4 != 0 || off+4 > d.dev.Registers().Size() {
		return fmt.Errorf("ena: %s: device returned register offset 0x%x outside BAR0 (%d bytes)", what, off, d.dev.Registers().Size())
	}
	return nil
}

// destroy removes the device queues, SQ before CQ (§4.7), logging failures:
// it runs at Close, where the reset that follows discards them anyway.
func (p *QueuePair) destroy() {
	if !p.created {
		return
	}
	d, i := p.d, p.idx
	for _, err := range []error{
		d.destroySQ(fmt.Sprintf("destroy Tx SQ %d", i), spec.SQDirectionTx, p.txSQIdx),
		d.destroyCQ(fmt.Sprintf("destroy Tx CQ %d", i), p.txCQIdx),
		d.destroySQ(fmt.Sprintf("destroy Rx SQ %d", i), spec.SQDirectionRx, p.rxSQIdx),
		d.destroyCQ(fmt.Sprintf("destroy Rx CQ %d", i), p.rxCQIdx),
	} {
		if err != nil {
			d.log.Warn("ena: teardown", "err", err)
		}
	}
	p.created = false
}

// unmask re-arms the pair's vector (§7.8, bit 30), with the moderation
// delays when moderation was negotiated (unmaskWord).
func (p *QueuePair) unmask() {
	if p.vector < 0 || !p.created {
		return
	}
	p.d.regs.write(p.unmaskOff, p.unmaskWord())
}

func (p *QueuePair) lock()   { p.txMu.Lock(); p.rxMu.Lock() }
func (p *QueuePair) unlock() { p.rxMu.Unlock(); p.txMu.Unlock() }

// stateErr maps a non-running device state to the error users see.
func (p *QueuePair) stateErr() error {
	switch p.d.state.Load() {
	case stateRunning:
		return nil
	case stateResetting:
		return ErrResetting
	case stateDead:
		return ErrDeviceDead
	}
	return ErrClosed
}

// Send copies one frame into the Tx ring (no doorbell; see Flush). It
// returns rings.ErrNoSpace when the ring stays full after reclaiming
// completions, and ErrResetting while the device is being reset.
func (p *QueuePair) Send(segs [][]byte, off rings.TxOffload) error {
	if t := p.txTarget(); t != p {
		return t.Send(segs, off)
	}
	if err := p.stateErr(); err != nil && !p.d.reconfiguring() {
		// During a recovery the queue is stopped: wait for the attempt
		// in progress (bounded, see txRecoveryWait) instead of dropping.
		if !errors.Is(err, ErrResetting) || !p.d.awaitRecovery() {
			return err
		}
	}
	// During a reconfiguration (a rebuild the user asked for, bounded
	// by the admin timeouts) the sender waits for the pair instead of
	// losing a whole congestion window, which TCP would recover from
	// only by timeouts: the queue is stopped, as a NIC's Tx queue is.
	p.txMu.Lock()
	defer p.txMu.Unlock()
	if err := p.stateErr(); err != nil {
		return err
	}
	if !p.enabled() { // SetChannels disabled p since txTarget looked
		return ErrResetting
	}
	err := p.tx.Send(segs, off)
	if errors.Is(err, rings.ErrNoSpace) {
		if p.reclaimLocked() > 0 {
			err = p.tx.Send(segs, off)
		}
	}
	return err
}

// Flush rings the Tx doorbell for everything queued and reclaims finished
// frames.
func (p *QueuePair) Flush() {
	if t := p.txTarget(); t != p {
		t.Flush()
		return
	}
	if p.stateErr() != nil {
		return
	}
	p.txMu.Lock()
	defer p.txMu.Unlock()
	if p.stateErr() != nil || !p.enabled() {
		return
	}
	p.tx.Flush()
	p.reclaimLocked()
}

// reclaimLocked harvests Tx completions; a bad one requests a reset with
// the reason the ring reports (§7.5).
func (p *QueuePair) reclaimLocked() int {
	n, err := p.tx.Reclaim()
	if err != nil {
		p.deviceError(err)
	}
	return n
}

func (p *QueuePair) deviceError(err error) {
	var de *rings.DeviceError
	reason := spec.ResetDriverInvalidState
	if errors.As(err, &de) {
		reason = de.Reason
	}
	p.d.log.Error("ena: bad completion, resetting", "queue", p.idx, "err", err)
	p.d.requestReset(reason)
}

// Poll delivers up to budget received frames to fn (valid only during the
// call) and re-posts their buffers. During a reset it returns 0, nil.
func (p *QueuePair) Poll(budget int, fn func(*rings.RxPacket)) (int, error) {
	if !p.enabled() {
		return 0, nil
	}
	if err := p.stateErr(); err != nil {
		if errors.Is(err, ErrResetting) {
			return 0, nil
		}
		return 0, err
	}
	p.rxMu.Lock()
	defer p.rxMu.Unlock()
	if p.stateErr() != nil || !p.enabled() {
		return 0, nil
	}
	n, err := p.rx.Poll(budget, fn)
	if err != nil {
		p.deviceError(err)
	}
	return n, nil
}

// WaitRx blocks until received frames may be waiting: with interrupts it
// unmasks the pair's vector and waits for it (§7.8); in poll mode it
// sleeps briefly. It also returns on Wake, on ctx, and on Close. The wait
// is bounded when completions are waiting: the watchdog wakes a waiter
// whose interrupt went missing (missintr.go).
func (p *QueuePair) WaitRx(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.stateErr(); err != nil && !errors.Is(err, ErrResetting) {
		return err
	}
	if !p.enabled() {
		// A disabled pair has no rings or device queue: sleep until
		// SetChannels enables it (resumeDataPath wakes every pair) or the
		// caller stops.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.wake:
		case <-p.d.stop:
		}
		return nil
	}
	if p.vector >= 0 && p.d.state.Load() == stateRunning {
		p.rxMu.Lock()
		if !p.enabled() { // disabled since the check above
			p.rxMu.Unlock()
			return nil
		}
		pending := p.rx.Pending()
		if !pending && p.d.state.Load() == stateRunning {
			p.unmask()
			// A completion may have landed between the check and the
			// unmask; the device fires again for it, but look once more.
			pending = p.rx.Pending()
		}
		p.rxMu.Unlock()
		if pending {
			return nil
		}
		return p.waitIntr(ctx)
	}
	if p.timer == nil {
		p.timer = time.NewTimer(pollSleep)
	} else {
		p.timer.Reset(pollSleep)
	}
	select {
	case <-ctx.Done():
		p.timer.Stop()
		return ctx.Err()
	case <-p.wake:
		p.timer.Stop()
	case <-p.d.stop:
		p.timer.Stop()
	case <-p.timer.C:
	}
	return nil
}

// Wake makes a current or the next WaitRx return. A pair with a vector
// may also be asleep as a disabled pair, so both are woken.
func (p *QueuePair) Wake() {
	if p.vector >= 0 {
		p.d.intr.Wake(p.vector)
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// ringStats reads the current rings' counters without the pair's locks.
// Counters restart from zero when SetRings or SetRxBufSize replaces the
// rings; a disabled pair has none and reads zero.
func (p *QueuePair) ringStats() (rings.TxStats, rings.RxStats) {
	r := p.published.Load()
	if r == nil {
		return rings.TxStats{}, rings.RxStats{}
	}
	return r.tx.Stats(), r.rx.Stats()
}
