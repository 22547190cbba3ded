package enasim

import (
	"encoding/binary"
	"encoding/hex"
	"github.com/enanet/enanet/ena/spec"
	"testing"
)

// msKey is the key of Microsoft's RSS verification suite ("Verifying the
// RSS Hash Calculation").
var msKey = func() (k [spec.RSSKeySize]byte) {
	b, _ := hex.DecodeString("6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa")
	copy(k[:], b)
	return k
}()

// TestToeplitzMicrosoftVectors checks the hash against the published
// IPv4 and IPv4/TCP results (input: source address, destination address,
// source port, destination port).
func TestToeplitzMicrosoftVectors(t *testing.T) {
	vectors := []struct {
		src, dst     string
		sport, dport uint16
		ip, tcp      uint32
	}{
		{"66.9.149.187", "161.142.100.80", 2794, 1766, 0x323e8fc2, 0x51ccc178},
		{"199.92.111.2", "65.69.140.83", 14230, 4739, 0xd718262a, 0xc626b0ea},
		{"24.19.198.95", "12.22.207.184", 12898, 38024, 0xd2d0a5de, 0x5c2b394a},
		{"38.27.205.30", "209.142.163.6", 48228, 2217, 0x82989176, 0xafc7327f},
		{"153.39.163.191", "202.188.127.2", 44251, 1303, 0x5d1809c5, 0x10e828a2},
	}
	for _, v := range vectors {
		s, d := addr(v.src).As4(), addr(v.dst).As4()
		in := append(append([]byte{}, s[:]...), d[:]...)
		if h := toeplitz(&msKey, in); h != v.ip {
			t.Errorf("%s -> %s IPv4: hash %#08x, want %#08x", v.src, v.dst, h, v.ip)
		}
		in = binary.BigEndian.AppendUint16(in, v.sport)
		in = binary.BigEndian.AppendUint16(in, v.dport)
		if h := toeplitz(&msKey, in); h != v.tcp {
			t.Errorf("%s:%d -> %s:%d TCP: hash %#08x, want %#08x", v.src, v.sport, v.dst, v.dport, h, v.tcp)
		}

		// The same through the frame parser and the default hash inputs.
		f := buildFrame(frameSpec{src: addr(v.src), dst: addr(v.dst), proto: 6, sport: v.sport, dport: v.dport, payload: 10})
		var fi frameInfo
		parseFrame(f, &fi)
		var buf [rssMaxInput]byte
		class, n := rssInput(f, &fi, &rssDefaultFields, false, false, &buf)
		if class != spec.RSSTCP4 {
			t.Fatalf("class %d, want TCP4", class)
		}
		if h := toeplitz(&msKey, buf[:n]); h != v.tcp {
			t.Errorf("frame %s:%d: hash %#08x, want %#08x", v.src, v.sport, h, v.tcp)
		}
	}
}

// TestToeplitzMicrosoftIPv6 checks the published IPv6 and IPv6/TCP results.
func TestToeplitzMicrosoftIPv6(t *testing.T) {
	vectors := []struct {
		src, dst     string
		sport, dport uint16
		ip, tcp      uint32
	}{
		{"3ffe:2501:200:1fff::7", "3ffe:2501:200:3::1", 2794, 1766, 0x2cc18cd5, 0x40207d3d},
		{"3ffe:501:8::260:97ff:fe40:efab", "ff02::1", 14230, 4739, 0x0f0c461c, 0xdde51bbf},
		{"3ffe:1900:4545:3:200:f8ff:fe21:67cf", "fe80::200:f8ff:fe21:67cf", 44251, 38024, 0x4b61e985, 0x02d1feef},
	}
	for _, v := range vectors {
		f := buildFrame(frameSpec{src: addr(v.src), dst: addr(v.dst), proto: 6, sport: v.sport, dport: v.dport})
		var fi frameInfo
		parseFrame(f, &fi)
		var buf [rssMaxInput]byte
		fields := rssDefaultFields
		_, n := rssInput(f, &fi, &fields, false, false, &buf)
		if h := toeplitz(&msKey, buf[:n]); h != v.tcp {
			t.Errorf("%s TCP: hash %#08x, want %#08x", v.src, h, v.tcp)
		}
		fields[spec.RSSTCP6] = spec.RSSFieldL3SA | spec.RSSFieldL3DA
		_, n = rssInput(f, &fi, &fields, false, false, &buf)
		if h := toeplitz(&msKey, buf[:n]); h != v.ip {
			t.Errorf("%s IP: hash %#08x, want %#08x", v.src, h, v.ip)
		}
	}
}

// TestRSSInputSort checks the symmetric input sort: both directions of a
// flow hash alike.
func TestRSSInputSort(t *testing.T) {
	a := tcp4(1000, 80, 0)
	b := buildFrame(frameSpec{src: addr("10.0.0.2"), dst: addr("10.0.0.1"), proto: 6, sport: 80, dport: 1000})
	hash := func(f []byte, sort bool) uint32 {
		var fi frameInfo
		parseFrame(f, &fi)
		var buf [rssMaxInput]byte
		_, n := rssInput(f, &fi, &rssDefaultFields, sort, sort, &buf)
		return toeplitz(&msKey, buf[:n])
	}
	if hash(a, true) != hash(b, true) {
		t.Error("sorted inputs: directions hash differently")
	}
	if hash(a, false) == hash(b, false) {
		t.Error("unsorted inputs: directions hash alike (suspicious)")
	}
}

// TestToeplitzTableMatchesBitwise checks the byte-table hash the Rx path
// uses against the bit-by-bit definition, for the Microsoft key and
// pseudo-random keys, every input length up to rssMaxInput (past the end of
// the 40-byte key, where it is zero-extended).
func TestToeplitzTableMatchesBitwise(t *testing.T) {
	seed := uint32(7)
	rnd := func() byte {
		seed = seed*1664525 + 1013904223
		return byte(seed >> 24)
	}
	keys := [][spec.RSSKeySize]byte{msKey, {}}
	for range 3 {
		var k [spec.RSSKeySize]byte
		for i := range k {
			k[i] = rnd()
		}
		keys = append(keys, k)
	}
	var in [rssMaxInput]byte
	for _, k := range keys {
		var tt toeplitzTable
		tt.init(&k)
		for n := 0; n <= rssMaxInput; n++ {
			for range 20 {
				for i := range in[:n] {
					in[i] = rnd()
				}
				if got, want := tt.hash(in[:n]), toeplitz(&k, in[:n]); got != want {
					t.Fatalf("key %x input %x: table hash %#08x, bitwise %#08x", k, in[:n], got, want)
				}
			}
		}
	}
}
