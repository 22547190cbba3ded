package simnic

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/enanet/enanet/ena/spec"
	"github.com/enanet/enanet/link"
	"github.com/enanet/enanet/rings"
)

var allOffloads = link.Offloads{TxCsumIPv4: true, TxL4CsumIPv4Partial: true, TxL4CsumIPv6Partial: true, RxCsumIPv4: true, RxCsumL4: true}

// udpFrame is an Ethernet/IPv4/UDP frame with a correct IPv4 header
// checksum and, if seed, the pseudo-header sum in the UDP checksum field
// (partial offload), else a complete UDP checksum.
func udpFrame(payload int, seed bool) []byte {
	b := make([]byte, header.EthernetMinimumSize+header.IPv4MinimumSize+header.UDPMinimumSize+payload)
	header.Ethernet(b).Encode(&header.EthernetFields{DstAddr: tcpip.LinkAddress([]byte{2, 0, 0, 0, 0, 2}), Type: header.IPv4ProtocolNumber})
	ip := header.IPv4(b[header.EthernetMinimumSize:])
	src, dst := tcpip.AddrFrom4([4]byte{10, 0, 0, 1}), tcpip.AddrFrom4([4]byte{10, 0, 0, 2})
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(ip)), TTL: 64, Protocol: uint8(header.UDPProtocolNumber), SrcAddr: src, DstAddr: dst})
	ip.SetChecksum(^ip.CalculateChecksum())
	u := header.UDP(ip[header.IPv4MinimumSize:])
	u.Encode(&header.UDPFields{SrcPort: 1, DstPort: 2, Length: uint16(len(u))})
	for i := range u[header.UDPMinimumSize:] {
		u[header.UDPMinimumSize+i] = byte(i)
	}
	pseudo := header.PseudoHeaderChecksum(header.UDPProtocolNumber, src, dst, uint16(len(u)))
	if seed {
		u.SetChecksum(pseudo)
	} else {
		u.SetChecksum(^checksum.Checksum(u, pseudo))
	}
	return b
}

func udpChecksumOK(b []byte) bool {
	ip := header.IPv4(b[header.EthernetMinimumSize:])
	u := ip.Payload()
	return checksum.Checksum(u, header.PseudoHeaderChecksum(header.UDPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(u)))) == 0xffff
}

func TestPipe(t *testing.T) {
	a, b := NewPipe()
	var got []byte
	b.SetReceiver(func(f []byte) { got = append([]byte(nil), f...) })
	a.Send([]byte{1, 2, 3})
	assert.Equal(t, []byte{1, 2, 3}, got)
	got = nil
	require.NoError(t, b.Close())
	a.Send([]byte{4})
	assert.Nil(t, got, "a closed end received a frame")
}

// TestTxPartialChecksum: the NIC completes a partial L4 checksum the way
// the device does, and the frame arrives on the far end with a checksum
// that verifies.
func TestTxPartialChecksum(t *testing.T) {
	a, b := NewPipe()
	n := New(a, Config{Offloads: allOffloads})
	defer n.Close()
	var got []byte
	b.SetReceiver(func(f []byte) { got = append([]byte(nil), f...) })
	off := rings.TxOffload{L3: spec.L3ProtoIPv4, L4: spec.L4ProtoUDP, L3HdrLen: 20, L3HdrOff: 14, L4HdrLen: 2, L4Csum: true, L4Partial: true}
	require.NoError(t, n.Queue(0).Send([][]byte{udpFrame(101, true)}, off))
	require.NotNil(t, got)
	assert.True(t, udpChecksumOK(got))

	// A partial request the NIC did not negotiate is refused.
	n2 := New(&pipeEnd{peer: &pipeEnd{}}, Config{})
	assert.Error(t, n2.Queue(0).Send([][]byte{udpFrame(10, true)}, off))
}

// TestRxStatus: received frames carry the checksum verdicts a device
// reports, and only when the Rx offloads are on.
func TestRxStatus(t *testing.T) {
	for _, c := range []struct {
		name     string
		offloads link.Offloads
		frame    func() []byte
		want     rings.RxPacket
	}{
		{"good", allOffloads, func() []byte { return udpFrame(64, false) },
			rings.RxPacket{L3: spec.L3ProtoIPv4, L4: spec.L4ProtoUDP, L4CsumChecked: true}},
		{"bad L4", allOffloads, func() []byte { b := udpFrame(64, false); b[len(b)-1] ^= 0xff; return b },
			rings.RxPacket{L3: spec.L3ProtoIPv4, L4: spec.L4ProtoUDP, L4CsumChecked: true, L4CsumErr: true}},
		{"bad L3", allOffloads, func() []byte { b := udpFrame(64, false); b[header.EthernetMinimumSize+8]--; return b },
			rings.RxPacket{L3: spec.L3ProtoIPv4, L3CsumErr: true, L4: spec.L4ProtoUDP, L4CsumChecked: true}},
		{"fragment", allOffloads, func() []byte {
			b := udpFrame(64, false)
			ip := header.IPv4(b[header.EthernetMinimumSize:])
			ip.SetFlagsFragmentOffset(header.IPv4FlagMoreFragments, 0)
			ip.SetChecksum(0)
			ip.SetChecksum(^ip.CalculateChecksum())
			return b
		}, rings.RxPacket{L3: spec.L3ProtoIPv4, IPv4Frag: true}},
		{"no offload", link.Offloads{}, func() []byte { return udpFrame(64, false) },
			rings.RxPacket{L3: spec.L3ProtoIPv4, L3CsumErr: true, L4: spec.L4ProtoUDP}},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := NewPipe()
			n := New(b, Config{Offloads: c.offloads, MAC: [6]byte{2, 0, 0, 0, 0, 2}})
			defer n.Close()
			f := c.frame()
			a.Send(f)
			var got []rings.RxPacket
			k, err := n.Queue(0).Poll(8, func(p *rings.RxPacket) { got = append(got, *p) })
			require.NoError(t, err)
			require.Equal(t, 1, k)
			p := got[0]
			assert.Equal(t, len(f), p.Len)
			p.Frags, p.NFrags, p.Len, p.Hash = c.want.Frags, 0, 0, 0
			assert.Equal(t, c.want, p)
		})
	}
}

func TestSetMTU(t *testing.T) {
	a, _ := NewPipe()
	n := New(a, Config{MaxMTU: 9001})
	assert.Error(t, n.SetMTU(67))
	assert.Error(t, n.SetMTU(9002))
	require.NoError(t, n.SetMTU(9001))
	assert.Equal(t, 9001, n.MTU())
}
