package ena

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/enanet/enanet/ena/hw"
	"github.com/enanet/enanet/ena/hw/dmamem"
	"github.com/enanet/enanet/ena/hw/mmio"
	"github.com/enanet/enanet/ena/spec"
)

// AdminError is an admin command the device completed with a status other
// than SUCCESS (§4.5). Op names the driver step, so the message reads as a
// sentence: "ena: create Tx CQ 3: ILLEGAL_PARAMETER".
type AdminError struct {
	Op        string      // driver step, e.g. "create Tx CQ 3"
	Opcode    spec.Opcode // the admin command
	Status    spec.Status // never StatusSuccess
	ExtStatus uint16      // extended_status (§4.3), logged only
}

// Error reads "ena: <step>: <STATUS>".
func (e *AdminError) Error() string {
	if e.ExtStatus != 0 {
		return fmt.Sprintf("ena: %s: %v (extended status 0x%x)", e.Op, e.Status, e.ExtStatus)
	}
	return fmt.Sprintf("ena: %s: %v", e.Op, e.Status)
}

// Unwrap exposes the wire-level error, so errors.Is(err,
// &spec.StatusError{Status: spec.StatusIllegalParameter}) matches.
func (e *AdminError) Unwrap() error {
	return &spec.StatusError{Opcode: e.Opcode, Status: e.Status, ExtendedStatus: e.ExtStatus}
}

// Admin queue errors. They are returned wrapped with the step that failed.
var (
	// ErrAdminTimeout: the device did not complete a command within the
	// admin timeout (CAPS ADMIN_CMD_TO or the HW hint, §4.1). The admin
	// queue is then marked broken and the watchdog resets the device with
	// ADMIN_TO (§9.2).
	ErrAdminTimeout = errors.New("admin command timed out")
	// ErrAdminBroken: the admin queue stopped accepting commands after an
	// earlier failure; a reset is pending.
	ErrAdminBroken = errors.New("admin queue is not running")
	// ErrAdminFull: depth commands stayed outstanding for the whole admin
	// timeout, so a new command found no free slot (§4.1). A full queue is
	// back-pressure: callers wait for a slot first and get this only when
	// none freed up in time.
	ErrAdminFull = errors.New("admin queue full")
	// ErrResetting: the device is being reset; retry shortly.
	ErrResetting = errors.New("ena: device is resetting")
	// ErrClosed: the device was closed.
	ErrClosed = errors.New("ena: device closed")
	// ErrDeviceFatal: DEV_STS reports FATAL_ERROR (§2.2).
	ErrDeviceFatal = errors.New("device reports FATAL_ERROR")
)

// Admin queue states.
const (
	adminRunning int32 = iota
	adminBroken        // a timeout or protocol violation; needs a reset
	adminStopped       // reset or close in progress
)

// adminCmd is one outstanding command, indexed by its command id.
type adminCmd struct {
	op   string
	code spec.Opcode
	done chan struct{}
	resp [spec.ACQEntrySize]byte
	err  error // set instead of resp when the command is aborted
}

// adminQueue is the AQ/ACQ pair (§4.1): a producer ring of 64-byte commands
// the driver fills and a completion ring the device fills. Completions are
// matched to callers by command id, so any number of goroutines may issue
// commands at once.
type adminQueue struct {
	regs  *regs
	tr    *tracer
	sq    *hw.Region
	cq    *hw.Region
	depth uint16

	mu          sync.Mutex
	tail        uint16 // free-running AQ producer counter
	sqPhase     bool
	head        uint16 // free-running ACQ consumer counter
	cqPhase     bool
	cmds        []*adminCmd // by command id; nil = free
	nextID      uint16
	outstanding int
	// slotFreed is closed (and replaced) whenever outstanding drops or the
	// state changes, waking callers that wait for a free slot.
	slotFreed chan struct{}

	state   atomic.Int32
	reason  atomic.Uint32 // reset reason recorded when marked broken
	polling atomic.Bool   // true: callers poll the ACQ themselves
	timeout atomic.Int64  // ns

	// fatal, if set, is consulted while a command waits; it lets a wait end
	// early when the device has declared itself dead (DEV_STS FATAL).
	fatal func() error

	submitted, completed, failed, timeouts atomic.Uint64
	// outOfSpace counts commands that found all depth slots taken and
	// waited for one (ena-com's out_of_space). A wait is not a failure.
	outOfSpace atomic.Uint64
}

func newAdminQueue(dma hw.DMA, r *regs, tr *tracer, depth uint16) (*adminQueue, error) {
	sq, err := dma.Alloc(int(depth)*spec.AQEntrySize, 4096)
	if err != nil {
		return nil, fmt.Errorf("ena: allocate admin SQ: %w", err)
	}
	cq, err := dma.Alloc(int(depth)*spec.ACQEntrySize, 4096)
	if err != nil {
		_ = sq.Free()
		return nil, fmt.Errorf("ena: allocate admin CQ: %w", err)
	}
	q := &adminQueue{regs: r, tr: tr, sq: sq, cq: cq, depth: depth, cmds: make([]*adminCmd, depth),
		slotFreed: make(chan struct{})}
	q.timeout.Store(int64(spec.DefaultAdminTimeout))
	q.polling.Store(true)
	q.reinit()
	return q, nil
}

// reinit zeroes both rings and the counters (§4.1: tail 0 phase 1, head 0
// phase 1) and aborts anything outstanding. Used at bring-up and after a
// device reset, which discards the device's view of the rings.
func (q *adminQueue) reinit() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.abortLocked(ErrResetting)
	clear(q.sq.Bytes)
	clear(q.cq.Bytes)
	q.tail, q.head = 0, 0
	q.sqPhase, q.cqPhase = true, true
	q.nextID = 0
	q.state.Store(adminRunning)
	q.reason.Store(0)
}

// register writes the ring addresses and sizes (§6 steps 8-9).
func (q *adminQueue) register() {
	q.regs.write(spec.RegAQBaseLo, uint32(q.sq.Addr))
	q.regs.write(spec.RegAQBaseHi, uint32(q.sq.Addr>>32))
	q.regs.write(spec.RegACQBaseLo, uint32(q.cq.Addr))
	q.regs.write(spec.RegACQBaseHi, uint32(q.cq.Addr>>32))
	caps := spec.QueueCaps{Depth: q.depth, EntrySize: spec.AQEntrySize}
	q.regs.write(spec.RegAQCaps, caps.Encode())
	caps.EntrySize = spec.ACQEntrySize
	q.regs.write(spec.RegACQCaps, caps.Encode())
}

func (q *adminQueue) free() {
	q.mu.Lock()
	q.abortLocked(ErrClosed)
	q.state.Store(adminStopped)
	q.mu.Unlock()
	_ = q.sq.Free()
	_ = q.cq.Free()
}

// stop refuses new commands and fails the outstanding ones with err.
func (q *adminQueue) stop(err error) {
	q.mu.Lock()
	q.state.Store(adminStopped)
	q.abortLocked(err)
	q.mu.Unlock()
}

func (q *adminQueue) abortLocked(err error) {
	for i, c := range q.cmds {
		if c != nil {
			c.err = err
			close(c.done)
			q.cmds[i] = nil
		}
	}
	q.outstanding = 0
	q.wakeSlotWaitersLocked()
}

// wakeSlotWaitersLocked wakes every caller waiting in acquireSlot.
func (q *adminQueue) wakeSlotWaitersLocked() {
	close(q.slotFreed)
	q.slotFreed = make(chan struct{})
}

// markBroken records that the queue can no longer be trusted; the watchdog
// resets the device with reason (ADMIN_TO or MISSING_ADMIN_INTERRUPT, §9.2).
// Callers waiting for a slot notice within one polling interval.
func (q *adminQueue) markBroken(reason spec.ResetReason) {
	if q.state.CompareAndSwap(adminRunning, adminBroken) {
		q.reason.Store(uint32(reason))
	}
}

// broken reports whether the queue needs a reset, and with which reason.
func (q *adminQueue) broken() (spec.ResetReason, bool) {
	if q.state.Load() != adminBroken {
		return 0, false
	}
	return spec.ResetReason(q.reason.Load()), true
}

// exec submits one encoded 64-byte command and waits for its completion.
// op names the step for errors. It returns the whole ACQ entry; the payload
// starts at spec.ACQPayloadOffset.
func (q *adminQueue) exec(op string, entry []byte) ([]byte, error) {
	c, err := q.submit(op, entry)
	if err != nil {
		if !errors.Is(err, ErrAdminFull) {
			q.failed.Add(1)
		}
		return nil, fmt.Errorf("ena: %s: %w", op, err)
	}
	if err := q.wait(c); err != nil {
		q.failed.Add(1)
		return nil, err
	}
	h := spec.DecodeACQHeader(c.resp[:])
	if h.Status != spec.StatusSuccess {
		q.failed.Add(1)
		q.tr.printf("admin %s -> %v\n", op, h.Status)
		return nil, &AdminError{Op: op, Opcode: c.code, Status: h.Status, ExtStatus: h.ExtendedStatus}
	}
	q.tr.printf("admin %s -> SUCCESS\n", op)
	return c.resp[:], nil
}

// submit copies the command into the AQ and rings the doorbell (§4.1).
// When all depth slots are taken it first waits for one (acquireSlot).
func (q *adminQueue) submit(op string, entry []byte) (*adminCmd, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.acquireSlotLocked(); err != nil {
		return nil, err
	}
	// Command ids cycle through 0..depth-1; completions may arrive out of
	// order, so skip ids still in use.
	id := q.nextID
	for q.cmds[id] != nil {
		id = (id + 1) % q.depth
	}
	q.nextID = (id + 1) % q.depth
	c := &adminCmd{op: op, code: spec.AQEntryOpcode(entry), done: make(chan struct{})}
	q.cmds[id] = c
	q.outstanding++

	slot := q.sq.Bytes[int(q.tail&(q.depth-1))*spec.AQEntrySize:][:spec.AQEntrySize]
	copy(slot, entry[:spec.AQEntrySize])
	spec.SetAQEntryID(slot, id, q.sqPhase)
	q.tail++
	if q.tail&(q.depth-1) == 0 {
		q.sqPhase = !q.sqPhase
	}
	q.submitted.Add(1)
	q.tr.printf("admin %d %v %s\n", id, c.code, op)
	mmio.StoreBarrier() // the entry must be visible before the doorbell
	q.regs.write(spec.RegAQDB, uint32(q.tail))
	return c, nil
}

// acquireSlotLocked returns with q.mu held and a free slot, or with the
// reason there is none: the queue is broken or stopped, or no slot freed up
// within the admin timeout (ErrAdminFull). Like ena-com, a full queue is
// counted as out-of-space, not as a failed command. In polling mode the
// waiter scans the ACQ itself, so slots free up even when every command
// owner is asleep between its own scans.
func (q *adminQueue) acquireSlotLocked() error {
	var deadline time.Time
	for {
		switch q.state.Load() {
		case adminBroken:
			return ErrAdminBroken
		case adminStopped:
			return ErrResetting
		}
		if q.outstanding < int(q.depth) {
			return nil
		}
		now := time.Now()
		if deadline.IsZero() {
			q.outOfSpace.Add(1)
			deadline = now.Add(time.Duration(q.timeout.Load()))
		} else if !now.Before(deadline) {
			return ErrAdminFull
		}
		freed := q.slotFreed
		q.mu.Unlock()
		if q.polling.Load() {
			q.process()
		}
		t := time.NewTimer(min(deadline.Sub(now), 5*time.Millisecond))
		select {
		case <-freed:
		case <-t.C:
		}
		t.Stop()
		q.mu.Lock()
	}
}

// process consumes every ACQ entry whose phase matches (§4.1) and hands
// each to its waiter. It is called by polling waiters and by the
// management-interrupt goroutine.
func (q *adminQueue) process() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.state.Load() == adminStopped {
		return
	}
	for {
		slot := q.cq.Bytes[int(q.head&(q.depth-1))*spec.ACQEntrySize:][:spec.ACQEntrySize]
		// Phase first with one atomic load, then the rest (§4.1).
		w0 := dmamem.Acquire32(slot, 0)
		if (w0>>24)&spec.ACQFlagPhase != 0 != q.cqPhase {
			return
		}
		id := spec.ACQEntryCommandID(slot)
		q.head++
		if q.head&(q.depth-1) == 0 {
			q.cqPhase = !q.cqPhase
		}
		if int(id) >= len(q.cmds) || q.cmds[id] == nil {
			// A completion nobody waits for breaks the id contract; the
			// queue state is unknown from here on (ena_com does the same).
			q.tr.printf("admin completion for unknown command id %d\n", id)
			q.markBroken(spec.ResetAdminTO)
			continue
		}
		c := q.cmds[id]
		copy(c.resp[:], slot)
		q.cmds[id] = nil
		q.outstanding--
		q.completed.Add(1)
		close(c.done)
		q.wakeSlotWaitersLocked()
	}
}

// wait blocks until c completes, the timeout passes, or the queue is
// stopped. Polling mode sleeps 100 µs doubling to 5 ms between ACQ scans
// (§4.1); interrupt mode relies on the management goroutine.
func (q *adminQueue) wait(c *adminCmd) error {
	timeout := time.Duration(q.timeout.Load())
	deadline := time.Now().Add(timeout)
	delay := 100 * time.Microsecond
	fatalCheck := time.Now()
	for {
		if q.polling.Load() {
			q.process()
		}
		select {
		case <-c.done:
			if c.err != nil {
				return fmt.Errorf("ena: %s: %w", c.op, c.err)
			}
			return nil
		default:
		}
		now := time.Now()
		if now.After(deadline) {
			return q.timedOut(c, timeout)
		}
		if q.fatal != nil && now.Sub(fatalCheck) >= 20*time.Millisecond {
			fatalCheck = now
			if err := q.fatal(); err != nil {
				q.markBroken(spec.ResetAdminTO)
				return fmt.Errorf("ena: %s: %w", c.op, err)
			}
		}
		sleep := min(delay, time.Until(deadline))
		if q.polling.Load() {
			time.Sleep(sleep)
			delay = min(2*delay, 5*time.Millisecond)
			continue
		}
		t := time.NewTimer(max(min(time.Until(deadline), 20*time.Millisecond), time.Millisecond))
		select {
		case <-c.done:
		case <-t.C:
		}
		t.Stop()
	}
}

// timedOut handles a command that did not complete in time: if its
// completion is in fact sitting in the ACQ the interrupt went missing
// (MISSING_ADMIN_INTERRUPT), else the device is stuck (ADMIN_TO) (§9.2).
func (q *adminQueue) timedOut(c *adminCmd, timeout time.Duration) error {
	reason := spec.ResetAdminTO
	if !q.polling.Load() {
		q.process()
		select {
		case <-c.done:
			reason = spec.ResetMissingAdminInterrupt
		default:
		}
	}
	q.timeouts.Add(1)
	q.markBroken(reason)
	q.tr.printf("admin %s -> timeout after %v\n", c.op, timeout)
	return fmt.Errorf("ena: %s: %w after %v (queue marked for reset, %v)", c.op, ErrAdminTimeout, timeout, reason)
}

// setTimeout applies CAPS ADMIN_CMD_TO or the HW hint
// admin_completion_tx_timeout (§9.1).
func (q *adminQueue) setTimeout(d time.Duration) {
	if d > 0 {
		q.timeout.Store(int64(d))
	}
}
