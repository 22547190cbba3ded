package link

import (
	"math/rand/v2"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// udpFragments builds a UDP datagram of n payload bytes from 10.0.0.1 to
// 10.0.0.2 with a correct checksum, split into IPv4 fragments of at most
// fragLen payload bytes (a multiple of 8). corrupt flips one payload byte
// after the checksum is computed.
func udpFragments(t *testing.T, id uint16, n, fragLen int, corrupt bool) []*buffer.View {
	t.Helper()
	src, dst := tcpip.AddrFrom4([4]byte{10, 0, 0, 1}), tcpip.AddrFrom4([4]byte{10, 0, 0, 2})
	dgram := make([]byte, header.UDPMinimumSize+n)
	for i := range dgram[header.UDPMinimumSize:] {
		dgram[header.UDPMinimumSize+i] = byte(i*13 + 1)
	}
	u := header.UDP(dgram)
	u.Encode(&header.UDPFields{SrcPort: 1000, DstPort: 2000, Length: uint16(len(dgram))})
	sum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, src, dst, uint16(len(dgram)))
	u.SetChecksum(^checksum.Checksum(dgram, sum))
	if corrupt {
		dgram[len(dgram)-1] ^= 0x40
	}
	var views []*buffer.View
	for off := 0; off < len(dgram); off += fragLen {
		end := min(off+fragLen, len(dgram))
		pkt := make([]byte, header.IPv4MinimumSize+end-off)
		ip := header.IPv4(pkt)
		flags := uint8(0)
		if end < len(dgram) {
			flags = header.IPv4FlagMoreFragments
		}
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(pkt)), ID: id, Flags: flags, FragmentOffset: uint16(off),
			TTL: 64, Protocol: uint8(header.UDPProtocolNumber), SrcAddr: src, DstAddr: dst})
		ip.SetChecksum(^ip.CalculateChecksum())
		copy(pkt[header.IPv4MinimumSize:], dgram[off:end])
		views = append(views, buffer.NewViewWithData(pkt))
	}
	return views
}

func feed(f *fragVerifier, views []*buffer.View) (fragResult, []*buffer.View, int) {
	held := 0
	for i, v := range views {
		res, out := f.add(v, header.IPv4(v.AsSlice()))
		switch res {
		case fragHeld:
			held++
		default:
			if i != len(views)-1 {
				return res, out, -1
			}
			return res, out, held
		}
	}
	return fragHeld, nil, held
}

func TestFragVerifierCompletes(t *testing.T) {
	f := newFragVerifier()
	defer f.close()
	views := udpFragments(t, 7, 4000, 1480, false)
	rand.New(rand.NewPCG(1, 1)).Shuffle(len(views), func(i, j int) { views[i], views[j] = views[j], views[i] })
	res, out, held := feed(f, views)
	if res != fragComplete || len(out) != len(views) || held != len(views)-1 {
		t.Fatalf("complete datagram: result %d, %d views out, %d held; want complete, %d, %d", res, len(out), held, len(views), len(views)-1)
	}
	for _, v := range out {
		v.Release()
	}
	if len(f.dgram) != 0 || f.bytes != 0 {
		t.Errorf("verifier still holds %d datagrams, %d bytes", len(f.dgram), f.bytes)
	}
}

func TestFragVerifierDropsBadChecksum(t *testing.T) {
	f := newFragVerifier()
	defer f.close()
	res, out, _ := feed(f, udpFragments(t, 8, 3000, 1024, true))
	if res != fragDropped || out != nil {
		t.Fatalf("corrupted datagram: result %d with %d views, want dropped", res, len(out))
	}
	if f.bytes != 0 {
		t.Errorf("%d bytes still held", f.bytes)
	}
}

func TestFragVerifierDropsOverlap(t *testing.T) {
	f := newFragVerifier()
	defer f.close()
	views := udpFragments(t, 9, 3000, 1024, false)
	dup := buffer.NewViewWithData(append([]byte(nil), views[0].AsSlice()...))
	if res, _ := f.add(views[0], header.IPv4(views[0].AsSlice())); res != fragHeld {
		t.Fatalf("first fragment: %d, want held", res)
	}
	if res, _ := f.add(dup, header.IPv4(dup.AsSlice())); res != fragDropped {
		t.Fatalf("overlapping fragment: %d, want dropped", res)
	}
	for _, v := range views[1:] {
		v.Release()
	}
	if len(f.dgram) != 0 {
		t.Errorf("an overlapped datagram is still held")
	}
}

func TestFragVerifierExpires(t *testing.T) {
	f := newFragVerifier()
	defer f.close()
	now := time.Unix(1000, 0)
	f.now = func() time.Time { return now }
	views := udpFragments(t, 10, 3000, 1024, false)
	if res, _ := f.add(views[0], header.IPv4(views[0].AsSlice())); res != fragHeld {
		t.Fatal("first fragment not held")
	}
	now = now.Add(fragTimeout + time.Second)
	// Any later call expires the stale datagram; the rest then starts a
	// new one that never completes.
	other := udpFragments(t, 11, 100, 1024, false)
	if res, out := f.add(other[0], header.IPv4(other[0].AsSlice())); res != fragComplete {
		t.Fatalf("unfragmented-size datagram: %d", res)
	} else {
		out[0].Release()
	}
	if _, ok := f.dgram[fragKey{src: tcpip.AddrFrom4([4]byte{10, 0, 0, 1}), dst: tcpip.AddrFrom4([4]byte{10, 0, 0, 2}), id: 10, proto: 17}]; ok {
		t.Error("the stale datagram was not expired")
	}
	for _, v := range views[1:] {
		v.Release()
	}
}
