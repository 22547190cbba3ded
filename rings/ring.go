// Package rings holds the ENA I/O queue mechanics: the Tx submission and
// completion rings (host placement and LLQ push mode) and the Rx rings, with
// their buffers, phase bits, doorbells and completion checks (protocol §7,
// §8). It knows nothing about admin commands: the ena driver creates the
// device-side queues with the addresses this package allocates (SQAddr,
// CQAddr) and hands back the offsets the device returned (Bind).
//
// Ownership, in the style of a device-shared ring: the driver writes SQ
// descriptors and the doorbell, the device writes CQ entries. The driver
// never trusts a CQ entry: every field is checked before it indexes anything,
// and a bad value is returned as a *DeviceError naming the reset reason the
// driver must send (§2.3), never a panic.
//
// Concurrency: a TxQueue is used by one goroutine at a time (Send, Flush,
// Reclaim, Overdue, Reset); so is an RxQueue. Tick and Stats may be called
// from any goroutine.
//
// Hot paths (Send, Flush, Reclaim, Poll, Refill) allocate nothing.
//
// In comments, "§n.m" refers to that section of docs/protocol.md.
package rings

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/enanet/enanet/ena/hw"
	"github.com/enanet/enanet/ena/spec"
)

// MaxDepth is the largest ring depth this package accepts. req_ids and
// buffer indexes are 16-bit (§7.8), and the doorbell carries a free-running
// 16-bit tail, so the depth must stay below 1<<16; ENA devices report at most
// a few thousand entries.
const MaxDepth = 32768

// Completion entry sizes the driver passes in CREATE_CQ (§7.1): the base
// forms, without timestamps.
const (
	TxCQEntrySize = spec.TxCompletionSize // 8 B
	RxCQEntrySize = spec.RxCompletionSize // 16 B
)

// ringAlign is the alignment of every ring: CQs must be 4 KiB aligned and SQs
// page aligned (§7.1).
const ringAlign = 4096

// errNotBound is returned by Send before Bind told the queue its doorbell.
var errNotBound = errors.New("rings: queue used before Bind")

// ErrEmptyFrame is returned by Send for a frame of zero bytes: the device
// cannot describe it.
var ErrEmptyFrame = errors.New("rings: empty frame")

// checkDepth validates a ring depth from a config.
func checkDepth(name string, depth int) (mask uint32, shift uint, err error) {
	if depth < 2 || depth > MaxDepth || depth&(depth-1) != 0 {
		return 0, 0, fmt.Errorf("rings: %s: depth %d is not a power of two in [2, %d] (§7.1)", name, depth, MaxDepth)
	}
	for 1<<shift < depth {
		shift++
	}
	return uint32(depth - 1), shift, nil
}

// alloc allocates one DMA region and checks that the device can address all
// of it with the 48 address bits descriptors carry (§7.2, §7.6).
func alloc(dma hw.DMA, name, what string, size, align int) (*hw.Region, error) {
	r, err := dma.Alloc(size, align)
	if err != nil {
		return nil, fmt.Errorf("rings: %s: allocating %s (%d bytes): %w", name, what, size, err)
	}
	if len(r.Bytes) < size || r.Addr+uint64(size) > spec.MaxMemAddr+1 {
		r.Free()
		return nil, fmt.Errorf("rings: %s: %s region at %#x (%d bytes) is not usable by the device", name, what, r.Addr, len(r.Bytes))
	}
	return r, nil
}

// phaseBit is the phase a producer writes, or a consumer expects, at
// free-running position pos of a ring of 1<<shift entries: 1 on the first lap,
// toggling every lap (§7.8). It returns 0 or 1. shift is at most 15
// (MaxDepth); masking it with 31 tells the compiler so, which saves the code
// for shifts of 32 and more.
func phaseBit(pos uint32, shift uint) uint32 { return ^(pos >> (shift & 31)) & 1 }

// le32 reads a little-endian word with a plain load (the rest of a
// completion, after dmamem.Acquire32 saw the expected phase).
func le32(b []byte, off uint32) uint32 { return binary.LittleEndian.Uint32(b[off:]) }

// put64 stores a little-endian 64-bit word into DMA memory (one MOVQ/STR X).
func put64(b []byte, off uint32, v uint64) { store64((*[8]byte)(b[off:]), v) }

// gather copies len(dst) bytes from segs, starting at segment si offset so,
// and returns the position after them. Callers know segs hold enough bytes.
func gather(dst []byte, segs [][]byte, si, so int) (int, int) {
	for len(dst) > 0 && si < len(segs) {
		n := copy(dst, segs[si][so:])
		dst = dst[n:]
		so += n
		if so == len(segs[si]) {
			si++
			so = 0
		}
	}
	return si, so
}

// seek returns the position n bytes into segs, in gather's terms (segment,
// offset). Callers know segs hold more than n bytes.
func seek(segs [][]byte, n int) (si, so int) {
	for n > 0 && n >= len(segs[si]) {
		n -= len(segs[si])
		si++
	}
	return si, n
}

// copySegs copies all of segs into dst, which holds exactly their total.
func copySegs(dst []byte, segs [][]byte) {
	n := 0
	for _, s := range segs {
		n += copy(dst[n:], s)
	}
}

// freeRegions frees regions and clears the pointers; it returns the first
// error.
func freeRegions(rs ...**hw.Region) error {
	var first error
	for _, r := range rs {
		if *r == nil {
			continue
		}
		if err := (*r).Free(); err != nil && first == nil {
			first = err
		}
		*r = nil
	}
	return first
}
