package link

import (
	"math/bits"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/enanet/enanet/internal/frame"
	"github.com/enanet/enanet/rings"
)

// Copying a received frame out of the DMA buffers. buffer.NewView takes a
// pooled chunk of the next power of two and clears all of it, so a
// 9014-byte jumbo frame in one view costs clearing 16 KiB, more than the
// copy itself. Long frames are therefore copied into several views whose
// chunks they fill (8 KiB + 1 KiB for that frame): the stack reads a
// packet through its view list, and the headers all land in the first
// view, so nothing downstream copies them back together.
//
// Packing several frames densely into one larger chunk (one view, and one
// reference, per frame) would clear no more than it copies, but gVisor's
// views are copy-on-write: View.Write into a chunk that another view
// references copies the chunk first, and so does Buffer.PullUp, which the
// stack calls for every header it consumes, so each frame would pay for a
// copy of the whole shared chunk (TestRxSharedChunkIsCopied).

// rxSplitMin is the longest frame always copied into one view: for frames
// up to a page the second view's pool traffic costs as much as the
// clearing it would save. Measured for MTU 1500 (1514 bytes in 1 KiB +
// 512 bytes of chunks, 1.5 KiB cleared instead of 2): the Rx copy's share
// of the b-gso bench's CPU went from 12.2 to 12.7 %, and its clearing did
// not get cheaper, since clearing a pooled chunk mostly pays for bringing
// its cache lines in, which the copy would otherwise pay (bench/README.md).
const rxSplitMin = 4096

// rxMaxParts bounds the views of one frame. rxPieceLen gives at most five
// for maxFrame (halving from 64 KiB down to rxSplitMin); the rest is slack.
const rxMaxParts = 8

// rxPieceLen is how many of the n bytes still to copy go into the next
// view: all of them when they are few or nearly fill their chunk (at most
// an eighth wasted), else the largest power of two below n, which fills
// its chunk exactly (so Buffer.Append keeps the views as they are).
func rxPieceLen(n int) int {
	if n <= rxSplitMin {
		return n
	}
	chunk := 1 << bits.Len(uint(n-1))
	if chunk-n <= n/8 && chunk <= buffer.MaxChunkSize {
		return n
	}
	return min(1<<(bits.Len(uint(n))-1), buffer.MaxChunkSize)
}

// copyIn copies the frame of size bytes in p's fragments into
// r.views[:r.np] (and their bytes into r.parts): one view for short
// frames and frames that must stay whole (split false), several for long
// ones (see rxPieceLen).
func (r *rxQueue) copyIn(p *rings.RxPacket, size int, split bool) {
	r.np = 0
	fi, fo := 0, 0 // fragment index and offset into it
	for left := size; left > 0 && r.np < rxMaxParts; {
		n := min(left, buffer.MaxChunkSize) // a longer view would not be pooled
		if split {
			n = rxPieceLen(left)
		}
		if r.np == rxMaxParts-1 {
			n = left // cannot happen for frames up to maxFrame
		}
		v := buffer.NewView(n)
		for want := n; want > 0; {
			src := p.Frags[fi][fo:]
			if len(src) > want {
				src = src[:want]
			}
			v.Write(src)
			want -= len(src)
			fo += len(src)
			if fo == len(p.Frags[fi]) {
				fi, fo = fi+1, 0
			}
		}
		r.views[r.np], r.parts[r.np] = v, v.AsSlice()
		r.np++
		left -= n
	}
}

// join copies a split frame into one view, for the paths that need the
// frame contiguous (fragments, IPv6 extension headers, other protocols).
func (r *rxQueue) join(size int) {
	if r.np == 1 {
		return
	}
	v := buffer.NewView(size)
	for i := 0; i < r.np; i++ {
		v.Write(r.parts[i])
		r.views[i].Release()
		r.views[i], r.parts[i] = nil, nil
	}
	r.views[0], r.parts[0], r.np = v, v.AsSlice(), 1
}

// releaseParts drops the views of a frame that is not delivered.
func (r *rxQueue) releaseParts() {
	for i := 0; i < r.np; i++ {
		r.views[i].Release()
		r.views[i], r.parts[i] = nil, nil
	}
	r.np = 0
}

// payload moves the frame's views into a buffer for the PacketBuffer.
func (r *rxQueue) payload() buffer.Buffer {
	buf := buffer.MakeWithView(r.views[0])
	for i := 1; i < r.np; i++ {
		_ = buf.Append(r.views[i]) // full views before it: never copies
	}
	for i := 0; i < r.np; i++ {
		r.views[i], r.parts[i] = nil, nil
	}
	r.np = 0
	return buf
}

// rxSplitGuess guesses, before the copy, whether the frame in p may be
// split into views (splitOK), from its headers in the DMA buffer. It is a
// guess only, since the device may still change the bytes: receive checks
// splitOK again on the copy and joins the views when the guess was wrong.
// Guessing spares the frames that must stay whole (IP fragments, IPv6
// extension headers) a second copy.
func rxSplitGuess(p *rings.RxPacket, size int) bool {
	if size <= rxSplitMin {
		return false
	}
	b := p.Frags[0]
	if len(b) < header.EthernetMinimumSize {
		return true
	}
	return splitOK(header.Ethernet(b).Type(), b[header.EthernetMinimumSize:])
}

// splitOK reports whether a frame split into views may stay split: an
// IPv4 packet that is not a fragment, or an IPv6 packet whose next header
// is TCP or UDP, parsed from the first view (b starts at the IP header).
// Such a frame needs no fragment verification and no extension header
// walk, so verify reads only its headers from the first view (and its
// payload piece by piece, when it checks a checksum itself).
func splitOK(proto tcpip.NetworkProtocolNumber, b []byte) bool {
	switch proto {
	case header.IPv4ProtocolNumber:
		ip, ok := frame.ParseIPv4(b)
		return ok && !ip.Fragment
	case header.IPv6ProtocolNumber:
		ip, ok := frame.ParseIPv6(b)
		return ok && (ip.Proto == frame.ProtoTCP || ip.Proto == frame.ProtoUDP)
	}
	return false
}

// l4Sum is the one's-complement sum of an L4 segment of l4Len bytes whose
// first bytes are head (in the first view) and whose rest follows in the
// frame's further views.
func (r *rxQueue) l4Sum(head []byte, l4Len int) uint16 {
	var c checksum.Checksumer
	c.Add(head)
	left := l4Len - len(head)
	for i := 1; i < r.np && left > 0; i++ {
		s := r.parts[i]
		if len(s) > left {
			s = s[:left]
		}
		c.Add(s)
		left -= len(s)
	}
	return c.Checksum()
}
