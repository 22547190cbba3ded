package vfio

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/enanet/enanet/ena/hw"
)

// fire writes n to an eventfd the way the kernel signals an MSI-X vector.
func fire(t *testing.T, fd int32, n uint64) {
	t.Helper()
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], n)
	if _, err := unix.Write(int(fd), b[:]); err != nil {
		t.Fatal(err)
	}
}

func newTestInterrupts(t *testing.T, n int) *interrupts {
	t.Helper()
	fds, err := newEventfds(n)
	if err != nil {
		t.Fatal(err)
	}
	in := newInterrupts(fds)
	t.Cleanup(func() { in.close() })
	return in
}

func TestWaitReturnsOnInterrupt(t *testing.T) {
	in := newTestInterrupts(t, 2)
	if in.NumVectors() != 2 {
		t.Fatalf("NumVectors = %d", in.NumVectors())
	}
	done := make(chan uint64)
	go func() {
		n, err := in.Wait(context.Background(), 1)
		if err != nil {
			t.Error(err)
		}
		done <- n
	}()
	time.Sleep(10 * time.Millisecond) // let it park
	fire(t, in.fds()[1], 3)
	if n := <-done; n != 3 {
		t.Fatalf("Wait collected %d interrupts, want 3", n)
	}
	// An interrupt that fires before Wait is not lost.
	fire(t, in.fds()[0], 1)
	if n, err := in.Wait(context.Background(), 0); n != 1 || err != nil {
		t.Fatalf("pending interrupt: %d %v", n, err)
	}
}

func TestWaitReturnsOnWake(t *testing.T) {
	in := newTestInterrupts(t, 1)
	done := make(chan error)
	go func() {
		n, err := in.Wait(context.Background(), 0)
		if n != 0 {
			t.Errorf("Wake returned %d interrupts", n)
		}
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	in.Wake(0)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Wake with nobody waiting releases the next Wait; an interrupt
	// alongside it is still counted.
	in.Wake(0)
	fire(t, in.fds()[0], 2)
	if n, err := in.Wait(context.Background(), 0); n != 2 || err != nil {
		t.Fatalf("wake+interrupt: %d %v", n, err)
	}
	in.Wake(5) // out of range: ignored
}

func TestWaitReturnsOnCancel(t *testing.T) {
	in := newTestInterrupts(t, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := in.Wait(ctx, 0)
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Wait: %v", err)
	}
	// The vector still works after a cancelled wait.
	fire(t, in.fds()[0], 1)
	if n, err := in.Wait(context.Background(), 0); n != 1 || err != nil {
		t.Fatalf("after cancel: %d %v", n, err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if _, err := in.Wait(ctx2, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline: %v", err)
	}
}

func TestWaitAfterClose(t *testing.T) {
	in := newTestInterrupts(t, 1)
	done := make(chan error)
	go func() {
		_, err := in.Wait(context.Background(), 0)
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	if err := in.close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, hw.ErrClosed) {
		t.Fatalf("Wait during close: %v", err)
	}
	if err := in.close(); err != nil {
		t.Fatal("second close:", err)
	}
	if _, err := in.Wait(context.Background(), 0); !errors.Is(err, hw.ErrClosed) {
		t.Fatalf("Wait after close: %v", err)
	}
	if _, err := newInterrupts(nil).Wait(context.Background(), 0); err == nil || !strings.Contains(err.Error(), "poll instead") {
		t.Fatalf("Wait with no vectors: %v", err)
	}
}
