package ena

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/ena/spec"
	"github.com/enanet/enanet/rings"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuf is a goroutine-safe trace sink.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// openSim brings a driver up on a simulated device with a loopback wire.
func openSim(t *testing.T, profile string, cfg Config, revision uint8) (*Device, *enasim.Device) {
	t.Helper()
	prof, err := enasim.ProfileByName(profile)
	if err != nil {
		t.Fatal(err)
	}
	wire := enasim.NewLoopback()
	sim, err := enasim.New(enasim.Config{Profile: prof, Wire: wire, Revision: revision,
		KeepAlivePeriod: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close(); _ = wire.Close() })
	if cfg.Logger == nil {
		cfg.Logger = quietLog
	}
	if cfg.TxDepth == 0 {
		cfg.TxDepth, cfg.RxDepth = 256, 256
	}
	d, err := Open(sim, cfg)
	if err != nil {
		t.Fatalf("Open on %s: %v", profile, err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d, sim
}

// testFrame is an Ethernet frame to the device's own MAC with a local
// experimental ethertype and a tag in the payload.
func testFrame(mac [6]byte, tag byte, n int) []byte {
	f := make([]byte, n)
	copy(f[0:6], mac[:])
	copy(f[6:12], mac[:])
	f[12], f[13] = 0x88, 0xB5
	for i := 14; i < n; i++ {
		f[i] = tag + byte(i)
	}
	return f
}

// loopbackOK sends a frame on queue 0 and waits for it on any queue.
func loopbackOK(t *testing.T, d *Device, tag byte) {
	t.Helper()
	loopbackSizeOK(t, d, tag, 300)
}

// loopbackSizeOK is loopbackOK with a frame of n bytes.
func loopbackSizeOK(t *testing.T, d *Device, tag byte, n int) {
	t.Helper()
	f := testFrame(d.MAC(), tag, n)
	deadline := time.Now().Add(3 * time.Second)
	sent := false
	for time.Now().Before(deadline) {
		if !sent {
			err := d.Queue(0).Send([][]byte{f}, rings.TxOffload{})
			if err == nil {
				d.Queue(0).Flush()
				sent = true
			} else if !errors.Is(err, ErrResetting) && !errors.Is(err, rings.ErrNoSpace) {
				t.Fatalf("send: %v", err)
			}
		}
		got := false
		for i := range d.NumQueues() {
			_, err := d.Queue(i).Poll(64, func(p *rings.RxPacket) {
				var b []byte
				for j := range p.NFrags {
					b = append(b, p.Frags[j]...)
				}
				if bytes.Equal(b, f) {
					got = true
				}
			})
			if err != nil {
				t.Fatalf("poll: %v", err)
			}
		}
		if got {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("frame %d never came back over loopback", tag)
}

// bringUpOrder lists trace markers that must appear in this order (§6).
var bringUpOrder = []string{
	"reg W 0x060 MMIO_RESP_LO",
	"reg W 0x054 DEV_CTL 0x00000001",
	"reg W 0x054 DEV_CTL 0x00000000",
	"reg R 0x000 VERSION",
	"reg R 0x004 CONTROLLER_VERSION",
	"reg R 0x008 CAPS",
	"reg W 0x010 AQ_BASE_LO",
	"reg W 0x020 ACQ_BASE_LO",
	"reg W 0x018 AQ_CAPS",
	"reg W 0x028 ACQ_CAPS",
	"reg W 0x038 AENQ_BASE_LO",
	"reg W 0x034 AENQ_CAPS",
	"reg W 0x04c INTR_MASK 0x00000001",
	"SET_FEATURE set host attributes",
	"GET_FEATURE get device attributes",
	"GET_FEATURE get max queues",
	"GET_FEATURE get AENQ config",
	"GET_FEATURE get stateless offloads",
	"GET_FEATURE get HW hints",
	"GET_FEATURE get LLQ",
	"GET_FEATURE get AENQ config",
	"SET_FEATURE set AENQ config",
	"reg W 0x040 AENQ_HEAD_DB 0x00000010",
	"SET_FEATURE set RSS hash function",
	"CREATE_CQ create Tx CQ 0",
	"CREATE_SQ create Tx SQ 0",
	"CREATE_CQ create Rx CQ 0",
	"CREATE_SQ create Rx SQ 0",
	"SET_FEATURE set RSS indirection table",
	"SET_FEATURE set MTU",
}

func checkOrder(t *testing.T, trace string, markers []string) {
	t.Helper()
	pos := 0
	for _, m := range markers {
		i := strings.Index(trace[pos:], m)
		if i < 0 {
			t.Fatalf("trace lacks %q after offset %d (ena-com order, §6)\n%s", m, pos, trace)
		}
		pos += i + len(m)
	}
}

func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after Close, baseline %d\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
}

func TestSimBringUpEveryProfile(t *testing.T) {
	for _, name := range enasim.ProfileNames() {
		for _, rev := range []uint8{0, 1} {
			t.Run(fmt.Sprintf("%s/rev%d", name, rev), func(t *testing.T) {
				base := runtime.NumGoroutine()
				var tr syncBuf
				prof, _ := enasim.ProfileByName(name)
				wire := enasim.NewLoopback()
				sim, err := enasim.New(enasim.Config{Profile: prof, Wire: wire, Revision: rev})
				if err != nil {
					t.Fatal(err)
				}
				d, err := Open(sim, Config{Trace: &tr, Logger: quietLog, TxDepth: 256, RxDepth: 256})
				if err != nil {
					t.Fatal(err)
				}
				var markers []string
				for _, m := range bringUpOrder {
					if rev&1 != 0 && strings.Contains(m, "MMIO_RESP") || !prof.HasLLQ() && strings.Contains(m, "get LLQ") {
						continue
					}
					markers = append(markers, m)
				}
				checkOrder(t, tr.String(), markers)
				in := d.Info()
				if in.Readless != (rev&1 == 0) {
					t.Errorf("readless %v with revision %d", in.Readless, rev)
				}
				if in.LLQ != prof.HasLLQ() {
					t.Errorf("LLQ %v on %s (reason %q)", in.LLQ, name, in.LLQReason)
				}
				for i := range 3 {
					loopbackOK(t, d, byte(i))
				}
				st, err := d.Stats(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if st.Device.TxPkts < 3 || st.Device.RxPkts < 3 {
					t.Errorf("device stats %+v", st.Device)
				}
				if err := d.Close(); err != nil {
					t.Fatal(err)
				}
				_ = sim.Close()
				_ = wire.Close()
				waitGoroutines(t, base)
			})
		}
	}
}

func TestSimLLQOffAndConfigErrors(t *testing.T) {
	d, _ := openSim(t, "nitro-v3", Config{LLQ: LLQOff, Queues: 2}, 0)
	if d.Info().LLQ {
		t.Fatal("LLQ used despite LLQOff")
	}
	loopbackOK(t, d, 7)
	for _, pol := range []LLQPolicy{LLQNormal, LLQLarge} {
		d, _ := openSim(t, "nitro-v4", Config{LLQ: pol, Queues: 1}, 0)
		if in := d.Info(); !in.LLQ {
			t.Fatalf("policy %v: no LLQ (%s)", pol, in.LLQReason)
		}
		loopbackOK(t, d, 8)
	}

	prof, _ := enasim.ProfileByName("nitro-v3")
	sim, err := enasim.New(enasim.Config{Profile: prof})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{TxDepth: 300}, "not a power of two"},
		{Config{RxDepth: 1 << 20}, "exceeds the device maximum"},
		{Config{Queues: 1000}, "the device offers"},
		{Config{MTU: 100000}, "exceeds the device maximum"},
		{Config{RSSKey: []byte{1, 2}}, "exactly 40"},
		{Config{LLQ: 9}, "unknown LLQ policy"},
	} {
		c.cfg.Logger = quietLog
		_, err := Open(sim, c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%+v) = %v, want error containing %q", c.cfg, err, c.want)
		}
	}
}

func TestSimLateAENQ(t *testing.T) {
	prof, err := enasim.ProfileByName("nitro-v3")
	require.NoError(t, err)
	sim, err := enasim.New(enasim.Config{Profile: prof})
	require.NoError(t, err)
	defer sim.Close()
	base := runtime.NumGoroutine()
	_, err = openWithHooks(sim, Config{Logger: quietLog, TxDepth: 256, RxDepth: 256}, testHooks{lateAENQ: true})
	require.Error(t, err, "late AENQ registration went unnoticed")
	// Depending on whether the device's fatal error (about 150 µs after the
	// AENQ head doorbell) comes before or after CREATE_CQ, the failure is
	// the fatal state or CREATE_CQ's UNKNOWN_ERROR; either way the message
	// must name the cause.
	var ae *AdminError
	assert.True(t, errors.Is(err, ErrDeviceFatal) || errors.As(err, &ae), "error is neither fatal nor an admin error: %v", err)
	assert.ErrorContains(t, err, "AENQ was registered after the first admin command", "error does not point at the cause")
	t.Logf("late AENQ: %v (device: %s)", err, sim.FatalReason())
	waitGoroutines(t, base)
}

// TestSimRecoveryReplaysBringUp checks that a reset re-runs every bring-up
// step in the first boot's order (§9.3 step 4 re-runs §6 from step 2),
// after resetting with the requested reason, and that the device works
// afterwards.
func TestSimRecoveryReplaysBringUp(t *testing.T) {
	for _, name := range enasim.ProfileNames() {
		t.Run(name, func(t *testing.T) {
			prof, err := enasim.ProfileByName(name)
			require.NoError(t, err)
			var tr syncBuf
			d, _ := openSim(t, name, Config{Trace: &tr, Queues: 2}, 0)
			boot := tr.String()
			require.NoError(t, d.Reset(spec.ResetUserTrigger))
			all := tr.String()
			require.True(t, strings.HasPrefix(all, boot))
			rec := all[len(boot):]
			require.Contains(t, rec, "recover "+spec.ResetUserTrigger.String())
			rec = rec[strings.Index(rec, "recover "):]

			// The reset with the caller's reason comes first (§9.3
			// step 2): its DEV_CTL value is not NORMAL's.
			i := strings.Index(rec, "reg W 0x054 DEV_CTL ")
			require.GreaterOrEqual(t, i, 0, "recovery never wrote DEV_CTL")
			first, _, _ := strings.Cut(rec[i:], "\n")
			assert.NotEqual(t, "reg W 0x054 DEV_CTL 0x00000001", first, "recovery reset with NORMAL instead of the caller's reason")

			var markers []string
			for _, m := range bringUpOrder {
				if !prof.HasLLQ() && strings.Contains(m, "get LLQ") {
					continue
				}
				if strings.Contains(m, "set RSS indirection table") {
					// Every queue pair is re-created, not only the first.
					markers = append(markers, "CREATE_SQ create Tx SQ 1", "CREATE_SQ create Rx SQ 1")
				}
				markers = append(markers, m)
			}
			checkOrder(t, rec, markers)
			assert.Equal(t, uint64(1), d.driverStats().Resets[spec.ResetUserTrigger])
			loopbackOK(t, d, 9)
		})
	}
}

// TestSimInfoDuringReset reads Info while recovery re-runs bring-up: Info
// must show the last completed bring-up, not fields being rewritten (run
// with -race to see the difference).
func TestSimInfoDuringReset(t *testing.T) {
	d, _ := openSim(t, "nitro-v3", Config{Queues: 1}, 0)
	want := d.Info()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 3 {
			assert.NoError(t, d.Reset(spec.ResetUserTrigger))
		}
	}()
	for {
		select {
		case <-done:
			assert.Equal(t, want, d.Info())
			return
		default:
		}
		in := d.Info()
		require.Equal(t, want.Version, in.Version)
		require.Equal(t, want.DMAAddrWidth, in.DMAAddrWidth)
		require.Equal(t, want.AENQGroups, in.AENQGroups)
		require.Equal(t, want.RSSTableSize, in.RSSTableSize)
	}
}

// waitReset waits until the driver has reset for reason and runs again.
func waitReset(t *testing.T, d *Device, reason spec.ResetReason, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if d.counters.resets[reason].Load() > 0 && d.state.Load() == stateRunning {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no %v reset within %v (resets %v, state %d)", reason, timeout, d.driverStats().Resets, d.state.Load())
}

func TestSimFaults(t *testing.T) {
	fast := Config{WatchdogInterval: 20 * time.Millisecond, KeepAliveTimeout: 400 * time.Millisecond,
		MissingTxTimeout: 60 * time.Millisecond, MissingTxThreshold: 2}
	cases := []struct {
		name   string
		reason spec.ResetReason
		inject func(d *Device, s *enasim.Device)
	}{
		{"fatal", spec.ResetGeneric, func(d *Device, s *enasim.Device) { s.Faults().InjectFatal("test") }},
		{"keepalive", spec.ResetKeepAliveTO, func(d *Device, s *enasim.Device) {
			s.Faults().StopKeepAlive(true)
			t.Cleanup(func() { s.Faults().StopKeepAlive(false) })
			go func() { time.Sleep(600 * time.Millisecond); s.Faults().StopKeepAlive(false) }()
		}},
		{"device-request", spec.ResetDeviceRequest, func(d *Device, s *enasim.Device) { s.Faults().RequestReset() }},
		{"admin-timeout", spec.ResetAdminTO, func(d *Device, s *enasim.Device) {
			d.admin.setTimeout(100 * time.Millisecond)
			s.Faults().DropAdminCompletions(1)
			_, err := d.Stats(context.Background())
			if !errors.Is(err, ErrAdminTimeout) {
				t.Errorf("Stats with a dropped completion: %v, want ErrAdminTimeout", err)
			}
		}},
		{"lost-tx", spec.ResetMissTxCmpl, func(d *Device, s *enasim.Device) {
			s.Faults().LoseTxCompletions(5)
			for i := range 5 {
				_ = d.Queue(0).Send([][]byte{testFrame(d.MAC(), byte(i), 100)}, rings.TxOffload{})
			}
			d.Queue(0).Flush()
		}},
		{"tx-bad-reqid", spec.ResetInvTxReqID, func(d *Device, s *enasim.Device) {
			s.Faults().CorruptNextTxCompletion(enasim.CompletionBadReqID)
			_ = d.Queue(0).Send([][]byte{testFrame(d.MAC(), 1, 100)}, rings.TxOffload{})
			d.Queue(0).Flush()
		}},
		{"tx-mbz", spec.ResetTxDescriptorMalformed, func(d *Device, s *enasim.Device) {
			s.Faults().CorruptNextTxCompletion(enasim.CompletionMBZ)
			_ = d.Queue(0).Send([][]byte{testFrame(d.MAC(), 1, 100)}, rings.TxOffload{})
			d.Queue(0).Flush()
		}},
		{"rx-bad-reqid", spec.ResetInvRxReqID, func(d *Device, s *enasim.Device) {
			s.Faults().CorruptNextRxCompletion(enasim.CompletionBadReqID)
			pump(d)
		}},
		{"rx-mbz", spec.ResetRxDescriptorMalformed, func(d *Device, s *enasim.Device) {
			s.Faults().CorruptNextRxCompletion(enasim.CompletionMBZ)
			pump(d)
		}},
		{"rx-unexpected-first", spec.ResetRxDescriptorMalformed, func(d *Device, s *enasim.Device) {
			s.Faults().CorruptNextRxCompletion(enasim.CompletionUnexpectedFirst)
			pump(d)
			pump(d)
		}},
		{"rx-stall", spec.ResetGeneric, func(d *Device, s *enasim.Device) {
			// The device stops receiving: frames are dropped (rx_overruns in
			// the keep-alive) although buffers are posted. Keep traffic
			// coming until the driver resets (the reset ends the stall).
			s.Faults().StallRx(true)
			sendUntilReset(d, spec.ResetGeneric)
		}},
		{"admin-delay", spec.ResetAdminTO, func(d *Device, s *enasim.Device) {
			d.admin.setTimeout(50 * time.Millisecond)
			s.Faults().DelayAdminCompletions(150 * time.Millisecond)
			t.Cleanup(func() { s.Faults().DelayAdminCompletions(0) })
			_, err := d.Stats(context.Background())
			s.Faults().DelayAdminCompletions(0)
			if !errors.Is(err, ErrAdminTimeout) {
				t.Errorf("Stats with a delayed completion: %v, want ErrAdminTimeout", err)
			}
		}},
	}
	for _, c := range cases {
		for _, profile := range enasim.ProfileNames() {
			t.Run(c.name+"/"+profile, func(t *testing.T) {
				testFault(t, profile, fast, c.reason, func(d *Device, s *enasim.Device) { c.inject(d, s) }, c.name)
			})
		}
	}
}

func testFault(t *testing.T, profile string, fast Config, reason spec.ResetReason, inject func(*Device, *enasim.Device), name string) {
	{
		{
			d, s := openSim(t, profile, fast, 0)
			// The profile's HW hints override Config; shorten them here.
			// Only the keep-alive case has the short keep-alive timeout:
			// elsewhere a keep-alive the loaded machine delivers late (the
			// simulator's 50 ms timer or the driver's AENQ goroutine not
			// scheduled for 400 ms) would reset the device for the wrong
			// reason first, and the reset forgets the fault under test
			// (lost Tx completions belong to the rings it tears down).
			kto := fast.KeepAliveTimeout
			if reason != spec.ResetKeepAliveTO {
				kto = time.Minute
			}
			d.keepAliveTimeout.Store(int64(kto))
			d.missTxTimeout.Store(int64(fast.MissingTxTimeout))
			d.missTxThreshold.Store(int64(fast.MissingTxThreshold))
			loopbackOK(t, d, 1)
			inject(d, s)
			if strings.HasPrefix(name, "tx-") || strings.HasPrefix(name, "lost") {
				// Completions are harvested by Flush and by the watchdog.
				time.Sleep(30 * time.Millisecond)
				d.Queue(0).Flush()
			}
			waitReset(t, d, reason, 3*time.Second)
			loopbackOK(t, d, 2)
			loopbackOK(t, d, 3)
		}
	}
}

// pump sends one frame and polls every queue a few times, so a corrupted
// Rx completion is seen.
func pump(d *Device) {
	_ = d.Queue(0).Send([][]byte{testFrame(d.MAC(), 9, 100)}, rings.TxOffload{})
	d.Queue(0).Flush()
	for range 50 {
		for i := range d.NumQueues() {
			_, _ = d.Queue(i).Poll(64, func(*rings.RxPacket) {})
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestSimLinkEvents(t *testing.T) {
	d, s := openSim(t, "nitro-v3", Config{}, 0)
	ch := make(chan bool, 8)
	d.SetLinkHandler(func(up bool) { ch <- up })
	s.Faults().SetLink(false)
	select {
	case up := <-ch:
		if up || d.LinkUp() {
			t.Fatal("link reported up after SetLink(false)")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no link-down event")
	}
	s.Faults().SetLink(true)
	select {
	case up := <-ch:
		if !up {
			t.Fatal("link reported down after SetLink(true)")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no link-up event")
	}
}

func TestSimUserResetAndWaitRx(t *testing.T) {
	d, _ := openSim(t, "nitro-v3", Config{Queues: 2}, 0)
	if err := d.Reset(spec.ResetUserTrigger); err != nil {
		t.Fatal(err)
	}
	loopbackOK(t, d, 4)
	if err := d.SetMTU(9000); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := d.Queue(1).WaitRx(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
}

func TestSimPollingModesAndHints(t *testing.T) {
	{
		d, s := openSim(t, "no-llq", Config{AdminPolling: true, PollMode: true}, 1)
		if in := d.Info(); in.AdminInterrupts || in.IOInterrupts {
			t.Fatalf("interrupts used in polling mode: %+v", in)
		}
		loopbackOK(t, d, 5)
		s.Faults().SendHints(spec.HWHints{DriverWatchdogTimeout: spec.HWHintDisabled, AdminCompletionTxTimeout: 1234})
		deadline := time.Now().Add(2 * time.Second)
		for d.keepAliveTimeout.Load() >= 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if d.keepAliveTimeout.Load() >= 0 || d.admin.timeout.Load() != int64(1234*time.Millisecond) {
			t.Fatalf("hints not applied: keep-alive %v admin %v", d.keepAliveTimeout.Load(), d.admin.timeout.Load())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		d.Queue(0).Wake()
		if err := d.Queue(0).WaitRx(ctx); err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if err := d.Queue(0).Send([][]byte{testFrame(d.MAC(), 1, 64)}, rings.TxOffload{}); !errors.Is(err, ErrClosed) {
			t.Fatalf("Send after Close: %v", err)
		}
	}
}

// sendUntilReset sends a frame on queue 0 every 10 ms, for at most 3 s,
// until the driver counts a reset with reason (or the device closes), so a
// fault that shows only under traffic (an Rx stall) is detected. The
// returned channel is closed when the sender stops.
func sendUntilReset(d *Device, reason spec.ResetReason) <-chan struct{} {
	base := d.counters.resets[reason].Load()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 300 {
			if d.counters.resets[reason].Load() > base {
				return
			}
			if err := d.Queue(0).Send([][]byte{testFrame(d.MAC(), 7, 100)}, rings.TxOffload{}); errors.Is(err, ErrClosed) {
				return
			}
			d.Queue(0).Flush()
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return done
}
