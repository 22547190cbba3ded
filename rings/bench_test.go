package rings

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/enanet/enanet/ena/spec"
)

// loopback moves one batch through the driver and the fake device: Send
// batch frames, Flush (one doorbell), the device consumes and loops them
// back, Reclaim the Tx completions, Poll the Rx side (one doorbell). It
// returns the time spent in the driver's own calls.
func loopback(tb testing.TB, tx *TxQueue, rx *RxQueue, f *fakeDev, segs [][]byte, off TxOffload, batch int, fn func(*RxPacket)) time.Duration {
	return loopbackWith(tb, tx, rx, f.process, segs, off, batch, fn)
}

func loopbackWith(tb testing.TB, tx *TxQueue, rx *RxQueue, device func(), segs [][]byte, off TxOffload, batch int, fn func(*RxPacket)) time.Duration {
	t0 := time.Now()
	for i := 0; i < batch; i++ {
		if err := tx.Send(segs, off); err != nil {
			tb.Fatalf("Send: %v", err)
		}
	}
	tx.Flush()
	t1 := time.Now()
	device()
	t2 := time.Now()
	if _, err := tx.Reclaim(); err != nil {
		tb.Fatalf("Reclaim: %v", err)
	}
	n, err := rx.Poll(batch, fn)
	if err != nil || n != batch {
		tb.Fatalf("Poll = %d, %v; want %d", n, err, batch)
	}
	return t1.Sub(t0) + time.Since(t2)
}

var benchOffload = TxOffload{L3: spec.L3ProtoIPv4, L4: spec.L4ProtoTCP, L3Csum: true, L4Csum: true,
	L4Partial: true, DF: true, L3HdrOff: 14, L3HdrLen: 20, L4HdrLen: 5}

// TestZeroAllocs: in steady state Send+Flush+Reclaim and Poll+Refill
// allocate nothing, in every placement mode, with checksum offload and with
// multi-buffer frames (the fake device allocates nothing either).
func TestZeroAllocs(t *testing.T) {
	for _, m := range modes {
		for _, size := range []int{64, 1514, 5000} {
			for _, caching := range []bool{true, false} {
				o := m.o
				o.metaCaching = caching
				tx, rx, f := newPair(t, o)
				fr := mkFrame(size, 1)
				segs := [][]byte{fr[:14], fr[14:]}
				bytes := 0
				fn := func(p *RxPacket) { bytes += p.Len }
				loopback(t, tx, rx, f, segs, benchOffload, 32, fn) // warm up
				allocs := testing.AllocsPerRun(200, func() {
					loopback(t, tx, rx, f, segs, benchOffload, 32, fn)
					loopback(t, tx, rx, f, segs, TxOffload{}, 8, fn)
				})
				if allocs != 0 {
					t.Errorf("%s size %d caching %v: %v allocations per iteration", m.name, size, caching, allocs)
				}
				f.check(t)
			}
		}
	}
}

// threadCPU is the calling thread's CPU time: unlike wall time it does not
// grow while the thread waits for a core on a busy machine.
func threadCPU() time.Duration {
	var ts syscall.Timespec
	const clockThreadCPUTimeID = 3
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}

// runBench drives batches until b.N packets went through and reports the
// per-packet metrics.
//
// drv-ns/pkt is the wall time outside the device: the clock is read once
// after each batch's Flush and once after the device ran, so every driver
// interval runs from the device's return through Reclaim and Poll of that
// batch, the loop's bookkeeping and Send and Flush of the next batch. That
// is two clock reads per batch (loopbackWith's layout took four, two of
// them charged to the driver), each a monotonic read only (time.Since of a
// base, which reads one clock where time.Now reads two): one read's cost,
// about 35 ns on a VM whose clock reads are slow, is spread over the batch.
func runBench(b *testing.B, tx *TxQueue, rx *RxQueue, device func(), segs [][]byte, batch int) {
	fn := func(p *RxPacket) {}
	loopbackWith(b, tx, rx, device, segs, benchOffload, batch, fn)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	b.ResetTimer()
	base, cpu0 := time.Now(), threadCPU()
	var drv time.Duration
	n := 0
	mark := time.Since(base)
	for n < b.N {
		for i := 0; i < batch; i++ {
			if err := tx.Send(segs, benchOffload); err != nil {
				b.Fatalf("Send: %v", err)
			}
		}
		tx.Flush()
		sent := time.Since(base)
		drv += sent - mark
		device()
		mark = time.Since(base)
		if _, err := tx.Reclaim(); err != nil {
			b.Fatalf("Reclaim: %v", err)
		}
		if got, err := rx.Poll(batch, fn); err != nil || got != batch {
			b.Fatalf("Poll = %d, %v; want %d", got, err, batch)
		}
		n += batch
	}
	end := time.Since(base)
	drv += end - mark
	cpu := threadCPU() - cpu0
	b.ReportMetric(float64(end.Nanoseconds())/float64(n), "ns/pkt")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/pkt")
	b.ReportMetric(float64(drv.Nanoseconds())/float64(n), "drv-ns/pkt")
	b.ReportMetric(float64(n)/end.Seconds(), "pkts/s")
}

// BenchmarkLoopback: Tx → fake device loopback → Rx. b.N counts packets.
// Metrics per packet: ns/pkt is wall time including the fake device (which
// parses and checks every descriptor and copies every frame twice);
// cpu-ns/pkt the same in thread CPU time; drv-ns/pkt the wall time of the
// driver's own calls only (Send, Flush, Reclaim, Poll with its refill),
// timed between the device's runs with one monotonic clock read on each
// side of the device (see runBench).
func BenchmarkLoopback(b *testing.B) {
	for _, m := range modes {
		for _, size := range []int{64, 1514} {
			for _, batch := range []int{1, 8, 32, 64} {
				b.Run(fmt.Sprintf("%s/%dB/batch%d", m.name, size, batch), func(b *testing.B) {
					o := m.o
					o.depth = 1024
					o.metaCaching = true
					tx, rx, f := newPair(b, o)
					fr := mkFrame(size, 1)
					runBench(b, tx, rx, f.process, [][]byte{fr[:14], fr[14:]}, batch)
				})
			}
		}
	}
}

// BenchmarkDriver is BenchmarkLoopback with a minimal device
// (fakeDev.fastProcess: a few loads per Tx packet, one Rx completion, no
// copies), so cpu-ns/pkt is close to the driver's own cost: Send (gather
// copy into the Tx buffer, descriptors, LLQ push), Flush, Reclaim, Poll and
// refill, plus a few ns of device.
func BenchmarkDriver(b *testing.B) {
	for _, m := range modes {
		for _, size := range []int{64, 1514} {
			for _, batch := range []int{1, 8, 32, 64} {
				b.Run(fmt.Sprintf("%s/%dB/batch%d", m.name, size, batch), func(b *testing.B) {
					o := m.o
					o.depth = 1024
					o.metaCaching = true
					tx, rx, f := newPair(b, o)
					fr := mkFrame(size, 1)
					runBench(b, tx, rx, f.fastProcess, [][]byte{fr[:14], fr[14:]}, batch)
					f.check(b)
				})
			}
		}
	}
}
