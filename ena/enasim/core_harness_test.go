package enasim

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/enanet/enanet/ena/hw"
	"github.com/enanet/enanet/ena/spec"
)

// harness is a tiny test-only "driver": just enough register writes and
// admin commands to drive the model through the seam, written from the
// protocol document, independent of package ena.
type harness struct {
	t    testing.TB
	d    *Device
	m    *Model
	regs hw.RegisterBAR
	dma  hw.DMA

	readless bool
	resp     *hw.Region
	seq      uint16

	aq, acq, aenq     *hw.Region
	aqDepth, aenqDep  uint16
	aqTail, acqHead   uint16
	cmdID             uint16
	aenqHead          uint16
	hostInfo, ctrlBuf *hw.Region
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	// The harness's test buffers are one region per queue, larger than a
	// driver may allocate (hw.MaxAlloc); lift the limit for them.
	d.dma.maxAlloc = 64 << 20
	h := &harness{t: t, d: d, m: d.Model(), regs: d.Registers(), dma: d.DMA(), aqDepth: 32, aenqDep: 16}
	h.readless = d.Identity().Readless()
	h.resp = h.alloc(4096)
	h.hostInfo = h.alloc(4096)
	h.ctrlBuf = h.alloc(4096)
	return h
}

func (h *harness) alloc(n int) *hw.Region {
	h.t.Helper()
	r, err := h.dma.Alloc(n, 4096)
	if err != nil {
		h.t.Fatalf("DMA alloc: %v", err)
	}
	return r
}

func (h *harness) w(off, v uint32) { h.regs.Write32(off, v) }

// r reads a register the way a vendor driver does: readless when the
// revision allows it (§3), else a plain load.
func (h *harness) r(off uint32) uint32 {
	if !h.readless {
		return h.regs.Read32(off)
	}
	h.seq++
	binary.LittleEndian.PutUint16(h.resp.Bytes[0:], h.seq+spec.ReadlessStaleOffset)
	h.w(spec.RegMMIORegRead, spec.MMIORegRead{ReqID: h.seq, RegOff: uint16(off)}.Encode())
	r := spec.DecodeReadlessResp(h.resp.Bytes)
	if r.ReqID != h.seq || uint32(r.RegOff) != off {
		return spec.MMIOReadTimeout
	}
	return r.Value
}

func (h *harness) setResp() {
	h.w(spec.RegMMIORespLo, uint32(h.resp.Addr))
	h.w(spec.RegMMIORespHi, uint32(h.resp.Addr>>32))
}

// reset runs the two-phase reset of §6 step 3.
func (h *harness) reset() {
	h.t.Helper()
	h.setResp()
	if h.r(spec.RegDevSts)&spec.DevStsReady == 0 {
		h.t.Fatalf("DEV_STS not READY before reset")
	}
	h.w(spec.RegDevCtl, spec.DevCtlReset(spec.ResetNormal, false))
	h.setResp()
	if h.r(spec.RegDevSts)&spec.DevStsResetInProgress == 0 {
		h.t.Fatalf("RESET_IN_PROGRESS not set after DEV_CTL=1")
	}
	h.w(spec.RegDevCtl, 0)
	if v := h.r(spec.RegDevSts); v&spec.DevStsResetInProgress != 0 || v&spec.DevStsReady == 0 {
		h.t.Fatalf("DEV_STS %#x after reset, want READY without RESET_IN_PROGRESS", v)
	}
}

// adminQueues programs AQ and ACQ (§6 steps 7-9); admin state is fresh.
func (h *harness) adminQueues() {
	for _, r := range []*hw.Region{h.aq, h.acq} {
		_ = r.Free() // nil-safe; reused harnesses (fuzzing) would pile up rings
	}
	h.aq = h.alloc(int(h.aqDepth) * 64)
	h.acq = h.alloc(int(h.aqDepth) * 64)
	h.aqTail, h.acqHead, h.cmdID = 0, 0, 0
	h.w(spec.RegAQBaseLo, uint32(h.aq.Addr))
	h.w(spec.RegAQBaseHi, uint32(h.aq.Addr>>32))
	h.w(spec.RegACQBaseLo, uint32(h.acq.Addr))
	h.w(spec.RegACQBaseHi, uint32(h.acq.Addr>>32))
	caps := spec.QueueCaps{Depth: h.aqDepth, EntrySize: 64}.Encode()
	h.w(spec.RegAQCaps, caps)
	h.w(spec.RegACQCaps, caps)
}

// registerAENQ writes AENQ base and caps (§6 step 10).
func (h *harness) registerAENQ() {
	_ = h.aenq.Free()
	h.aenq = h.alloc(int(h.aenqDep) * 64)
	h.aenqHead = h.aenqDep
	h.w(spec.RegAENQBaseLo, uint32(h.aenq.Addr))
	h.w(spec.RegAENQBaseHi, uint32(h.aenq.Addr>>32))
	h.w(spec.RegAENQCaps, spec.QueueCaps{Depth: h.aenqDep, EntrySize: 64}.Encode())
}

// init does reset + admin init with the AENQ in the right place and admin
// polling mode (§6 steps 3-11).
func (h *harness) init() {
	h.t.Helper()
	h.reset()
	h.adminQueues()
	h.registerAENQ()
	h.w(spec.RegIntrMask, spec.IntrMaskAdmin)
}

// post writes entry e into the AQ with the next command id and phase and
// rings the doorbell; it returns the command id.
func (h *harness) post(e []byte) uint16 {
	slot := h.aqTail & (h.aqDepth - 1)
	phase := ringPhase(h.aqTail, h.aqDepth)
	id := h.cmdID
	h.cmdID = (h.cmdID + 1) % h.aqDepth
	spec.SetAQEntryID(e, id, phase)
	copy(h.aq.Bytes[int(slot)*64:], e[:64])
	h.aqTail++
	h.w(spec.RegAQDB, uint32(h.aqTail))
	return id
}

// poll returns the next ACQ entry if its phase says it is there.
func (h *harness) poll() (spec.ACQHeader, []byte, bool) {
	slot := h.acqHead & (h.aqDepth - 1)
	ent := h.acq.Bytes[int(slot)*64 : int(slot)*64+64]
	if spec.ACQEntryPhase(ent) != ringPhase(h.acqHead, h.aqDepth) {
		return spec.ACQHeader{}, nil, false
	}
	h.acqHead++
	return spec.DecodeACQHeader(ent), append([]byte(nil), ent[8:]...), true
}

// cmd submits e and returns its completion (which the model writes
// synchronously unless a fault delays it).
func (h *harness) cmd(e []byte) (spec.ACQHeader, []byte) {
	h.t.Helper()
	id := h.post(e)
	c, p, ok := h.poll()
	if !ok {
		h.t.Fatalf("no completion for command %d (opcode %s); DEV_STS %#x fatal %q",
			id, spec.AQEntryOpcode(e), h.regs.Read32(spec.RegDevSts), h.d.FatalReason())
	}
	if c.CommandID != id {
		h.t.Fatalf("completion for command %d, want %d", c.CommandID, id)
	}
	return c, p
}

// status submits e and returns the completion status.
func (h *harness) status(e []byte) spec.Status {
	h.t.Helper()
	c, _ := h.cmd(e)
	return c.Status
}

func (h *harness) mustOK(e []byte) []byte {
	h.t.Helper()
	c, p := h.cmd(e)
	if c.Status != spec.StatusSuccess {
		h.t.Fatalf("%s: status %s, want SUCCESS (%s)", spec.AQEntryOpcode(e), c.Status, h.m.LastQueueRefusal())
	}
	return p
}

// Command builders.

func entry() []byte { return make([]byte, 64) }

func getFeat(id spec.FeatureID, ver uint8) []byte {
	e := entry()
	c := spec.GetFeatureCmd{FeatureID: id, FeatureVersion: ver}
	c.Encode(e)
	return e
}

func getFeatBuf(id spec.FeatureID, addr uint64, n uint32) []byte {
	e := entry()
	c := spec.GetFeatureCmd{FeatureID: id, Header: spec.AQHeader{CtrlDataIndirect: true}, CtrlBuf: spec.CtrlBuf{Addr: addr, Length: n}}
	c.Encode(e)
	return e
}

type encoder interface{ Encode([]byte) }

func setFeat(id spec.FeatureID, payload encoder) []byte {
	e := entry()
	c := spec.SetFeatureCmd{FeatureID: id}
	if payload != nil {
		payload.Encode(c.Payload[:])
	}
	c.Encode(e)
	return e
}

func setFeatBuf(id spec.FeatureID, payload encoder, addr uint64, n uint32) []byte {
	e := entry()
	c := spec.SetFeatureCmd{FeatureID: id, Header: spec.AQHeader{CtrlDataIndirect: true}, CtrlBuf: spec.CtrlBuf{Addr: addr, Length: n}}
	if payload != nil {
		payload.Encode(c.Payload[:])
	}
	c.Encode(e)
	return e
}

func getStats(typ spec.StatsType, req uint64, addr uint64, n uint32) []byte {
	e := entry()
	c := spec.GetStatsCmd{Type: typ, RequestedMetrics: req, CtrlBuf: spec.CtrlBuf{Addr: addr, Length: n}}
	c.Encode(e)
	return e
}

func (h *harness) createCQ(depth uint16, words uint8) []byte {
	ring := h.alloc(int(depth) * int(words) * 4)
	e := entry()
	c := spec.CreateCQCmd{InterruptMode: true, EntrySizeWords: words, Depth: depth, MSIXVector: 1, BaseAddr: ring.Addr}
	c.Encode(e)
	return e
}

func (h *harness) createSQ(dir spec.SQDirection, pl spec.PlacementPolicy, cq, depth uint16) []byte {
	var addr uint64
	if pl == spec.PlacementHost {
		addr = h.alloc(int(depth) * 16).Addr
	}
	e := entry()
	c := spec.CreateSQCmd{Direction: dir, Placement: pl, PhysContiguous: true, CQIdx: cq, Depth: depth, BaseAddr: addr}
	c.Encode(e)
	return e
}

// setHostAttr registers a host-info page (§6 step 12).
func (h *harness) setHostAttr() {
	hi := spec.HostInfo{OSType: spec.OSLinux, DriverVersion: spec.PackDriverVersion(2, 0, 0, 0), NumCPUs: 2}
	hi.Encode(h.hostInfo.Bytes)
	h.mustOK(setFeat(spec.FeatHostAttrConfig, &spec.HostAttrConfig{OSInfoAddr: h.hostInfo.Addr}))
}

// bringUp runs the whole §6 sequence up to "AENQ enabled" and returns the
// device attributes.
func (h *harness) bringUp() spec.DeviceAttributes {
	h.t.Helper()
	h.init()
	h.setHostAttr()
	attrs := spec.DecodeDeviceAttributes(h.mustOK(getFeat(spec.FeatDeviceAttributes, 0)))
	ac := spec.DecodeAENQConfig(h.mustOK(getFeat(spec.FeatAENQConfig, 0)))
	h.mustOK(setFeat(spec.FeatAENQConfig, &spec.AENQConfig{EnabledGroups: spec.AENQGroupsLinux & ac.SupportedGroups}))
	h.w(spec.RegIntrMask, spec.IntrUnmaskAdmin)
	h.w(spec.RegAENQHeadDB, uint32(h.aenqHead))
	return attrs
}

// nextEvent returns the next AENQ entry if one is there (§5.4), and
// returns one credit for it like a vendor driver.
func (h *harness) nextEvent() (spec.AENQEntry, bool) {
	slot := h.aenqHead & (h.aenqDep - 1)
	ent := h.aenq.Bytes[int(slot)*64 : int(slot)*64+64]
	if spec.AENQEntryPhase(ent) != ringPhase(h.aenqHead-h.aenqDep, h.aenqDep) {
		return spec.AENQEntry{}, false
	}
	e := spec.DecodeAENQEntry(ent)
	h.aenqHead++
	return e, true
}

// waitEvent polls for an event of group g for up to d, consuming others.
func (h *harness) waitEvent(g spec.AENQGroup, d time.Duration, credit bool) (spec.AENQEntry, bool) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for {
			e, ok := h.nextEvent()
			if !ok {
				break
			}
			if credit {
				h.w(spec.RegAENQHeadDB, uint32(h.aenqHead))
			}
			if e.Group == g {
				return e, true
			}
		}
		time.Sleep(time.Millisecond)
	}
	return spec.AENQEntry{}, false
}

// waitIRQ waits for vector v up to d.
func (h *harness) waitIRQ(v int, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	n, err := h.d.Interrupts().Wait(ctx, v)
	return err == nil && n > 0
}
