package ena

import (
	"context"
	"encoding/binary"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/ena/hw"
	"github.com/enanet/enanet/ena/spec"
	"github.com/enanet/enanet/rings"
)

// A hostile device behind the hw seam: a working simulated ENA whose every
// device-visible effect can be overridden by the fuzzer. Each register
// store the driver makes runs the next step of the fuzz script after the
// model has handled the store, so a step can replace what the device just
// wrote (an admin completion, a readless response, a Tx or Rx completion)
// or write anywhere in the driver's DMA memory (AENQ entries, CQ entries,
// the readless buffer), change the value of the next register load (DEV_STS,
// CAPS, VERSION ...), or fire and swallow interrupts. The driver must not
// panic, must not hang, and must end Open with a clear error or in a
// documented state.

// hostileDevice wraps an enasim.Device.
type hostileDevice struct {
	inner *enasim.Device
	bar   *hostileBAR
	dma   *hostileDMA
}

func (h *hostileDevice) Identity() hw.Identity     { return h.inner.Identity() }
func (h *hostileDevice) Registers() hw.RegisterBAR { return h.bar }
func (h *hostileDevice) LLQ() hw.MemoryBAR         { return h.inner.LLQ() }
func (h *hostileDevice) DMA() hw.DMA               { return h.dma }
func (h *hostileDevice) Interrupts() hw.Interrupts { return h.inner.Interrupts() }
func (h *hostileDevice) Close() error              { return h.inner.Close() }
func (h *hostileDevice) script() *hostileScript    { return h.bar.s }
func newHostile(inner *enasim.Device, script []byte) *hostileDevice {
	s := &hostileScript{b: script}
	d := &hostileDevice{inner: inner, dma: &hostileDMA{inner: inner.DMA()}}
	d.bar = &hostileBAR{inner: inner.Registers(), s: s, dma: d.dma, intr: inner.Interrupts()}
	return d
}

// hostileScript is the fuzz input, consumed one step per register store.
type hostileScript struct {
	mu       sync.Mutex
	b        []byte
	override map[uint32]uint32 // next load of a register returns this
}

func (s *hostileScript) byte() (byte, bool) {
	if len(s.b) == 0 {
		return 0, false
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c, true
}

func (s *hostileScript) bytes(n int) []byte {
	n = min(n, len(s.b))
	p := s.b[:n]
	s.b = s.b[n:]
	return p
}

func (s *hostileScript) u32() uint32 {
	var w [4]byte
	copy(w[:], s.bytes(4))
	return binary.LittleEndian.Uint32(w[:])
}

// hostileBAR passes registers through to the model and runs script steps.
type hostileBAR struct {
	inner hw.RegisterBAR
	s     *hostileScript
	dma   *hostileDMA
	intr  hw.Interrupts
}

func (b *hostileBAR) Size() uint32 { return b.inner.Size() }

func (b *hostileBAR) Read32(off uint32) uint32 {
	v := b.inner.Read32(off)
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	if o, ok := b.s.override[off]; ok {
		delete(b.s.override, off)
		return o
	}
	return v
}

func (b *hostileBAR) Write32(off, val uint32) {
	b.inner.Write32(off, val)
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	op, ok := b.s.byte()
	if !ok {
		return
	}
	switch op % 8 {
	case 0, 1: // leave the device alone this time
	case 2: // the next load of a register returns an arbitrary value
		reg := uint32(b.s.u32()%0x100) &^ 3
		if b.s.override == nil {
			b.s.override = map[uint32]uint32{}
		}
		b.s.override[reg] = b.s.u32()
	case 3, 4, 5: // the device writes arbitrary bytes into driver memory
		idx, _ := b.s.byte()
		var o [2]byte
		copy(o[:], b.s.bytes(2))
		n, _ := b.s.byte()
		b.dma.scribble(int(idx), int(binary.LittleEndian.Uint16(o[:])), b.s.bytes(int(n%72)))
	case 6: // the device flips the phase bit of a word (a completion appears or vanishes)
		idx, _ := b.s.byte()
		var o [2]byte
		copy(o[:], b.s.bytes(2))
		b.dma.flip(int(idx), int(binary.LittleEndian.Uint16(o[:])))
	case 7: // a spurious or swallowed wake-up on a vector
		v, _ := b.s.byte()
		if n := b.intr.NumVectors(); n > 0 {
			b.intr.Wake(int(v) % n)
		}
	}
}

// hostileDMA records the driver's DMA regions so the script can write them.
type hostileDMA struct {
	inner   hw.DMA
	mu      sync.Mutex
	regions []*hw.Region
}

func (d *hostileDMA) AddrWidth() int { return d.inner.AddrWidth() }

func (d *hostileDMA) Alloc(size, align int) (*hw.Region, error) {
	r, err := d.inner.Alloc(size, align)
	if err == nil {
		d.mu.Lock()
		d.regions = append(d.regions, r)
		d.mu.Unlock()
	}
	return r, err
}

func (d *hostileDMA) region(idx int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.regions) == 0 {
		return nil
	}
	return d.regions[idx%len(d.regions)].Bytes // nil once freed
}

func (d *hostileDMA) scribble(idx, off int, p []byte) {
	b := d.region(idx)
	if len(b) == 0 {
		return
	}
	off %= len(b)
	copy(b[off:], p)
}

func (d *hostileDMA) flip(idx, off int) {
	b := d.region(idx)
	if len(b) < 4 {
		return
	}
	off = (off % len(b)) &^ 3
	b[off+3] ^= 1 // bit 24 of a little-endian word: the phase of ACQ/AENQ/Tx/Rx completions
	b[off] ^= 1   // bit 0: the phase of AENQ entries' flags and admin SQ ids
}

// hostileRun opens the driver on a hostile device, moves some traffic,
// reads stats, resets and closes, all within a time bound.
func hostileRun(t *testing.T, profile string, revision uint8, script []byte) {
	prof, err := enasim.ProfileByName(profile)
	if err != nil {
		t.Fatal(err)
	}
	prof.Hints.AdminCompletionTxTimeout = 20
	wire := enasim.NewLoopback()
	sim, err := enasim.New(enasim.Config{Profile: prof, Wire: wire, Revision: revision, KeepAlivePeriod: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer wire.Close()
	defer sim.Close()
	hd := newHostile(sim, script)
	done := make(chan struct{})
	go func() {
		defer close(done)
		cfg := Config{Queues: 2, TxDepth: 64, RxDepth: 64, Logger: quietLog, WatchdogInterval: 2 * time.Millisecond,
			KeepAliveTimeout: 50 * time.Millisecond, MissingTxTimeout: 10 * time.Millisecond}
		d, err := openWithHooks(hd, cfg, testHooks{maxWait: 20 * time.Millisecond})
		if err != nil {
			// A clear error: names the driver and says what failed.
			if !strings.HasPrefix(err.Error(), "ena: ") {
				t.Errorf("Open error does not read as a driver sentence: %q", err)
			}
			return
		}
		f := testFrame(d.MAC(), 1, 200)
		for i := range 20 {
			q := d.Queue(i % d.NumQueues())
			_ = q.Send([][]byte{f}, rings.TxOffload{})
			q.Flush()
			_, _ = q.Poll(16, func(*rings.RxPacket) {})
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			_ = q.WaitRx(ctx)
			cancel()
		}
		_, _ = d.Stats(context.Background())
		_ = d.Reset(spec.ResetUserTrigger)
		time.Sleep(5 * time.Millisecond)
		h := d.Health()
		switch h.State {
		case StateRunning:
		case StateRecovering, StateFailed:
			if h.LastError == "" {
				t.Errorf("device %v with no error to show: %+v", h.State, h)
			}
		default:
			t.Errorf("device in state %v before Close", h.State)
		}
		_ = d.Close()
		if got := d.Health().State; got != StateClosed {
			t.Errorf("state after Close: %v", got)
		}
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("driver did not finish within 20 s facing the hostile device (script %x)", script)
	}
}

// hostileSeeds are scripts that reach the interesting places quickly.
func hostileSeeds() [][]byte {
	return [][]byte{
		{},
		{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		{2, 0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0xff},                   // CAPS all-ones
		{2, 0x58, 0, 0, 0, 0xff, 0xff, 0xff, 0xff},                   // DEV_STS all-ones
		{2, 0x00, 0, 0, 0, 0, 0, 0, 0},                               // VERSION 0
		{0, 0, 0, 0, 0, 3, 0, 0, 0, 4, 1, 2, 3, 4},                   // readless buffer scribbled
		{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 2, 0, 0, 8, 9, 9, 9, 9, 9}, // ACQ entry scribbled
		{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 2, 0, 0},          // ACQ phase flipped
		{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
			3, 3, 0, 0, 64, 1, 0, 0, 0, 3, 0, 0, 1}, // AENQ entry
		{7, 0, 7, 1, 7, 2, 7, 3},
	}
}

// FuzzHostileDevice runs the driver's whole life (Open, traffic, stats,
// reset, Close) against a device that writes arbitrary bytes wherever it
// may write, on a readless (revision 0) and a plain-read device.
func FuzzHostileDevice(f *testing.F) {
	for _, s := range hostileSeeds() {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, script []byte, plainReads bool) {
		rev := uint8(0)
		if plainReads {
			rev = 1
		}
		hostileRun(t, "nitro-v4", rev, script)
	})
}
