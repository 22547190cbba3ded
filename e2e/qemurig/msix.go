package qemurig

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
)

// MSI-X as the proxied function presents it (PCI Local Bus 3.0, section 6.8.2).
//
// QEMU 7.2's proxy forwards INTx only, through KVM irqfds, so under TCG no
// interrupt reaches the guest that way. The function keeps its own MSI-X
// table and pending-bit array in a BAR the rig serves, and a delivered message leaves as a memory write of the
// vector's data to its address through a Deliverer (qtest.go writes it into
// the guest's APIC window). The table entries are what the guest kernel
// programmed: under interrupt remapping they would be remappable-format
// messages the APIC cannot take directly, so the rig runs intel-iommu with
// intremap=off.
const (
	msixCapID = 0x11
	// msixCapOffset is where the capability sits in config space: 0xb0, as
	// several public lspci -vvv listings of PCIe NICs with nine vectors show.
	msixCapOffset = 0xb0
	// ENA layout: nine vectors (one admin/AENQ, eight I/O) with the table
	// at 0x2000 and the PBA at 0x3000 of the 16 KiB register BAR, above the
	// register file and the per-queue registers (which end at 0x2000).
	ENAMSIXVectors     = 9
	ENAMSIXTableOffset = 0x2000
	ENAMSIXPBAOffset   = 0x3000

	msixEntrySize   = 16
	msixCtrlMasked  = 1 // Vector Control bit 0
	msiAddressBase  = 0xFEE00000
	msiAddressLimit = 0xFEEFFFFF
)

// Deliverer sends one MSI message: a 32-bit write of data to the
// guest-physical address addr. It must not block.
type Deliverer interface {
	Deliver(vector int, addr uint64, data uint32)
}

type msixEntry struct {
	addrLo, addrHi, data, ctrl uint32
}

// MSIX is one function's MSI-X state: table, pending bits, the Enable and
// Function Mask bits of Message Control, and per-vector counts of messages
// sent. Raise may be called from any goroutine and never blocks.
type MSIX struct {
	bar          int
	tableOff     uint32
	pbaOff       uint32
	deliver      Deliverer
	mu           sync.Mutex
	entries      []msixEntry
	pending      []bool
	enabled      bool
	funcMask     bool
	sent         []atomic.Uint64
	droppedOff   atomic.Uint64 // raised while MSI-X was disabled
	pendedMasked atomic.Uint64 // raised while masked (set a pending bit)
}

// NewMSIX builds the state of n vectors whose table and PBA live in bar at
// tableOff and pbaOff. Every vector starts masked, as after a reset.
func NewMSIX(n, bar int, tableOff, pbaOff uint32, d Deliverer) *MSIX {
	x := &MSIX{bar: bar, tableOff: tableOff, pbaOff: pbaOff, deliver: d,
		entries: make([]msixEntry, n), pending: make([]bool, n), sent: make([]atomic.Uint64, n)}
	x.Reset()
	return x
}

// Vectors returns the table size.
func (x *MSIX) Vectors() int { return len(x.entries) }

// BAR returns the BAR index (BIR) holding the table and PBA.
func (x *MSIX) BAR() int { return x.bar }

// TableOffset and PBAOffset are the structures' offsets in the BAR.
func (x *MSIX) TableOffset() uint32 { return x.tableOff }

// PBAOffset is the pending-bit array's offset in the BAR.
func (x *MSIX) PBAOffset() uint32 { return x.pbaOff }

// Reset returns the function to its power-on MSI-X state: disabled, not
// function-masked, every vector masked with nothing pending (PCI Local Bus
// 3.0, section 6.8.2.9).
func (x *MSIX) Reset() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.enabled, x.funcMask = false, false
	for i := range x.entries {
		x.entries[i] = msixEntry{ctrl: msixCtrlMasked}
		x.pending[i] = false
	}
}

// Contains reports whether off in the MSI-X BAR is the table or the PBA.
func (x *MSIX) Contains(bar int, off uint32) bool {
	if bar != x.bar {
		return false
	}
	n := uint32(len(x.entries))
	return (off >= x.tableOff && off < x.tableOff+n*msixEntrySize) ||
		(off >= x.pbaOff && off < x.pbaOff+8*((n+63)/64))
}

// Read serves a read of size bytes at off (inside Contains).
func (x *MSIX) Read(off uint32, size int) uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	var buf [8]byte
	for i := 0; i < size; i++ {
		buf[i] = x.byteAt(off + uint32(i))
	}
	return binary.LittleEndian.Uint64(buf[:])
}

// byteAt returns one byte of the table or PBA; mu held.
func (x *MSIX) byteAt(off uint32) byte {
	if off >= x.pbaOff {
		bit := 8 * (off - x.pbaOff)
		var b byte
		for i := uint32(0); i < 8; i++ {
			if v := int(bit + i); v < len(x.pending) && x.pending[v] {
				b |= 1 << i
			}
		}
		return b
	}
	rel := off - x.tableOff
	if rel >= uint32(len(x.entries))*msixEntrySize {
		return 0
	}
	e := &x.entries[rel/msixEntrySize]
	w := [4]uint32{e.addrLo, e.addrHi, e.data, e.ctrl}[(rel%msixEntrySize)/4]
	return byte(w >> (8 * (rel % 4)))
}

// Write serves a write of size bytes at off. The PBA is read-only; in the
// table only Vector Control bit 0 is writable among the control bits.
// Unmasking a vector with its pending bit set sends the message.
func (x *MSIX) Write(off uint32, size int, val uint64) {
	if off >= x.pbaOff {
		return
	}
	x.mu.Lock()
	var fire []int
	for i := 0; i < size; i++ {
		rel := off + uint32(i) - x.tableOff
		if rel >= uint32(len(x.entries))*msixEntrySize {
			continue
		}
		v := int(rel / msixEntrySize)
		e := &x.entries[v]
		w := [4]*uint32{&e.addrLo, &e.addrHi, &e.data, &e.ctrl}[(rel%msixEntrySize)/4]
		shift := 8 * (rel % 4)
		b := uint32(byte(val >> (8 * i)))
		if w == &e.ctrl {
			if shift != 0 {
				continue
			}
			b &= msixCtrlMasked
		}
		*w = *w&^(0xff<<shift) | b<<shift
		if w == &e.ctrl && b == 0 {
			fire = append(fire, v)
		}
	}
	msgs := x.unmaskedPendingLocked(fire)
	x.mu.Unlock()
	x.send(msgs)
}

// SetControl applies the guest's write of Message Control: Enable and
// Function Mask. Clearing the function mask (or enabling) sends the
// messages of unmasked vectors whose pending bit is set.
func (x *MSIX) SetControl(enable, funcMask bool) {
	x.mu.Lock()
	x.enabled, x.funcMask = enable, funcMask
	all := make([]int, len(x.entries))
	for i := range all {
		all[i] = i
	}
	msgs := x.unmaskedPendingLocked(all)
	x.mu.Unlock()
	x.send(msgs)
}

type msiMessage struct {
	vector int
	addr   uint64
	data   uint32
}

// unmaskedPendingLocked clears the pending bit of each vector in vs that is
// pending and no longer masked, and returns their messages; mu held.
func (x *MSIX) unmaskedPendingLocked(vs []int) []msiMessage {
	if !x.enabled || x.funcMask {
		return nil
	}
	var msgs []msiMessage
	for _, v := range vs {
		if x.pending[v] && x.entries[v].ctrl&msixCtrlMasked == 0 {
			x.pending[v] = false
			msgs = append(msgs, x.messageLocked(v))
		}
	}
	return msgs
}

func (x *MSIX) messageLocked(v int) msiMessage {
	e := x.entries[v]
	return msiMessage{vector: v, addr: uint64(e.addrHi)<<32 | uint64(e.addrLo), data: e.data}
}

func (x *MSIX) send(msgs []msiMessage) {
	for _, m := range msgs {
		x.sent[m.vector].Add(1)
		x.deliver.Deliver(m.vector, m.addr, m.data)
	}
}

// Raise is the device signalling vector v (enasim's IRQSink). Disabled
// MSI-X drops it (the function has no INTx path the guest can see under
// TCG); a masked vector or function sets the pending bit instead.
func (x *MSIX) Raise(v int) {
	if v < 0 || v >= len(x.entries) {
		return
	}
	x.mu.Lock()
	if !x.enabled {
		x.mu.Unlock()
		x.droppedOff.Add(1)
		return
	}
	if x.funcMask || x.entries[v].ctrl&msixCtrlMasked != 0 {
		x.pending[v] = true
		x.mu.Unlock()
		x.pendedMasked.Add(1)
		return
	}
	m := x.messageLocked(v)
	x.mu.Unlock()
	x.send([]msiMessage{m})
}

// MSIXStats counts what the function did with its interrupts.
type MSIXStats struct {
	// Sent is messages sent per vector.
	Sent []uint64
	// DroppedDisabled counts raises while MSI-X was off; Pended counts
	// raises that set a pending bit because the vector was masked.
	DroppedDisabled, Pended uint64
}

// Stats returns the counts.
func (x *MSIX) Stats() MSIXStats {
	st := MSIXStats{DroppedDisabled: x.droppedOff.Load(), Pended: x.pendedMasked.Load()}
	for i := range x.sent {
		st.Sent = append(st.Sent, x.sent[i].Load())
	}
	return st
}
