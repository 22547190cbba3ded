package link

import (
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// recWriter is a txWriter that records the frames written to it: each
// frame's first 8 bytes are its sender and sequence number. While gate is
// set, every WritePackets call waits for it to be closed.
type recWriter struct {
	mu     sync.Mutex
	frames []uint64
	calls  int
	gate   chan struct{}
	inside chan struct{} // receives once per call that waits at the gate
	yield  bool          // yield inside WritePackets, so writers interleave
}

func (w *recWriter) MTU() uint32 { return 1500 }

func (w *recWriter) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	w.mu.Lock()
	gate := w.gate
	w.mu.Unlock()
	if gate != nil {
		w.inside <- struct{}{}
		<-gate
	}
	if w.yield {
		runtime.Gosched()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	for _, p := range pkts.AsSlice() {
		w.frames = append(w.frames, binary.BigEndian.Uint64(p.ToView().AsSlice()))
	}
	return pkts.Len(), nil
}

func (w *recWriter) written() []uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]uint64(nil), w.frames...)
}

// qdFrame is a frame of size bytes (link header included) from sender
// src with sequence number seq, on the queue hash picks.
func qdFrame(src, seq uint32, size int, hash uint32) *stack.PacketBuffer {
	b := make([]byte, size)
	binary.BigEndian.PutUint32(b, src)
	binary.BigEndian.PutUint32(b[4:], seq)
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(b)})
	pkt.Hash = hash
	return pkt
}

const (
	qdShort = 1100                              // a 1 KiB response's frame
	qdFull  = 1500 + header.EthernetMinimumSize // a full-sized frame at MTU 1500
)

// writeFrame hands one frame to d and drops the caller's reference, as the
// stack does.
func writeFrame(t *testing.T, d *txQDisc, src, seq uint32, size int, hash uint32) {
	t.Helper()
	pkt := qdFrame(src, seq, size, hash)
	defer pkt.DecRef()
	require.Nil(t, d.WritePacket(pkt))
}

// waitFrames waits until n frames were written and the writers counted
// them.
func waitFrames(t *testing.T, d *txQDisc, w *recWriter, n int) []uint64 {
	t.Helper()
	require.Eventually(t, func() bool { return len(w.written()) >= n }, 10*time.Second, time.Millisecond)
	waitIdle(t, d)
	got := w.written()
	require.Len(t, got, n)
	return got
}

// waitIdle waits until no queue of d holds or writes a frame.
func waitIdle(t *testing.T, d *txQDisc) {
	t.Helper()
	require.Eventually(t, func() bool {
		for i := range d.queues {
			q := &d.queues[i]
			q.mu.Lock()
			idle := !q.busy && q.queue.IsEmpty()
			q.mu.Unlock()
			if !idle {
				return false
			}
		}
		return true
	}, 10*time.Second, time.Millisecond)
}

// TestTxQDiscBypassesShortFramesWhenIdle: a short frame that finds its
// queue idle is written before WritePacket returns, by the sender; a
// full-sized one goes through the queue's goroutine.
func TestTxQDiscBypassesShortFramesWhenIdle(t *testing.T) {
	w := &recWriter{}
	d := newTxQDisc(w, 1, 64, true)
	defer d.Close()
	for i := range 10 {
		writeFrame(t, d, 1, uint32(i), qdShort, 0)
		require.Len(t, w.written(), i+1, "short frame %d was not written by its sender", i)
	}
	writeFrame(t, d, 1, 10, qdFull, 0)
	waitFrames(t, d, w, 11)
	assert.Equal(t, TxQDiscStats{Direct: 10, Queued: 1, Batches: 1}, d.stats())

	// With gVisor GSO the segment's MSS, not the MTU, makes a frame full.
	for i, payload := range []int{1420, 1024} {
		waitIdle(t, d)
		pkt := qdFrame(1, uint32(11+i), payload, 0)
		pkt.GSOOptions = stack.GSO{Type: stack.GSOGvisor, MSS: 1420}
		require.Nil(t, d.WritePacket(pkt))
		pkt.DecRef()
	}
	waitFrames(t, d, w, 13)
	assert.Equal(t, TxQDiscStats{Direct: 11, Queued: 2, Batches: 2}, d.stats())
}

// TestTxQDiscQueuesBehindAWrite: while a write is in progress, full-sized
// and short frames alike wait in the queue and leave in order, batched.
func TestTxQDiscQueuesBehindAWrite(t *testing.T) {
	for _, first := range []struct {
		name string
		size int
	}{{"behind the dispatcher", qdFull}, {"behind a bypassed write", qdShort}} {
		t.Run(first.name, func(t *testing.T) {
			w := &recWriter{gate: make(chan struct{}), inside: make(chan struct{}, 1)}
			d := newTxQDisc(w, 1, 64, true)
			defer d.Close()
			go func() {
				pkt := qdFrame(1, 0, first.size, 0)
				defer pkt.DecRef()
				d.WritePacket(pkt)
			}()
			<-w.inside // the first frame is being written
			for i := 1; i <= 20; i++ {
				size := qdFull
				if i%5 == 0 {
					size = qdShort
				}
				writeFrame(t, d, 1, uint32(i), size, 0)
			}
			w.mu.Lock()
			close(w.gate)
			w.gate = nil
			w.mu.Unlock()
			got := waitFrames(t, d, w, 21)
			for i, f := range got {
				require.Equal(t, uint64(1)<<32|uint64(i), f, "frame %d out of order", i)
			}
			st := d.stats()
			assert.Equal(t, uint64(21), st.Direct+st.Queued)
			assert.Equal(t, uint64(20), st.Queued-uint64(first.size/qdFull), "frames behind the first one must be queued")
			assert.LessOrEqual(t, st.Batches, uint64(2), "the 20 queued frames leave in one batch")
		})
	}
}

// TestTxQDiscNoBypass: with the bypass off every frame is queued.
func TestTxQDiscNoBypass(t *testing.T) {
	w := &recWriter{}
	d := newTxQDisc(w, 1, 64, false)
	defer d.Close()
	for i := range 10 {
		writeFrame(t, d, 1, uint32(i), qdShort, 0)
	}
	waitFrames(t, d, w, 10)
	st := d.stats()
	assert.Zero(t, st.Direct)
	assert.Equal(t, uint64(10), st.Queued)
}

// TestTxQDiscKeepsOrder: senders writing short and full-sized frames at
// random into shared queues see every frame leave, each sender's in order.
func TestTxQDiscKeepsOrder(t *testing.T) {
	const senders, perSender = 4, 400
	w := &recWriter{yield: true}
	d := newTxQDisc(w, 2, 4096, true)
	defer d.Close()
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(s), 1))
			for i := range perSender {
				size := qdFull
				if r.IntN(2) == 0 {
					size = qdShort
				}
				pkt := qdFrame(uint32(s), uint32(i), size, uint32(s)) // senders 0, 2 share queue 0; 1, 3 queue 1
				if err := d.WritePacket(pkt); err != nil {
					t.Errorf("sender %d frame %d: %v", s, i, err)
				}
				pkt.DecRef()
			}
		}()
	}
	wg.Wait()
	got := waitFrames(t, d, w, senders*perSender)
	next := make([]uint32, senders)
	for _, f := range got {
		s, seq := uint32(f>>32), uint32(f)
		require.Equal(t, next[s], seq, "sender %d out of order", s)
		next[s]++
	}
	st := d.stats()
	assert.NotZero(t, st.Direct)
	assert.NotZero(t, st.Queued)
}

// TestTxQDiscClose: Close waits for a bypassed write in progress, drops
// what is queued, and later frames are refused.
func TestTxQDiscClose(t *testing.T) {
	w := &recWriter{gate: make(chan struct{}), inside: make(chan struct{}, 1)}
	d := newTxQDisc(w, 1, 64, true)
	writing := make(chan struct{})
	go func() {
		defer close(writing)
		pkt := qdFrame(1, 0, qdShort, 0)
		defer pkt.DecRef()
		d.WritePacket(pkt)
	}()
	<-w.inside
	queued := qdFrame(1, 1, qdFull, 0)
	require.Nil(t, d.WritePacket(queued))
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		d.Close()
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while a bypassed write was in progress")
	case <-time.After(20 * time.Millisecond):
	}
	w.mu.Lock()
	close(w.gate)
	w.gate = nil
	w.mu.Unlock()
	<-writing
	<-closed
	assert.Equal(t, int64(1), queued.ReadRefs(), "the qdisc let go of the frame queued before Close (written or dropped)")
	queued.DecRef()
	late := qdFrame(1, 2, qdShort, 0)
	defer late.DecRef()
	assert.IsType(t, &tcpip.ErrClosedForSend{}, d.WritePacket(late))
}
