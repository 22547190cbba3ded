package enasim

import (
	"fmt"
	"time"

	"github.com/enanet/enanet/ena/spec"
)

// The asynchronous event notification queue (§5): the device posts 64-byte
// events into a host ring, one per credit granted through AENQ_HEAD_DB,
// only for groups the driver enabled with SET AENQ_CONFIG.

// ghostFatalDelay is how long after the AENQ_HEAD_DB write a late ("ghost")
// AENQ takes the device down (§11: about 150 µs on Graviton).
const ghostFatalDelay = 150 * time.Microsecond

// maxPendingEvents bounds the events held back for lack of credits; beyond
// it new events are dropped and counted.
const maxPendingEvents = 64

// aenqEvent is one event waiting to be posted.
type aenqEvent struct {
	group    spec.AENQGroup
	syndrome uint16
	payload  [spec.AENQPayloadSize]byte
}

// writeAENQReg stores AENQ_BASE_LO/HI or AENQ_CAPS. The AENQ must be
// registered during admin init, before the first admin command; one written
// later is accepted but is a ghost (§11, the OpenBSD port on Graviton).
func (m *Model) writeAENQReg(off, val uint32) string {
	switch off {
	case spec.RegAENQBaseLo:
		m.aenqBaseLo = val
	case spec.RegAENQBaseHi:
		m.aenqBaseHi = val
	case spec.RegAENQCaps:
		m.aenqCaps = val
	}
	m.aenqWritten = true
	m.aenqTail = 0
	note := ""
	if m.adminStarted && !m.aenqGhost {
		m.aenqGhost = true
		note = "AENQ registered after the first admin command: this AENQ is a ghost"
	}
	_, capsOK := validRing(m.aenqCaps)
	base := uint64(m.aenqBaseHi)<<32 | uint64(m.aenqBaseLo)
	m.cfg.aenqRegistered = !m.aenqGhost && capsOK && base != 0
	return note
}

// aenqHeadDoorbell handles AENQ_HEAD_DB: the driver grants credits up to
// head (free-running). Writing it before the AENQ exists is a device error;
// writing it for a ghost AENQ arms the fatal timer (§11).
func (m *Model) aenqHeadDoorbell(head uint16) string {
	if m.fatalReason != "" || m.closed {
		return ""
	}
	if !m.aenqWritten {
		m.fatal("AENQ_HEAD_DB written before AENQ base and caps were programmed")
		return ""
	}
	if m.aenqGhost {
		if !m.ghostArmed {
			m.ghostArmed = true
			gen := m.gen
			m.timers.after(ghostFatalDelay, func() {
				m.mu.Lock()
				defer m.mu.Unlock()
				if m.gen == gen && !m.closed {
					m.fatal("AENQ registered after the first admin command; the device failed %v after AENQ_HEAD_DB", ghostFatalDelay)
				}
			})
		}
		return "ghost AENQ: device will go FATAL in 150µs"
	}
	aenq, ok := validRing(m.aenqCaps)
	if !ok {
		m.fatal("AENQ_HEAD_DB written while AENQ_CAPS is 0x%08x: need 64-byte entries and a power-of-two depth", m.aenqCaps)
		return ""
	}
	note := ""
	if n := head - m.aenqTail; n > aenq.Depth {
		note = fmt.Sprintf("head %d grants %d credits but the AENQ holds %d: driver bug, credits capped", head, n, aenq.Depth)
		head = m.aenqTail + aenq.Depth
	}
	m.aenqCredit = head
	m.aenqEnabled = true
	m.flushPendingEvents()
	return note
}

// aenqCredits is how many events may be posted now.
func (m *Model) aenqCredits() int {
	if !m.aenqEnabled {
		return 0
	}
	return int(m.aenqCredit - m.aenqTail)
}

// post queues or writes one event. Events of groups not enabled are
// dropped; without credits they wait (a keep-alive replaces an older
// waiting keep-alive rather than piling up).
func (m *Model) post(ev *aenqEvent) {
	if m.fatalReason != "" || m.closed || m.resetting || !m.cfg.aenqRegistered {
		return
	}
	if m.cfg.aenqGroups&ev.group.Bit() == 0 {
		m.aenqDropped++
		if m.tr != nil {
			m.tr.printf("AENQ: %s event not posted: group not enabled (enabled %#x)", ev.group, m.cfg.aenqGroups)
		}
		return
	}
	if len(m.aenqPending) == 0 && m.aenqCredits() > 0 {
		m.writeEvent(ev)
		return
	}
	if ev.group == spec.AENQKeepAlive {
		for i := range m.aenqPending {
			if m.aenqPending[i].group == spec.AENQKeepAlive {
				m.aenqPending[i] = *ev
				return
			}
		}
	}
	if len(m.aenqPending) >= maxPendingEvents {
		m.aenqDropped++
		return
	}
	m.aenqPending = append(m.aenqPending, *ev)
	if m.tr != nil {
		m.tr.printf("AENQ: %s event waits for credits (%d waiting)", ev.group, len(m.aenqPending))
	}
}

// flushPendingEvents posts waiting events while credits last.
func (m *Model) flushPendingEvents() {
	n := 0
	for n < len(m.aenqPending) && m.aenqCredits() > 0 && m.fatalReason == "" {
		m.writeEvent(&m.aenqPending[n])
		n++
	}
	m.aenqPending = append(m.aenqPending[:0], m.aenqPending[n:]...)
}

// writeEvent writes one AENQ entry at the device tail, the flags word (with
// the phase bit) last, and raises vector 0 (§5.1, §5.4, §11).
func (m *Model) writeEvent(ev *aenqEvent) {
	aenq, _ := validRing(m.aenqCaps)
	base := uint64(m.aenqBaseHi)<<32 | uint64(m.aenqBaseLo)
	slot := m.aenqTail & (aenq.Depth - 1)
	e := spec.AENQEntry{
		Group:     ev.group,
		Syndrome:  ev.syndrome,
		Phase:     ringPhase(m.aenqTail, aenq.Depth),
		Timestamp: uint64(time.Now().UnixMilli()),
		Payload:   ev.payload,
	}
	b := m.abuf[:]
	e.Encode(b)
	addr := base + uint64(slot)*spec.AENQEntrySize
	if err := m.mem.Write(addr, b[0:4]); err != nil {
		m.dmaFault(fmt.Sprintf("writing AENQ entry %d", slot), err)
		return
	}
	if err := m.mem.Write(addr+8, b[8:]); err != nil {
		m.dmaFault(fmt.Sprintf("writing AENQ entry %d", slot), err)
		return
	}
	if err := m.publish32(addr+4, le32(b[4:8])); err != nil {
		m.dmaFault(fmt.Sprintf("writing AENQ entry %d", slot), err)
		return
	}
	m.aenqTail++
	m.aenqPosted++
	if m.tr != nil {
		m.tr.printf("AENQ[%d] %s syndrome %d phase %d posted (%d credits left)", slot, ev.group, ev.syndrome, b2i(e.Phase), m.aenqCredits())
	}
	m.raiseMgmt()
}

// keepAliveLoop posts KEEP_ALIVE every period (§5.3) until Close.
func (m *Model) keepAliveLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.kaPeriod)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.mu.Lock()
			m.keepAlive()
			m.mu.Unlock()
		}
	}
}

// keepAlive posts one keep-alive carrying the cumulative drop counters.
func (m *Model) keepAlive() {
	if m.faults.noKeepAlive || !m.aenqEnabled {
		return
	}
	ka := spec.AENQKeepAlivePayload{RxDrops: m.stats.rxDrops, TxDrops: m.stats.txDrops, RxOverruns: m.stats.rxOverruns}
	ev := aenqEvent{group: spec.AENQKeepAlive}
	ka.Encode(ev.payload[:])
	m.post(&ev)
}

// postLinkChange posts LINK_CHANGE with the current link state (§5.2).
func (m *Model) postLinkChange() {
	lc := spec.AENQLinkChangePayload{LinkUp: m.linkUp}
	ev := aenqEvent{group: spec.AENQLinkChange}
	lc.Encode(ev.payload[:])
	m.post(&ev)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
