package enasim

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/enanet/enanet/ena/spec"
)

// I/O interrupts (§7.8). Each I/O CQ may name an MSI-X vector; the Tx and Rx
// CQs of a queue pair normally share one. The device runs I/O vectors in
// auto-mask mode: after it delivers an interrupt the vector stays masked
// until the driver writes the CQ's unmask register with INTR_UNMASK (bit 30)
// set. Completions written while the vector is masked are remembered and
// fire the vector as soon as it is unmasked ([inf] "fire again", §11).
//
// Vectors start masked when the device comes out of reset: drivers unmask
// each pair's vector after creating its queues (§6 step 31), and a device
// that fired before that would interrupt a driver with no handler yet.
//
// The model never calls IRQSink.Raise with mu held: raises are collected in
// a bitmap and delivered by flushOutgoing or receive after unlocking.

// maxVectors bounds the vectors the I/O side tracks: a profile offers at
// most 1 + 128 (profile.validate caps MaxQueues at 128).
const maxVectors = 256

// vecState is the device-side state of one MSI-X vector used by I/O CQs.
type vecState struct {
	// unmasked is true between an unmask write and the next delivery; the
	// zero value (masked) is the state after reset.
	unmasked bool
	// pending records completions written while masked.
	pending bool
	// rxDelay and txDelay are the moderation delays last programmed
	// (units of intr_delay_resolution µs); moderation.go applies them.
	rxDelay, txDelay uint16
	// delivered counts interrupts delivered on this vector since reset.
	delivered uint64
	// cqs counts the CQs using the vector; its unmask register exists
	// while it is non-zero.
	cqs int
}

// raiseSet is a bitmap of vectors to raise once mu is released.
type raiseSet [maxVectors / 64]uint64

func (r *raiseSet) add(v int)      { r[v/64] |= 1 << (v % 64) }
func (r *raiseSet) empty() bool    { return *r == raiseSet{} }
func (r *raiseSet) clearAll()      { *r = raiseSet{} }
func (r *raiseSet) has(v int) bool { return r[v/64]&(1<<(v%64)) != 0 }

// cqNotify is called with mu held after a batch of completions (one
// doorbell, one received frame) may have been written to cq: it
// fires the CQ's vector if it is unmasked (then auto-masks it) or marks it
// pending (§7.8).
func (m *Model) cqNotify(cq *ioCQ) {
	if !cq.dirty {
		return
	}
	cq.dirty = false
	if cq.vector < 0 {
		return
	}
	v := &m.io.vecs[cq.vector]
	if !v.unmasked {
		v.pending = true
		return
	}
	if m.holdIRQ(cq.vector, v, cq.sq != nil && cq.sq.rx != nil) {
		return
	}
	v.unmasked, v.pending = false, false
	v.delivered++
	m.io.raise.add(cq.vector)
}

// writeUnmask handles a store to vector vec's unmask register (§7.8): bit
// 30 unmasks (and fires at once if completions are pending), bit 31 keeps
// the delay fields; a write with neither only updates the delays.
func (m *Model) writeUnmask(vec int, val uint32) {
	w := spec.DecodeUnmaskWord(val)
	v := &m.io.vecs[vec]
	if !w.NoModerationUpdate {
		m.setDelays(v, w)
	}
	if !w.Unmask {
		return
	}
	if v.pending {
		v.pending = false
		if m.holdIRQ(vec, v, true) {
			v.unmasked = true
			return
		}
		v.delivered++
		m.io.raise.add(vec)
		return
	}
	v.unmasked = true
}

// takeRaises returns and clears the vectors to raise; mu held.
func (m *Model) takeRaises() raiseSet {
	r := m.io.raise
	m.io.raise.clearAll()
	return r
}

// deliverRaises raises every vector in r through the IRQ sink; called
// without mu.
func (m *Model) deliverRaises(r *raiseSet) {
	for i, w := range r {
		for w != 0 {
			b := bits.TrailingZeros64(w)
			w &^= 1 << b
			m.raise(i*64 + b)
		}
	}
}

// UntilReset, as the duration of DropInterrupts, drops interrupts until the
// driver resets the device: a wedged interrupt path that only a reset
// (which reprograms the device's MSI-X state) clears.
const UntilReset time.Duration = -1

// intrDropState is the lost-interrupt fault: per vector, the time until
// which raises are dropped (UnixNano), dropForever for "until reset", 0 for
// none. Atomic because raises are delivered without mu.
type intrDropState struct {
	until   [maxVectors]atomic.Int64
	dropped atomic.Uint64
}

const dropForever = math.MaxInt64

func (s *intrDropState) set(v int, d time.Duration) {
	switch {
	case d == 0:
		s.until[v].Store(0)
	case d < 0:
		s.until[v].Store(dropForever)
	default:
		s.until[v].Store(time.Now().Add(d).UnixNano())
	}
}

// clearUntilReset ends every UntilReset drop; mu held (device reset).
func (s *intrDropState) clearUntilReset() {
	for i := range s.until {
		s.until[i].CompareAndSwap(dropForever, 0)
	}
}

// drops reports whether a raise on v is lost now.
func (s *intrDropState) drops(v int) bool {
	u := s.until[v].Load()
	if u == 0 {
		return false
	}
	if u != dropForever && time.Now().UnixNano() >= u {
		s.until[v].CompareAndSwap(u, 0)
		return false
	}
	s.dropped.Add(1)
	return true
}

// raise sends one MSI-X message on vector v unless the lost-interrupt fault
// swallows it. A swallowed I/O interrupt still auto-masks its vector, as a
// message lost between device and CPU would: the vector stays masked until
// the driver writes the unmask register.
func (m *Model) raise(v int) {
	if v >= 0 && v < maxVectors && m.intrDrop.drops(v) {
		return
	}
	m.irq.Raise(v)
}
