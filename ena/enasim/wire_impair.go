package enasim

import (
	"container/heap"
	"math/rand/v2"
	"sync"
	"time"
)

// Impairment describes what a lossy, reordering, slow network does to the
// frames crossing a wire (NewImpaired). The zero value changes nothing.
type Impairment struct {
	// Loss is the probability that a frame is dropped on its own
	// (random loss), 0..1.
	Loss float64
	// BurstLoss is the probability that a frame starts a loss burst of
	// BurstLen frames (the frame and the next BurstLen-1 are dropped), as
	// a policer or a full queue drops; BurstLen 0 means 1.
	BurstLoss float64
	BurstLen  int
	// Reorder is the probability that a frame is held back by
	// ReorderDelay while later frames overtake it.
	Reorder      float64
	ReorderDelay time.Duration
	// Delay is added to every frame; Jitter adds a uniformly random
	// 0..Jitter on top (frames may then arrive out of order).
	Delay, Jitter time.Duration
	// Seed makes the random choices repeatable; 0 picks a random seed.
	Seed uint64
}

// ImpairStats counts what an impaired wire did.
type ImpairStats struct {
	Sent, Dropped, Reordered, Delayed uint64
}

// Impaired is a Wire that impairs frames before handing them to another
// Wire (see NewImpaired).
type Impaired struct {
	inner Wire
	im    Impairment

	mu        sync.Mutex
	rng       *rand.Rand
	burstLeft int
	stats     ImpairStats
	q         delayQueue
	wake      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// NewImpaired wraps inner so that frames sent through it are lost,
// reordered or delayed as im says, then sent on inner. Delayed frames are
// copied and delivered by one goroutine that Close stops. Use it on one or
// both ends of a NewPair cable.
func NewImpaired(inner Wire, im Impairment) *Impaired {
	seed := im.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	w := &Impaired{inner: inner, im: im, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go w.deliverLoop()
	return w
}

// Send implements Wire.
func (w *Impaired) Send(frame []byte) {
	w.mu.Lock()
	w.stats.Sent++
	im := &w.im
	drop := false
	switch {
	case w.burstLeft > 0:
		w.burstLeft--
		drop = true
	case im.BurstLoss > 0 && w.rng.Float64() < im.BurstLoss:
		w.burstLeft = max(im.BurstLen, 1) - 1
		drop = true
	case im.Loss > 0 && w.rng.Float64() < im.Loss:
		drop = true
	}
	if drop {
		w.stats.Dropped++
		w.mu.Unlock()
		return
	}
	delay := im.Delay
	if im.Jitter > 0 {
		delay += time.Duration(w.rng.Int64N(int64(im.Jitter) + 1))
	}
	if im.Reorder > 0 && w.rng.Float64() < im.Reorder {
		delay += im.ReorderDelay
		w.stats.Reordered++
	}
	if delay <= 0 && len(w.q) == 0 {
		w.mu.Unlock()
		w.inner.Send(frame)
		return
	}
	w.stats.Delayed++
	heap.Push(&w.q, delayed{due: time.Now().Add(delay), seq: w.stats.Sent, frame: append([]byte(nil), frame...)})
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// deliverLoop sends delayed frames when they are due.
func (w *Impaired) deliverLoop() {
	defer close(w.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		w.mu.Lock()
		var next []byte
		wait := time.Hour
		if len(w.q) > 0 {
			if d := time.Until(w.q[0].due); d <= 0 {
				next = heap.Pop(&w.q).(delayed).frame
			} else {
				wait = d
			}
		}
		w.mu.Unlock()
		if next != nil {
			w.inner.Send(next)
			continue
		}
		t.Reset(wait)
		select {
		case <-w.stop:
			return
		case <-w.wake:
		case <-t.C:
		}
	}
}

// SetReceiver implements Wire: frames arriving from the far end are not
// impaired (wrap the far end for that).
func (w *Impaired) SetReceiver(fn func([]byte)) { w.inner.SetReceiver(fn) }

// Close stops the delivery goroutine (frames still delayed are dropped) and
// closes the inner wire.
func (w *Impaired) Close() error {
	w.closeOnce.Do(func() { close(w.stop); <-w.done })
	return w.inner.Close()
}

// Stats returns what the wire did so far.
func (w *Impaired) Stats() ImpairStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// delayed is a frame waiting for its time; seq keeps equal times in order.
type delayed struct {
	due   time.Time
	seq   uint64
	frame []byte
}

type delayQueue []delayed

func (q delayQueue) Len() int { return len(q) }
func (q delayQueue) Less(i, j int) bool {
	if !q[i].due.Equal(q[j].due) {
		return q[i].due.Before(q[j].due)
	}
	return q[i].seq < q[j].seq
}
func (q delayQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *delayQueue) Push(x any)   { *q = append(*q, x.(delayed)) }
func (q *delayQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}
