package enanic

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/ena/spec"
	"github.com/enanet/enanet/link"
)

// The fault matrix: every fault enasim can inject, injected into device A
// in the middle of a full-duplex TCP transfer between two stacks (A and B,
// each on its own simulated ENA, joined by a simulated cable). Each case
// checks the reset reason (or the documented non-reset handling), that
// both byte streams arrive intact (SHA-256), and logs how long recovery
// took. Timings are logged, never asserted: the machine is shared.
//
// The device's HW hints shorten the watchdog timings so the whole
// matrix takes a couple of minutes; matrixHints lists them and the README
// table quotes them.

// matrixHints are the device hints every matrix device announces. Under
// the race detector, on a busy machine, a goroutine can go unscheduled for
// longer than the tight values, so they are relaxed there.
var matrixHints = func() spec.HWHints {
	if raceOn {
		return spec.HWHints{DriverWatchdogTimeout: 2000, MissingTxCompletionTimeout: 400,
			MissedTxCompletionThreshold: 2, AdminCompletionTxTimeout: 1000}
	}
	return spec.HWHints{
		DriverWatchdogTimeout:       1000, // keep-alive timeout, ms (keep-alive period 50 ms)
		MissingTxCompletionTimeout:  100,  // ms
		MissedTxCompletionThreshold: 2,
		AdminCompletionTxTimeout:    200, // ms
	}
}()

const (
	matrixWatchdog  = 20 * time.Millisecond // ena.Config.WatchdogInterval
	matrixKeepAlive = 50 * time.Millisecond // enasim.Config.KeepAlivePeriod
	matrixBytes     = 16 << 20              // each way
	// raceBytes is the transfer under the race detector, which runs each
	// fault on one profile only (rotating): the full matrix runs without
	// it (test.sh does both).
	raceBytes = 2 << 20
)

// transferBytes is how much each direction carries.
func transferBytes() int {
	if raceOn {
		return raceBytes
	}
	return matrixBytes
}

// faultSide is one simulated ENA, its driver and a stack on it.
type faultSide struct {
	sim *enasim.Device
	dev *ena.Device
	st  *link.Stack
}

func openFaultSide(t testing.TB, w enasim.Wire, addr, prof string) *faultSide {
	t.Helper()
	p, err := enasim.ProfileByName(prof)
	require.NoError(t, err)
	p.Hints = matrixHints
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("ENANET_MATRIX_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	sim, err := enasim.New(enasim.Config{Profile: p, Wire: w, Logger: log, KeepAlivePeriod: matrixKeepAlive})
	require.NoError(t, err)
	dev, err := ena.Open(sim, ena.Config{Queues: 2, Logger: log, WatchdogInterval: matrixWatchdog})
	if err != nil {
		sim.Close()
		t.Fatal(err)
	}
	st, err := link.NewStack(New(dev), link.StackOptions{Addr: netip.MustParsePrefix(addr), Logger: log})
	if err != nil {
		dev.Close()
		sim.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		st.Close()
		dev.Close()
		sim.Close()
	})
	return &faultSide{sim: sim, dev: dev, st: st}
}

// resets returns the driver's reset count for reason (any reason if
// reason < 0).
func (s *faultSide) resets(reason int) uint64 {
	// No admin command: polling GET_STATS would itself time out on a sick
	// device and change which reset happens.
	st := s.dev.DriverStats()
	if reason < 0 {
		var n uint64
		for _, v := range st.Resets {
			n += v
		}
		return n
	}
	return st.Resets[spec.ResetReason(reason)]
}

// payloads are the two directions' bytes, made once.
var payloads = sync.OnceValue(func() [2][]byte {
	var p [2][]byte
	r := mrand.New(mrand.NewChaCha8([32]byte{15}))
	for i := range p {
		p[i] = make([]byte, matrixBytes)
		for j := 0; j < len(p[i]); j += 8 {
			v := r.Uint64()
			for k := range 8 {
				p[i][j+k] = byte(v >> (8 * k))
			}
		}
	}
	return p
})

// duplex is a full-duplex transfer of payloads between a and b, with the
// bytes received so far on each side.
type duplex struct {
	recvA, recvB atomic.Int64
	errs         chan error
	sums         [2][32]byte // what A and B received
	done         chan struct{}
}

// startDuplex connects a to b and starts both directions; it returns once
// the connection is up.
func startDuplex(t *testing.T, a, b *faultSide, port uint16) *duplex {
	t.Helper()
	p := payloads()
	p[0], p[1] = p[0][:transferBytes()], p[1][:transferBytes()]
	ln, err := b.st.ListenTCP(port)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	du := &duplex{errs: make(chan error, 4), done: make(chan struct{})}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			du.errs <- fmt.Errorf("accept: %w", err)
			close(accepted)
			return
		}
		accepted <- c
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bAddr, _ := b.st.Addr()
	ca, err := a.st.DialTCP(ctx, netip.AddrPortFrom(bAddr.Addr(), port))
	require.NoError(t, err)
	cb, ok := <-accepted
	require.True(t, ok, "accept failed")
	deadline := time.Now().Add(18 * stallQuiet())
	ca.SetDeadline(deadline)
	cb.SetDeadline(deadline)
	var wg sync.WaitGroup
	for i, c := range []net.Conn{ca, cb} {
		recv := &du.recvA
		if i == 1 {
			recv = &du.recvB
		}
		wg.Add(2)
		go func() { // send payload i
			defer wg.Done()
			buf := p[i]
			for off := 0; off < len(buf); off += 64 << 10 {
				if _, err := c.Write(buf[off:min(off+64<<10, len(buf))]); err != nil {
					du.errs <- fmt.Errorf("side %d write at %d: %w", i, off, err)
					return
				}
			}
			if tc, ok := c.(interface{ CloseWrite() error }); ok {
				tc.CloseWrite()
			}
		}()
		go func() { // receive the other side's payload
			defer wg.Done()
			h := sha256.New()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				h.Write(buf[:n])
				recv.Add(int64(n))
				if err == io.EOF {
					break
				}
				if err != nil {
					du.errs <- fmt.Errorf("side %d read after %d bytes: %w", i, recv.Load(), err)
					return
				}
			}
			copy(du.sums[i][:], h.Sum(nil))
		}()
	}
	go func() { wg.Wait(); ca.Close(); cb.Close(); close(du.done) }()
	return du
}

func (du *duplex) total() int64 { return du.recvA.Load() + du.recvB.Load() }

// wait waits for both directions and checks their SHA-256.
func (du *duplex) wait(t *testing.T) {
	t.Helper()
	select {
	case <-du.done:
	case <-time.After(24 * stallQuiet()):
		t.Fatalf("transfer did not finish: A got %d, B got %d bytes", du.recvA.Load(), du.recvB.Load())
	}
	select {
	case err := <-du.errs:
		t.Fatal(err)
	default:
	}
	p := payloads()
	n := transferBytes()
	require.Equal(t, sha256.Sum256(p[1][:n]), du.sums[0], "A received different bytes than B sent")
	require.Equal(t, sha256.Sum256(p[0][:n]), du.sums[1], "B received different bytes than A sent")
}

// matrixCase is one fault. reason < 0 means the fault must not reset the
// device; handling says what the driver does instead.
type matrixCase struct {
	name     string
	reason   int
	handling string
	inject   func(a *faultSide)
}

func matrixCases() []matrixCase {
	r := func(x spec.ResetReason) int { return int(x) }
	ctx := context.Background()
	return []matrixCase{
		{"fatal-error", r(spec.ResetGeneric), "", func(a *faultSide) { a.sim.Faults().InjectFatal("matrix") }},
		{"keep-alive-loss", r(spec.ResetKeepAliveTO), "", func(a *faultSide) {
			a.sim.Faults().StopKeepAlive(true)
			stop := time.Duration(matrixHints.DriverWatchdogTimeout) * time.Millisecond * 3 / 2
			time.AfterFunc(stop, func() { a.sim.Faults().StopKeepAlive(false) })
		}},
		{"admin-completion-dropped", r(spec.ResetAdminTO), "", func(a *faultSide) {
			a.sim.Faults().DropAdminCompletions(1)
			_, _ = a.dev.Stats(ctx)
		}},
		{"admin-completion-delayed", r(spec.ResetAdminTO), "", func(a *faultSide) {
			a.sim.Faults().DelayAdminCompletions(time.Duration(matrixHints.AdminCompletionTxTimeout) * time.Millisecond * 5 / 2)
			_, _ = a.dev.Stats(ctx)
			a.sim.Faults().DelayAdminCompletions(0)
		}},
		{"tx-completions-lost", r(spec.ResetMissTxCmpl), "", func(a *faultSide) { a.sim.Faults().LoseTxCompletions(8) }},
		{"tx-bad-req-id", r(spec.ResetInvTxReqID), "", func(a *faultSide) { a.sim.Faults().CorruptNextTxCompletion(enasim.CompletionBadReqID) }},
		{"tx-malformed", r(spec.ResetTxDescriptorMalformed), "", func(a *faultSide) { a.sim.Faults().CorruptNextTxCompletion(enasim.CompletionMBZ) }},
		{"rx-bad-req-id", r(spec.ResetInvRxReqID), "", func(a *faultSide) { a.sim.Faults().CorruptNextRxCompletion(enasim.CompletionBadReqID) }},
		{"rx-malformed", r(spec.ResetRxDescriptorMalformed), "", func(a *faultSide) { a.sim.Faults().CorruptNextRxCompletion(enasim.CompletionMBZ) }},
		{"rx-unexpected-first", r(spec.ResetRxDescriptorMalformed), "", func(a *faultSide) {
			a.sim.Faults().CorruptNextRxCompletion(enasim.CompletionUnexpectedFirst)
		}},
		{"rx-cq-overrun", r(spec.ResetInvRxReqID), "", func(a *faultSide) { a.sim.Faults().CorruptNextRxCompletion(enasim.CompletionOverrun) }},
		{"rx-stall", r(spec.ResetGeneric), "", func(a *faultSide) { a.sim.Faults().StallRx(true) }},
		{"device-reset-request", r(spec.ResetDeviceRequest), "", func(a *faultSide) { a.sim.Faults().RequestReset() }},
		{"iommu-fault", r(spec.ResetGeneric), "", func(a *faultSide) { a.sim.Faults().InjectIOMMUFault() }},
		{"io-interrupts-lost-for-good", r(spec.ResetMissInterrupt), "", func(a *faultSide) {
			a.sim.Faults().DropIOInterrupts(enasim.UntilReset)
		}},
		{"admin-interrupt-lost-for-good", r(spec.ResetMissingAdminInterrupt), "", func(a *faultSide) {
			a.sim.Faults().DropInterrupts(0, enasim.UntilReset)
		}},
		{"io-interrupts-lost-30ms", -1, "queue polled until its interrupt returns", func(a *faultSide) {
			a.sim.Faults().DropIOInterrupts(30 * time.Millisecond)
		}},
		{"link-flap-200ms", -1, "link down reported; frames dropped while down; TCP retransmits", func(a *faultSide) {
			a.sim.Faults().SetLink(false)
			time.AfterFunc(200*time.Millisecond, func() { a.sim.Faults().SetLink(true) })
		}},
		{"suspend-resume-notification", -1, "logged; no reset", func(a *faultSide) {
			a.sim.Faults().Notify(spec.AENQSyndromeSuspend)
			time.AfterFunc(100*time.Millisecond, func() { a.sim.Faults().Notify(spec.AENQSyndromeResume) })
		}},
	}
}

// trickle sends a small UDP datagram from b to addr every 5 ms once the
// transfer du has ended, until the returned stop is called, so the
// receiving device keeps getting frames.
func trickle(t *testing.T, b *faultSide, du *duplex, addr netip.AddrPort) (stop func()) {
	c, err := b.st.Dial(context.Background(), "udp", addr.String())
	require.NoError(t, err)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				select {
				case <-du.done:
					c.Write([]byte("trickle")) // best effort: the port is closed, only the frame matters
				default:
				}
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		c.Close()
	}
}

// matrixResult is one row of the recovery-time table.
type matrixResult struct {
	profile, fault, handling string
	detect, recover, flow    time.Duration // -1: not applicable
	preRate, postRate        float64       // bytes/s before the fault, and the best 50 ms window in the second after (-1: none)
	back80                   time.Duration // device running to the first 50 ms window at 80% of preRate; -1: not within the second
}

// postRecovery watches the transfer for the second after the device runs
// again (from recovered) and returns the best goodput of any 50 ms window
// in it and when a window first reached 80% of pre. A transfer that ends
// sooner counts its last, shorter window if it lasted 10 ms; ending before
// that leaves postRate -1 (too short to tell). The average over the whole
// second would say little on a fast machine: the rest of a 16 MiB transfer
// can take 100 ms, and one 200 ms retransmission timeout in it would read
// as a third of the rate however quickly TCP came back afterwards.
func postRecovery(du *duplex, pre float64, recovered time.Time) (best float64, back80 time.Duration) {
	const window, step = 50 * time.Millisecond, 5 * time.Millisecond
	type sample struct {
		at    time.Time
		bytes int64
	}
	best, back80 = -1, -1
	hist := []sample{{time.Now(), du.total()}}
	end := recovered.Add(time.Second)
	for done := false; !done && time.Now().Before(end); {
		select {
		case <-du.done:
			done = true
		case <-time.After(step):
		}
		now := sample{time.Now(), du.total()}
		for len(hist) > 1 && now.at.Sub(hist[1].at) >= window {
			hist = hist[1:]
		}
		el := now.at.Sub(hist[0].at)
		if el < window && !(done && el >= 10*time.Millisecond) {
			hist = append(hist, now)
			continue
		}
		r := float64(now.bytes-hist[0].bytes) / el.Seconds()
		best = max(best, r)
		if back80 < 0 && r >= 0.8*pre {
			back80 = now.at.Sub(recovered)
		}
		hist = append(hist, now)
	}
	return best, back80
}

var (
	matrixMu      sync.Mutex
	matrixResults []matrixResult
)

func TestFaultMatrixUnderTCP(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault matrix moves 32 MiB per case; skipped with -short")
	}
	matrixMu.Lock()
	matrixResults = nil // -count=N: one table per run
	matrixMu.Unlock()
	t.Cleanup(printMatrix(t))
	port := uint16(5000)
	profiles := enasim.ProfileNames()
	for pi, prof := range profiles {
		for ci, c := range matrixCases() {
			port++
			if raceOn && ci%len(profiles) != pi {
				continue
			}
			t.Run(prof+"/"+c.name, func(t *testing.T) { runMatrixCase(t, prof, c, port) })
		}
	}
}

func runMatrixCase(t *testing.T, prof string, c matrixCase, port uint16) {
	wa, wb := enasim.NewPair()
	a := openFaultSide(t, wa, "10.9.0.1/24", prof)
	b := openFaultSide(t, wb, "10.9.0.2/24", prof)
	before := a.resets(-1)
	expectBefore := uint64(0)
	if c.reason >= 0 {
		expectBefore = a.resets(c.reason)
	}
	du := startDuplex(t, a, b, port)
	defer watchStall(t.Logf, t.Name(), du, a, b, stallQuiet())()
	start := time.Now()
	for du.total() < int64(transferBytes())/2 { // a quarter of each direction
		select {
		case <-du.done:
			t.Fatal("transfer ended before the fault was injected")
		case <-time.After(time.Millisecond):
		}
	}
	pre := float64(du.total()) / time.Since(start).Seconds()

	t0 := time.Now()
	c.inject(a)
	res := matrixResult{profile: prof, fault: c.name, handling: c.handling, detect: -1, recover: -1, preRate: pre}
	if c.reason >= 0 {
		// Detection: the expected reset has started; recovery: the device
		// runs again.
		// A fault that is noticed only while frames arrive (lost I/O
		// interrupts: completions waiting with no interrupt) needs
		// traffic until then; a quick transfer may be over first.
		stopTrickle := trickle(t, b, du, netip.MustParseAddrPort("10.9.0.1:9"))
		defer stopTrickle()
		for a.resets(c.reason) == expectBefore {
			require.True(t, time.Since(t0) < 10*time.Second, "no %v reset within 10 s (resets %v)", spec.ResetReason(c.reason), a.dev.DriverStats().Resets)
			time.Sleep(500 * time.Microsecond)
		}
		tReset := time.Now()
		res.detect = tReset.Sub(t0)
		for a.dev.Health().State != ena.StateRunning {
			require.True(t, time.Since(tReset) < 10*time.Second, "device not running 10 s after the reset: %+v", a.dev.Health())
			time.Sleep(200 * time.Microsecond)
		}
		res.recover = time.Since(tReset)
	}
	// Traffic flowing: 256 KiB more arrived in total.
	base := du.total()
	tRun := time.Now()
	for du.total() < base+256<<10 {
		select {
		case <-du.done:
		case <-time.After(200 * time.Microsecond):
			continue
		}
		break
	}
	res.flow = time.Since(t0)
	res.postRate, res.back80 = postRecovery(du, pre, tRun)
	du.wait(t)
	if c.reason < 0 {
		require.Equal(t, before, a.resets(-1), "%s must not reset the device (resets %v)", c.name, a.dev.DriverStats().Resets)
	}
	require.Equal(t, ena.StateRunning, a.dev.Health().State)
	matrixMu.Lock()
	matrixResults = append(matrixResults, res)
	matrixMu.Unlock()
	t.Logf("%s/%s: detect %v, device recovery %v, fault to traffic %v, goodput %.0f MB/s before, best 50 ms after %.0f MB/s, back to 80%% after %v",
		prof, c.name, fmtDur(res.detect), fmtDur(res.recover), fmtDur(res.flow), res.preRate/1e6, res.postRate/1e6, fmtDur(res.back80))
}

func fmtDur(d time.Duration) string {
	if d < 0 {
		return "-"
	}
	return d.Round(100 * time.Microsecond).String()
}

// printMatrix logs the results as the README's Markdown table.
func printMatrix(t *testing.T) func() {
	return func() {
		matrixMu.Lock()
		defer matrixMu.Unlock()
		var b strings.Builder
		b.WriteString("| profile | fault | reset reason / handling | detection | device recovery | fault to traffic | goodput after / before | back to 80% |\n|---|---|---|---|---|---|---|---|\n")
		cases := map[string]matrixCase{}
		for _, c := range matrixCases() {
			cases[c.name] = c
		}
		for _, r := range matrixResults {
			c := cases[r.fault]
			how := c.handling
			if c.reason >= 0 {
				how = spec.ResetReason(c.reason).String()
			}
			ratio := "-"
			if r.preRate > 0 && r.postRate >= 0 {
				ratio = fmt.Sprintf("%.0f%%", 100*r.postRate/r.preRate)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.profile, r.fault, how, fmtDur(r.detect), fmtDur(r.recover), fmtDur(r.flow), ratio, fmtDur(r.back80))
		}
		t.Logf("fault matrix (hints %+v, watchdog %v, keep-alive period %v):\n%s", matrixHints, matrixWatchdog, matrixKeepAlive, b.String())
	}
}
