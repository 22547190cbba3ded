package ena

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena/hw"
	"github.com/enanet/enanet/ena/hw/dmamem"
	"github.com/enanet/enanet/ena/spec"
)

// fakeDMA hands out heap memory with made-up device addresses. Enough for
// the admin queue unit tests; the real proof is against enasim.
type fakeDMA struct {
	mu      sync.Mutex
	next    uint64
	regions map[uint64][]byte
}

func (f *fakeDMA) Alloc(size, align int) (*hw.Region, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.regions == nil {
		f.regions, f.next = map[uint64][]byte{}, 0x10000
	}
	b := make([]byte, size)
	addr := f.next
	f.next += uint64(size+4095) &^ 4095
	f.regions[addr] = b
	return hw.NewRegion(b, addr, func() error { return nil }), nil
}

func (f *fakeDMA) AddrWidth() int { return 48 }

func (f *fakeDMA) mem(addr uint64) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	for a, b := range f.regions {
		if addr >= a && addr < a+uint64(len(b)) {
			return b[addr-a:]
		}
	}
	panic(fmt.Sprintf("fake: no memory at 0x%x", addr))
}

// fakeAdmin answers admin commands synchronously on the AQ doorbell.
// respond decides each command's status; hold=true keeps the completion
// back until release.
type fakeAdmin struct {
	dma     *fakeDMA
	mu      sync.Mutex
	regs    map[uint32]uint32
	head    uint16
	cqTail  uint16
	respond func(entry []byte) (st spec.Status, hold bool)
	held    [][spec.ACQEntrySize]byte
}

func (f *fakeAdmin) Size() uint32             { return 0x4000 }
func (f *fakeAdmin) Read32(off uint32) uint32 { f.mu.Lock(); defer f.mu.Unlock(); return f.regs[off] }

func (f *fakeAdmin) Write32(off, v uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.regs[off] = v
	if off != spec.RegAQDB {
		return
	}
	depth := uint16(spec.DecodeQueueCaps(f.regs[spec.RegAQCaps]).Depth)
	sq := f.dma.mem(uint64(f.regs[spec.RegAQBaseLo]) | uint64(f.regs[spec.RegAQBaseHi])<<32)
	for f.head != uint16(v) {
		e := sq[int(f.head&(depth-1))*spec.AQEntrySize:][:spec.AQEntrySize]
		f.head++
		st, hold := spec.StatusSuccess, false
		if f.respond != nil {
			st, hold = f.respond(e)
		}
		var c [spec.ACQEntrySize]byte
		h := spec.ACQHeader{CommandID: spec.AQEntryCommandID(e), Status: st}
		h.Encode(c[:])
		c[spec.ACQPayloadOffset] = e[17] // echo the feature id so callers can check matching
		if hold {
			f.held = append(f.held, c)
			continue
		}
		f.completeLocked(c)
	}
}

func (f *fakeAdmin) completeLocked(c [spec.ACQEntrySize]byte) {
	depth := uint16(spec.DecodeQueueCaps(f.regs[spec.RegACQCaps]).Depth)
	cq := f.dma.mem(uint64(f.regs[spec.RegACQBaseLo]) | uint64(f.regs[spec.RegACQBaseHi])<<32)
	slot := cq[int(f.cqTail&(depth-1))*spec.ACQEntrySize:][:spec.ACQEntrySize]
	phase := (f.cqTail/depth)%2 == 0
	f.cqTail++
	copy(slot[4:], c[4:])
	// Word 0 (id, status, phase) last and atomically, as a device's single
	// 32-bit write; the driver's atomic phase load pairs with it.
	spec.SetACQEntryPhase(c[:], phase)
	dmamem.Publish32(slot, 0, binary.LittleEndian.Uint32(c[:4]))
}

// release delivers held completions, last first (out of order).
func (f *fakeAdmin) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.held) - 1; i >= 0; i-- {
		f.completeLocked(f.held[i])
	}
	f.held = nil
}

func newTestAdmin(t *testing.T, depth uint16) (*adminQueue, *fakeAdmin) {
	t.Helper()
	dma := &fakeDMA{}
	f := &fakeAdmin{dma: dma, regs: map[uint32]uint32{}}
	r := &regs{bar: f}
	q, err := newAdminQueue(dma, r, nil, depth)
	if err != nil {
		t.Fatal(err)
	}
	q.register()
	q.setTimeout(200 * time.Millisecond)
	return q, f
}

func getFeatureEntry(id spec.FeatureID) []byte {
	var e [spec.AQEntrySize]byte
	c := spec.GetFeatureCmd{FeatureID: id}
	c.Encode(e[:])
	return e[:]
}

func TestAdminPolledSuccessAndPhaseWrap(t *testing.T) {
	q, _ := newTestAdmin(t, 4)
	// More commands than the depth: both rings wrap and phases toggle.
	for i := range 11 {
		if _, err := q.exec(fmt.Sprintf("cmd %d", i), getFeatureEntry(spec.FeatDeviceAttributes)); err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
	}
	if got := q.completed.Load(); got != 11 {
		t.Fatalf("completed %d, want 11", got)
	}
}

func TestAdminErrorStatusIsTyped(t *testing.T) {
	q, f := newTestAdmin(t, 4)
	f.respond = func([]byte) (spec.Status, bool) { return spec.StatusIllegalParameter, false }
	_, err := q.exec("create Tx CQ 3", getFeatureEntry(spec.FeatLLQ))
	var ae *AdminError
	if !errors.As(err, &ae) || ae.Status != spec.StatusIllegalParameter {
		t.Fatalf("err = %v, want *AdminError ILLEGAL_PARAMETER", err)
	}
	if want := "ena: create Tx CQ 3: ILLEGAL_PARAMETER"; err.Error() != want {
		t.Fatalf("message %q, want %q", err.Error(), want)
	}
	if !errors.Is(err, &spec.StatusError{Status: spec.StatusIllegalParameter}) {
		t.Fatalf("errors.Is with spec.StatusError failed")
	}
	if _, broken := q.broken(); broken {
		t.Fatal("an error status must not break the queue")
	}
}

func TestAdminTimeoutMarksBroken(t *testing.T) {
	q, f := newTestAdmin(t, 4)
	q.setTimeout(30 * time.Millisecond)
	f.respond = func([]byte) (spec.Status, bool) { return spec.StatusSuccess, true }
	_, err := q.exec("get device attributes", getFeatureEntry(spec.FeatDeviceAttributes))
	if !errors.Is(err, ErrAdminTimeout) {
		t.Fatalf("err = %v, want ErrAdminTimeout", err)
	}
	if r, broken := q.broken(); !broken || r != spec.ResetAdminTO {
		t.Fatalf("broken = %v reason %v, want ADMIN_TO", broken, r)
	}
	if _, err := q.exec("next", getFeatureEntry(spec.FeatDeviceAttributes)); !errors.Is(err, ErrAdminBroken) {
		t.Fatalf("after timeout: %v, want ErrAdminBroken", err)
	}
	// A late completion is absorbed without harm.
	f.release()
	q.process()
}

func TestAdminConcurrentOutOfOrder(t *testing.T) {
	q, f := newTestAdmin(t, 8)
	// Hold every completion until 6 are outstanding, then deliver in
	// reverse order: each caller must get its own response.
	var mu sync.Mutex
	n := 0
	f.respond = func(e []byte) (spec.Status, bool) {
		mu.Lock()
		defer mu.Unlock()
		n++
		return spec.Status(0), true
	}
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := q.exec(fmt.Sprintf("c%d", i), getFeatureEntry(spec.FeatureID(i+1)))
			if err == nil && resp[spec.ACQPayloadOffset] != byte(i+1) {
				err = fmt.Errorf("got the response for feature %d", resp[spec.ACQPayloadOffset])
			}
			errs[i] = err
		}()
	}
	deadline := time.Now().Add(time.Second)
	for {
		mu.Lock()
		done := n == 6
		mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	f.release()
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("caller %d: %v", i, err)
		}
	}
}

// TestAdminFullQueueWaits fills a depth-4 queue with commands whose
// completions are held, then issues more: they must wait for free slots
// (counted as out-of-space) and succeed once completions arrive, and no
// command is counted as failed.
func TestAdminFullQueueWaits(t *testing.T) {
	for _, polling := range []bool{true, false} {
		t.Run(fmt.Sprintf("polling=%v", polling), func(t *testing.T) {
			q, f := newTestAdmin(t, 4)
			q.polling.Store(polling)
			q.setTimeout(2 * time.Second)
			var mu sync.Mutex
			held := 0
			f.respond = func([]byte) (spec.Status, bool) {
				mu.Lock()
				defer mu.Unlock()
				held++
				return spec.StatusSuccess, true
			}
			if !polling {
				// Interrupt mode: a stand-in for the management interrupt
				// goroutine scans the ACQ.
				stop := make(chan struct{})
				defer close(stop)
				go func() {
					for {
						select {
						case <-stop:
							return
						case <-time.After(time.Millisecond):
							q.process()
						}
					}
				}()
			}
			const n = 12
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := q.exec(fmt.Sprintf("c%d", i), getFeatureEntry(spec.FeatDeviceAttributes)); err != nil {
						errs <- err
					}
				}()
			}
			// Release completions as they are held until all are done.
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
		loop:
			for {
				select {
				case <-done:
					break loop
				case <-time.After(5 * time.Millisecond):
					f.release()
				}
			}
			close(errs)
			for err := range errs {
				assert.NoError(t, err)
			}
			assert.Zero(t, q.failed.Load(), "commands counted as failed")
			assert.NotZero(t, q.outOfSpace.Load(), "out-of-space waits not counted")
			assert.EqualValues(t, n, q.completed.Load(), "completed commands")
		})
	}
}

// TestAdminFullQueueTimesOut: with every slot held for longer than the
// admin timeout, a new command gets ErrAdminFull, and is not counted as a
// failed command.
func TestAdminFullQueueTimesOut(t *testing.T) {
	q, f := newTestAdmin(t, 2)
	q.setTimeout(50 * time.Millisecond)
	f.respond = func([]byte) (spec.Status, bool) { return spec.StatusSuccess, true }
	// Occupy both slots without waiting for them.
	for i := range 2 {
		_, err := q.submit(fmt.Sprintf("held %d", i), getFeatureEntry(spec.FeatDeviceAttributes))
		require.NoError(t, err)
	}
	start := time.Now()
	_, err := q.exec("one more", getFeatureEntry(spec.FeatDeviceAttributes))
	require.ErrorIs(t, err, ErrAdminFull)
	assert.GreaterOrEqual(t, time.Since(start), 40*time.Millisecond, "gave up before the admin timeout")
	assert.Zero(t, q.failed.Load(), "a full queue counted as a failed command")
	assert.EqualValues(t, 1, q.outOfSpace.Load(), "out-of-space count")
	f.release()
	q.process()
}
