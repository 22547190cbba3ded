// Package frame parses the Ethernet, IPv4, IPv6, TCP and UDP headers of a
// frame and computes the pseudo-header sums their checksums start from.
// The endpoint (link), the simulated NIC (link/simnic) and the device model
// (ena/enasim) all read frames; they share this parsing so that they agree
// on where headers and checksum fields are, while each decides for itself
// what to do with a frame (the model reports what a device would, the
// endpoint what the stack may trust).
//
// Every function bounds-checks what it reads: frames come from the wire or
// from DMA memory, and a malformed one yields ok == false, never a panic.
package frame

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
)

// Header sizes, EtherTypes, protocol numbers and checksum field offsets
// (IEEE 802.3, IEEE 802.1Q, RFC 791, RFC 8200, RFC 793, RFC 768).
const (
	EthernetHeaderLen = 14
	VLANTagLen        = 4
	EtherTypeIPv4     = 0x0800
	EtherTypeIPv6     = 0x86DD
	EtherTypeVLAN     = 0x8100
	EtherTypeQinQ     = 0x88A8

	IPv4MinHeaderLen   = 20
	IPv6HeaderLen      = 40
	IPv4ChecksumOffset = 10 // header checksum inside the IPv4 header

	ProtoTCP          = 6
	ProtoUDP          = 17
	TCPMinHeaderLen   = 20
	UDPHeaderLen      = 8
	TCPChecksumOffset = 16 // checksum inside the TCP header
	UDPChecksumOffset = 6  // checksum inside the UDP header
)

// EtherType returns the frame's EtherType after at most maxVLANs 802.1Q or
// 802.1ad tags, the offset of the L3 header, and how many tags it skipped.
// ok is false when the frame ends inside the Ethernet header or a tag.
func EtherType(f []byte, maxVLANs int) (etherType uint16, l3Off, vlans int, ok bool) {
	if len(f) < EthernetHeaderLen {
		return 0, 0, 0, false
	}
	off := 12
	et := binary.BigEndian.Uint16(f[off:])
	for (et == EtherTypeVLAN || et == EtherTypeQinQ) && vlans < maxVLANs {
		if len(f) < off+VLANTagLen+2 {
			return 0, 0, vlans, false
		}
		vlans++
		off += VLANTagLen
		et = binary.BigEndian.Uint16(f[off:])
	}
	return et, off + 2, vlans, true
}

// IP is what an IPv4 or IPv6 header says about its packet. Src and Dst
// alias the parsed bytes.
type IP struct {
	// HeaderLen is the IPv4 header length (IHL*4) or the fixed 40-byte
	// IPv6 header; IPv6 extension headers are not walked.
	HeaderLen int
	// Len is the packet length the header claims (IPv4 total length,
	// IPv6 40 + payload length); it may disagree with the bytes present.
	Len      int
	Src, Dst []byte
	// Proto is the IPv4 protocol or the IPv6 next header.
	Proto uint8
	// Fragment: IPv4 MF set or a non-zero fragment offset.
	Fragment bool
	// DontFragment: the IPv4 DF flag; always true for IPv6, which routers
	// never fragment.
	DontFragment bool
}

// L4Len is the length of what follows the IP header according to the
// header's own length field; negative when that field is inconsistent.
func (ip *IP) L4Len() int { return ip.Len - ip.HeaderLen }

// ParseIPv4 parses the IPv4 header at the start of b (RFC 791). ok is false
// when b is shorter than the header, the version is not 4 or the IHL is
// below 5.
func ParseIPv4(b []byte) (ip IP, ok bool) {
	if len(b) < IPv4MinHeaderLen || b[0]>>4 != 4 {
		return IP{}, false
	}
	hl := int(b[0]&0x0F) * 4
	if hl < IPv4MinHeaderLen || len(b) < hl {
		return IP{}, false
	}
	flags := binary.BigEndian.Uint16(b[6:])
	return IP{
		HeaderLen:    hl,
		Len:          int(binary.BigEndian.Uint16(b[2:])),
		Src:          b[12:16],
		Dst:          b[16:20],
		Proto:        b[9],
		Fragment:     flags&0x2000 != 0 || flags&0x1FFF != 0,
		DontFragment: flags&0x4000 != 0,
	}, true
}

// ParseIPv6 parses the fixed IPv6 header at the start of b (RFC 8200). ok
// is false when b is shorter than 40 bytes or the version is not 6.
func ParseIPv6(b []byte) (ip IP, ok bool) {
	if len(b) < IPv6HeaderLen || b[0]>>4 != 6 {
		return IP{}, false
	}
	return IP{
		HeaderLen:    IPv6HeaderLen,
		Len:          IPv6HeaderLen + int(binary.BigEndian.Uint16(b[4:])),
		Src:          b[8:24],
		Dst:          b[24:40],
		Proto:        b[6],
		DontFragment: true,
	}, true
}

// L4ChecksumOffset is where the checksum field sits inside a TCP or UDP
// header; ok is false for other protocols.
func L4ChecksumOffset(proto uint8) (off int, ok bool) {
	switch proto {
	case ProtoTCP:
		return TCPChecksumOffset, true
	case ProtoUDP:
		return UDPChecksumOffset, true
	}
	return 0, false
}

// L4HeaderLen is the length of the TCP (data offset, options included) or
// UDP header at the start of l4; ok is false for other protocols or when
// the header is not complete inside l4.
func L4HeaderLen(proto uint8, l4 []byte) (n int, ok bool) {
	switch proto {
	case ProtoTCP:
		if len(l4) < TCPMinHeaderLen {
			return 0, false
		}
		n = int(l4[12]>>4) * 4
		if n < TCPMinHeaderLen || len(l4) < n {
			return 0, false
		}
		return n, true
	case ProtoUDP:
		if len(l4) < UDPHeaderLen {
			return 0, false
		}
		return UDPHeaderLen, true
	}
	return 0, false
}

// PseudoHeaderSum is the folded, non-inverted one's-complement sum of the
// TCP/UDP pseudo-header (RFC 793 §3.1, RFC 768, RFC 8200 §8.1): source and
// destination addresses, protocol and the L4 length. It is the value a
// partial checksum offload expects in the checksum field, and the starting
// sum for verifying a segment.
func PseudoHeaderSum(src, dst []byte, proto uint8, l4Len int) uint16 {
	sum := uint32(checksum.Checksum(src, 0))
	sum += uint32(checksum.Checksum(dst, 0))
	sum += uint32(proto) + uint32(l4Len>>16) + uint32(l4Len&0xFFFF)
	for sum>>16 != 0 {
		sum = sum&0xFFFF + sum>>16
	}
	return uint16(sum)
}
