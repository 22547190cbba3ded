package ena

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/enanet/enanet/ena/hw"
	"github.com/enanet/enanet/ena/spec"
)

// Device states.
const (
	stateRunning   int32 = iota
	stateResetting       // recovering, possibly retrying (recovery.go)
	stateDead            // gone for good; the fatal handler was called
	stateClosed
)

// ErrDeviceDead is returned by queue operations once the device is gone
// for good (see ErrDeviceGone).
var ErrDeviceDead = errors.New("ena: device failed and cannot be recovered")

// Device is an ENA function brought up by Open: admin and event queues, the
// negotiated features, and NumQueues I/O queue pairs with Rx buffers posted.
// A watchdog goroutine checks its health every second and resets and
// rebuilds it when something is wrong (§9); QueuePair handles stay valid
// across such resets.
//
// Its fields are grouped by who writes them and under which lock.
type Device struct {
	// Set by Open and never written again, except cfg's queue count and
	// depths, which sizeQueues fills in during the first boot, before Open
	// returns (the management goroutine, already running then, does not
	// read cfg).
	dev   hw.Device
	cfg   Config
	log   *slog.Logger
	tr    *tracer
	intr  hw.Interrupts
	bar2  hw.MemoryBAR
	hooks testHooks

	// Control-plane memory: allocated by Open (allocControl), freed by
	// Close (freeControl). regs, admin and aenq do their own locking; the
	// host-info page is written only by bring-up; ctrl, the RSS commands'
	// control buffer, is used under ctrlMu.
	regs     *regs
	admin    *adminQueue
	aenq     *aenq
	hostInfo *hw.Region // §4.8 host-info page
	ctrl     *hw.Region
	ctrlMu   sync.Mutex

	firstBootFacts
	bringUpState

	// The I/O queue pairs: the slice is built by the first boot
	// (createQueues) and never changes; each pair locks itself. mtu is
	// written by the first boot (sizeQueues) and by SetMTU under resetMu.
	queues []*QueuePair
	mtu    atomic.Int32

	lifecycle
	health
	notifications
	liveSettings // runtime reconfiguration (reconfig.go), under resetMu
	channelState // enabled queue pairs (channels.go)

	counters driverCounters // atomics; bumped by whoever sees the event
}

// firstBootFacts is what the device reported and what was negotiated on
// the first boot: written by the bring-up steps before Open returns, read
// without locks afterwards. Recovery checks them against the device's new
// answers but never rewrites them: the queues were built for them.
type firstBootFacts struct {
	attrs    spec.DeviceAttributes // §6 step 13
	limits   queueLimits           // §6 step 14
	offloads spec.StatelessOffload // §6 step 16
	llqDev   spec.LLQ              // §6 step 18: what the device offers
	llq      *llqChoice            // §6 step 21: nil means host placement
	llqWhy   string                // why LLQ is not used
	ioIntr   bool                  // per-queue interrupts in use
	rssKey   [spec.RSSKeySize]byte // set by Open and SetRSSKey (resetMu), programmed by every bring-up
}

// bringUpState is what every bring-up (first boot and each recovery)
// reads or decides again. The steps write it under resetMu (the first
// boot before Open returns) and only they read it; Info reads the copy
// publishInfo makes at the end of each bring-up. adminIntr is atomic
// because the management goroutine and Info read it while bring-up runs.
type bringUpState struct {
	version     spec.Version           // §6 step 4
	ctrlVersion spec.ControllerVersion // §6 step 4
	caps        spec.Caps              // §6 steps 3 and 5
	aenqGroups  uint32                 // §6 step 20: enabled groups
	aenqGhost   bool                   // §6 step 20: no supported groups reported
	rssLog      int                    // §6 step 26: log2 of the indirection table size
	adminIntr   atomic.Bool            // §6 step 24: management interrupt in use

	published atomic.Pointer[bringUpReport] // for Info; see publishInfo
}

// lifecycle is the Device's state machine and the goroutines it owns.
// state changes by compare-and-swap (recover, Close); resetMu serialises
// recovery, Reset, SetMTU and Close. Open creates the channels and the
// context and starts the goroutines; Close (stopGoroutines) stops them.
type lifecycle struct {
	state       atomic.Int32
	resetMu     sync.Mutex
	fatalCalled atomic.Bool   // the fatal handler ran (callFatal)
	mgmtKick    chan struct{} // wakes mgmtLoop when the admin interrupt is turned on
	stop        chan struct{} // closed by stopGoroutines
	ctx         context.Context
	cancel      context.CancelFunc
	wg          sync.WaitGroup
}

// health is the watchdog's input. The timeouts are atomics written by
// Open, applyHints (bring-up and the management goroutine's HW hints
// events) and read by the watchdog; lastKeepAlive is written by the
// management goroutine (KEEP_ALIVE events) and by Open and recover;
// pendingReset and resetKick carry reset requests from any goroutine to
// the watchdog; stall belongs to the watchdog goroutine alone.
type health struct {
	lastKeepAlive    atomic.Int64 // UnixNano of the last KEEP_ALIVE event
	keepAliveTimeout atomic.Int64 // ns; <0 disabled
	missTxTimeout    atomic.Int64 // ns; <0 disabled
	missTxThreshold  atomic.Int64
	pendingReset     atomic.Uint32 // reason+1 requested from a data path or event
	resetKick        chan struct{}
	stall            rxStallState
	rec              recoveryState // the recovery in progress (recovery.go)
	mgmtIRQ          mgmtIRQ       // the management goroutine's missed-interrupt count
}

// notifications is what the device tells the host between commands and
// what the user asked to hear about it. linkUp is written by the
// management goroutine (LINK_CHANGE); the handlers (set by the user) and
// the latest HW hints (bring-up and HW hints events) are under hmu.
type notifications struct {
	linkUp        atomic.Bool
	linkShown     atomic.Bool // what the link handler was last told
	hmu           sync.Mutex
	linkHandler   func(bool)
	fatalHandler  func(error)
	healthHandler func(Health)
	hints         spec.HWHints // §4.8, §5.2
}

// testHooks change bring-up in ways only tests want. Open leaves them zero;
// tests set them through openWithHooks (export_test.go).
type testHooks struct {
	// lateAENQ registers the AENQ after the first admin command instead
	// of during admin init, the mistake §11 and the OpenBSD port describe,
	// so the device's reaction and the error that explains it can be
	// checked.
	lateAENQ bool
	// maxWait, if positive, caps every device wait (admin commands,
	// readless reads, DEV_STS polls) so fuzz targets facing a hostile
	// device run many inputs a second.
	maxWait time.Duration
	// ringDecided, if set, runs when SetRings, SetRxBufSize or SetMTU has
	// decided what to change and before it takes resetMu to apply it, so
	// a test can complete another change in that window
	// (reconfig_race.go).
	ringDecided func()
}

// capWait applies testHooks.maxWait to a device wait.
func (d *Device) capWait(t time.Duration) time.Duration {
	if m := d.hooks.maxWait; m > 0 && (t <= 0 || t > m) {
		return m
	}
	return t
}

// Open brings the device up in ena-com's order (§6), creates the queue
// pairs, posts Rx buffers and starts the watchdog. The caller keeps
// ownership of dev and closes it after Device.Close.
func Open(dev hw.Device, cfg Config) (*Device, error) {
	return open(dev, cfg, testHooks{})
}

func open(dev hw.Device, cfg Config, hooks testHooks) (*Device, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	id := dev.Identity()
	if !id.IsENA() {
		return nil, fmt.Errorf("ena: %v is not an ENA function", id)
	}
	d := &Device{
		dev:   dev,
		cfg:   cfg,
		log:   cfg.Logger,
		tr:    newTracer(cfg.Trace),
		intr:  dev.Interrupts(),
		bar2:  dev.LLQ(),
		hooks: hooks,
	}
	d.resetKick = make(chan struct{}, 1)
	d.mgmtKick = make(chan struct{}, 1)
	d.stop = make(chan struct{})
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.keepAliveTimeout.Store(int64(cfg.KeepAliveTimeout))
	d.missTxTimeout.Store(int64(cfg.MissingTxTimeout))
	d.missTxThreshold.Store(int64(cfg.MissingTxThreshold))
	if d.rssKey, err = newRSSKey(cfg.RSSKey); err != nil {
		return nil, err
	}
	if err := d.allocControl(); err != nil {
		d.freeControl()
		return nil, err
	}
	if hooks.maxWait > 0 {
		d.admin.setTimeout(hooks.maxWait)
		d.regs.timeout.Store(int64(hooks.maxWait))
	}
	// The management goroutine serves admin completions once the admin
	// interrupt is on (§6 step 24), which happens in the middle of bring-up.
	d.wg.Add(1)
	go d.mgmtLoop()
	if err := d.bringUp(firstBoot); err != nil {
		err = d.explainFatal(err)
		d.stopGoroutines()
		d.teardown(spec.ResetInitErr)
		return nil, err
	}
	d.lastKeepAlive.Store(time.Now().UnixNano())
	d.linkShown.Store(d.linkUp.Load())
	d.wg.Add(1)
	go d.watchdogLoop()
	d.log.Info("ena: device up", "id", id.String(), "mac", fmtMAC(d.attrs.MAC), "channels", d.Channels(), "max_channels", len(d.queues),
		"llq", d.llq != nil, "admin_irq", d.adminIntr.Load(), "io_irq", d.ioIntr)
	return d, nil
}

// allocControl allocates what lives as long as the Device: register access,
// admin queue, AENQ, host-info page and the RSS control page.
func (d *Device) allocControl() error {
	var err error
	if d.regs, err = newRegs(d.dev, d.tr); err != nil {
		return err
	}
	dma := d.dev.DMA()
	if d.admin, err = newAdminQueue(dma, d.regs, d.tr, spec.DefaultAdminQueueDepth); err != nil {
		return err
	}
	d.admin.fatal = d.checkFatal
	if d.aenq, err = newAENQ(dma, d.regs, d.tr); err != nil {
		return err
	}
	if d.hostInfo, err = dma.Alloc(spec.HostInfoPageSize, 4096); err != nil {
		return fmt.Errorf("ena: allocate host-info page: %w", err)
	}
	if d.ctrl, err = dma.Alloc(4096, 4096); err != nil {
		return fmt.Errorf("ena: allocate control buffer: %w", err)
	}
	return nil
}

func (d *Device) freeControl() {
	if d.admin != nil {
		d.admin.free()
	}
	if d.aenq != nil {
		d.aenq.free()
	}
	_ = d.hostInfo.Free()
	_ = d.ctrl.Free()
	if d.regs != nil {
		d.regs.teardownReadless()
	}
}

// Close stops the watchdog and management goroutines, destroys the queues
// (SQ, then CQ), resets the device and frees everything. The hw.Device
// stays open.
func (d *Device) Close() error {
	for {
		s := d.state.Load()
		if s == stateClosed {
			return nil
		}
		if d.state.CompareAndSwap(s, stateClosed) {
			break
		}
	}
	if _, retrying := d.recoveryDue(); retrying {
		// End the attempt's admin wait now rather than at its timeout.
		d.admin.stop(ErrClosed)
	}
	d.stopGoroutines()
	d.resetMu.Lock()
	defer d.resetMu.Unlock()
	// A recovery that was still retrying left the queue pairs locked and
	// the device's queues gone.
	recovering := d.rec.dataStopped
	if !recovering {
		for _, p := range d.queues {
			p.lock()
		}
	}
	d.rec.dataStopped = false
	// The management goroutine is gone: poll the admin queue from here on.
	d.regs.write(spec.RegIntrMask, spec.IntrMaskAdmin)
	d.admin.polling.Store(true)
	d.adminIntr.Store(false)
	if _, broken := d.admin.broken(); !broken && !recovering && d.state.Load() != stateDead {
		for _, p := range d.queues {
			p.destroy()
		}
	}
	for _, p := range d.queues {
		p.unlock()
	}
	d.teardown(spec.ResetShutdown)
	return nil
}

// stopGoroutines stops the management and watchdog goroutines and wakes
// every vector waiter.
func (d *Device) stopGoroutines() {
	close(d.stop)
	d.cancel()
	if d.intr != nil {
		for v := range d.intr.NumVectors() {
			d.intr.Wake(v)
		}
	}
	d.wg.Wait()
}

// teardown resets the device with reason and frees all memory (§6
// teardown). Used by Close and by a failed Open.
func (d *Device) teardown(reason spec.ResetReason) {
	d.admin.stop(ErrClosed)
	if err := d.resetDevice(reason); err != nil {
		d.log.Warn("ena: reset at teardown failed", "err", err)
	}
	for _, p := range d.queues {
		p.setRings(nil, nil)
	}
	d.freeControl()
	d.cancel()
}

// MAC returns the device's MAC address (§4.8 DEVICE_ATTRIBUTES).
func (d *Device) MAC() [6]byte { return d.attrs.MAC }

// MTU returns the L3 MTU in use.
func (d *Device) MTU() int { return int(d.mtu.Load()) }

// MaxMTU returns the device's max_mtu (L3).
func (d *Device) MaxMTU() int { return int(d.attrs.MaxMTU) }

// SetMTU changes the L3 MTU with SET MTU (§4.8); it is restored after
// every reset. When the Rx buffer size is automatic and the new MTU needs
// another size (rxBufForMTU), the queues are rebuilt with it, as
// SetRxBufSize would (reconfig.go).
func (d *Device) SetMTU(mtu int) error {
	if mtu < 576 || mtu > int(d.attrs.MaxMTU) {
		return fmt.Errorf("ena: MTU %d is outside 576..%d", mtu, d.attrs.MaxMTU)
	}
	return retryRingRace(func() error {
		if r := d.Rings(); r.RxBufAuto && rxBufForMTU(mtu) != r.RxBufSize {
			return d.setMTURebuild(r, mtu)
		}
		return d.setMTUInPlace(mtu)
	})
}

// setMTUInPlace is SetMTU when the Rx buffers stay: one admin command. A
// SetRxBufSize(RxBufAuto) that completed since SetMTU looked makes the
// rebuild necessary after all (errRingRace: SetMTU decides again).
func (d *Device) setMTUInPlace(mtu int) error {
	if h := d.hooks.ringDecided; h != nil {
		h()
	}
	d.resetMu.Lock()
	defer d.resetMu.Unlock()
	if d.state.Load() != stateRunning {
		return ErrResetting
	}
	if d.rxBufAuto && rxBufForMTU(mtu) != d.rxBufSize {
		return errRingRace
	}
	if err := d.setMTU(mtu); err != nil {
		return err
	}
	d.mtu.Store(int32(mtu))
	return nil
}

// NumQueues returns the number of I/O queue pairs.
func (d *Device) NumQueues() int { return len(d.queues) }

// Queue returns queue pair i; the handle stays valid across resets.
func (d *Device) Queue(i int) *QueuePair { return d.queues[i] }

// LinkUp reports the link state from the last LINK_CHANGE event (§5.2).
func (d *Device) LinkUp() bool { return d.linkUp.Load() }

// SetLinkHandler registers fn to be called on every link state change. It
// runs on the management goroutine and must not block for long.
func (d *Device) SetLinkHandler(fn func(up bool)) {
	d.hmu.Lock()
	d.linkHandler = fn
	d.hmu.Unlock()
}

// SetFatalHandler registers fn to be called once if the device is gone for
// good (ErrDeviceGone); the Device is unusable afterwards. Failed recovery
// attempts are retried and reported through Health, not here. fn runs on the watchdog
// goroutine (or the caller of Reset): it must not call Close itself, but
// may hand that to another goroutine.
func (d *Device) SetFatalHandler(fn func(error)) {
	d.hmu.Lock()
	d.fatalHandler = fn
	d.hmu.Unlock()
}

func fmtMAC(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}
