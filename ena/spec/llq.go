package spec

// LLQ ("low-latency queue", push mode) entry layout (§8.2). In LLQ mode a Tx
// SQ lives in the memory BAR and its slots are whole entries of 128, 192 or
// 256 bytes instead of 16-byte descriptors. The first entry of a packet holds
// DescsBeforeHeader descriptor slots followed by the first bytes of the frame
// (the pushed header); continuation entries hold descriptors only. The
// negotiation codes (entry-size code, stride, header location, accel flags)
// belong to the LLQ feature in features.go; this file turns the negotiated
// numbers into a layout and encodes and decodes entries with it.
//
// Everything here is bounds-checked: the model decodes entries the driver
// wrote, and a bad header_length or descriptor chain must produce an error,
// never a panic.

import (
	"errors"
	"fmt"
)

// LLQDescSlotSize is the size of one descriptor slot inside an LLQ entry: a
// Tx descriptor or a Tx meta descriptor (§8.2).
const LLQDescSlotSize = TxDescSize

// LLQMaxEntryBytes is the largest LLQ entry (code LLQEntrySize256); a bounce
// buffer this size holds any entry.
const LLQMaxEntryBytes = 256

// LLQLayout is the negotiated shape of LLQ entries (§8.1, §8.2). Build one
// with NewLLQLayout; the zero value is invalid and every encoder and decoder
// rejects it with an error.
type LLQLayout struct {
	entrySize         int
	descsBeforeHeader int
	multiple          bool
}

// NewLLQLayout validates the negotiated values and returns the layout.
// entrySize is in bytes (128, 192 or 256; the code-to-bytes mapping is in the
// LLQ feature), descsBeforeHeader is the number of descriptor slots in a
// packet's first entry (1, 2, 4 or 8; 0 is defined by the protocol but used
// by no driver and has no meaning we could model), and multipleDescsPerEntry
// is the stride: MULTIPLE_DESCS_PER_ENTRY packs entrySize/16 descriptors into
// each continuation entry, SINGLE_DESC_PER_ENTRY one.
func NewLLQLayout(entrySize, descsBeforeHeader int, multipleDescsPerEntry bool) (LLQLayout, error) {
	switch entrySize {
	case 128, 192, 256:
	default:
		return LLQLayout{}, fmt.Errorf("spec: LLQ layout: entry size %d bytes is not one of 128, 192, 256 (§8.1)", entrySize)
	}
	switch descsBeforeHeader {
	case 1, 2, 4, 8:
	default:
		return LLQLayout{}, fmt.Errorf("spec: LLQ layout: %d descriptors before header is not one of 1, 2, 4, 8 (§8.1)", descsBeforeHeader)
	}
	if descsBeforeHeader*LLQDescSlotSize >= entrySize {
		return LLQLayout{}, fmt.Errorf("spec: LLQ layout: %d descriptors before header leave no room for a header in a %d-byte entry (§8.1)",
			descsBeforeHeader, entrySize)
	}
	return LLQLayout{entrySize: entrySize, descsBeforeHeader: descsBeforeHeader, multiple: multipleDescsPerEntry}, nil
}

// LLQLayoutFromFeature builds the layout from the enabled values of an LLQ
// feature payload (§4.8): what the driver sent in SET_FEATURE LLQ, and what
// the model must then accept. Only the inline header location is supported,
// as in every driver (§8.1).
func LLQLayoutFromFeature(f *LLQ) (LLQLayout, error) {
	if f.HeaderLocationEnabled != LLQHeaderLocationInline {
		return LLQLayout{}, fmt.Errorf("spec: LLQ layout: header location %d is not INLINE_HEADER (%d) (§8.1)",
			f.HeaderLocationEnabled, LLQHeaderLocationInline)
	}
	size := LLQEntrySizeBytes(f.EntrySizeEnabled)
	if size == 0 {
		return LLQLayout{}, fmt.Errorf("spec: LLQ layout: entry size code %d is not 1, 2 or 4 (§4.8)", f.EntrySizeEnabled)
	}
	var multiple bool
	switch f.StrideEnabled {
	case LLQStrideMultipleDescsPerEntry:
		multiple = true
	case LLQStrideSingleDescPerEntry:
	default:
		return LLQLayout{}, fmt.Errorf("spec: LLQ layout: stride code %d is not 1 or 2 (§4.8)", f.StrideEnabled)
	}
	return NewLLQLayout(size, int(f.DescsBeforeHeaderEnabled), multiple)
}

// Valid reports whether l came from NewLLQLayout.
func (l LLQLayout) Valid() bool { return l.entrySize != 0 }

// EntrySize is the size of one entry (one SQ slot) in bytes.
func (l LLQLayout) EntrySize() int { return l.entrySize }

// DescsBeforeHeader is the number of descriptor slots in a packet's first
// entry, in front of the pushed header.
func (l LLQLayout) DescsBeforeHeader() int { return l.descsBeforeHeader }

// MultipleDescsPerEntry reports the stride: true for
// MULTIPLE_DESCS_PER_ENTRY, false for SINGLE_DESC_PER_ENTRY.
func (l LLQLayout) MultipleDescsPerEntry() bool { return l.multiple }

// DescsPerEntry is the number of descriptors a continuation entry carries:
// EntrySize/16 with the MULTIPLE stride, else 1 (§8.1).
func (l LLQLayout) DescsPerEntry() int {
	if !l.multiple {
		return 1
	}
	return l.entrySize / LLQDescSlotSize
}

// HeaderOffset is where the pushed header starts in a first entry:
// 16 × DescsBeforeHeader.
func (l LLQLayout) HeaderOffset() int { return l.descsBeforeHeader * LLQDescSlotSize }

// MaxPushHeader is the most header bytes a first entry can carry:
// EntrySize − 16 × DescsBeforeHeader (96 for 128-byte entries with 2
// descriptors, 224 for 256-byte entries, §7.9, §8.1). It is the driver's max
// Tx header size in LLQ mode.
func (l LLQLayout) MaxPushHeader() int { return l.entrySize - l.HeaderOffset() }

// EntriesFor is the number of entries (SQ slots) a packet of nDescs
// descriptors, meta descriptor included, occupies: the first entry plus
// enough continuation entries for the rest. nDescs < 1 counts as 1.
func (l LLQLayout) EntriesFor(nDescs int) int {
	if !l.Valid() {
		return 0
	}
	rest := nDescs - l.descsBeforeHeader
	if rest <= 0 {
		return 1
	}
	per := l.DescsPerEntry()
	return 1 + (rest+per-1)/per
}

var errLLQLayoutZero = errors.New("spec: LLQ: layout was not built by NewLLQLayout")

// llqCheckDescs validates a concatenated descriptor list.
func llqCheckDescs(what string, descs []byte) error {
	if len(descs)%LLQDescSlotSize != 0 {
		return fmt.Errorf("spec: %s: descriptor bytes (%d) are not a multiple of %d", what, len(descs), LLQDescSlotSize)
	}
	return nil
}

// BuildLLQFirstEntry writes the first entry of a packet into
// dst[0:l.EntrySize()] (§8.2): the leading descriptors of descs (concatenated
// 16-byte descriptors, meta first if there is one) into the descriptor slots,
// header at HeaderOffset, and zeros everywhere else. It returns how many
// descriptors it placed (at most DescsBeforeHeader); the rest go into
// continuation entries. header must not exceed MaxPushHeader; the data
// descriptors' header_length must equal len(header), which the caller set.
func BuildLLQFirstEntry(dst []byte, l LLQLayout, descs, header []byte) (int, error) {
	if !l.Valid() {
		return 0, errLLQLayoutZero
	}
	if len(dst) < l.entrySize {
		return 0, fmt.Errorf("spec: LLQ first entry: destination holds %d bytes, entry needs %d", len(dst), l.entrySize)
	}
	if err := llqCheckDescs("LLQ first entry", descs); err != nil {
		return 0, err
	}
	if len(header) > l.MaxPushHeader() {
		return 0, fmt.Errorf("spec: LLQ first entry: header of %d bytes exceeds the %d a %d-byte entry with %d descriptors before the header can push (§8.1)",
			len(header), l.MaxPushHeader(), l.entrySize, l.descsBeforeHeader)
	}
	dst = dst[:l.entrySize]
	n := min(len(descs)/LLQDescSlotSize, l.descsBeforeHeader)
	off := l.HeaderOffset()
	w := copy(dst, descs[:n*LLQDescSlotSize])
	clear(dst[w:off])
	w = off + copy(dst[off:], header)
	clear(dst[w:])
	return n, nil
}

// BuildLLQContinuationEntry writes a continuation entry into
// dst[0:l.EntrySize()] (§8.2): up to DescsPerEntry descriptors from descs
// packed from byte 0, zeros after them. It returns how many it placed.
func BuildLLQContinuationEntry(dst []byte, l LLQLayout, descs []byte) (int, error) {
	if !l.Valid() {
		return 0, errLLQLayoutZero
	}
	if len(dst) < l.entrySize {
		return 0, fmt.Errorf("spec: LLQ continuation entry: destination holds %d bytes, entry needs %d", len(dst), l.entrySize)
	}
	if err := llqCheckDescs("LLQ continuation entry", descs); err != nil {
		return 0, err
	}
	dst = dst[:l.entrySize]
	n := min(len(descs)/LLQDescSlotSize, l.DescsPerEntry())
	w := copy(dst, descs[:n*LLQDescSlotSize])
	clear(dst[w:])
	return n, nil
}

// BuildLLQPacket writes all entries of one packet back to back into dst (a
// bounce buffer of at least EntriesFor(len(descs)/16) × EntrySize bytes) and
// returns the number of entries written. The caller copies entry i to SQ slot
// (tail+i) & (depth−1) of the memory BAR; each entry's descriptors must
// already carry the phase of that slot (§7.8, §8.2).
func BuildLLQPacket(dst []byte, l LLQLayout, descs, header []byte) (int, error) {
	if !l.Valid() {
		return 0, errLLQLayoutZero
	}
	if err := llqCheckDescs("LLQ packet", descs); err != nil {
		return 0, err
	}
	if len(descs) == 0 {
		return 0, errors.New("spec: LLQ packet: no descriptors")
	}
	entries := l.EntriesFor(len(descs) / LLQDescSlotSize)
	if len(dst) < entries*l.entrySize {
		return 0, fmt.Errorf("spec: LLQ packet: destination holds %d bytes, %d entries need %d", len(dst), entries, entries*l.entrySize)
	}
	n, err := BuildLLQFirstEntry(dst, l, descs, header)
	if err != nil {
		return 0, err
	}
	descs = descs[n*LLQDescSlotSize:]
	for i := 1; i < entries; i++ {
		n, err = BuildLLQContinuationEntry(dst[i*l.entrySize:], l, descs)
		if err != nil {
			return 0, err
		}
		descs = descs[n*LLQDescSlotSize:]
	}
	return entries, nil
}

// LLQEntryParts is an LLQ entry split into its regions. The slices alias the
// entry; nothing is copied.
type LLQEntryParts struct {
	// Descs holds the entry's descriptor slots, 16 bytes each: the
	// DescsBeforeHeader slots of a first entry or the DescsPerEntry slots of
	// a continuation entry. Unused slots are whatever the driver left there
	// (zero for a well-behaved driver).
	Descs []byte
	// HeaderArea is, in a first entry, the MaxPushHeader bytes after the
	// slots; nil in a continuation entry. The pushed header is its prefix of
	// header_length bytes (see PushedHeader).
	HeaderArea []byte
}

// NumSlots is the number of descriptor slots in the entry.
func (p LLQEntryParts) NumSlots() int { return len(p.Descs) / LLQDescSlotSize }

// Slot returns descriptor slot i (16 bytes), or nil if i is out of range.
func (p LLQEntryParts) Slot(i int) []byte {
	if i < 0 || i >= p.NumSlots() {
		return nil
	}
	return p.Descs[i*LLQDescSlotSize : (i+1)*LLQDescSlotSize]
}

// PushedHeader returns the first headerLen bytes of the header area, the
// frame bytes the driver pushed. headerLen comes from the packet's first
// data descriptor (untrusted): more than the area holds, or a continuation
// entry, is an error.
func (p LLQEntryParts) PushedHeader(headerLen int) ([]byte, error) {
	if p.HeaderArea == nil {
		return nil, errors.New("spec: LLQ entry: a continuation entry carries no header")
	}
	if headerLen < 0 || headerLen > len(p.HeaderArea) {
		return nil, fmt.Errorf("spec: LLQ entry: header_length %d exceeds the %d bytes an entry can push (§8.1)", headerLen, len(p.HeaderArea))
	}
	return p.HeaderArea[:headerLen], nil
}

// DecodeLLQEntry splits one entry read from the memory BAR (§8.2). first
// says whether the entry opens a packet, which only the reader's position in
// the descriptor chain can tell. entry must hold at least EntrySize bytes.
func DecodeLLQEntry(entry []byte, l LLQLayout, first bool) (LLQEntryParts, error) {
	if !l.Valid() {
		return LLQEntryParts{}, errLLQLayoutZero
	}
	if len(entry) < l.entrySize {
		return LLQEntryParts{}, fmt.Errorf("spec: LLQ entry: %d bytes given, entry is %d", len(entry), l.entrySize)
	}
	entry = entry[:l.entrySize]
	if first {
		off := l.HeaderOffset()
		return LLQEntryParts{Descs: entry[:off], HeaderArea: entry[off:]}, nil
	}
	return LLQEntryParts{Descs: entry[:l.DescsPerEntry()*LLQDescSlotSize]}, nil
}

// LLQPacket is one Tx packet decoded from its LLQ entries (§8.2).
type LLQPacket struct {
	// HasMeta reports a meta descriptor in slot 0 of the first entry; Meta
	// is valid only then.
	HasMeta bool
	Meta    TxMetaDesc
	// Descs are the data descriptors in order; the first carries ReqID,
	// offloads and HeaderLen, the last has Last set.
	Descs []TxDesc
	// Header is the pushed frame prefix (aliases the first entry), exactly
	// Descs[0].HeaderLen bytes.
	Header []byte
	// Entries is the number of entries (SQ slots) the packet used.
	Entries int
}

// DecodeLLQPacket decodes one packet whose first entry is entry(0); entry(i)
// returns the packet's i-th entry, or nil if the driver has not pushed it
// (the model bounds it by the doorbell tail). It walks descriptor slots in
// order until one has Last set, accepting at most maxDescs descriptors (meta
// included; the device's max_packet_tx_descs). descs is reused for
// LLQPacket.Descs to avoid allocation. It rejects: a meta descriptor
// anywhere but slot 0 of the first entry, a chain without LAST within
// maxDescs, an entry missing, and a header_length larger than the entry can
// push. Phase bits are reported in the descriptors, not checked.
func DecodeLLQPacket(l LLQLayout, entry func(i int) []byte, maxDescs int, descs []TxDesc) (LLQPacket, error) {
	pkt := LLQPacket{Descs: descs[:0]}
	if !l.Valid() {
		return pkt, errLLQLayoutZero
	}
	var first LLQEntryParts
	count := 0
	for e := 0; ; e++ {
		b := entry(e)
		if b == nil {
			return pkt, fmt.Errorf("spec: LLQ packet: entry %d of the packet was not pushed (chain has no LAST after %d descriptors)", e, count)
		}
		parts, err := DecodeLLQEntry(b, l, e == 0)
		if err != nil {
			return pkt, fmt.Errorf("spec: LLQ packet: entry %d: %w", e, err)
		}
		if e == 0 {
			first = parts
		}
		pkt.Entries = e + 1
		for s := 0; s < parts.NumSlots(); s++ {
			if count >= maxDescs {
				return pkt, fmt.Errorf("spec: LLQ packet: more than %d descriptors without LAST", maxDescs)
			}
			slot := parts.Slot(s)
			count++
			if IsMetaDesc(slot) {
				if e != 0 || s != 0 {
					return pkt, fmt.Errorf("spec: LLQ packet: meta descriptor in entry %d slot %d; only slot 0 of the first entry may hold one (§7.3)", e, s)
				}
				pkt.HasMeta = true
				pkt.Meta = DecodeTxMetaDesc(slot)
				continue
			}
			d := DecodeTxDesc(slot)
			pkt.Descs = append(pkt.Descs, d)
			if d.Last {
				h, err := first.PushedHeader(int(pkt.Descs[0].HeaderLen))
				if err != nil {
					return pkt, fmt.Errorf("spec: LLQ packet: %w", err)
				}
				pkt.Header = h
				return pkt, nil
			}
		}
	}
}
