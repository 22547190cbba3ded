package enasim

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"

	"github.com/enanet/enanet/ena/spec"
	"github.com/enanet/enanet/internal/frame"
)

// Checksums and frame parsing for the data path: Tx checksum offload as the
// descriptors ask (§7.2, §7.3) and Rx checksum validation reported in the Rx
// completion (§7.7). Everything here reads a frame the driver (Tx) or the
// wire (Rx) supplied, so every offset is bounds-checked and a malformed frame
// yields "not parsed", never a panic.

// Header sizes, EtherTypes, protocol numbers and checksum offsets come from
// internal/frame, the parser the model shares with the endpoint; the model
// only reads where the headers are from it and decides itself what the
// device reports.
const (
	ethHeaderLen  = frame.EthernetHeaderLen
	vlanTagLen    = frame.VLANTagLen
	etherTypeVLAN = frame.EtherTypeVLAN
	etherTypeQinQ = frame.EtherTypeQinQ
	ipv4MinHdrLen = frame.IPv4MinHeaderLen
	ipv6HdrLen    = frame.IPv6HeaderLen
	ipProtoTCP    = frame.ProtoTCP
	ipProtoUDP    = frame.ProtoUDP
	tcpMinHdrLen  = frame.TCPMinHeaderLen
	udpHdrLen     = frame.UDPHeaderLen
	tcpCsumOff    = frame.TCPChecksumOffset
	udpCsumOff    = frame.UDPChecksumOffset
	ipv4CsumOff   = frame.IPv4ChecksumOffset
)

// csumAdd adds b to the running one's-complement accumulator sum as a
// sequence of big-endian 16-bit words (RFC 1071); an odd trailing byte is
// padded with zero. Callers fold the result with csumFold. The words are
// summed by gVisor's checksum package (eight bytes per add, RFC 1071 §2
// (B) byte-order independence); its folded 16-bit result is congruent to the
// word sum modulo 0xFFFF and zero only when every word is, so adding it here
// and folding later gives the same checksum as summing word by word. The
// device has to checksum every byte of every frame it sends with offload and
// every frame it receives, so this is the model's hottest loop.
func csumAdd(sum uint64, b []byte) uint64 {
	return sum + uint64(checksum.Checksum(b, 0))
}

// csumFold folds a one's-complement accumulator to 16 bits (not inverted).
func csumFold(sum uint64) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xFFFF + sum>>16
	}
	return uint16(sum)
}

// pseudoHeaderSum is the one's-complement sum of the TCP/UDP pseudo-header
// for an L4 segment of l4Len bytes, as an accumulator for csumAdd.
func pseudoHeaderSum(src, dst []byte, proto uint8, l4Len int) uint64 {
	return uint64(frame.PseudoHeaderSum(src, dst, proto, l4Len))
}

// frameInfo is what the device parser learns from a frame's headers. It is
// used for Rx completion fields (§7.7), the RSS hash input (§10) and Tx
// offload sanity. Offsets are from the start of the frame.
type frameInfo struct {
	vlans   int // number of 802.1Q/802.1ad tags (0..2)
	l3      spec.L3Proto
	l3Off   int
	l3Len   int // IPv4: IHL*4; IPv6: 40
	ipLen   int // bytes of the IP packet per its own length fields, clipped to the frame
	src     []byte
	dst     []byte
	frag    bool // IPv4 MF set or fragment offset non-zero
	proto   uint8
	l4      spec.L4Proto
	l4Off   int
	l4Len   int  // L4 segment length (header + payload)
	l4Valid bool // the L4 header is complete inside the frame
	sport   uint16
	dport   uint16
}

// parseFrame fills fi from an Ethernet frame. It understands up to two VLAN
// tags, IPv4 (options allowed) and IPv6 without extension headers, then TCP
// and UDP. Anything else is reported as unknown at the layer it stopped.
func parseFrame(f []byte, fi *frameInfo) {
	*fi = frameInfo{}
	et, l3, vlans, ok := frame.EtherType(f, 2)
	fi.vlans = vlans
	if !ok {
		return
	}
	switch et {
	case frame.EtherTypeIPv4:
		if ip, ok := frame.ParseIPv4(f[l3:]); ok {
			parseIP(f, l3, spec.L3ProtoIPv4, &ip, fi)
		}
	case frame.EtherTypeIPv6:
		if ip, ok := frame.ParseIPv6(f[l3:]); ok {
			parseIP(f, l3, spec.L3ProtoIPv6, &ip, fi)
		}
	}
}

// parseIP records the IP header ip found at off and goes on to L4 when the
// header's length field fits the frame. IPv6 extension headers are not
// walked: a frame whose next header is not TCP or UDP reports L4 unknown.
func parseIP(f []byte, off int, l3 spec.L3Proto, ip *frame.IP, fi *frameInfo) {
	fi.l3, fi.l3Off, fi.l3Len = l3, off, ip.HeaderLen
	fi.ipLen = min(ip.Len, len(f)-off)
	fi.src, fi.dst = ip.Src, ip.Dst
	fi.frag = ip.Fragment
	fi.proto = ip.Proto
	if ip.Len < ip.HeaderLen || ip.Len > len(f)-off {
		// Length field disagrees with the frame: no L4 parsing.
		return
	}
	parseL4(f, off+ip.HeaderLen, ip.L4Len(), fi)
}

// parseL4 records TCP or UDP at off with segment length n (from the IP
// header). Fragments are not parsed past L3 (only the first carries ports and
// no fragment can be checksummed alone).
func parseL4(f []byte, off, n int, fi *frameInfo) {
	if fi.frag {
		return
	}
	switch fi.proto {
	case ipProtoTCP:
		fi.l4 = spec.L4ProtoTCP
		fi.l4Off, fi.l4Len = off, n
		fi.l4Valid = n >= tcpMinHdrLen && off+n <= len(f)
	case ipProtoUDP:
		fi.l4 = spec.L4ProtoUDP
		fi.l4Off, fi.l4Len = off, n
		fi.l4Valid = n >= udpHdrLen && off+n <= len(f)
	}
	if fi.l4Valid {
		fi.sport = binary.BigEndian.Uint16(f[off:])
		fi.dport = binary.BigEndian.Uint16(f[off+2:])
	}
}

// ipv4HeaderOK reports whether the IPv4 header checksum of a parsed frame
// verifies (RFC 1071: the sum over the header, checksum included, is 0xFFFF).
func ipv4HeaderOK(f []byte, fi *frameInfo) bool {
	return csumFold(csumAdd(0, f[fi.l3Off:fi.l3Off+fi.l3Len])) == 0xFFFF
}

// l4ChecksumOK reports whether the TCP or UDP checksum of a parsed frame
// verifies. A UDP-over-IPv4 checksum of zero means "none" (RFC 768) and is
// accepted; over IPv6 a zero UDP checksum is invalid (RFC 8200 §8.1).
func l4ChecksumOK(f []byte, fi *frameInfo) bool {
	seg := f[fi.l4Off : fi.l4Off+fi.l4Len]
	if fi.l4 == spec.L4ProtoUDP && binary.BigEndian.Uint16(seg[udpCsumOff:]) == 0 {
		return fi.l3 == spec.L3ProtoIPv4
	}
	sum := pseudoHeaderSum(fi.src, fi.dst, fi.proto, fi.l4Len)
	return csumFold(csumAdd(sum, seg)) == 0xFFFF
}

// txOffload describes what a Tx packet asked the device to compute: the
// offload bits of the first data descriptor (§7.2) and the header geometry
// from the packet's (or the cached) meta descriptor (§7.3, §7.4).
type txOffload struct {
	l3Proto  spec.L3Proto
	l4Proto  spec.L4Proto
	l3Csum   bool
	l4Csum   bool
	partial  bool
	l3HdrOff int
	l3HdrLen int
}

// applyTxChecksums computes the checksums a Tx packet asked for, in place,
// using the meta descriptor's header offsets as the hardware does (not its
// own parse: the descriptors say where the headers are). It returns false if
// the request cannot be honoured (headers outside the frame, an L3 checksum
// on a non-IPv4 packet, an unknown L4 protocol); the caller drops the frame.
//
// L4 checksums: full (§7.2 L4_CSUM_EN without L4_CSUM_PARTIAL): the device
// zeroes the field, adds the pseudo-header and the segment. Partial
// (L4_CSUM_PARTIAL): the driver already stored the non-inverted
// pseudo-header sum in the field, so the device sums the segment as it is.
//
// done records where the device computed a correct L4 checksum
// (csum_carry.go): in full mode always, in partial mode only when the
// driver's stored pseudo-header sum is the one the headers give.
func applyTxChecksums(f []byte, o *txOffload, done *txChecksummed) bool {
	*done = txChecksummed{}
	l3 := o.l3HdrOff
	if o.l3Csum {
		if o.l3Proto != spec.L3ProtoIPv4 || o.l3HdrLen < ipv4MinHdrLen || l3+o.l3HdrLen > len(f) {
			return false
		}
		h := f[l3 : l3+o.l3HdrLen]
		h[ipv4CsumOff], h[ipv4CsumOff+1] = 0, 0
		binary.BigEndian.PutUint16(h[ipv4CsumOff:], ^csumFold(csumAdd(0, h)))
	}
	if !o.l4Csum {
		return true
	}
	var src, dst []byte
	var l4Len int
	l4 := l3 + o.l3HdrLen
	switch o.l3Proto {
	case spec.L3ProtoIPv4:
		if o.l3HdrLen < ipv4MinHdrLen || l4 > len(f) {
			return false
		}
		total := int(binary.BigEndian.Uint16(f[l3+2:]))
		l4Len = total - o.l3HdrLen
		src, dst = f[l3+12:l3+16], f[l3+16:l3+20]
	case spec.L3ProtoIPv6:
		if o.l3HdrLen < ipv6HdrLen || l4 > len(f) {
			return false
		}
		l4Len = int(binary.BigEndian.Uint16(f[l3+4:])) - (o.l3HdrLen - ipv6HdrLen)
		src, dst = f[l3+8:l3+24], f[l3+24:l3+40]
	default:
		return false
	}
	var csOff int
	var proto uint8
	switch o.l4Proto {
	case spec.L4ProtoTCP:
		csOff, proto = tcpCsumOff, ipProtoTCP
		if l4Len < tcpMinHdrLen {
			return false
		}
	case spec.L4ProtoUDP:
		csOff, proto = udpCsumOff, ipProtoUDP
		if l4Len < udpHdrLen {
			return false
		}
	default:
		return false
	}
	if l4Len <= 0 || l4+l4Len > len(f) {
		return false
	}
	seg := f[l4 : l4+l4Len]
	var sum uint64
	pseudo := pseudoHeaderSum(src, dst, proto, l4Len)
	correct := true
	if o.partial {
		correct = binary.BigEndian.Uint16(seg[csOff:]) == csumFold(pseudo)
	} else {
		seg[csOff], seg[csOff+1] = 0, 0
		sum = pseudo
	}
	cs := ^csumFold(csumAdd(sum, seg))
	if cs == 0 && proto == ipProtoUDP {
		cs = 0xFFFF // RFC 768: a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(seg[csOff:], cs)
	if correct {
		*done = txChecksummed{valid: true, l3: o.l3Proto, l4: o.l4Proto, l3Off: l3, l4Off: l4, l4Len: l4Len}
	}
	return true
}
