package enasim

import (
	"sync"
	"sync/atomic"
)

// Wire is where a simulated device's frames go: the cable. The model sends
// every transmitted Ethernet frame (no FCS) with Send and receives frames
// through the function given to SetReceiver.
//
// Rules every implementation follows (the model depends on them):
//   - Send must not retain frame after it returns; the model reuses the
//     buffer.
//   - The receiver gets a frame valid only during the call; it copies what
//     it keeps. Wires may call the receiver synchronously from Send (the
//     loopback and pair wires do), so the model never calls Send while
//     holding its own lock.
//   - SetReceiver(nil) detaches the receiver; frames arriving then are
//     dropped.
//   - Send after Close drops the frame silently; Close is safe to call twice
//     and stops every goroutine the wire started.
type Wire interface {
	Send(frame []byte)
	SetReceiver(fn func(frame []byte))
	Close() error
}

// receiverSlot holds a wire's receiver so Send (any goroutine) and
// SetReceiver (the device) never race.
type receiverSlot struct {
	fn atomic.Pointer[receiver]
}

// receiver is what a slot delivers to: a function, or, on the in-process
// wires, the receiving Model itself (attachModel), which then also learns
// what the sending model checksummed (txChecksummed).
type receiver struct {
	fn func([]byte)
	m  *Model
}

func (r *receiverSlot) set(fn func([]byte)) {
	if fn == nil {
		r.fn.Store(nil)
		return
	}
	r.fn.Store(&receiver{fn: fn})
}

// setModel makes m the receiver (see modelWire).
func (r *receiverSlot) setModel(m *Model) { r.fn.Store(&receiver{fn: m.receive, m: m}) }

// deliver hands frame to the receiver, if any; it reports whether one was
// attached.
func (r *receiverSlot) deliver(frame []byte) bool {
	p := r.fn.Load()
	if p == nil {
		return false
	}
	p.fn(frame)
	return true
}

// deliverSent hands frame, sent by a model that recorded in sum what it
// checksummed, to the receiver: a receiving Model gets sum too, anything
// else only the frame.
func (r *receiverSlot) deliverSent(frame []byte, sum *txChecksummed) {
	p := r.fn.Load()
	switch {
	case p == nil:
	case p.m != nil:
		p.m.receiveSent(frame, sum)
	default:
		p.fn(frame)
	}
}

// modelWire is implemented by the in-process wires (loopback, pair): the
// device attaches its Model rather than a function, so frames from a model
// on the other end arrive with what that model checksummed.
type modelWire interface {
	attachModel(m *Model)
}

// burst lets an in-process wire tell the receiving model that several
// frames arrive back to back (everything one flush of the sender put on the
// cable), so that the model raises its Rx interrupt once, after the last of
// them, instead of after the first: what interrupt moderation does on a
// real NIC. The receiver's Rx goroutine then finds the whole burst in one
// poll rather than racing the sender frame by frame. Frames still reach the
// receiver one at a time through its receive function.
type burst struct {
	depth atomic.Int32 // > 0 while a burst is being delivered
	// owner is the model whose receive ran during a burst on this end (it
	// registers itself, see Model.receive); its deferred interrupts are
	// raised when the burst ends. SetReceiver clears it.
	owner atomic.Pointer[Model]
}

// deliver hands every frame of out to rx as one burst.
func (b *burst) deliver(rx *receiverSlot, out *outList) {
	b.depth.Add(1)
	start := 0
	for i, end := range out.ends {
		rx.deliverSent(out.buf[start:end], &out.sums[i])
		start = end
	}
	if b.depth.Add(-1) == 0 {
		if m := b.owner.Load(); m != nil {
			m.flushRaises()
		}
	}
}

// active reports whether a burst is being delivered.
func (b *burst) active() bool { return b.depth.Load() > 0 }

// burstWire is implemented by the in-process wires (loopback, pair).
type burstWire interface {
	// sendBurst sends every frame of out, in order, as one burst.
	sendBurst(out *outList)
	// rxBurst is the burst state of this end's receiving side.
	rxBurst() *burst
}

// loopback is a wire whose far end is its own near end: every frame sent is
// received by the same device, synchronously.
type loopback struct {
	rx     receiverSlot
	burst  burst
	closed atomic.Bool
}

func (l *loopback) sendBurst(out *outList) {
	if l.closed.Load() {
		return
	}
	l.burst.deliver(&l.rx, out)
}

func (l *loopback) rxBurst() *burst { return &l.burst }

// NewLoopback returns a wire that delivers each sent frame back to the
// sender's receiver, synchronously inside Send. With one device it makes
// Tx→Rx tests and benchmarks self-contained.
func NewLoopback() Wire { return &loopback{} }

func (l *loopback) Send(frame []byte) {
	if l.closed.Load() {
		return
	}
	l.rx.deliver(frame)
}

func (l *loopback) SetReceiver(fn func([]byte)) {
	l.burst.owner.Store(nil)
	l.rx.set(fn)
}

func (l *loopback) attachModel(m *Model) {
	l.burst.owner.Store(nil)
	l.rx.setModel(m)
}

func (l *loopback) Close() error {
	l.closed.Store(true)
	l.rx.set(nil)
	return nil
}

// pairEnd is one end of an in-process cable between two devices.
type pairEnd struct {
	rx    receiverSlot
	burst burst // of this end's receiving side
	peer  *pairEnd
	state *pairState
}

// pairState is shared by both ends: closing either end cuts the cable.
type pairState struct {
	closed atomic.Bool
	once   sync.Once
}

// NewPair returns the two ends of a cable: a frame sent on one end is
// delivered, synchronously inside Send, to the receiver of the other. Two
// devices on a pair never deadlock because neither holds its lock while
// sending (see Wire).
func NewPair() (Wire, Wire) {
	st := &pairState{}
	a, b := &pairEnd{state: st}, &pairEnd{state: st}
	a.peer, b.peer = b, a
	return a, b
}

func (p *pairEnd) Send(frame []byte) {
	if p.state.closed.Load() {
		return
	}
	p.peer.rx.deliver(frame)
}

func (p *pairEnd) sendBurst(out *outList) {
	if p.state.closed.Load() {
		return
	}
	p.peer.burst.deliver(&p.peer.rx, out)
}

func (p *pairEnd) rxBurst() *burst { return &p.burst }

func (p *pairEnd) SetReceiver(fn func([]byte)) {
	p.burst.owner.Store(nil)
	p.rx.set(fn)
}

func (p *pairEnd) attachModel(m *Model) {
	p.burst.owner.Store(nil)
	p.rx.setModel(m)
}

// Close cuts the cable for both ends.
func (p *pairEnd) Close() error {
	p.state.once.Do(func() { p.state.closed.Store(true) })
	p.rx.set(nil)
	return nil
}
