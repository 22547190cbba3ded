package ena

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/enanet/enanet/ena/spec"
)

// bootMode tells a bring-up step whether it runs for the first time (from
// Open) or to rebuild the device after a reset (§9.3). The steps and their
// order are the same; only what a step does with the device's answers
// differs: first boot records them and builds the host side for them,
// recovery checks that they still hold for the host side already built.
type bootMode bool

const (
	firstBoot bootMode = false
	recovery  bootMode = true
)

// bringUpSteps is §6 from step 2 to step 31, one function per step, in
// the order the device expects its register writes and admin commands
// (the trace test pins it).
func (d *Device) bringUpSteps() []func(bootMode) error {
	return []func(bootMode) error{
		// Phase A: registers, before any admin command.
		d.resetForInit,           // §6 steps 2-3
		anyMode(d.checkVersions), // §6 step 4
		anyMode(d.checkDMAWidth), // §6 step 5
		// Phase B: admin init.
		anyMode(d.initAdminQueues), // §6 steps 6-11
		// Phase C: negotiation, admin queue polled.
		anyMode(d.setHostAttributes), // §6 step 12
		d.readDeviceAttributes,       // §6 step 13
		d.readQueueLimits,            // §6 step 14
		anyMode(d.readAENQGroups),    // §6 step 15
		d.readOffloads,               // §6 step 16
		anyMode(d.readHints),         // §6 step 17
		d.readLLQ,                    // §6 step 18
		anyMode(d.configureAENQ),     // §6 step 20
		d.configureLLQ,               // §6 step 21, §8.1
		anyMode(d.readModeration),    // §6 step 22
		d.sizeQueues,                 // driver knobs against the limits of §6 steps 14 and 21
		// Phase D: interrupts, AENQ enable, RSS.
		anyMode(d.enableAdminInterrupt), // §6 steps 23-24
		anyMode(d.enableAENQ),           // §6 step 25
		anyMode(d.setupRSS),             // §6 step 26
		// Phase E: queues, table, MTU, Rx buffers, unmask.
		d.createQueues,           // §6 step 28
		anyMode(d.setRSSTable),   // §6 step 29
		anyMode(d.restoreMTU),    // §6 step 29
		anyMode(d.postRxBuffers), // §6 step 30
		anyMode(d.unmaskQueues),  // §6 step 31
		// Not a device step: Info shows this bring-up's answers.
		anyMode(d.publishInfo),
	}
}

// anyMode adapts a step that does the same on first boot and in recovery.
func anyMode(step func() error) func(bootMode) error {
	return func(bootMode) error { return step() }
}

// bringUp runs every bring-up step in order and stops at the first error.
// Open runs it once (firstBoot); recover runs it after each reset
// (recovery), where the queues already exist on the host side and are
// re-created on the device, and the MAC and max MTU must not have changed
// (§9.3 step 4).
func (d *Device) bringUp(mode bootMode) error {
	for _, step := range d.bringUpSteps() {
		if mode == recovery && d.state.Load() == stateClosed {
			return ErrClosed // Close does not wait for a doomed attempt
		}
		if err := step(mode); err != nil {
			return err
		}
	}
	return nil
}

// resetForInit points the device at the readless response buffer and
// resets it with reason NORMAL (§6 steps 2-3; §9.3 step 4 re-runs them).
func (d *Device) resetForInit(bootMode) error {
	d.regs.setupReadless()
	return d.resetDevice(spec.ResetNormal)
}

// resetDevice is the two-phase reset of §6 step 3 (ena_com_dev_reset).
func (d *Device) resetDevice(reason spec.ResetReason) error {
	if err := d.waitReady(); err != nil {
		return err
	}
	caps, err := d.regs.read(spec.RegCaps)
	if (err != nil || caps == 0xFFFFFFFF) && d.regs.gone() {
		return fmt.Errorf("ena: reset: %w", ErrDeviceGone)
	}
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
	timeout = d.capWait(timeout)
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

// initAdminQueues waits for READY, hands the device the admin queue pair and
// the AENQ (during admin init, before any command: §5.4) and masks the
// admin interrupt so commands are polled until interrupts are set up
// (§6 steps 6-11).
func (d *Device) initAdminQueues() error {
	if err := d.waitReady(); err != nil {
		return err
	}
	d.admin.reinit()
	d.admin.setTimeout(d.capWait(d.caps.AdminTimeout()))
	d.admin.polling.Store(true)
	d.aenq.reinit()
	d.admin.register()
	if !d.hooks.lateAENQ {
		d.aenq.register()
	}
	d.regs.write(spec.RegIntrMask, spec.IntrMaskAdmin)
	return nil
}

// setHostAttributes tells the device where the host-info page is (§6 step
// 12, §4.8), the first admin command.
func (d *Device) setHostAttributes() error {
	fillHostInfo(d.hostInfo, d.dev.Identity())
	if err := d.setHostAttr(); err != nil {
		return err
	}
	if d.hooks.lateAENQ {
		// The mistake §11 describes: the AENQ appears only after the
		// device has started executing admin commands.
		d.aenq.register()
	}
	return nil
}

// readDeviceAttributes reads the MAC, max MTU and feature bits (§6 step
// 13). On first boot they become the device's; in recovery they must match
// what the host side was built for and stay as they were: users read them
// concurrently.
func (d *Device) readDeviceAttributes(mode bootMode) error {
	attrs, err := d.getDeviceAttributes()
	if err != nil {
		return err
	}
	if mode == recovery && (attrs.MAC != d.attrs.MAC || attrs.MaxMTU != d.attrs.MaxMTU) {
		return fmt.Errorf("ena: device changed identity across reset: MAC %s -> %s, max MTU %d -> %d",
			fmtMAC(d.attrs.MAC), fmtMAC(attrs.MAC), d.attrs.MaxMTU, attrs.MaxMTU)
	}
	if mode == firstBoot {
		d.attrs = attrs
	}
	if err := spec.CheckRequiredFeatures(attrs.SupportedFeatures); err != nil {
		return fmt.Errorf("ena: %w", err)
	}
	return nil
}

// readQueueLimits reads the queue count and depth limits (§6 step 14); the
// queues are sized from the first boot's answer.
func (d *Device) readQueueLimits(mode bootMode) error {
	limits, err := d.getMaxQueues()
	if err != nil {
		return err
	}
	if mode == firstBoot {
		d.limits = limits
	}
	return nil
}

// readAENQGroups reads AENQ_CONFIG once in ena-com's order (§6 step 15);
// configureAENQ reads it again and acts on it (§6 step 20).
func (d *Device) readAENQGroups() error {
	_, err := d.getAENQConfig()
	return err
}

// readOffloads reads the stateless offloads (§6 step 16); the queues were
// built for the first boot's answer.
func (d *Device) readOffloads(mode bootMode) error {
	offloads, err := d.getOffloads()
	if err != nil {
		return err
	}
	if mode == firstBoot {
		d.offloads = offloads
	}
	return nil
}

// readHints reads and applies the HW hints (§6 step 17); a reset may bring
// new ones.
func (d *Device) readHints() error {
	hints, err := d.getHints()
	if err != nil {
		return err
	}
	d.applyHints(hints)
	return nil
}

// readLLQ reads what LLQ the device offers (§6 step 18); the Tx rings were
// built for the first boot's answer.
func (d *Device) readLLQ(mode bootMode) error {
	llqDev, err := d.getLLQ()
	if err != nil {
		return err
	}
	if mode == firstBoot {
		d.llqDev = llqDev
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
// §8.1). In recovery the previous choice is required again: the Tx rings
// were built for it.
func (d *Device) configureLLQ(mode bootMode) error {
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
	if mode == recovery {
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
// and MTU, with errors that say which knob is out of range. Only the first
// boot sizes the queues; recovery rebuilds them as they are.
func (d *Device) sizeQueues(mode bootMode) error {
	if mode == recovery {
		return nil
	}
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
	if d.ioIntr && d.cfg.Queues <= nv-1 && d.cfg.MaxQueues <= nv-1 {
		// One vector per pair (§1.2) bounds the channels, as the vectors
		// bound Linux's max_num_io_queues; asking for more pairs than
		// vectors polls them instead (below).
		maxQ = min(maxQ, nv-1)
	}
	defaultRx := d.cfg.RxDepth == 0
	if err := d.cfg.sizeQueues(maxQ, maxTx, d.limits.rxDepth); err != nil {
		return err
	}
	d.deviceMax = maxQ
	if d.ioIntr && d.cfg.MaxQueues > nv-1 {
		d.log.Warn("ena: fewer interrupt vectors than queues; polling I/O queues", "vectors", nv, "queues", d.cfg.MaxQueues)
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
	d.chooseRxBuf(mtu)
	if defaultRx {
		d.cfg.RxDepth = scaleRxDepth(d.cfg.RxDepth, d.rxBufSize)
	}
	d.rxDepthAuto = defaultRx
	return nil
}

// enableAdminInterrupt switches admin completions from polling to the
// management vector unless Config.AdminPolling or the backend says
// otherwise (§6 steps 23-24).
func (d *Device) enableAdminInterrupt() error {
	d.adminIntr.Store(!d.cfg.AdminPolling && d.intr != nil && d.intr.NumVectors() > 0)
	if !d.adminIntr.Load() {
		return nil
	}
	d.regs.write(spec.RegIntrMask, spec.IntrUnmaskAdmin)
	d.admin.polling.Store(false)
	// The management goroutine may be asleep in its polling tick; wake it
	// so it waits on the vector before the next command completes (without
	// this each of the next few commands waited ~20 ms).
	select {
	case d.mgmtKick <- struct{}{}:
	default:
	}
	return nil
}

// enableAENQ hands the device the AENQ's entries and checks that it did
// not declare itself dead in response (§6 step 25).
func (d *Device) enableAENQ() error {
	d.aenq.enable()
	if err := d.checkFatal(); err != nil {
		return fmt.Errorf("ena: after AENQ enable: %w", err)
	}
	return nil
}

// createQueues creates every queue pair on the device, Tx then Rx (§6 step
// 28). The first boot builds the host side first; recovery re-creates the
// queues the QueuePair handles already point at.
func (d *Device) createQueues(mode bootMode) error {
	if mode == firstBoot {
		if err := d.allocQueues(); err != nil {
			return err
		}
	}
	for _, p := range d.activeQueues() {
		if err := p.create(); err != nil {
			return err
		}
	}
	return nil
}

// restoreMTU sets the MTU in use (§6 step 29): the configured one on first
// boot, the last SetMTU value after a reset.
func (d *Device) restoreMTU() error {
	return d.setMTU(int(d.mtu.Load()))
}

// postRxBuffers fills every Rx ring and rings its doorbell (§6 step 30).
func (d *Device) postRxBuffers() error {
	for _, p := range d.activeQueues() {
		p.rx.Refill()
	}
	return nil
}

// unmaskQueues unmasks every queue pair's interrupt (§6 step 31).
func (d *Device) unmaskQueues() error {
	for _, p := range d.queues {
		p.unmask()
	}
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
	if d.hooks.maxWait > 0 {
		d.regs.timeout.Store(int64(d.capWait(time.Duration(d.regs.timeout.Load()))))
	}
	if h.AdminCompletionTxTimeout != 0 {
		d.admin.setTimeout(d.capWait(time.Duration(h.AdminCompletionTxTimeout) * time.Millisecond))
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
	if (err != nil || v == 0xFFFFFFFF) && d.regs.gone() {
		return ErrDeviceGone
	}
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
	if d.aenqGhost || d.hooks.lateAENQ {
		return fmt.Errorf("%w: the device reported no supported AENQ groups and then failed, which is what it does when "+
			"the AENQ was registered after the first admin command (or not at all); "+
			"the device requires AENQ_BASE/AENQ_CAPS during admin init, before any command (§5.4, §6 step 10, §11)", err)
	}
	return err
}
