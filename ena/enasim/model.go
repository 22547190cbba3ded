package enasim

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/enanet/enanet/ena/hw/dmamem"
	"github.com/enanet/enanet/ena/spec"
)

// Register values the model reports (§2.2, §11).
const (
	// regVersion is what real devices report: "device version 0.10".
	regVersion = spec.ObservedVersion
	// regControllerVersion: "controller version 0.0.1 implementation 1".
	regControllerVersion = spec.ObservedControllerVersion
	// ioRegBase: offsets at and above it belong to per-queue registers
	// (doorbells, unmask, NUMA) handed out by CREATE_SQ/CREATE_CQ (§2.1).
	ioRegBase = 0x1000
	// caps reset timeout (x100 ms), admin timeout (x100 ms), DMA width.
	// The admin timeout field is 0, so drivers use their 3 s default
	// (§11): no real value is known, and DPDK 22.11's ENA PMD builds an
	// invalid deadline (pthread_cond_timedwait fails with EINVAL) for any
	// admin timeout that is not a whole number of seconds.
	capsResetTimeout = 8
	capsAdminTimeout = 0
	capsDMAWidth     = 48
)

// ModelConfig configures a Model that is not wrapped in a Device, e.g. one
// serving a QEMU guest through a socket.
type ModelConfig struct {
	// Profile is the instance class (validated by NewModel).
	Profile Profile
	// Memory is host memory by device address (required).
	Memory Memory
	// IRQ receives MSI-X messages (required).
	IRQ IRQSink
	// Wire carries frames; nil = unplugged.
	Wire Wire
	// MAC is the device address reported in DEVICE_ATTRIBUTES.
	MAC [6]byte
	// KeepAlivePeriod is the AENQ keep-alive interval; 0 = 1 s (§5.3).
	KeepAlivePeriod time.Duration
	// Trace receives the human-readable trace; nil = off.
	Trace io.Writer
	// Logger receives notable events; nil = discard.
	Logger *slog.Logger
	// Name labels trace lines and log records.
	Name string
}

// Model is the ENA device logic, independent of where it runs. Register
// accesses arrive as calls (RegRead, RegWrite), LLQ stores as MemWrite; host
// memory is reached only through Memory and interrupts leave only through
// IRQSink. All state is guarded by mu; the Model never calls Wire.Send while
// holding it (the I/O side sends in flushOutgoing, after unlock).
type Model struct {
	// mu guards every field below; held during RegWrite, MemWrite, receive
	// and the model's own timers. Never held while calling Wire.Send.
	mu sync.Mutex

	mem  Memory
	irq  IRQSink
	wire Wire
	prof *Profile
	io   ioState      // I/O queues (queues.go); zero value = none
	cfg  featureState // negotiated features; reset to defaults on device reset
	// stats are the device's counters, cumulative since the last reset.
	stats devStats

	name  string
	mac   [6]byte
	log   *slog.Logger
	tr    *tracer // nil when not tracing: hot paths test it before formatting
	start time.Time

	// Register file (§2.1).
	aqBaseLo, aqBaseHi     uint32
	acqBaseLo, acqBaseHi   uint32
	aenqBaseLo, aenqBaseHi uint32
	aqCaps, acqCaps        uint32
	aenqCaps               uint32
	intrMask               uint32
	devCtl                 uint32
	respLo, respHi         uint32

	// Device status (DEV_STS, §2.2).
	resetting   bool   // RESET_IN_PROGRESS: between DEV_CTL 1 and DEV_CTL 0
	fatalReason string // non-empty = FATAL_ERROR; set once per reset cycle
	lastReset   spec.ResetReason
	resets      uint64

	// Management interrupt: a raise while INTR_MASK bit 0 is set stays
	// pending and fires on unmask, as a masked MSI-X vector does.
	mgmtPending bool

	// Admin queue (§4.1).
	aqHead       uint16 // free-running count of AQ entries consumed
	acqTail      uint16 // free-running count of ACQ entries written
	adminStarted bool   // the first AQ entry has been consumed since reset
	adminCmds    uint64
	entry        [spec.AQEntrySize]byte  // scratch: the AQ entry being executed
	cbuf         [spec.ACQEntrySize]byte // scratch: the ACQ entry being written
	delayed      []completion            // completions held back by DelayAdminCompletions

	// AENQ (§5).
	aenqWritten bool   // AENQ base or caps written since reset
	aenqGhost   bool   // ... but only after the first admin command (§11)
	ghostArmed  bool   // the 150 µs fatal timer is running
	aenqTail    uint16 // free-running count of AENQ entries posted
	aenqCredit  uint16 // last AENQ_HEAD_DB value
	aenqEnabled bool   // AENQ_HEAD_DB written at least once since reset
	aenqPending []aenqEvent
	aenqPosted  uint64
	aenqDropped uint64
	abuf        [spec.AENQEntrySize]byte
	linkUp      bool

	faults faultState
	// intrDrop is the lost-interrupt fault (intr.go); atomics, read on
	// raise paths that run without mu.
	intrDrop intrDropState
	gen      uint64 // bumped by every reset; stale timers compare it

	// score counts every refusal, by rule (refusals.go).
	score refusalScore

	// Goroutines: keep-alive loop and timers; stopped by Close.
	timers    timerSet
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closed    bool // Close called: no more admin completions or events
	kaPeriod  time.Duration
}

// featureState is what the driver negotiated with GET/SET_FEATURE (§4.8).
// Fields the I/O side reads are marked.
type featureState struct {
	// LLQ (§8.1): set by SET_FEATURE LLQ.
	llqEnabled             bool           // I/O: Tx SQs may use placement DEV
	llqLayout              spec.LLQLayout // I/O: negotiated entry layout
	llqEntrySize           int            // I/O: bytes (128, 192, 256)
	llqDescsBeforeHeader   int            // I/O
	llqMultipleDescs       bool           // I/O: stride MULTIPLE_DESCS_PER_ENTRY
	llqMetaCachingDisabled bool           // I/O: every packet carries a meta descriptor
	llqBurstLimit          bool           // I/O: LIMIT_TX_BURST enabled
	llqMaxBurstEntries     int            // I/O: entries between doorbells (0 = no limit)

	mtu int // I/O: L3 MTU (SET_FEATURE MTU); default 1500

	// RSS (§10): the key is stored exactly as it arrived in the control
	// buffer (40 bytes); see rss.go for the byte order used when hashing.
	rssFunc      spec.HashFunction // I/O: function code (1 Toeplitz, 2 CRC32)
	rssInitVal   uint32            // I/O
	rssKey       [40]byte          // I/O
	rssTable     []uint16          // I/O: Rx sq_idx per entry; len = 1<<rssTableLog
	rssTableLog  int               // size as log2
	rssInputs    [16]uint16        // I/O: selected fields per protocol index
	rssInputSort uint16            // I/O: enabled_input_sort (bit1 L3 swap, bit2 L4 swap)

	hostAttrSet    bool // HOST_ATTR_CONFIG accepted
	hostModeration bool // I/O: host-info advertises interrupt_moderation (moderation.go)
	hostInfo       []byte

	aenqRegistered bool   // AENQ base and caps written in time (not a ghost)
	aenqGroups     uint32 // enabled groups (SET AENQ_CONFIG)
}

// devStats are the device counters (GET_STATS BASIC/ENI, keep-alive §5.3).
// The I/O side increments them with mu held.
type devStats struct {
	txBytes, txPkts, rxBytes, rxPkts uint64
	rxDrops, txDrops, rxOverruns     uint64
	// ENI allowance counters (GET_STATS ENI / CUSTOMER_METRICS).
	bwIn, bwOut, pps, conntrack, linklocal uint64
	// conntrackAvailable is CUSTOMER_METRICS bit 5 (a gauge, not a count).
	conntrackAvailable uint64
}

// NewModel builds a device model in its power-on state (READY, no queues)
// and starts its keep-alive goroutine. Call Close to stop it.
func NewModel(cfg ModelConfig) (*Model, error) {
	prof := cfg.Profile
	if prof.Name == "" {
		prof = ProfileNitroV3
	}
	if err := prof.validate(); err != nil {
		return nil, err
	}
	if cfg.Memory == nil || cfg.IRQ == nil {
		return nil, fmt.Errorf("enasim: model needs Memory and IRQ")
	}
	period := cfg.KeepAlivePeriod
	if period <= 0 {
		period = time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Model{
		mem: cfg.Memory, irq: cfg.IRQ, wire: cfg.Wire, prof: &prof,
		name: cfg.Name, mac: cfg.MAC, log: log, start: time.Now(),
		stop: make(chan struct{}), kaPeriod: period, linkUp: true,
	}
	if m.name == "" {
		m.name = "sim0"
	}
	if cfg.Trace != nil {
		m.tr = newTracer(cfg.Trace, m.name, m.start)
	}
	m.timers.init()
	m.cfg = defaultFeatures()
	m.stats.conntrackAvailable = prof.ConntrackAllowance
	m.wg.Add(1)
	goModel(m.keepAliveLoop)
	return m, nil
}

// defaultFeatures is the feature state after reset.
func defaultFeatures() featureState {
	return featureState{mtu: 1500, rssFunc: spec.HashToeplitz}
}

// Close stops the keep-alive goroutine and every timer and waits for them.
// The model answers no more admin commands afterwards. Safe to call twice.
func (m *Model) Close() {
	m.closeOnce.Do(func() {
		close(m.stop)
		m.wg.Wait()
		m.timers.close()
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
	})
}

// Profile returns the profile the model runs (a copy).
func (m *Model) Profile() Profile {
	m.mu.Lock()
	defer m.mu.Unlock()
	return *m.prof
}

// FatalReason returns why the device went FATAL (DEV_STS bit 5), or "".
func (m *Model) FatalReason() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fatalReason
}

// ---------------------------------------------------------------------------
// Register access (§2)

// RegRead is a 32-bit load from BAR0 at off. Reads have no side effects.
// An offset that is unaligned or outside BAR0 reads as all ones, as a PCI
// master abort does.
func (m *Model) RegRead(off uint32) uint32 {
	m.mu.Lock()
	v := m.regValue(off)
	if m.faults.removed {
		v = 0xFFFFFFFF // what a PCIe read of a removed function returns
	}
	if m.tr != nil {
		m.tr.regRead(off, v)
	}
	m.mu.Unlock()
	return v
}

// RegWrite is a 32-bit store to BAR0 at off. Doorbells and other per-queue
// registers (off >= 0x1000) go to the I/O side; they do not allocate unless
// tracing.
func (m *Model) RegWrite(off uint32, val uint32) {
	m.mu.Lock()
	if m.faults.removed {
		m.mu.Unlock()
		return
	}
	if off >= ioRegBase && off < m.prof.BAR0Size && off&3 == 0 {
		handled := false
		if m.fatalReason == "" && !m.resetting {
			handled = m.ioRegWrite(off, val)
		}
		if !handled {
			m.noteRegRefusal("write to a per-queue register that does not exist (or while FATAL/resetting)", off, val)
		}
		if m.tr != nil {
			m.tr.regWrite(off, val, m.devSts(), handled, "")
		}
	} else {
		note := m.coreWrite(off, val)
		if strings.HasSuffix(note, "ignored") {
			m.noteRefusal("register write "+note, fmt.Sprintf("W 0x%03x %s <- 0x%08x: %s", off, spec.RegName(off), val, note))
		}
		if m.tr != nil {
			m.tr.regWrite(off, val, m.devSts(), true, note)
		}
	}
	m.mu.Unlock()
	m.flushOutgoing()
}

// MemWrite is a store of b into BAR2 (LLQ memory) at off.
func (m *Model) MemWrite(off uint32, b []byte) {
	m.mu.Lock()
	if m.tr != nil {
		m.tr.memWrite(off, b)
	}
	if m.fatalReason == "" && !m.resetting {
		m.ioMemWrite(off, b)
	}
	m.mu.Unlock()
	m.flushOutgoing()
}

// Read is a register load of width bytes, for transports (a QEMU proxy)
// that forward guest accesses with their width. ENA registers are 32-bit;
// any other width is a driver bug and reads as all ones.
func (m *Model) Read(off uint32, width int) uint32 {
	if width != 4 {
		m.mu.Lock()
		m.noteRefusal("register read of a width other than 32 bits", fmt.Sprintf("R 0x%03x width %d", off, width))
		if m.tr != nil {
			m.tr.printf("R 0x%03x width %d: ENA registers are 32-bit; returning all ones", off, width)
		}
		m.mu.Unlock()
		return 0xFFFFFFFF
	}
	return m.RegRead(off)
}

// Write is a register store of width bytes, for transports that forward
// accesses with their width. An 8-byte store is split into two 32-bit stores,
// low address first; other widths are driver bugs and are ignored.
func (m *Model) Write(off uint32, width int, val uint64) {
	switch width {
	case 4:
		m.RegWrite(off, uint32(val))
	case 8:
		m.RegWrite(off, uint32(val))
		m.RegWrite(off+4, uint32(val>>32))
	default:
		m.mu.Lock()
		m.noteRefusal("register write of a width other than 32 bits", fmt.Sprintf("W 0x%03x width %d <- %#x", off, width, val))
		if m.tr != nil {
			m.tr.printf("W 0x%03x width %d <- %#x: ENA registers are 32-bit; ignored", off, width, val)
		}
		m.mu.Unlock()
	}
}

// devSts computes DEV_STS (§2.2). READY is clear while a reset is in
// progress; FATAL_ERROR stays until the next reset.
func (m *Model) devSts() uint32 {
	var v uint32
	if m.resetting {
		v |= spec.DevStsResetInProgress
	} else {
		v |= spec.DevStsReady
	}
	if m.fatalReason != "" {
		v |= spec.DevStsFatalError
	}
	return v
}

// caps is the CAPS register (§2.2, §11): reset timeout 800 ms, DMA width 48,
// admin timeout field 0 (drivers default to 3 s).
func caps() uint32 {
	return spec.Caps{ResetTimeout: capsResetTimeout, DMAAddrWidth: capsDMAWidth, AdminCmdTimeout: capsAdminTimeout}.Encode()
}

// regValue returns what a read of off returns, with mu held. Write-only
// registers read as 0.
func (m *Model) regValue(off uint32) uint32 {
	if off&3 != 0 || off >= m.prof.BAR0Size {
		return 0xFFFFFFFF
	}
	switch off {
	case spec.RegVersion:
		return regVersion
	case spec.RegControllerVersion:
		return regControllerVersion
	case spec.RegCaps:
		return caps()
	case spec.RegAQBaseLo:
		return m.aqBaseLo
	case spec.RegAQBaseHi:
		return m.aqBaseHi
	case spec.RegAQCaps:
		return m.aqCaps
	case spec.RegACQBaseLo:
		return m.acqBaseLo
	case spec.RegACQBaseHi:
		return m.acqBaseHi
	case spec.RegACQCaps:
		return m.acqCaps
	case spec.RegACQTail:
		return uint32(m.acqTail)
	case spec.RegAENQCaps:
		return m.aenqCaps
	case spec.RegAENQBaseLo:
		return m.aenqBaseLo
	case spec.RegAENQBaseHi:
		return m.aenqBaseHi
	case spec.RegAENQTail:
		return uint32(m.aenqTail)
	case spec.RegIntrMask:
		return m.intrMask
	case spec.RegDevCtl:
		return m.devCtl
	case spec.RegDevSts:
		return m.devSts()
	case spec.RegMMIORespLo:
		return m.respLo
	case spec.RegMMIORespHi:
		return m.respHi
	}
	return 0
}

// coreWrite handles a store to a register of §2.1, with mu held. It returns
// a note for the trace when the write was refused or had a notable effect.
func (m *Model) coreWrite(off, val uint32) string {
	if off&3 != 0 || off >= m.prof.BAR0Size {
		return "outside BAR0 or unaligned: ignored"
	}
	switch off {
	case spec.RegDevCtl:
		return m.writeDevCtl(val)
	case spec.RegMMIORespLo:
		m.respLo = val
		return ""
	case spec.RegMMIORespHi:
		m.respHi = val
		return ""
	case spec.RegMMIORegRead:
		return m.readless(val)
	}
	if m.resetting {
		return "reset in progress: ignored"
	}
	switch off {
	case spec.RegAQBaseLo:
		m.aqBaseLo, m.aqHead = val, 0
	case spec.RegAQBaseHi:
		m.aqBaseHi, m.aqHead = val, 0
	case spec.RegAQCaps:
		m.aqCaps, m.aqHead = val, 0
	case spec.RegACQBaseLo:
		m.acqBaseLo, m.acqTail = val, 0
	case spec.RegACQBaseHi:
		m.acqBaseHi, m.acqTail = val, 0
	case spec.RegACQCaps:
		m.acqCaps, m.acqTail = val, 0
	case spec.RegAENQBaseLo, spec.RegAENQBaseHi, spec.RegAENQCaps:
		return m.writeAENQReg(off, val)
	case spec.RegAQDB:
		if m.tr != nil {
			m.tr.printf("W 0x%03x AQ_DB doorbell: tail %d, device head %d", off, uint16(val), m.aqHead)
		}
		m.adminDoorbell(uint16(val))
	case spec.RegAENQHeadDB:
		return m.aenqHeadDoorbell(uint16(val))
	case spec.RegIntrMask:
		m.intrMask = val
		if val&spec.IntrMaskAdmin == 0 && m.mgmtPending {
			m.mgmtPending = false
			m.raise(0)
			return "pending management interrupt delivered"
		}
	case spec.RegRSSIndEntryUpdate, spec.RegPHCDB:
		return "not implemented by the model: ignored"
	case spec.RegVersion, spec.RegControllerVersion, spec.RegCaps, spec.RegCapsExt,
		spec.RegACQTail, spec.RegAENQTail, spec.RegDevSts:
		return "read-only register: ignored"
	default:
		return "undefined register: ignored"
	}
	return ""
}

// raiseMgmt raises the management vector (0) unless INTR_MASK bit 0 masks
// it (§2.2, §7.8); a masked raise is remembered.
func (m *Model) raiseMgmt() {
	if m.intrMask&spec.IntrMaskAdmin != 0 {
		m.mgmtPending = true
		return
	}
	m.raise(0)
}

// ---------------------------------------------------------------------------
// Reset (§2.2 DEV_CTL, §6 step 3, §9.3)

// writeDevCtl runs the two-phase reset: 1 starts it (RESET_IN_PROGRESS, all
// state discarded), 0 finishes it (READY again).
func (m *Model) writeDevCtl(val uint32) string {
	m.devCtl = val
	dc := spec.DecodeDevCtl(val)
	switch {
	case dc.Reset && !m.resetting:
		m.resetting = true
		m.lastReset = dc.Reason
		m.resets++
		m.discardAll()
		note := "reset started (" + dc.Reason.String() + "): queues, registrations, features and MMIO_RESP discarded"
		if dc.ReasonExt != 0 && m.prof.Capabilities&(1<<3) == 0 {
			note += "; reason bits 27:24 used without EXTENDED_RESET_REASONS"
		}
		m.log.Info("enasim: device reset", "device", m.name, "reason", dc.Reason.String())
		return note
	case !dc.Reset && m.resetting:
		m.resetting = false
		return "reset finished"
	}
	return ""
}

// discardAll returns the device to its post-reset state: no admin or event
// queues, no I/O queues, default features, no readless address, counters at
// zero, FATAL cleared (§11: reset discards AQ/ACQ/AENQ registration, I/O
// queues, RSS/LLQ/feature configuration and the MMIO_RESP address).
func (m *Model) discardAll() {
	m.gen++
	m.intrDrop.clearUntilReset()
	m.resetIO()
	m.aqBaseLo, m.aqBaseHi, m.acqBaseLo, m.acqBaseHi = 0, 0, 0, 0
	m.aenqBaseLo, m.aenqBaseHi = 0, 0
	m.aqCaps, m.acqCaps, m.aenqCaps = 0, 0, 0
	m.intrMask = 0
	m.respLo, m.respHi = 0, 0
	m.fatalReason = ""
	m.mgmtPending = false
	m.aqHead, m.acqTail = 0, 0
	m.adminStarted = false
	m.delayed = m.delayed[:0]
	m.aenqWritten, m.aenqGhost, m.ghostArmed = false, false, false
	m.aenqTail, m.aenqCredit, m.aenqEnabled = 0, 0, false
	m.aenqPending = m.aenqPending[:0]
	m.cfg = defaultFeatures()
	// The counters restart at a reset; the conntrack gauge is the ENI's
	// state, not the device's (see Profile.ConntrackAllowance).
	m.stats = devStats{conntrackAvailable: m.prof.ConntrackAllowance}
}

// fatal puts the device into FATAL_ERROR (DEV_STS bit 5) and records why.
// The first reason wins until the next reset. From then on the device
// answers no admin command, posts no event and moves no data.
func (m *Model) fatal(format string, args ...any) {
	if m.fatalReason != "" {
		return
	}
	m.fatalReason = fmt.Sprintf(format, args...)
	if !strings.HasPrefix(format, "injected") {
		m.noteRefusal("FATAL: "+format, m.fatalReason)
	}
	m.log.Error("enasim: device FATAL", "device", m.name, "reason", m.fatalReason)
	if m.tr != nil {
		m.tr.printf("FATAL: %s (DEV_STS=0x%02x)", m.fatalReason, m.devSts())
	}
}

// dmaFault reports a failed DMA as FATAL; err is usually an *IOMMUFault.
func (m *Model) dmaFault(what string, err error) {
	m.fatal("%s: %v", what, err)
}

// tracef writes one trace line; a no-op (but still boxing its arguments)
// when tracing is off, so hot paths test m.tr != nil first.
func (m *Model) tracef(format string, args ...any) {
	if m.tr != nil {
		m.tr.printf(format, args...)
	}
}

// tracing reports whether a trace writer is attached.
func (m *Model) tracing() bool { return m.tr != nil }

// ---------------------------------------------------------------------------
// Readless reads (§3)

// readless answers an MMIO_REG_READ request: it DMAs {req_id, reg_off,
// value} to the MMIO_RESP address, value first and the word holding req_id
// last, because the driver trusts reg_off and value as soon as req_id
// matches.
func (m *Model) readless(val uint32) string {
	req := spec.DecodeMMIORegRead(val)
	addr := uint64(m.respHi)<<32 | uint64(m.respLo)
	if addr == 0 {
		return "no MMIO_RESP address: request dropped"
	}
	if m.closed {
		return "device closed"
	}
	v := m.regValue(uint32(req.RegOff))
	resp := spec.ReadlessResp{ReqID: req.ReqID, RegOff: req.RegOff, Value: v}
	var b [spec.ReadlessRespSize]byte
	resp.Encode(b[:])
	if err := m.mem.Write(addr+4, b[4:8]); err != nil {
		m.dmaFault("readless response", err)
		return "IOMMU fault"
	}
	if err := m.publish32(addr, le32(b[0:4])); err != nil {
		m.dmaFault("readless response", err)
		return "IOMMU fault"
	}
	if m.tr != nil {
		return fmt.Sprintf("readless %s = 0x%08x (req_id %d)", spec.RegName(uint32(req.RegOff)), v, req.ReqID)
	}
	return ""
}

// publish32 stores the 32-bit little-endian word w at addr as one atomic
// store when the memory is in this process, so the word (holding a phase
// bit or a req_id) becomes visible after every earlier store. Every
// supported host (amd64, arm64) is little-endian.
func (m *Model) publish32(addr uint64, w uint32) error {
	if s, err := m.mem.Slice(addr, 4); err == nil && dmamem.Aligned32(s, 0) {
		dmamem.Publish32(s, 0, w)
		return nil
	}
	var b [4]byte
	b[0], b[1], b[2], b[3] = byte(w), byte(w>>8), byte(w>>16), byte(w>>24)
	return m.mem.Write(addr, b[:])
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// ---------------------------------------------------------------------------
// Inspection

// Stats are the model-side counters, for tests and tools.
type Stats struct {
	// Device counters (GET_STATS BASIC), cumulative since the last reset.
	TxBytes, TxPkts, RxBytes, RxPkts, RxDrops, TxDrops, RxOverruns uint64
	// ENI allowance counters (GET_STATS ENI).
	BWInAllowanceExceeded, BWOutAllowanceExceeded, PPSAllowanceExceeded uint64
	ConntrackAllowanceExceeded, LinklocalAllowanceExceeded              uint64
	// AdminCommands counts AQ entries consumed since the model started.
	AdminCommands uint64
	// AENQPosted and AENQDropped count events written and discarded (group
	// not enabled, queue of waiting events full) since the model started.
	AENQPosted, AENQDropped uint64
	// Resets counts DEV_CTL resets since the model started.
	Resets uint64
	// LastResetReason is the reason of the last DEV_CTL reset.
	LastResetReason spec.ResetReason
	// DevSts is the current DEV_STS value.
	DevSts uint32
	// LinkUp is the simulated link state.
	LinkUp bool
	// IOSQs and IOCQs are the I/O queues that exist now.
	IOSQs, IOCQs int
}

// Stats returns a snapshot of the model's counters.
func (m *Model) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats
	sq, cq := m.ioQueueCounts()
	return Stats{
		TxBytes: s.txBytes, TxPkts: s.txPkts, RxBytes: s.rxBytes, RxPkts: s.rxPkts,
		RxDrops: s.rxDrops, TxDrops: s.txDrops, RxOverruns: s.rxOverruns,
		BWInAllowanceExceeded: s.bwIn, BWOutAllowanceExceeded: s.bwOut,
		PPSAllowanceExceeded: s.pps, ConntrackAllowanceExceeded: s.conntrack,
		LinklocalAllowanceExceeded: s.linklocal,
		AdminCommands:              m.adminCmds,
		AENQPosted:                 m.aenqPosted, AENQDropped: m.aenqDropped,
		Resets: m.resets, LastResetReason: m.lastReset,
		DevSts: m.devSts(), LinkUp: m.linkUp,
		IOSQs: sq, IOCQs: cq,
	}
}

// ---------------------------------------------------------------------------
// Timers owned by the model

// timerSet tracks time.AfterFunc timers so Close can stop them and wait for
// callbacks already running.
type timerSet struct {
	mu     sync.Mutex
	closed bool
	timers map[*time.Timer]struct{}
	wg     sync.WaitGroup
}

func (ts *timerSet) init() { ts.timers = make(map[*time.Timer]struct{}) }

// after runs fn after d on its own goroutine unless the set is closed
// first. fn must take Model.mu itself. Callable with Model.mu held.
func (ts *timerSet) after(d time.Duration, fn func()) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.closed {
		return
	}
	ts.wg.Add(1)
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		defer ts.wg.Done()
		// after() holds ts.mu until t is stored, so reading t here is safe.
		ts.mu.Lock()
		delete(ts.timers, t)
		closed := ts.closed
		ts.mu.Unlock()
		if !closed {
			fn()
		}
	})
	ts.timers[t] = struct{}{}
}

// close stops pending timers and waits for running callbacks. Must not be
// called with Model.mu held.
func (ts *timerSet) close() {
	ts.mu.Lock()
	ts.closed = true
	for t := range ts.timers {
		if t.Stop() {
			ts.wg.Done()
		}
	}
	clear(ts.timers)
	ts.mu.Unlock()
	ts.wg.Wait()
}
