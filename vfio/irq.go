package vfio

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/enanet/enanet/ena/hw"
)

// interrupts implements hw.Interrupts over one eventfd per MSI-X vector.
//
// Each eventfd is non-blocking and wrapped in an *os.File, so a Wait parks
// its goroutine in the Go runtime's poller (epoll) instead of holding an OS
// thread. Wake writes to the same eventfd and counts the write in pending,
// so the reader can tell a wake from an interrupt; ctx cancellation uses the
// file's read deadline. No goroutine outlives a Wait.
type interrupts struct {
	vecs   []*vector
	closed atomic.Bool
}

// vector is one eventfd and its wake bookkeeping.
type vector struct {
	f  *os.File
	fd int // the raw eventfd; f.Fd() would switch it to blocking mode
	// mu makes "write 1 and count a pending wake" atomic with respect to
	// "read the counter and take the pending wakes".
	mu      sync.Mutex
	pending uint64
}

var _ hw.Interrupts = (*interrupts)(nil)

// newEventfds creates n non-blocking eventfds.
func newEventfds(n int) ([]int, error) {
	fds := make([]int, 0, n)
	for range n {
		fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
		if err != nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			return nil, fmt.Errorf("vfio: create eventfd for interrupts: %w", err)
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

// newInterrupts takes ownership of the eventfds.
func newInterrupts(fds []int) *interrupts {
	in := &interrupts{}
	for i, fd := range fds {
		in.vecs = append(in.vecs, &vector{fd: fd, f: os.NewFile(uintptr(fd), fmt.Sprintf("vfio-msix-%d", i))})
	}
	return in
}

// NumVectors implements hw.Interrupts.
func (in *interrupts) NumVectors() int { return len(in.vecs) }

// Wait implements hw.Interrupts. One goroutine waits on a vector at a time
// (the driver's per-queue poller); a cancelled Wait's deadline would disturb
// a concurrent waiter on the same vector.
func (in *interrupts) Wait(ctx context.Context, v int) (uint64, error) {
	if v < 0 || v >= len(in.vecs) {
		return 0, fmt.Errorf("vfio: wait on vector %d: device has %d MSI-X vectors (poll instead)", v, len(in.vecs))
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if in.closed.Load() {
		return 0, hw.ErrClosed
	}
	vec := in.vecs[v]
	rc, err := vec.f.SyscallConn()
	if err != nil {
		return 0, closedErr(err)
	}
	// A fresh Wait clears a deadline a previous cancelled Wait left.
	if err := vec.f.SetReadDeadline(time.Time{}); err != nil {
		return 0, closedErr(err)
	}
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = vec.f.SetReadDeadline(time.Unix(1, 0))
		close(done)
	})
	var n, woken uint64
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		var b [8]byte
		vec.mu.Lock()
		defer vec.mu.Unlock()
		_, e := unix.Read(int(fd), b[:])
		if e == unix.EAGAIN {
			return false // park in the poller until readable
		}
		if e != nil {
			rerr = e
			return true
		}
		n = binary.NativeEndian.Uint64(b[:])
		woken = min(n, vec.pending)
		vec.pending -= woken
		n -= woken
		return true
	})
	if !stop() {
		<-done // the deadline was set; let it land before we return
	}
	switch {
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		if cerr := ctx.Err(); cerr != nil {
			return 0, cerr
		}
		return 0, err
	case err != nil && in.closed.Load():
		return 0, hw.ErrClosed
	case err != nil:
		return 0, closedErr(err)
	case rerr != nil:
		return 0, fmt.Errorf("vfio: read interrupt eventfd of vector %d: %w", v, rerr)
	}
	return n, nil
}

// Wake implements hw.Interrupts: it adds 1 to the vector's eventfd, which
// releases a current waiter or the next one, and records that the 1 is not an
// interrupt.
func (in *interrupts) Wake(v int) {
	if v < 0 || v >= len(in.vecs) {
		return
	}
	vec := in.vecs[v]
	rc, err := vec.f.SyscallConn()
	if err != nil {
		return
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_ = rc.Write(func(fd uintptr) bool {
		vec.mu.Lock()
		defer vec.mu.Unlock()
		if _, err := unix.Write(int(fd), one[:]); err == nil {
			vec.pending++
		}
		return true
	})
}

// fds returns the raw eventfds, to hand to VFIO_DEVICE_SET_IRQS.
func (in *interrupts) fds() []int32 {
	out := make([]int32, len(in.vecs))
	for i, v := range in.vecs {
		out[i] = int32(v.fd)
	}
	return out
}

// close closes the eventfds; waiters return hw.ErrClosed. Safe twice.
func (in *interrupts) close() error {
	in.closed.Store(true)
	var errs []error
	for _, v := range in.vecs {
		if err := v.f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// closedErr maps a use-after-close of the eventfd to hw.ErrClosed.
func closedErr(err error) error {
	if errors.Is(err, os.ErrClosed) || errors.Is(err, syscall.EBADF) {
		return hw.ErrClosed
	}
	return err
}
