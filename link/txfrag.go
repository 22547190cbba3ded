package link

import (
	"encoding/binary"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/enanet/enanet/internal/frame"
)

// txFragHeldMax bounds the first fragments held at once; the oldest is
// dropped (its datagram lost) to make room.
const txFragHeldMax = 16

// txFragSums completes the UDP checksum of datagrams the stack fragments.
// With CapabilityTXChecksumOffload set, netstack leaves every UDP checksum
// for the device, also in datagrams larger than the MTU that it then cuts
// into IP fragments; no device can checksum those (the sum spans all the
// fragments), so they would leave with a zero checksum: no checksum at all
// over IPv4, an invalid datagram over IPv6 (RFC 8200 section 8.1). The endpoint
// therefore holds the first fragment, which carries the UDP header, sums
// the payload of each fragment as it is sent, and sends the first fragment
// last with the checksum filled in. Receivers reassemble in any order.
type txFragSums struct {
	mu   sync.Mutex
	held map[fragKey]*txHeld
	seq  uint64
}

type txHeld struct {
	first  *stack.PacketBuffer // held first fragment, a reference of ours
	csumAt int                 // the UDP checksum's offset in the frame
	sum    uint16              // folded sum of the payload bytes so far
	bytes  int                 // payload bytes summed
	total  int                 // the UDP length
	pseudo uint16
	seq    uint64
	// haveFirst: the first fragment (UDP header) was seen; lastSeen: the
	// one without the M flag.
	haveFirst, lastSeen bool
}

func newTxFragSums() *txFragSums { return &txFragSums{held: map[fragKey]*txHeld{}} }

// txFragInfo is where a UDP fragment's payload lies in its frame.
type txFragInfo struct {
	key        fragKey
	src, dst   []byte
	off        int // payload offset in the datagram
	more       bool
	start, end int // payload bytes in the frame
}

// parseTxFragment reads the headers of a frame (hdr: its first bytes)
// and reports a UDP fragment's place; ok is false for anything else.
func parseTxFragment(hdr []byte, size int) (txFragInfo, bool) {
	var fi txFragInfo
	et, l3, _, ok := frame.EtherType(hdr, 0)
	if !ok {
		return fi, false
	}
	b := hdr[l3:]
	switch et {
	case frame.EtherTypeIPv4:
		ip, ok := frame.ParseIPv4(b)
		if !ok || !ip.Fragment || ip.Proto != frame.ProtoUDP {
			return fi, false
		}
		flags := binary.BigEndian.Uint16(b[6:])
		fi.key = fragKey{src: tcpip.AddrFromSlice(ip.Src), dst: tcpip.AddrFromSlice(ip.Dst),
			id: uint32(binary.BigEndian.Uint16(b[4:])), proto: frame.ProtoUDP}
		fi.src, fi.dst = ip.Src, ip.Dst
		fi.off, fi.more = int(flags&0x1fff)*8, flags&0x2000 != 0
		fi.start, fi.end = l3+ip.HeaderLen, l3+ip.Len
	case frame.EtherTypeIPv6:
		ip, ok := frame.ParseIPv6(b)
		if !ok {
			return fi, false
		}
		next, pos := ip.Proto, ip.HeaderLen
		for next != ipv6FragmentHeader {
			if next != ipv6HopByHop && next != ipv6Routing && next != ipv6DestOptions || len(b) < pos+2 {
				return fi, false
			}
			next, pos = b[pos], pos+(int(b[pos+1])+1)*8
		}
		if len(b) < pos+8 || b[pos] != frame.ProtoUDP {
			return fi, false
		}
		offFlags := binary.BigEndian.Uint16(b[pos+2:])
		fi.key = fragKey{src: tcpip.AddrFromSlice(ip.Src), dst: tcpip.AddrFromSlice(ip.Dst),
			id: binary.BigEndian.Uint32(b[pos+4:]), proto: frame.ProtoUDP, v6: true}
		fi.src, fi.dst = ip.Src, ip.Dst
		fi.off, fi.more = int(offFlags>>3)*8, offFlags&1 != 0
		fi.start, fi.end = l3+pos+8, l3+ip.Len
	default:
		return fi, false
	}
	if fi.end > size || fi.start > fi.end {
		return fi, false
	}
	return fi, true
}

// note looks at one outgoing frame (segs, size bytes in all). hold: it is
// a first fragment, kept (with a reference) to be sent later. complete: a
// held first fragment whose datagram is now summed, to send after this
// frame; the caller owns its reference. Fragments may come in any order
// (netstack sends the first one last when it waited for the neighbour), so
// a datagram's sum is complete once the first fragment, the last one and
// all the bytes between were seen; a first fragment that completes it is
// patched and sent at once.
func (t *txFragSums) note(pkt *stack.PacketBuffer, segs [][]byte, size int) (hold bool, complete *stack.PacketBuffer) {
	if len(segs) == 0 || !maybeFragment(segs[0]) {
		return false, nil // the hot path: no copy, no allocation
	}
	return t.noteFragment(pkt, segs, size)
}

// maybeFragment is a quick look at a frame's first bytes: false when it is
// certainly not an IPv4 fragment or an IPv6 packet with a Fragment header
// or extension headers before one.
func maybeFragment(b []byte) bool {
	if len(b) < frame.EthernetHeaderLen+frame.IPv4MinHeaderLen {
		return true // headers split across views: look closer
	}
	switch binary.BigEndian.Uint16(b[12:]) {
	case frame.EtherTypeIPv4:
		return binary.BigEndian.Uint16(b[frame.EthernetHeaderLen+6:])&0x3fff != 0
	case frame.EtherTypeIPv6:
		if len(b) < frame.EthernetHeaderLen+frame.IPv6HeaderLen {
			return true
		}
		switch b[frame.EthernetHeaderLen+6] {
		case ipv6FragmentHeader, ipv6HopByHop, ipv6Routing, ipv6DestOptions:
			return true
		}
		return false
	case frame.EtherTypeVLAN, frame.EtherTypeQinQ:
		return true
	}
	return false
}

func (t *txFragSums) noteFragment(pkt *stack.PacketBuffer, segs [][]byte, size int) (hold bool, complete *stack.PacketBuffer) {
	var hdrBuf [160]byte
	hdr := gather(hdrBuf[:], segs, 0)
	fi, ok := parseTxFragment(hdr, size)
	if !ok {
		return false, nil
	}
	var c checksum.Checksumer
	addRange(&c, segs, fi.start, fi.end)
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.held[fi.key]
	if fi.off == 0 && (len(hdr) < fi.start+8 || binary.BigEndian.Uint16(hdr[fi.start+6:]) != 0) {
		if h != nil {
			t.drop(fi.key, h)
		}
		return false, nil // the stack computed the checksum
	}
	if h == nil {
		if len(t.held) >= txFragHeldMax {
			t.evictOldest()
		}
		t.seq++
		h = &txHeld{seq: t.seq}
		t.held[fi.key] = h
	}
	if fi.off == 0 {
		h.total = int(binary.BigEndian.Uint16(hdr[fi.start+4:]))
		h.pseudo = frame.PseudoHeaderSum(fi.src, fi.dst, frame.ProtoUDP, h.total)
		h.csumAt = fi.start + 6
		h.haveFirst = true
	}
	// Fragment offsets are multiples of 8, so every fragment's sum starts
	// on an even byte and the sums add up in any order.
	h.sum = checksum.Combine(h.sum, c.Checksum())
	h.bytes += fi.end - fi.start
	if !fi.more {
		h.lastSeen = true
	}
	if !h.haveFirst || !h.lastSeen || h.bytes < h.total {
		if fi.off == 0 {
			pkt.IncRef()
			h.first = pkt
			return true, nil
		}
		return false, nil
	}
	first := h.first // the table's reference passes to the caller
	h.first = nil
	t.drop(fi.key, h)
	if h.bytes != h.total {
		if first != nil {
			first.DecRef()
		}
		return false, nil // overlapping or missing pieces: the receiver drops it anyway
	}
	sum := ^checksum.Combine(h.sum, h.pseudo)
	if sum == 0 {
		sum = 0xffff // RFC 768: zero means "no checksum"
	}
	if fi.off == 0 { // first is nil: this frame completes the datagram
		putFrame(pkt, h.csumAt, sum) // segs alias pkt's views
		return false, nil
	}
	putFrame(first, h.csumAt, sum)
	return false, first
}

// drop forgets a datagram, releasing a held first fragment.
func (t *txFragSums) drop(k fragKey, h *txHeld) {
	if h.first != nil {
		h.first.DecRef()
		h.first = nil
	}
	delete(t.held, k)
}

func (t *txFragSums) evictOldest() {
	var oldest fragKey
	var o *txHeld
	for k, h := range t.held {
		if o == nil || h.seq < o.seq {
			oldest, o = k, h
		}
	}
	if o != nil {
		t.drop(oldest, o)
	}
}

func (t *txFragSums) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, h := range t.held {
		t.drop(k, h)
	}
}

// gather copies up to len(dst) frame bytes from off on into dst.
func gather(dst []byte, segs [][]byte, off int) []byte {
	n := 0
	for _, s := range segs {
		if off >= len(s) {
			off -= len(s)
			continue
		}
		n += copy(dst[n:], s[off:])
		off = 0
		if n == len(dst) {
			break
		}
	}
	return dst[:n]
}

// addRange sums frame bytes [start, end).
func addRange(c *checksum.Checksumer, segs [][]byte, start, end int) {
	pos := 0
	for _, s := range segs {
		lo, hi := max(start-pos, 0), min(end-pos, len(s))
		if lo < hi {
			c.Add(s[lo:hi])
		}
		pos += len(s)
		if pos >= end {
			return
		}
	}
}

// putFrame writes v big-endian at frame offset off of pkt (as send lays
// the frame out), across a view boundary if need be.
func putFrame(pkt *stack.PacketBuffer, off int, v uint16) {
	views, skip := pkt.AsViewList()
	b := [2]byte{byte(v >> 8), byte(v)}
	i := 0
	pos := -skip
	for vw := views.Front(); vw != nil && i < 2; vw = vw.Next() {
		s := vw.AsSlice()
		for i < 2 && off+i-pos < len(s) && off+i-pos >= 0 {
			s[off+i-pos] = b[i]
			i++
		}
		pos += len(s)
	}
}
