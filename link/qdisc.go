package link

import (
	"runtime"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/sleep"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/qdisc"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// txQDisc is NewStack's queueing discipline: gVisor's fifo (one queue and
// one goroutine per Tx ring, batches of up to txQDiscBatch frames per
// WritePackets call, so per doorbell) with a bypass. A frame shorter than
// a full-sized one that finds its queue empty and nobody writing it is
// written by the sending goroutine itself, as Linux sends a packet that
// finds an empty qdisc straight to the driver (TCQ_F_CAN_BYPASS).
//
// Why: a small request and its response are one short frame each, plus
// ACKs, and each used to cost a wake-up of the queue's goroutine and a
// hand-off of the packet to the other core (see bench/README.md, "Request
// rate, fourth pass"). Full-sized frames, which come in bursts (a GSO
// segment split into MSS-sized frames, a window of data), still go
// through the queue: there the goroutine batches them per doorbell and
// does the Tx copy on one core while the sender builds the next segments
// on the other, which halved goodput when it was lost (StackOptions.NoQDisc).
//
// Order is kept per queue: the bypass is taken only while the queue is
// empty and no other goroutine is writing its frames (busy), and a frame
// arriving during a bypassed write is queued behind it.
//
// A bypassing sender writes as the queue's goroutine would, so while the
// device recovers from a reset it waits as that goroutine would: for the
// attempt in progress, at most ena's txRecoveryWait (500 ms), usually a few
// milliseconds (the fault matrix table in README.md). The sender may be a TCP
// endpoint's goroutine, which then holds that endpoint for the wait; its
// peer cannot be heard from during a reset anyway.
type txQDisc struct {
	lower  txWriter
	queues []txQDiscQueue
	bypass bool
	wg     sync.WaitGroup
	closed atomic.Bool
}

// txWriter is what txQDisc writes to: the Endpoint.
type txWriter interface {
	WritePackets(stack.PacketBufferList) (int, tcpip.Error)
	MTU() uint32
}

// txQDiscBatch is fifo's BatchSize: a 64 KiB GSO segment at MTU 1500
// splits into 46 MSS-sized frames and one short one.
const txQDiscBatch = 47

// txQDiscQueue is one Tx ring's queue.
type txQDiscQueue struct {
	mu sync.Mutex
	// queue holds frames waiting for the dispatcher (mu).
	queue qdisc.PacketBufferCircularList
	// busy is set while a goroutine (the dispatcher or a bypassing
	// sender) writes this queue's frames to the endpoint (mu).
	busy bool
	// direct is the one-frame list a bypassing sender writes; only the
	// goroutine that set busy uses it.
	direct stack.PacketBufferList

	newPacket sleep.Waker
	closing   sleep.Waker

	directFrames, queuedFrames, batches atomic.Uint64
}

// TxQDiscStats counts how frames left NewStack's queueing discipline.
type TxQDiscStats struct {
	// Direct frames were written by the sending goroutine (the bypass).
	Direct uint64 `json:"direct"`
	// Queued frames went through a queue's goroutine, in Batches
	// WritePackets calls.
	Queued  uint64 `json:"queued"`
	Batches uint64 `json:"batches"`
}

// newTxQDisc starts one dispatcher goroutine for each of n queues in
// front of w; Close stops them. queueLen bounds each queue; bypass turns
// the bypass on.
func newTxQDisc(w txWriter, n, queueLen int, bypass bool) *txQDisc {
	d := &txQDisc{lower: w, queues: make([]txQDiscQueue, n), bypass: bypass}
	for i := range d.queues {
		q := &d.queues[i]
		q.queue.Init(queueLen)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.dispatch(q)
		}()
	}
	return d
}

// WritePacket implements stack.QueueingDiscipline. The caller keeps its
// reference to pkt.
func (d *txQDisc) WritePacket(pkt *stack.PacketBuffer) tcpip.Error {
	q := &d.queues[int(pkt.Hash%uint32(len(d.queues)))]
	q.mu.Lock()
	if d.closed.Load() {
		q.mu.Unlock()
		return &tcpip.ErrClosedForSend{}
	}
	if d.bypass && !q.busy && q.queue.IsEmpty() && d.short(pkt) {
		q.busy = true
		q.mu.Unlock()
		q.direct.PushBack(pkt.IncRef())
		_, _ = d.lower.WritePackets(q.direct) // what it did not write is lost, as with fifo
		q.direct.Reset()
		q.directFrames.Add(1)
		q.mu.Lock()
		q.busy = false
		more := !q.queue.IsEmpty()
		q.mu.Unlock()
		if more {
			q.newPacket.Assert() // frames queued behind ours
		}
		return nil
	}
	if !q.queue.HasSpace() {
		q.mu.Unlock()
		return &tcpip.ErrNoBufferSpace{}
	}
	q.queue.PushBack(pkt.IncRef())
	q.mu.Unlock()
	q.newPacket.Assert()
	return nil
}

// short reports whether pkt is shorter than a full-sized frame: the end
// of a message, a request, an ACK. Full-sized frames come in bursts and
// are batched by the queue. With gVisor GSO a full-sized TCP frame carries
// the segment's MSS, which gVisor keeps below what the MTU allows (1420
// bytes at MTU 1500), so the MSS decides; otherwise the MTU does.
func (d *txQDisc) short(pkt *stack.PacketBuffer) bool {
	if g := pkt.GSOOptions; g.Type != stack.GSONone && g.MSS > 0 {
		return pkt.Data().Size() < int(g.MSS)
	}
	return pkt.Size() < int(d.lower.MTU())+header.EthernetMinimumSize
}

// dispatch is q's goroutine: it writes what is queued in batches while
// nobody else writes q, until Close.
func (d *txQDisc) dispatch(q *txQDiscQueue) {
	var s sleep.Sleeper
	s.AddWaker(&q.newPacket)
	s.AddWaker(&q.closing)
	defer s.Done()
	var batch stack.PacketBufferList
	for {
		if s.Fetch(true) == &q.closing {
			q.mu.Lock()
			for p := q.queue.RemoveFront(); p != nil; p = q.queue.RemoveFront() {
				p.DecRef()
			}
			q.mu.Unlock()
			return
		}
		q.mu.Lock()
		for !q.busy && !q.queue.IsEmpty() {
			for batch.Len() < txQDiscBatch {
				p := q.queue.RemoveFront()
				if p == nil {
					break
				}
				batch.PushBack(p)
			}
			q.busy = true
			q.mu.Unlock()
			n := batch.Len()
			_, _ = d.lower.WritePackets(batch)
			batch.Reset()
			q.queuedFrames.Add(uint64(n))
			q.batches.Add(1)
			q.mu.Lock()
			q.busy = false
		}
		// A bypassing sender that holds busy wakes us when it is done.
		q.mu.Unlock()
	}
}

// Close implements stack.QueueingDiscipline: it drops what is queued,
// stops the dispatchers and waits for bypassed writes in progress.
func (d *txQDisc) Close() {
	d.closed.Store(true)
	for i := range d.queues {
		d.queues[i].closing.Assert()
	}
	d.wg.Wait()
	for i := range d.queues {
		q := &d.queues[i]
		for {
			q.mu.Lock()
			if !q.busy {
				// Frames queued behind a bypassed write that ended after
				// the dispatcher had gone.
				for p := q.queue.RemoveFront(); p != nil; p = q.queue.RemoveFront() {
					p.DecRef()
				}
				q.mu.Unlock()
				break
			}
			q.mu.Unlock()
			runtime.Gosched() // one WritePackets call, bounded by txRetries
		}
	}
}

// stats sums the queues' counters.
func (d *txQDisc) stats() TxQDiscStats {
	var s TxQDiscStats
	for i := range d.queues {
		q := &d.queues[i]
		s.Direct += q.directFrames.Load()
		s.Queued += q.queuedFrames.Load()
		s.Batches += q.batches.Load()
	}
	return s
}
