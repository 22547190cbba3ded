package enasim

import (
	"time"

	"github.com/enanet/enanet/ena/spec"
)

// Interrupt moderation (§7.8, §4.8 INTERRUPT_MODERATION). A driver that
// advertised the interrupt_moderation host feature (host-info bit 2) sends
// Rx and Tx delays, in units of the profile's IntrDelayResolution µs, in
// every unmask write without NO_MODERATION_UPDATE. The device then holds an
// interrupt due on an unmasked vector: it fires when the delay of the CQ
// that completed has passed since the first held completion, or at once
// when modCoalesceMax completion batches have accumulated. A driver that
// did not advertise the feature gets no moderation: non-zero delays from it
// are refused (counted in DelaysRefused and left at zero).

// modCoalesceMax is how many completion batches (doorbells, received
// frames) a held interrupt waits for at most before firing early ([sim]:
// the protocol names no count; net_dim's profiles pair delays with 16..256
// packets, and 64 is in that range).
const modCoalesceMax = 64

// modState is the moderation side of the I/O state; mu held.
type modState struct {
	vecs    [maxVectors]heldIRQ
	refused uint64 // unmask writes whose delays were refused
	held    uint64 // interrupts that were held at least once
}

// heldIRQ is one vector's held interrupt.
type heldIRQ struct {
	held  bool
	count int    // completion batches since the hold began
	seq   uint64 // bumped per hold; a stale timer compares it
}

// setDelays records the delays of an unmask write (§7.8).
func (m *Model) setDelays(v *vecState, w spec.UnmaskWord) {
	if !m.cfg.hostModeration && (w.RxDelay != 0 || w.TxDelay != 0) {
		m.io.mod.refused++
		m.tracef("unmask: delays rx %d tx %d refused: the driver did not advertise interrupt_moderation in host-info", w.RxDelay, w.TxDelay)
		v.rxDelay, v.txDelay = 0, 0
		return
	}
	v.rxDelay, v.txDelay = w.RxDelay, w.TxDelay
}

// holdIRQ decides whether an interrupt due on vector vec waits for its
// moderation delay; it reports true if the interrupt is (still) held and
// false if it must fire now. rx says whether an Rx CQ completed.
func (m *Model) holdIRQ(vec int, v *vecState, rx bool) bool {
	delay := v.txDelay
	if rx {
		delay = v.rxDelay
	}
	h := &m.io.mod.vecs[vec]
	if h.held {
		h.count++
		if h.count < modCoalesceMax {
			return true
		}
		h.held = false
		return false
	}
	if delay == 0 || !m.cfg.hostModeration {
		return false
	}
	res := time.Duration(max(m.prof.IntrDelayResolution, 1)) * time.Microsecond
	h.held, h.count = true, 1
	h.seq++
	m.io.mod.held++
	seq, gen := h.seq, m.gen
	m.timers.after(time.Duration(delay)*res, func() { m.releaseHeld(vec, seq, gen) })
	return true
}

// releaseHeld fires a held interrupt whose delay has passed.
func (m *Model) releaseHeld(vec int, seq, gen uint64) {
	m.mu.Lock()
	h := &m.io.mod.vecs[vec]
	if m.closed || m.gen != gen || !h.held || h.seq != seq {
		m.mu.Unlock()
		return
	}
	h.held = false
	v := &m.io.vecs[vec]
	if v.unmasked {
		v.unmasked, v.pending = false, false
		v.delivered++
		m.io.raise.add(vec)
	}
	r := m.takeRaises()
	m.mu.Unlock()
	m.deliverRaises(&r)
}
