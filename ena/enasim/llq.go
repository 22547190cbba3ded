package enasim

import (
	"encoding/binary"

	"github.com/enanet/enanet/ena/spec"
)

// LLQ (low-latency queue) Tx SQs (§8): the ring lives in BAR2, the driver
// pushes whole entries (descriptors before the header, the header, then
// continuation entries of descriptors only) with 64-bit stores and rings the
// doorbell with the free-running entry tail. The device reads entries from
// its BAR2 copy on the doorbell, checks each entry's phase against the lap
// of its position, and decodes the packet with the negotiated layout
// (entry size, descriptors before header, stride).

// ioMemWrite stores b at off in BAR2 (mu held). Stores that run past the
// BAR are dropped, as a PCIe write outside the BAR never reaches the device.
func (m *Model) ioMemWrite(off uint32, b []byte) {
	if !m.prof.HasLLQ() {
		return
	}
	if m.io.bar2 == nil {
		m.io.bar2 = make([]byte, m.prof.LLQ.BAR2Size)
	}
	if uint64(off)+uint64(len(b)) > uint64(len(m.io.bar2)) {
		if m.tr != nil {
			m.tr.printf("BAR2 store of %d bytes at %#x runs past the %d-byte BAR: dropped", len(b), off, len(m.io.bar2))
		}
		return
	}
	copy(m.io.bar2[off:], b)
}

// llqEntry returns entry i of the packet starting at the SQ head, or nil if
// the doorbell does not cover it or its phase is stale (recorded for
// parseLLQPacket). It is the callback spec.DecodeLLQPacket walks.
func (m *Model) llqEntry(sq *ioSQ, i int) []byte {
	t := sq.tx
	if i >= t.llqAvail {
		t.llqMiss = true
		return nil
	}
	pos := sq.head + uint16(i)
	es := t.layout.EntrySize()
	off := int(t.llqOff) + sq.slot(pos)*es
	e := m.io.bar2[off : off+es]
	// Slot 0 of every entry holds a descriptor (meta or data); its phase
	// bit is bit 24 of word 0 in both layouts (§7.2, §7.3).
	if (binary.LittleEndian.Uint32(e)&spec.TxDescPhaseMask != 0) != sq.expectPhase(pos) {
		t.llqBadPos = i
		return nil
	}
	return e
}

// parseLLQPacket decodes the packet at the head of an LLQ SQ (§8.2). It
// returns false if the packet's entries are not all covered by the doorbell
// (nothing consumed; the next doorbell retries) or on a fatal error.
func (m *Model) parseLLQPacket(sq *ioSQ, avail int) bool {
	t := sq.tx
	t.llqAvail, t.llqMiss, t.llqBadPos = avail, false, -1
	pkt, err := spec.DecodeLLQPacket(t.layout, t.entryFn, t.maxDescs, t.descs)
	if err != nil {
		switch {
		case t.llqBadPos >= 0:
			pos := sq.head + uint16(t.llqBadPos)
			m.fatal("%s LLQ entry %d (position %d): phase %d, expected %d: doorbell rung before the entry was pushed, or the entry is stale (§7.8, §8.2)",
				sq.name(), sq.slot(pos), pos, b2i(!sq.expectPhase(pos)), b2i(sq.expectPhase(pos)))
		case t.llqMiss:
			// The packet continues past the doorbell tail: wait.
		default:
			m.fatal("%s LLQ packet at position %d: %v", sq.name(), sq.head, err)
		}
		return false
	}
	p := &t.pkt
	p.hasMeta, p.meta, p.descs, p.header, p.slots = pkt.HasMeta, pkt.Meta, pkt.Descs, pkt.Header, pkt.Entries
	return m.checkTxChain(sq, p)
}
