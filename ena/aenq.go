package ena

import (
	"fmt"
	"sync"
	"time"

	"github.com/enanet/enanet/ena/hw"
	"github.com/enanet/enanet/ena/hw/dmamem"
	"github.com/enanet/enanet/ena/spec"
)

// aenqWanted are the groups the driver asks for, as Linux and FreeBSD do:
// everything except REFRESH_CAPABILITIES (§5.2). SET AENQ_CONFIG sends
// this intersected with what the device supports.
const aenqWanted = spec.AENQGroupsLinux

// aenq is the asynchronous event queue (§5): a ring the device fills with
// 64-byte events and the driver credits back through AENQ_HEAD_DB.
type aenq struct {
	regs  *regs
	tr    *tracer
	ring  *hw.Region
	depth uint16

	mu      sync.Mutex
	head    uint16 // free-running; starts at depth (§5.4)
	phase   bool
	enabled bool // AENQ_HEAD_DB written once
}

func newAENQ(dma hw.DMA, r *regs, tr *tracer) (*aenq, error) {
	ring, err := dma.Alloc(spec.DefaultAENQDepth*spec.AENQEntrySize, 4096)
	if err != nil {
		return nil, fmt.Errorf("ena: allocate AENQ: %w", err)
	}
	q := &aenq{regs: r, tr: tr, ring: ring, depth: spec.DefaultAENQDepth}
	q.reinit()
	return q, nil
}

// reinit zeroes the ring: head = depth, phase 1 (§5.4).
func (q *aenq) reinit() {
	q.mu.Lock()
	defer q.mu.Unlock()
	clear(q.ring.Bytes)
	q.head = q.depth
	q.phase = true
	q.enabled = false
}

// register writes AENQ_BASE_LO, AENQ_BASE_HI, AENQ_CAPS (§6 step 10).
func (q *aenq) register() {
	q.regs.write(spec.RegAENQBaseLo, uint32(q.ring.Addr))
	q.regs.write(spec.RegAENQBaseHi, uint32(q.ring.Addr>>32))
	caps := spec.QueueCaps{Depth: q.depth, EntrySize: spec.AENQEntrySize}
	q.regs.write(spec.RegAENQCaps, caps.Encode())
}

// enable gives the device its first depth credits (§6 step 25).
func (q *aenq) enable() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.enabled = true
	q.regs.write(spec.RegAENQHeadDB, uint32(q.head))
}

func (q *aenq) free() { _ = q.ring.Free() }

// pending reports whether an unprocessed entry sits at the head: used to
// tell a missed interrupt from a silent device (§5.3).
func (q *aenq) pending() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.enabled && q.validLocked(q.slotLocked())
}

func (q *aenq) slotLocked() []byte {
	return q.ring.Bytes[int(q.head&(q.depth-1))*spec.AENQEntrySize:][:spec.AENQEntrySize]
}

// validLocked checks the phase with one atomic load of word 1 (flags are
// byte 4), before anything else of the entry is read (§5.4).
func (q *aenq) validLocked(slot []byte) bool {
	w1 := dmamem.Acquire32(slot, 4)
	return (w1&spec.AENQFlagPhase != 0) == q.phase
}

// process hands every valid entry to handle and then credits them back with
// one AENQ_HEAD_DB write (§5.4). handle runs without q.mu held.
func (q *aenq) process(handle func(spec.AENQEntry)) int {
	var batch [spec.DefaultAENQDepth]spec.AENQEntry
	q.mu.Lock()
	if !q.enabled {
		q.mu.Unlock()
		return 0
	}
	n := 0
	for n < len(batch) {
		slot := q.slotLocked()
		if !q.validLocked(slot) {
			break
		}
		batch[n] = spec.DecodeAENQEntry(slot)
		n++
		q.head++
		if q.head&(q.depth-1) == 0 {
			q.phase = !q.phase
		}
	}
	if n > 0 {
		// The device may reuse the slots as soon as it sees the new head;
		// the entries were copied out above (full barrier: the register
		// store follows the loads in program order and mmio stores are not
		// reordered before them).
		q.regs.write(spec.RegAENQHeadDB, uint32(q.head))
	}
	q.mu.Unlock()
	for i := range n {
		handle(batch[i])
	}
	return n
}

// handleAENQ dispatches one event by group (§5.2).
func (d *Device) handleAENQ(e spec.AENQEntry) {
	d.counters.aenqEvents.Add(1)
	d.tr.printf("aenq %v syndrome %d\n", e.Group, e.Syndrome)
	switch e.Group {
	case spec.AENQLinkChange:
		up := spec.DecodeAENQLinkChangePayload(e.Payload[:]).LinkUp
		d.counters.linkChanges.Add(1)
		if d.linkUp.Swap(up) != up {
			d.log.Info("ena: link changed", "up", up)
		}
		// While the device recovers the link reads down; notifyHealth
		// reports the device's state when recovery ends.
		if d.state.Load() == stateRunning && d.linkShown.Swap(up) != up {
			d.hmu.Lock()
			h := d.linkHandler
			d.hmu.Unlock()
			if h != nil {
				h(up)
			}
		}
	case spec.AENQKeepAlive:
		ka := spec.DecodeAENQKeepAlivePayload(e.Payload[:])
		d.counters.keepAlives.Add(1)
		d.lastKeepAlive.Store(time.Now().UnixNano())
		d.counters.kaRxDrops.Store(ka.RxDrops)
		d.counters.kaTxDrops.Store(ka.TxDrops)
		d.counters.kaRxOverruns.Store(ka.RxOverruns)
	case spec.AENQNotification:
		if e.Syndrome == spec.AENQSyndromeUpdateHints {
			d.applyHints(spec.DecodeHWHints(e.Payload[:]))
			d.log.Info("ena: device updated its hints")
		} else {
			switch e.Syndrome {
			case spec.AENQSyndromeSuspend:
				d.log.Warn("ena: device suspended traffic; frames may be dropped until it resumes")
			case spec.AENQSyndromeResume:
				d.log.Info("ena: device resumed traffic")
			default:
				d.log.Warn("ena: unknown notification from the device", "syndrome", e.Syndrome)
			}
		}
	case spec.AENQConfNotifications:
		bm := spec.DecodeAENQConfNotificationsPayload(e.Payload[:]).Bitmap
		for i := range 64 {
			if bm&(1<<i) != 0 {
				d.log.Warn("ena: device reports a sub-optimal configuration", "code", i+1)
			}
		}
	case spec.AENQFatalError:
		d.log.Error("ena: device reported a fatal error event", "syndrome", e.Syndrome)
		d.requestReset(spec.ResetGeneric)
	case spec.AENQWarning:
		d.log.Warn("ena: device warning event", "syndrome", e.Syndrome)
	case spec.AENQDeviceRequestReset:
		d.log.Warn("ena: device requested a reset")
		d.requestReset(spec.ResetDeviceRequest)
	case spec.AENQRefreshCapabilities:
		// Linux re-reads capabilities through a reset; so do we.
		d.log.Info("ena: device asked to refresh capabilities")
		d.requestReset(spec.ResetGeneric)
	default:
		d.log.Warn("ena: unknown AENQ group", "group", uint16(e.Group), "syndrome", e.Syndrome)
	}
}
