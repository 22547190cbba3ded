package ena

import (
	"runtime"
	"testing"
	"time"

	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/ena/spec"
	"github.com/stretchr/testify/require"
)

// heapAfterGC is the live heap after a full collection.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestSoakOpenClose opens and closes a device 100 times: no goroutine may
// outlive its Device and the live heap must not grow with the cycles.
func TestSoakOpenClose(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: skipped with -short")
	}
	prof, err := enasim.ProfileByName("nitro-v4")
	require.NoError(t, err)
	cycle := func() {
		wire := enasim.NewLoopback()
		sim, err := enasim.New(enasim.Config{Profile: prof, Wire: wire})
		require.NoError(t, err)
		d, err := Open(sim, Config{Queues: 2, TxDepth: 256, RxDepth: 256, Logger: quietLog})
		require.NoError(t, err)
		loopbackOK(t, d, 1)
		require.NoError(t, d.Close())
		require.NoError(t, sim.Close())
		require.NoError(t, wire.Close())
	}
	cycle() // warm up caches and pools
	baseG, baseHeap := runtime.NumGoroutine(), heapAfterGC()
	for range 100 {
		cycle()
	}
	waitGoroutines(t, baseG)
	heap := heapAfterGC()
	t.Logf("100 open/close cycles: goroutines %d -> %d, live heap %d KiB -> %d KiB",
		baseG, runtime.NumGoroutine(), baseHeap>>10, heap>>10)
	require.Less(t, heap, baseHeap+8<<20, "live heap grew by more than 8 MiB over 100 cycles")
}

// TestSoakResetsUnderTraffic resets a device 50 times in a row while frames
// flow through it: every reset recovers, and goroutines and heap stay flat.
func TestSoakResetsUnderTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: skipped with -short")
	}
	d, _ := openSim(t, "nitro-v3", Config{Queues: 2}, 0)
	f := testFrame(d.MAC(), 5, 300)
	got := rxLoop(t, d, f)
	sendUntil(t, d, f, got, 10, 5*time.Second)
	baseG, baseHeap := runtime.NumGoroutine(), heapAfterGC()
	for i := range 50 {
		require.NoError(t, d.Reset(spec.ResetUserTrigger), "reset %d", i)
		sendUntil(t, d, f, got, got.Load()+5, 5*time.Second)
	}
	waitGoroutines(t, baseG)
	heap := heapAfterGC()
	t.Logf("50 resets under traffic: goroutines %d -> %d, live heap %d KiB -> %d KiB, frames %d",
		baseG, runtime.NumGoroutine(), baseHeap>>10, heap>>10, got.Load())
	require.Less(t, heap, baseHeap+8<<20, "live heap grew by more than 8 MiB over 50 resets")
}
