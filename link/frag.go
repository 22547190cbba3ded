package link

import (
	"sort"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Limits of the fragment verifier: how many datagrams it holds at once, how
// many bytes of fragments in all, and how long an incomplete datagram waits
// (netstack's own reassembly gives up after 30 s; we give up sooner, since
// the stack will wait for the fragments we hold anyway).
const (
	fragMaxDatagrams = 64
	fragMaxBytes     = 4 << 20
	fragTimeout      = 10 * time.Second
)

// fragVerifier lets IPv4 fragments through an endpoint that promises Rx
// checksum offload. The device cannot check a fragment's TCP/UDP checksum
// (§7.7: L4_CSUM_CHECKED is never set on IPV4_FRAG), and netstack skips it
// after reassembly because of the promise. So the verifier holds the
// fragments of each datagram until all have arrived, checks the L4 checksum
// over the reassembled payload, and only then releases the fragments to be
// delivered (netstack reassembles them again); a datagram with a bad
// checksum, or one that never completes, is dropped. Shared by the Rx
// queues (RSS may spread a datagram's fragments over several).
type fragVerifier struct {
	mu    sync.Mutex
	dgram map[fragKey]*fragDatagram
	bytes int
	now   func() time.Time
}

type fragKey struct {
	src, dst tcpip.Address
	id       uint32 // IPv4's 16-bit or IPv6's 32-bit identification
	proto    uint8
	v6       bool
}

type fragDatagram struct {
	frags    []heldFrag
	first    time.Time
	lastSeen bool // the fragment with MF clear arrived
	end      int  // payload length, known once lastSeen
	bytes    int
}

// heldFrag is one fragment: the frame's view (owned by the verifier while
// held) and where its payload sits in the datagram.
type heldFrag struct {
	v       *buffer.View
	off     int    // payload offset in the datagram (bytes)
	payload []byte // the fragment's payload, inside v
}

func newFragVerifier() *fragVerifier {
	return &fragVerifier{dgram: map[fragKey]*fragDatagram{}, now: time.Now}
}

// fragResult is what add decided about a fragment.
type fragResult int

const (
	fragHeld     fragResult = iota // kept, waiting for the rest
	fragComplete                   // the datagram verified: deliver the returned views
	fragDropped                    // dropped (bad checksum, overlap, limits); views released
)

// add takes ownership of v, whose bytes hold the IPv4 packet ip (a fragment
// with a valid header). On fragComplete it returns every fragment's view,
// in arrival order, for the caller to deliver.
func (f *fragVerifier) add(v *buffer.View, ip header.IPv4) (fragResult, []*buffer.View) {
	hl := int(ip.HeaderLength())
	key := fragKey{src: ip.SourceAddress(), dst: ip.DestinationAddress(), id: uint32(ip.ID()), proto: ip.Protocol()}
	return f.addPiece(v, key, int(ip.FragmentOffset()), ip.More(), ip[hl:ip.TotalLength()])
}

// addPiece is add for any IP version: v holds a fragment whose payload
// (what follows the IPv4 header or the IPv6 Fragment header) starts at
// byte off of its datagram; more is the M flag.
func (f *fragVerifier) addPiece(v *buffer.View, key fragKey, off int, more bool, payload []byte) (fragResult, []*buffer.View) {
	maxPayload := 0xffff - header.IPv4MinimumSize
	if key.v6 {
		maxPayload = 0xffff - header.IPv6FragmentHeaderSize
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expire()
	d := f.dgram[key]
	if d == nil {
		if len(f.dgram) >= fragMaxDatagrams {
			v.Release()
			return fragDropped, nil
		}
		d = &fragDatagram{first: f.now()}
		f.dgram[key] = d
	}
	if off+len(payload) > maxPayload || (more && len(payload)%8 != 0) ||
		f.bytes+len(payload) > fragMaxBytes || (d.lastSeen && off+len(payload) > d.end) {
		f.drop(key, d)
		v.Release()
		return fragDropped, nil
	}
	for _, h := range d.frags { // overlapping fragments are an attack, not a network
		if off < h.off+len(h.payload) && h.off < off+len(payload) {
			f.drop(key, d)
			v.Release()
			return fragDropped, nil
		}
	}
	d.frags = append(d.frags, heldFrag{v: v, off: off, payload: payload})
	d.bytes += len(payload)
	f.bytes += len(payload)
	if !more {
		d.lastSeen, d.end = true, off+len(payload)
	}
	if !d.lastSeen || d.bytes != d.end {
		return fragHeld, nil
	}
	// Complete: no overlaps and the bytes add up, so the pieces tile the
	// datagram. Check the L4 checksum over them in offset order.
	delete(f.dgram, key)
	f.bytes -= d.bytes
	views := make([]*buffer.View, len(d.frags))
	for i, h := range d.frags {
		views[i] = h.v
	}
	if !l4ChecksumOK(key, d) {
		for _, v := range views {
			v.Release()
		}
		return fragDropped, nil
	}
	return fragComplete, views
}

// l4ChecksumOK verifies the TCP or UDP checksum of a complete datagram;
// other protocols are always checked by the stack itself.
func l4ChecksumOK(key fragKey, d *fragDatagram) bool {
	proto := tcpip.TransportProtocolNumber(key.proto)
	if proto != header.TCPProtocolNumber && proto != header.UDPProtocolNumber {
		return true
	}
	sort.Slice(d.frags, func(i, j int) bool { return d.frags[i].off < d.frags[j].off })
	first := d.frags[0].payload
	if proto == header.UDPProtocolNumber {
		if len(first) < header.UDPMinimumSize || int(header.UDP(first).Length()) != d.end {
			return false
		}
		if header.UDP(first).Checksum() == 0 {
			return !key.v6 // IPv4 UDP may omit its checksum, IPv6 UDP must not
		}
	} else if len(first) < header.TCPMinimumSize {
		return false
	}
	sum := header.PseudoHeaderChecksum(proto, key.src, key.dst, uint16(d.end))
	// Fragment payloads other than the last are multiples of 8 bytes, so
	// each starts on an even offset and the 16-bit sums combine directly.
	for _, h := range d.frags {
		sum = checksum.Checksum(h.payload, sum)
	}
	return sum == 0xffff
}

// expire drops datagrams that waited longer than fragTimeout.
func (f *fragVerifier) expire() {
	now := f.now()
	for k, d := range f.dgram {
		if now.Sub(d.first) > fragTimeout {
			f.drop(k, d)
		}
	}
}

func (f *fragVerifier) drop(k fragKey, d *fragDatagram) {
	for _, h := range d.frags {
		h.v.Release()
	}
	f.bytes -= d.bytes
	delete(f.dgram, k)
}

// close releases everything held.
func (f *fragVerifier) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, d := range f.dgram {
		f.drop(k, d)
	}
}
