package frame

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

func TestParseIPv4(t *testing.T) {
	b := make([]byte, 24+8)
	header.IPv4(b).Encode(&header.IPv4Fields{TotalLength: 32, TTL: 64, Protocol: ProtoUDP, Flags: header.IPv4FlagDontFragment,
		SrcAddr: tcpip.AddrFrom4([4]byte{10, 0, 0, 1}), DstAddr: tcpip.AddrFrom4([4]byte{10, 0, 0, 2}),
		Options: header.IPv4OptionsSerializer{&header.IPv4SerializableNOPOption{}, &header.IPv4SerializableNOPOption{},
			&header.IPv4SerializableNOPOption{}, &header.IPv4SerializableListEndOption{}}})
	ip, ok := ParseIPv4(b)
	require.True(t, ok)
	assert.Equal(t, IP{HeaderLen: 24, Len: 32, Src: b[12:16], Dst: b[16:20], Proto: ProtoUDP, DontFragment: true}, ip)
	assert.Equal(t, 8, ip.L4Len())

	header.IPv4(b).SetFlagsFragmentOffset(header.IPv4FlagMoreFragments, 0)
	ip, _ = ParseIPv4(b)
	assert.True(t, ip.Fragment)
	header.IPv4(b).SetFlagsFragmentOffset(0, 8)
	ip, _ = ParseIPv4(b)
	assert.True(t, ip.Fragment)

	for name, bad := range map[string][]byte{
		"short":        b[:19],
		"IHL past end": b[:22],
		"version 6":    append([]byte{0x65}, b[1:]...),
		"IHL 4":        append([]byte{0x44}, b[1:]...),
	} {
		_, ok := ParseIPv4(bad)
		assert.False(t, ok, name)
	}
}

func TestParseIPv6(t *testing.T) {
	b := make([]byte, 40)
	header.IPv6(b).Encode(&header.IPv6Fields{PayloadLength: 20, TransportProtocol: header.TCPProtocolNumber, HopLimit: 64,
		SrcAddr: tcpip.AddrFrom16([16]byte{0xfe, 0x80, 15: 1}), DstAddr: tcpip.AddrFrom16([16]byte{0xfe, 0x80, 15: 2})})
	ip, ok := ParseIPv6(b)
	require.True(t, ok)
	assert.Equal(t, IP{HeaderLen: 40, Len: 60, Src: b[8:24], Dst: b[24:40], Proto: ProtoTCP, DontFragment: true}, ip)
	_, ok = ParseIPv6(b[:39])
	assert.False(t, ok)
}

func TestL4(t *testing.T) {
	tcp := make([]byte, 32)
	header.TCP(tcp).Encode(&header.TCPFields{DataOffset: 32})
	n, ok := L4HeaderLen(ProtoTCP, tcp)
	assert.True(t, ok)
	assert.Equal(t, 32, n)
	_, ok = L4HeaderLen(ProtoTCP, tcp[:31])
	assert.False(t, ok, "TCP options cut off")
	n, ok = L4HeaderLen(ProtoUDP, make([]byte, 8))
	assert.True(t, ok)
	assert.Equal(t, 8, n)
	_, ok = L4HeaderLen(1, make([]byte, 8))
	assert.False(t, ok, "ICMP")

	off, ok := L4ChecksumOffset(ProtoTCP)
	assert.True(t, ok)
	assert.Equal(t, header.TCPChecksumOffset, off)
	off, ok = L4ChecksumOffset(ProtoUDP)
	assert.True(t, ok)
	assert.Equal(t, 6, off)
}

func TestPseudoHeaderSumMatchesGVisor(t *testing.T) {
	v4a, v4b := tcpip.AddrFrom4([4]byte{192, 168, 255, 1}), tcpip.AddrFrom4([4]byte{10, 255, 0, 2})
	v6a, v6b := tcpip.AddrFrom16([16]byte{0xff, 0xfe, 15: 0xff}), tcpip.AddrFrom16([16]byte{0x20, 0x01, 14: 0xff, 15: 0xff})
	for _, l4Len := range []int{0, 8, 1400, 0xffff} {
		for _, proto := range []uint8{ProtoTCP, ProtoUDP} {
			want := header.PseudoHeaderChecksum(tcpip.TransportProtocolNumber(proto), v4a, v4b, uint16(l4Len))
			assert.Equal(t, want, PseudoHeaderSum(v4a.AsSlice(), v4b.AsSlice(), proto, l4Len))
			want = header.PseudoHeaderChecksum(tcpip.TransportProtocolNumber(proto), v6a, v6b, uint16(l4Len))
			assert.Equal(t, want, PseudoHeaderSum(v6a.AsSlice(), v6b.AsSlice(), proto, l4Len))
		}
	}
}

func TestEtherType(t *testing.T) {
	f := make([]byte, 22)
	f[12], f[13] = 0x81, 0x00
	f[16], f[17] = 0x88, 0xa8
	f[20], f[21] = 0x86, 0xdd
	et, l3, vlans, ok := EtherType(f, 2)
	require.True(t, ok)
	assert.Equal(t, uint16(EtherTypeIPv6), et)
	assert.Equal(t, 22, l3)
	assert.Equal(t, 2, vlans)
	et, l3, vlans, ok = EtherType(f, 1)
	require.True(t, ok)
	assert.Equal(t, uint16(EtherTypeQinQ), et)
	assert.Equal(t, 18, l3)
	assert.Equal(t, 1, vlans)
	_, _, _, ok = EtherType(f[:20], 2)
	assert.False(t, ok, "tag cut off")
	_, _, _, ok = EtherType(f[:13], 0)
	assert.False(t, ok)
}
