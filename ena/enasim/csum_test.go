package enasim

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/enanet/enanet/ena/spec"
)

// TestTxChecksumOffload asks the device for each offload (IPv4 header, TCP
// and UDP full, TCP/UDP partial with the pseudo-header seeded, IPv6 partial)
// on frames with zeroed or seeded checksum fields, and verifies what
// arrives with gVisor's independent checksum code.
func TestTxChecksumOffload(t *testing.T) {
	lr := newLoopRig(t, ProfileNitroV3, 0, 64, 2048)
	type tc struct {
		name    string
		spec    frameSpec
		l3, l4  bool
		partial bool
	}
	v4 := func(p uint8, vlan bool) frameSpec {
		return frameSpec{src: addr("192.168.1.10"), dst: addr("10.9.8.7"), proto: p, sport: 4242, dport: 443, payload: 333, vlan: vlan, noCsum: true}
	}
	v6 := func(p uint8) frameSpec {
		return frameSpec{src: addr("2001:db8::1"), dst: addr("2001:db8::2"), proto: p, sport: 4242, dport: 443, payload: 333, noCsum: true}
	}
	cases := []tc{
		{"ipv4 header only", v4(6, false), true, false, false},
		{"tcp4 full", v4(6, false), true, true, false},
		{"udp4 full", v4(17, false), true, true, false},
		{"tcp4 partial", v4(6, false), false, true, true},
		{"udp4 partial vlan", v4(17, true), true, true, true},
		{"tcp6 partial", v6(6), false, true, true},
		{"udp6 full", v6(17), false, true, false},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := buildFrame(c.spec)
			l3 := l3Offset(f)
			isV4 := c.spec.src.Is4()
			l3len := 40
			l3p, l4p := spec.L3ProtoIPv6, spec.L4ProtoTCP
			if isV4 {
				l3len, l3p = 20, spec.L3ProtoIPv4
			}
			if c.spec.proto == 17 {
				l4p = spec.L4ProtoUDP
			}
			if c.partial {
				// The driver seeds the field with the non-inverted
				// pseudo-header sum (§7.2 L4_CSUM_PARTIAL).
				l4len := len(f) - l3 - l3len
				off := l3 + l3len + 16
				if c.spec.proto == 17 {
					off = l3 + l3len + 6
				}
				binary.BigEndian.PutUint16(f[off:], pseudoSum(f, l3, c.spec.proto, l4len))
			}
			o := sendOpts{
				reqID: uint16(i), seg: 100, meta: true,
				meta3:   spec.TxMetaDesc{ExtValid: true, MetaStore: true, MetaType: true, L3HdrOff: uint8(l3), L3HdrLen: uint8(l3len), L4HdrLen: 5},
				offload: spec.TxDesc{L3Proto: l3p, L4Proto: l4p, L3Csum: c.l3, L4Csum: c.l4, L4CsumPartial: c.partial, DF: true},
			}
			got, _ := lr.roundTrip(t, [][]byte{f}, o)
			if len(got) != 1 {
				t.Fatalf("received %d frames", len(got))
			}
			l3ok, l4ok := verifyChecksums(got[0].data)
			if isV4 && c.l3 && !l3ok {
				t.Error("IPv4 header checksum wrong")
			}
			if c.l4 && !l4ok {
				t.Error("L4 checksum wrong")
			}
			// The Rx side agrees.
			last := got[0].last()
			if c.l4 && (!last.L4CsumChecked || last.L4CsumErr) {
				t.Errorf("Rx completion: checked %v err %v", last.L4CsumChecked, last.L4CsumErr)
			}
		})
	}
	// With the metadata cached by the last meta descriptor (META_STORE) a
	// packet without a meta descriptor still gets its checksums.
	f := buildFrame(v4(6, false))
	store := sendOpts{reqID: 49, meta: true, meta3: spec.TxMetaDesc{ExtValid: true, MetaStore: true, MetaType: true, L3HdrOff: 14, L3HdrLen: 20, L4HdrLen: 5}}
	lr.roundTrip(t, [][]byte{tcp4(1, 2, 3)}, store)
	o := sendOpts{reqID: 50, offload: spec.TxDesc{L3Proto: spec.L3ProtoIPv4, L4Proto: spec.L4ProtoTCP, L3Csum: true, L4Csum: true}}
	got, _ := lr.roundTrip(t, [][]byte{f}, o)
	if len(got) != 1 {
		t.Fatalf("cached meta: received %d frames", len(got))
	}
	if l3ok, l4ok := verifyChecksums(got[0].data); !l3ok || !l4ok {
		t.Errorf("cached meta: checksums l3 %v l4 %v", l3ok, l4ok)
	}
}

// TestRxChecksumResults sends frames with good and bad checksums, fragments,
// IPv6 and non-IP through the wire and checks the LAST completion's bits
// (§7.7).
func TestRxChecksumResults(t *testing.T) {
	lr := newLoopRig(t, ProfileNitroV3, 0, 64, 2048)
	good := tcp4(1, 2, 50)
	badL3 := bytes.Clone(good)
	badL3[14+10] ^= 0xFF
	badL4 := bytes.Clone(good)
	badL4[len(badL4)-1] ^= 0xFF
	udpNoCsum := buildFrame(frameSpec{src: addr("10.0.0.1"), dst: addr("10.0.0.2"), proto: 17, sport: 5, dport: 6, payload: 20})
	binary.BigEndian.PutUint16(udpNoCsum[14+20+6:], 0)
	frag := buildFrame(frameSpec{src: addr("10.0.0.1"), dst: addr("10.0.0.2"), proto: 17, sport: 5, dport: 6, payload: 20, frag: true})
	v6 := buildFrame(frameSpec{src: addr("2001:db8::1"), dst: addr("2001:db8::2"), proto: 17, sport: 5, dport: 6, payload: 20})
	v6bad := bytes.Clone(v6)
	v6bad[len(v6bad)-1] ^= 1
	arp := make([]byte, 60)
	copy(arp, testMACB[:])
	arp[12], arp[13] = 0x08, 0x06

	frames := [][]byte{good, badL3, badL4, udpNoCsum, frag, v6, v6bad, arp}
	got, _ := lr.roundTrip(t, frames, sendOpts{})
	checkSame(t, got, frames)
	want := []struct {
		l3             spec.L3Proto
		l4             spec.L4Proto
		l3err, frag    bool
		checked, l4err bool
	}{
		{spec.L3ProtoIPv4, spec.L4ProtoTCP, false, false, true, false},
		{spec.L3ProtoIPv4, spec.L4ProtoTCP, true, false, true, false},
		{spec.L3ProtoIPv4, spec.L4ProtoTCP, false, false, true, true},
		{spec.L3ProtoIPv4, spec.L4ProtoUDP, false, false, true, false},
		{spec.L3ProtoIPv4, spec.L4ProtoUnknown, false, true, false, false},
		{spec.L3ProtoIPv6, spec.L4ProtoUDP, false, false, true, false},
		{spec.L3ProtoIPv6, spec.L4ProtoUDP, false, false, true, true},
		{spec.L3ProtoUnknown, spec.L4ProtoUnknown, false, false, false, false},
	}
	for i, w := range want {
		c := got[i].last()
		if c.L3Proto != w.l3 || c.L4Proto != w.l4 || c.L3CsumErr != w.l3err || c.IPv4Frag != w.frag ||
			c.L4CsumChecked != w.checked || c.L4CsumErr != w.l4err {
			t.Errorf("frame %d: got l3 %v l4 %v l3err %v frag %v checked %v l4err %v, want %+v",
				i, c.L3Proto, c.L4Proto, c.L3CsumErr, c.IPv4Frag, c.L4CsumChecked, c.L4CsumErr, w)
		}
		if c.MBZ != 0 {
			t.Errorf("frame %d: MBZ bits %#x", i, c.MBZ)
		}
	}
}

// TestCsumMatchesGVisor cross-checks the model's checksum helpers against
// gVisor on frames of many lengths (odd ones included).
func TestCsumMatchesGVisor(t *testing.T) {
	for n := range 70 {
		for _, p := range []uint8{6, 17} {
			f := buildFrame(frameSpec{src: addr("1.2.3.4"), dst: addr("5.6.7.8"), proto: p, sport: 9, dport: 10, payload: n})
			var fi frameInfo
			parseFrame(f, &fi)
			if !ipv4HeaderOK(f, &fi) || !l4ChecksumOK(f, &fi) {
				t.Fatalf("payload %d proto %d: model rejects a gVisor-checksummed frame", n, p)
			}
			f[len(f)-1] ^= 0x5A
			if n > 0 && l4ChecksumOK(f, &fi) {
				t.Fatalf("payload %d proto %d: model accepts a corrupted frame", n, p)
			}
		}
	}
}

// TestCsumAddMatchesWordSum checks csumAdd (gVisor's wide sum) against the
// RFC 1071 definition, one 16-bit word at a time, for every length up to a
// jumbo frame's worth, odd lengths, unaligned starts, running sums, and the
// all-ones data where the two zeros of one's complement differ.
func TestCsumAddMatchesWordSum(t *testing.T) {
	ref := func(sum uint64, b []byte) uint64 {
		for len(b) >= 2 {
			sum += uint64(b[0])<<8 | uint64(b[1])
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint64(b[0]) << 8
		}
		return sum
	}
	buf := make([]byte, 9100)
	seed := uint32(1)
	for i := range buf {
		seed = seed*1664525 + 1013904223
		buf[i] = byte(seed >> 24)
	}
	ones := bytes.Repeat([]byte{0xFF}, 300)
	zeros := make([]byte, 300)
	for _, data := range [][]byte{buf, ones, zeros} {
		for _, start := range []int{0, 1, 2, 3, 5, 7} {
			for n := 0; start+n <= len(data); n += 1 + n/7 {
				b := data[start : start+n]
				for _, init := range []uint64{0, 1, 0xFFFF, 0x1_2345, 0xFFFF_FFFF} {
					if got, want := csumFold(csumAdd(init, b)), csumFold(ref(init, b)); got != want {
						t.Fatalf("start %d len %d init %#x: csumAdd folds to %#04x, word sum to %#04x", start, n, init, got, want)
					}
				}
			}
		}
	}
}
