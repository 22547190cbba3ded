package ena

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/enanet/enanet/ena/hw"
	"github.com/enanet/enanet/ena/spec"
)

// Device states.
const (
	stateRunning int32 = iota
	stateResetting
	stateDead // recovery failed for good; the fatal handler was called
	stateClosed
)

// ErrDeviceDead is returned by queue operations after recovery failed.
var ErrDeviceDead = errors.New("ena: device failed and could not be recovered")

// Device is an ENA function brought up by Open: admin and event queues, the
// negotiated features, and NumQueues I/O queue pairs with Rx buffers posted.
// A watchdog goroutine checks its health every second and resets and
// rebuilds it when something is wrong (§9); QueuePair handles stay valid
// across such resets.
type Device struct {
	dev  hw.Device
	cfg  Config
	log  *slog.Logger
	tr   *tracer
	intr hw.Interrupts
	bar2 hw.MemoryBAR

	regs  *regs
	admin *adminQueue
	aenq  *aenq

	hostInfo *hw.Region // §4.8 host-info page
	ctrl     *hw.Region // RSS control buffers, under ctrlMu
	ctrlMu   sync.Mutex

	// Discovered at bring-up (§6 steps 4-18).
	version     spec.Version
	ctrlVersion spec.ControllerVersion
	caps        spec.Caps
	attrs       spec.DeviceAttributes
	limits      queueLimits
	offloads    spec.StatelessOffload
	hints       spec.HWHints
	llqDev      spec.LLQ
	llq         *llqChoice // nil: host placement
	llqWhy      string     // why LLQ is not used
	aenqGroups  uint32     // enabled groups
	aenqGhost   bool       // GET AENQ_CONFIG reported no supported groups
	stall       rxStallState
	rssKey      [spec.RSSKeySize]byte
	rssLog      int
	adminIntr   atomic.Bool // management interrupt in use
	ioIntr      bool        // per-queue interrupts in use

	mtu    atomic.Int32
	queues []*QueuePair

	state   atomic.Int32
	resetMu sync.Mutex // serialises recovery, Reset, SetMTU and Close

	linkUp       atomic.Bool
	hmu          sync.Mutex
	linkHandler  func(bool)
	fatalHandler func(error)

	lastKeepAlive    atomic.Int64 // UnixNano of the last KEEP_ALIVE event
	keepAliveTimeout atomic.Int64 // ns; <0 disabled
	missTxTimeout    atomic.Int64 // ns; <0 disabled
	missTxThreshold  atomic.Int64

	fatalCalled  atomic.Bool
	pendingReset atomic.Uint32 // reason+1 requested from a data path or event
	resetKick    chan struct{}
	mgmtKick     chan struct{} // wakes mgmtLoop when the admin interrupt is turned on
	stop         chan struct{}
	cancel       context.CancelFunc
	ctx          context.Context
	wg           sync.WaitGroup

	counters driverCounters
}

// Open brings the device up in ena-com's order (§6), creates the queue
// pairs, posts Rx buffers and starts the watchdog. The caller keeps
// ownership of dev and closes it after Device.Close.
func Open(dev hw.Device, cfg Config) (*Device, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	id := dev.Identity()
	if !id.IsENA() {
		return nil, fmt.Errorf("ena: %v is not an ENA function", id)
	}
	d := &Device{
		dev:       dev,
		cfg:       cfg,
		log:       cfg.Logger,
		tr:        newTracer(cfg.Trace),
		intr:      dev.Interrupts(),
		bar2:      dev.LLQ(),
		resetKick: make(chan struct{}, 1),
		mgmtKick:  make(chan struct{}, 1),
		stop:      make(chan struct{}),
	}
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
	// The management goroutine serves admin completions once the admin
	// interrupt is on (§6 step 24), which happens in the middle of bring-up.
	d.wg.Add(1)
	go d.mgmtLoop()
	if err := d.bringUp(false); err != nil {
		err = d.explainFatal(err)
		d.stopGoroutines()
		d.teardown(spec.ResetInitErr)
		return nil, err
	}
	d.lastKeepAlive.Store(time.Now().UnixNano())
	d.wg.Add(1)
	go d.watchdogLoop()
	d.log.Info("ena: device up", "id", id.String(), "mac", fmtMAC(d.attrs.MAC), "queues", len(d.queues),
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

// bringUp runs §6 from step 2 to step 31. recovering is true after a reset
// (§9.3): the queues already exist on the host side and are re-created on
// the device, and the MAC and max MTU must not have changed.
func (d *Device) bringUp(recovering bool) error {
	// Phase A: registers (§6 steps 2-5).
	d.regs.setupReadless()
	if err := d.resetDevice(spec.ResetNormal); err != nil {
		return err
	}
	if err := d.checkVersions(); err != nil {
		return err
	}
	if err := d.checkDMAWidth(); err != nil {
		return err
	}

	// Phase B: admin init (§6 steps 6-11).
	if err := d.waitReady(); err != nil {
		return err
	}
	d.admin.reinit()
	d.admin.setTimeout(d.caps.AdminTimeout())
	d.admin.polling.Store(true)
	d.aenq.reinit()
	d.admin.register()
	if !d.cfg.TestLateAENQ {
		d.aenq.register()
	}
	d.regs.write(spec.RegIntrMask, spec.IntrMaskAdmin)

	// Phase C: negotiation, admin polling (§6 steps 12-21).
	fillHostInfo(d.hostInfo, d.dev.Identity())
	if err := d.setHostAttr(); err != nil {
		return err
	}
	if d.cfg.TestLateAENQ {
		// The mistake §11 describes: the AENQ appears only after the
		// device has started executing admin commands.
		d.aenq.register()
	}
	attrs, err := d.getDeviceAttributes()
	if err != nil {
		return err
	}
	if recovering && (attrs.MAC != d.attrs.MAC || attrs.MaxMTU != d.attrs.MaxMTU) {
		return fmt.Errorf("ena: device changed identity across reset: MAC %s -> %s, max MTU %d -> %d",
			fmtMAC(d.attrs.MAC), fmtMAC(attrs.MAC), d.attrs.MaxMTU, attrs.MaxMTU)
	}
	if !recovering {
		// After a reset these stay as they were: users read them
		// concurrently, and the queues were built for them.
		d.attrs = attrs
	}
	if err := spec.CheckRequiredFeatures(attrs.SupportedFeatures); err != nil {
		return fmt.Errorf("ena: %w", err)
	}
	limits, err := d.getMaxQueues()
	if err != nil {
		return err
	}
	if _, err := d.getAENQConfig(); err != nil {
		return err
	}
	offloads, err := d.getOffloads()
	if err != nil {
		return err
	}
	if !recovering {
		d.limits, d.offloads = limits, offloads
	}
	hints, err := d.getHints()
	if err != nil {
		return err
	}
	d.applyHints(hints)
	llqDev, err := d.getLLQ()
	if err != nil {
		return err
	}
	if !recovering {
		d.llqDev = llqDev
	}
	if err := d.configureAENQ(); err != nil {
		return err
	}
	if err := d.configureLLQ(recovering); err != nil {
		return err
	}
	if !recovering {
		if err := d.sizeQueues(); err != nil {
			return err
		}
	}

	// Phase D: interrupts, AENQ enable, RSS (§6 steps 23-26).
	d.adminIntr.Store(!d.cfg.AdminPolling && d.intr != nil && d.intr.NumVectors() > 0)
	if d.adminIntr.Load() {
		d.regs.write(spec.RegIntrMask, spec.IntrUnmaskAdmin)
		d.admin.polling.Store(false)
		// The management goroutine may be asleep in its polling tick; wake
		// it so it waits on the vector before the next command completes
		// (without this each of the next few commands waited ~20 ms).
		select {
		case d.mgmtKick <- struct{}{}:
		default:
		}
	}
	d.aenq.enable()
	if err := d.checkFatal(); err != nil {
		return fmt.Errorf("ena: after AENQ enable: %w", err)
	}
	if err := d.setupRSS(); err != nil {
		return err
	}

	// Phase E: queues, table, MTU, Rx buffers, unmask (§6 steps 28-31).
	if !recovering {
		if err := d.allocQueues(); err != nil {
			return err
		}
	}
	for _, p := range d.queues {
		if err := p.create(); err != nil {
			return err
		}
	}
	if err := d.setRSSTable(); err != nil {
		return err
	}
	if err := d.setMTU(int(d.mtu.Load())); err != nil {
		return err
	}
	for _, p := range d.queues {
		p.rx.Refill()
	}
	for _, p := range d.queues {
		p.unmask()
	}
	return nil
}

// resetDevice is the two-phase reset of §6 step 3 (ena_com_dev_reset).
func (d *Device) resetDevice(reason spec.ResetReason) error {
	if err := d.waitReady(); err != nil {
		return err
	}
	caps, err := d.regs.read(spec.RegCaps)
	if err != nil {
		return fmt.Errorf("ena: reset: read CAPS: %w", err)
	}
	d.caps = spec.DecodeCaps(caps)
	wait := d.caps.ResetWait()
	if wait == 0 {
		return fmt.Errorf("ena: reset: CAPS 0x%08x has no reset timeout; the device cannot be reset", caps)
	}
	ext := spec.CapExtendedResetReasons.In(d.attrs.Capabilities)
	d.regs.write(spec.RegDevCtl, spec.DevCtlReset(reason, ext))
	// The device forgets the readless address on reset (§6 step 3.4).
	d.regs.setupReadless()
	if err := d.waitDevSts(spec.DevStsResetInProgress, true, wait); err != nil {
		return fmt.Errorf("ena: reset (%v): RESET_IN_PROGRESS never set: %w", reason, err)
	}
	d.regs.write(spec.RegDevCtl, 0)
	if err := d.waitDevSts(spec.DevStsResetInProgress, false, wait); err != nil {
		return fmt.Errorf("ena: reset (%v): RESET_IN_PROGRESS never cleared: %w", reason, err)
	}
	return nil
}

// waitReady waits for DEV_STS READY (§6 steps 3.1 and 6).
func (d *Device) waitReady() error {
	if err := d.waitDevSts(spec.DevStsReady, true, time.Second); err != nil {
		return fmt.Errorf("ena: device not ready: %w", err)
	}
	return nil
}

// waitDevSts polls DEV_STS until bit is set (want) or clear, backing off
// from 100 µs to 5 ms (§6 step 3.5).
func (d *Device) waitDevSts(bit uint32, want bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	delay := 100 * time.Microsecond
	for {
		v, err := d.regs.read(spec.RegDevSts)
		if err == nil && (v&bit != 0) == want {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return err
			}
			return fmt.Errorf("DEV_STS 0x%08x after %v", v, timeout)
		}
		time.Sleep(delay)
		delay = min(2*delay, 5*time.Millisecond)
	}
}

// checkVersions reads VERSION and CONTROLLER_VERSION (§6 step 4).
func (d *Device) checkVersions() error {
	v, err := d.regs.read(spec.RegVersion)
	if err != nil {
		return fmt.Errorf("ena: read VERSION: %w", err)
	}
	cv, err := d.regs.read(spec.RegControllerVersion)
	if err != nil {
		return fmt.Errorf("ena: read CONTROLLER_VERSION: %w", err)
	}
	d.version, d.ctrlVersion = spec.DecodeVersion(v), spec.DecodeControllerVersion(cv)
	if !d.ctrlVersion.Supported() {
		return fmt.Errorf("ena: controller version %v is below the minimum 0.0.1", d.ctrlVersion)
	}
	return nil
}

// checkDMAWidth reads CAPS and checks the DMA width (§6 step 5) against
// what mem_addr and the backend can do.
func (d *Device) checkDMAWidth() error {
	caps, err := d.regs.read(spec.RegCaps)
	if err != nil {
		return fmt.Errorf("ena: read CAPS: %w", err)
	}
	d.caps = spec.DecodeCaps(caps)
	if !d.caps.DMAWidthOK() {
		return fmt.Errorf("ena: device DMA width %d bits is outside 32..48", d.caps.DMAAddrWidth)
	}
	if w := d.dev.DMA().AddrWidth(); w > int(d.caps.DMAAddrWidth) {
		return fmt.Errorf("ena: backend hands out %d-bit DMA addresses, the device takes %d", w, d.caps.DMAAddrWidth)
	}
	return nil
}

// configureAENQ enables the wanted groups the device supports (§6 step 20).
func (d *Device) configureAENQ() error {
	c, err := d.getAENQConfig()
	if err != nil {
		return err
	}
	d.aenqGroups = aenqWanted & c.SupportedGroups
	// A device that supports no AENQ group at all is the symptom the
	// OpenBSD port saw when its AENQ was registered after the first admin
	// command (§11): remember it to explain the failure that follows.
	d.aenqGhost = c.SupportedGroups == 0
	if d.aenqGhost {
		d.log.Warn("ena: the device reports no supported AENQ groups; the AENQ may have been registered too late")
	}
	return d.setAENQConfig(d.aenqGroups)
}

// configureLLQ negotiates LLQ or falls back to host placement (§6 step 21,
// §8.1). After a reset the previous choice is required again: the Tx rings
// were built for it.
func (d *Device) configureLLQ(recovering bool) error {
	var c llqChoice
	var err error
	if d.featureSupported(spec.FeatLLQ) || d.cfg.LLQ == LLQOff {
		c, err = negotiateLLQ(d.cfg.LLQ, d.llqDev, d.bar2 != nil)
	} else {
		err = fmt.Errorf("device does not advertise LLQ")
	}
	if err == nil {
		err = d.setLLQ(c.set)
		var ae *AdminError
		if err != nil && !errors.As(err, &ae) {
			return err // the admin queue itself failed
		}
	}
	if recovering {
		if (err == nil) != (d.llq != nil) || err == nil && c.layout != d.llq.layout {
			return fmt.Errorf("ena: LLQ configuration changed across reset (%v)", err)
		}
		return nil
	}
	if err != nil {
		d.llq, d.llqWhy = nil, err.Error()
		if d.cfg.LLQ != LLQOff {
			d.log.Warn("ena: using host placement for Tx", "reason", d.llqWhy)
		}
		return nil
	}
	d.llq = &c
	return nil
}

// sizeQueues turns the device limits and Config into queue count, depths
// and MTU, with errors that say which knob is out of range.
func (d *Device) sizeQueues() error {
	maxQ, maxTx := d.limits.queues, d.limits.txDepth
	if d.llq != nil {
		maxQ = min(maxQ, d.llq.maxQueues)
		maxTx = min(maxTx, d.llq.maxDepth)
	}
	nv := 0
	if d.intr != nil {
		nv = d.intr.NumVectors()
	}
	d.ioIntr = !d.cfg.PollMode && nv > 1
	if d.ioIntr && d.cfg.Queues == 0 {
		maxQ = min(maxQ, nv-1)
	}
	if err := d.cfg.sizeQueues(maxQ, maxTx, d.limits.rxDepth); err != nil {
		return err
	}
	if d.ioIntr && d.cfg.Queues > nv-1 {
		d.log.Warn("ena: fewer interrupt vectors than queues; polling I/O queues", "vectors", nv, "queues", d.cfg.Queues)
		d.ioIntr = false
	}
	mtu := d.cfg.MTU
	switch {
	case mtu == 0:
		mtu = min(defaultMTU, int(d.attrs.MaxMTU))
	case mtu > int(d.attrs.MaxMTU):
		return fmt.Errorf("ena: config: MTU %d exceeds the device maximum %d", mtu, d.attrs.MaxMTU)
	}
	d.mtu.Store(int32(mtu))
	return nil
}

// applyHints takes the device's HW hints (§4.8; also via AENQ §5.2).
// 0 keeps the current value; 0xFFFF disables the keep-alive and missing-Tx
// checks.
func (d *Device) applyHints(h spec.HWHints) {
	d.hmu.Lock()
	d.hints = h
	d.hmu.Unlock()
	d.regs.setReadTimeout(h.MMIOReadTimeout)
	if h.AdminCompletionTxTimeout != 0 {
		d.admin.setTimeout(time.Duration(h.AdminCompletionTxTimeout) * time.Millisecond)
	}
	switch h.DriverWatchdogTimeout {
	case 0:
	case spec.HWHintDisabled:
		d.keepAliveTimeout.Store(-1)
	default:
		d.keepAliveTimeout.Store(int64(time.Duration(h.DriverWatchdogTimeout) * time.Millisecond))
	}
	switch h.MissingTxCompletionTimeout {
	case 0:
	case spec.HWHintDisabled:
		d.missTxTimeout.Store(-1)
	default:
		d.missTxTimeout.Store(int64(time.Duration(h.MissingTxCompletionTimeout) * time.Millisecond))
	}
	if h.MissedTxCompletionThreshold != 0 {
		d.missTxThreshold.Store(int64(h.MissedTxCompletionThreshold))
	}
}

// checkFatal reads DEV_STS and reports FATAL_ERROR (§2.2).
func (d *Device) checkFatal() error {
	v, err := d.regs.read(spec.RegDevSts)
	if err != nil {
		return err
	}
	if v&spec.DevStsFatalError != 0 {
		return fmt.Errorf("%w (DEV_STS 0x%02x)", ErrDeviceFatal, v)
	}
	return nil
}

// explainFatal adds the likely cause to a bring-up error caused by the
// device declaring itself dead.
func (d *Device) explainFatal(err error) error {
	var ae *AdminError
	if d.llq == nil && errors.As(err, &ae) && ae.Opcode == spec.OpCreateSQ && strings.Contains(ae.Op, "Tx") {
		return fmt.Errorf("%w (Tx uses host placement because %s; Nitro v4 and later devices require LLQ, §8.4)", err, d.llqWhy)
	}
	createFailed := errors.As(err, &ae) && (ae.Opcode == spec.OpCreateCQ || ae.Opcode == spec.OpCreateSQ) && ae.Status == spec.StatusUnknownError
	if !errors.Is(err, ErrDeviceFatal) && !errors.Is(err, ErrAdminTimeout) && !createFailed {
		return err
	}
	if d.aenqGhost || d.cfg.TestLateAENQ {
		return fmt.Errorf("%w: the device reported no supported AENQ groups and then failed, which is what it does when "+
			"the AENQ was registered after the first admin command (or not at all); "+
			"the device requires AENQ_BASE/AENQ_CAPS during admin init, before any command (§5.4, §6 step 10, §11)", err)
	}
	return err
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
	d.stopGoroutines()
	d.resetMu.Lock()
	defer d.resetMu.Unlock()
	for _, p := range d.queues {
		p.lock()
	}
	// The management goroutine is gone: poll the admin queue from here on.
	d.regs.write(spec.RegIntrMask, spec.IntrMaskAdmin)
	d.admin.polling.Store(true)
	d.adminIntr.Store(false)
	if _, broken := d.admin.broken(); !broken && d.state.Load() != stateDead {
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
		_ = p.tx.Close()
		_ = p.rx.Close()
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
// every reset.
func (d *Device) SetMTU(mtu int) error {
	if mtu < 576 || mtu > int(d.attrs.MaxMTU) {
		return fmt.Errorf("ena: MTU %d is outside 576..%d", mtu, d.attrs.MaxMTU)
	}
	d.resetMu.Lock()
	defer d.resetMu.Unlock()
	if d.state.Load() != stateRunning {
		return ErrResetting
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

// SetFatalHandler registers fn to be called once if the device cannot be
// recovered; the Device is unusable afterwards. fn runs on the watchdog
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
