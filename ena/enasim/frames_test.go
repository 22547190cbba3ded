package enasim

import (
	"encoding/binary"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
)

// Test frames, built byte by byte from the RFCs, with checksums computed by
// gVisor's independent checksum package (not by csum.go).

var (
	testMACA = [6]byte{0x02, 0, 0, 0, 0, 0xA}
	testMACB = [6]byte{0x02, 0, 0, 0, 0, 0xB}
)

type frameSpec struct {
	src, dst     netip.Addr
	proto        uint8 // 6 TCP, 17 UDP, other = raw IP payload
	sport, dport uint16
	payload      int  // payload bytes after the L4 header
	vlan         bool // one 802.1Q tag
	frag         bool // IPv4 MF set
	noCsum       bool // leave every checksum zero
}

// buildFrame returns an Ethernet frame with correct checksums unless
// noCsum.
func buildFrame(s frameSpec) []byte {
	f := make([]byte, 0, 14+4+40+20+s.payload)
	f = append(f, testMACB[:]...)
	f = append(f, testMACA[:]...)
	if s.vlan {
		f = append(f, 0x81, 0x00, 0x00, 0x05)
	}
	l4len := s.payload
	switch s.proto {
	case 6:
		l4len += 20
	case 17:
		l4len += 8
	}
	var l3 int
	if s.src.Is4() {
		f = append(f, 0x08, 0x00)
		l3 = len(f)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+l4len))
		binary.BigEndian.PutUint16(ip[4:], 0x1234)
		if s.frag {
			binary.BigEndian.PutUint16(ip[6:], 0x2000)
		} else {
			binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		}
		ip[8], ip[9] = 64, s.proto
		a, b := s.src.As4(), s.dst.As4()
		copy(ip[12:], a[:])
		copy(ip[16:], b[:])
		if !s.noCsum {
			binary.BigEndian.PutUint16(ip[10:], ^checksum.Checksum(ip, 0))
		}
		f = append(f, ip...)
	} else {
		f = append(f, 0x86, 0xDD)
		l3 = len(f)
		ip := make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(l4len))
		ip[6], ip[7] = s.proto, 64
		a, b := s.src.As16(), s.dst.As16()
		copy(ip[8:], a[:])
		copy(ip[24:], b[:])
		f = append(f, ip...)
	}
	l4 := len(f)
	switch s.proto {
	case 6:
		h := make([]byte, 20)
		binary.BigEndian.PutUint16(h[0:], s.sport)
		binary.BigEndian.PutUint16(h[2:], s.dport)
		binary.BigEndian.PutUint32(h[4:], 1000)
		h[12] = 5 << 4
		h[13] = 0x18
		binary.BigEndian.PutUint16(h[14:], 65535)
		f = append(f, h...)
	case 17:
		h := make([]byte, 8)
		binary.BigEndian.PutUint16(h[0:], s.sport)
		binary.BigEndian.PutUint16(h[2:], s.dport)
		binary.BigEndian.PutUint16(h[4:], uint16(l4len))
		f = append(f, h...)
	}
	for i := range s.payload {
		f = append(f, byte(i*7+3))
	}
	if !s.noCsum && !s.frag && (s.proto == 6 || s.proto == 17) {
		off := 16
		if s.proto == 17 {
			off = 6
		}
		cs := ^checksum.Checksum(f[l4:], pseudoSum(f, l3, s.proto, l4len))
		if cs == 0 && s.proto == 17 {
			cs = 0xFFFF
		}
		binary.BigEndian.PutUint16(f[l4+off:], cs)
	}
	return f
}

// pseudoSum is the pseudo-header sum via gVisor's checksum over an explicit
// pseudo-header (RFC 793 / RFC 8200 layout).
func pseudoSum(f []byte, l3 int, proto uint8, l4len int) uint16 {
	var ph []byte
	if f[l3]>>4 == 4 {
		ph = append(ph, f[l3+12:l3+20]...)
		ph = append(ph, 0, proto, byte(l4len>>8), byte(l4len))
	} else {
		ph = append(ph, f[l3+8:l3+40]...)
		ph = append(ph, 0, 0, byte(l4len>>8), byte(l4len), 0, 0, 0, proto)
	}
	return checksum.Checksum(ph, 0)
}

// l3Offset returns the IP header offset of a test frame.
func l3Offset(f []byte) int {
	if binary.BigEndian.Uint16(f[12:]) == 0x8100 {
		return 18
	}
	return 14
}

// verifyChecksums checks a frame's IPv4 header and L4 checksums with gVisor.
func verifyChecksums(f []byte) (l3ok, l4ok bool) {
	l3 := l3Offset(f)
	l3ok = true
	var proto uint8
	var l4, l4len int
	if f[l3]>>4 == 4 {
		ihl := int(f[l3]&0xF) * 4
		l3ok = checksum.Checksum(f[l3:l3+ihl], 0) == 0xFFFF
		proto = f[l3+9]
		l4 = l3 + ihl
		l4len = int(binary.BigEndian.Uint16(f[l3+2:])) - ihl
	} else {
		proto = f[l3+6]
		l4 = l3 + 40
		l4len = int(binary.BigEndian.Uint16(f[l3+4:]))
	}
	l4ok = checksum.Checksum(f[l4:l4+l4len], pseudoSum(f, l3, proto, l4len)) == 0xFFFF
	return l3ok, l4ok
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func tcp4(sport, dport uint16, payload int) []byte {
	return buildFrame(frameSpec{src: addr("10.0.0.1"), dst: addr("10.0.0.2"), proto: 6, sport: sport, dport: dport, payload: payload})
}
