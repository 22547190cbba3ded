package enasim

import (
	"time"

	"github.com/enanet/enanet/ena/spec"
)

// faultState holds the injected control-path faults, guarded by Model.mu.
type faultState struct {
	noKeepAlive bool          // StopKeepAlive(true)
	dropAdmin   int           // completions still to drop
	delayAdmin  time.Duration // delay before each completion is written
	removed     bool          // SurpriseRemove: gone for good
}

// Faults injects device failures so tests can exercise a driver's error
// handling. Every method is safe to call from
// any goroutine at any time. Data-path faults (lost or corrupt completions,
// stalled Rx) are added by the I/O side of the model.
type Faults struct {
	m *Model
}

// Faults returns the fault-injection handle.
func (m *Model) Faults() *Faults { return &Faults{m: m} }

// InjectFatal puts the device into FATAL_ERROR now, with reason recorded in
// FatalReason. Only a reset (DEV_CTL) recovers it.
func (f *Faults) InjectFatal(reason string) {
	m := f.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if reason == "" {
		reason = "unspecified"
	}
	m.fatal("injected fatal error: %s", reason)
}

// StopKeepAlive stops (true) or resumes (false) keep-alive events, so the
// driver's keep-alive watchdog fires (§5.3, §9.2).
func (f *Faults) StopKeepAlive(stop bool) {
	m := f.m
	m.mu.Lock()
	defer m.mu.Unlock()
	m.faults.noKeepAlive = stop
	m.tracef("fault: keep-alive %s", map[bool]string{true: "stopped", false: "resumed"}[stop])
}

// DropAdminCompletions makes the device execute the next n admin commands
// but never write their completions, so the driver's admin timeout fires
// (§4.1). n <= 0 cancels.
func (f *Faults) DropAdminCompletions(n int) {
	m := f.m
	m.mu.Lock()
	defer m.mu.Unlock()
	m.faults.dropAdmin = max(n, 0)
	m.tracef("fault: drop the next %d admin completions", m.faults.dropAdmin)
}

// DelayAdminCompletions makes the device write each admin completion d
// after executing the command (in order). 0 restores immediate completions
// (already delayed ones still arrive).
func (f *Faults) DelayAdminCompletions(d time.Duration) {
	m := f.m
	m.mu.Lock()
	defer m.mu.Unlock()
	m.faults.delayAdmin = max(d, 0)
	m.tracef("fault: admin completions delayed by %v", m.faults.delayAdmin)
}

// SetLink changes the link state and posts a LINK_CHANGE event (§5.2).
// While the link is down the I/O side neither sends nor receives frames.
func (f *Faults) SetLink(up bool) {
	m := f.m
	m.mu.Lock()
	defer m.mu.Unlock()
	m.linkUp = up
	m.tracef("fault: link %s", map[bool]string{true: "up", false: "down"}[up])
	m.postLinkChange()
}

// RequestReset posts a DEVICE_REQUEST_RESET event (§5.2, group 7); the
// driver is expected to reset with reason DEVICE_REQUEST.
func (f *Faults) RequestReset() {
	m := f.m
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tracef("fault: device requests a reset")
	ev := aenqEvent{group: spec.AENQDeviceRequestReset}
	m.post(&ev)
}

// SendHints posts a NOTIFICATION / UPDATE_HINTS event with h (§5.2), and
// makes later GET HW_HINTS answer h too.
func (f *Faults) SendHints(h spec.HWHints) {
	m := f.m
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prof.Hints = h
	ev := aenqEvent{group: spec.AENQNotification, syndrome: spec.AENQSyndromeUpdateHints}
	h.Encode(ev.payload[:])
	m.tracef("fault: hints notification %+v", h)
	m.post(&ev)
}

// DropInterrupts makes the device lose every MSI-X message on vector for d
// (UntilReset: until the driver resets the device; 0 ends the fault now).
// Vector 0 is the management vector (admin completions and AENQ events,
// §1.2); vector 1+q is I/O queue pair q. The device behaves as if it had
// delivered each lost message: an I/O vector auto-masks (§7.8), so the
// driver sees completions pile up with no interrupt, the case vendor
// drivers detect as MISS_INTERRUPT (§9.2).
func (f *Faults) DropInterrupts(vector int, d time.Duration) {
	if vector < 0 || vector >= maxVectors {
		return
	}
	f.m.intrDrop.set(vector, d)
	f.m.mu.Lock()
	f.m.tracef("fault: interrupts on vector %d dropped for %v", vector, d)
	f.m.mu.Unlock()
}

// DropIOInterrupts is DropInterrupts on every I/O vector (1 and up).
func (f *Faults) DropIOInterrupts(d time.Duration) {
	for v := 1; v < maxVectors; v++ {
		f.m.intrDrop.set(v, d)
	}
	f.m.mu.Lock()
	f.m.tracef("fault: all I/O interrupts dropped for %v", d)
	f.m.mu.Unlock()
}

// DroppedInterrupts is how many MSI-X messages the fault has swallowed.
func (f *Faults) DroppedInterrupts() uint64 { return f.m.intrDrop.dropped.Load() }

// SurpriseRemove makes the device vanish as a hot-unplugged PCIe function
// does: register reads return all-ones, register writes are lost, and the
// device never writes memory or interrupts again. Nothing undoes it.
func (f *Faults) SurpriseRemove() {
	m := f.m
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tracef("fault: surprise removal")
	m.fatal("surprise removal")
	m.faults.removed = true
}

// Notify posts a NOTIFICATION event with syndrome and no payload (§5.2),
// such as spec.AENQSyndromeSuspend and spec.AENQSyndromeResume, which
// drivers only log.
func (f *Faults) Notify(syndrome uint16) {
	m := f.m
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tracef("fault: notification syndrome %d", syndrome)
	ev := aenqEvent{group: spec.AENQNotification, syndrome: syndrome}
	m.post(&ev)
}

// InjectIOMMUFault makes the device DMA outside every mapping, as a device
// with a corrupted address would: the IOMMU refuses the access and the
// device goes FATAL_ERROR until reset (§2.2).
func (f *Faults) InjectIOMMUFault() {
	m := f.m
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dmaFault("injected DMA write", &IOMMUFault{Addr: 0xdead0000, Len: 64, Write: true})
}
