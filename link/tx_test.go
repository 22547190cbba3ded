package link

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/enanet/enanet/ena/spec"
	"github.com/enanet/enanet/rings"
)

// offloadPacket builds an Ethernet/IPv4 packet the way the stack hands one
// to WritePackets: L4 header, then IPv4 header (with optLen bytes of
// options), then Ethernet header pushed into the reserve, payload separate.
func offloadPacket(proto tcpip.TransportProtocolNumber, optLen int, flags uint8, payload int) *stack.PacketBuffer {
	l4Len := header.UDPMinimumSize
	if proto == header.TCPProtocolNumber {
		l4Len = header.TCPMinimumSize + 12
	}
	ipLen := header.IPv4MinimumSize + optLen
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		ReserveHeaderBytes: 64 + header.EthernetMinimumSize + ipLen + l4Len,
		Payload:            buffer.MakeWithData(bytes.Repeat([]byte{0xA5}, payload)),
	})
	l4 := pkt.TransportHeader().Push(l4Len)
	if proto == header.TCPProtocolNumber {
		header.TCP(l4).Encode(&header.TCPFields{SrcPort: 1000, DstPort: 80, SeqNum: 7, DataOffset: uint8(l4Len), Flags: header.TCPFlagAck, WindowSize: 100})
	} else {
		header.UDP(l4).Encode(&header.UDPFields{SrcPort: 1000, DstPort: 53, Length: uint16(l4Len + payload)})
	}
	ip := header.IPv4(pkt.NetworkHeader().Push(ipLen))
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(ipLen + l4Len + payload), TTL: 64, Protocol: uint8(proto), Flags: flags,
		SrcAddr: tcpip.AddrFrom4([4]byte{10, 0, 0, 1}), DstAddr: tcpip.AddrFrom4([4]byte{10, 0, 0, 2}),
		Options: header.IPv4OptionsSerializer{&header.IPv4SerializableNOPOption{}, &header.IPv4SerializableNOPOption{},
			&header.IPv4SerializableNOPOption{}, &header.IPv4SerializableListEndOption{}}[:optLen],
	})
	pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
	pkt.TransportProtocolNumber = proto
	header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize)).Encode(&header.EthernetFields{Type: header.IPv4ProtocolNumber})
	return pkt
}

// firstSeg is the first non-empty slice send builds from pkt.
func firstSeg(pkt *stack.PacketBuffer) []byte {
	views, skip := pkt.AsViewList()
	for v := views.Front(); v != nil; v = v.Next() {
		b := v.AsSlice()
		if skip >= len(b) {
			skip -= len(b)
			continue
		}
		return b[skip:]
	}
	return nil
}

// TestTxChecksumHeaderSources: txChecksum asks the device for the same
// thing and seeds the same checksum field whether it reads the headers from
// the frame's first segment or, when they are not all there, through the
// packet's header views; fragments and non-TCP/UDP packets get no request.
func TestTxChecksumHeaderSources(t *testing.T) {
	e := &Endpoint{caps: stack.CapabilityTXChecksumOffload, txOffV4: true, txOffV6: true}
	tq := &txQueue{}
	for _, c := range []struct {
		name  string
		proto tcpip.TransportProtocolNumber
		opt   int
		flags uint8
		want  rings.TxOffload
	}{
		{"tcp", header.TCPProtocolNumber, 0, header.IPv4FlagDontFragment, rings.TxOffload{L3: spec.L3ProtoIPv4, L4: spec.L4ProtoTCP,
			DF: true, L3HdrLen: 20, L3HdrOff: 14, L4HdrLen: 8, L4Csum: true, L4Partial: true}},
		{"udp", header.UDPProtocolNumber, 0, 0, rings.TxOffload{L3: spec.L3ProtoIPv4, L4: spec.L4ProtoUDP,
			L3HdrLen: 20, L3HdrOff: 14, L4HdrLen: 2, L4Csum: true, L4Partial: true}},
		{"tcp with IP options", header.TCPProtocolNumber, 4, header.IPv4FlagDontFragment, rings.TxOffload{L3: spec.L3ProtoIPv4, L4: spec.L4ProtoTCP,
			DF: true, L3HdrLen: 24, L3HdrOff: 14, L4HdrLen: 8, L4Csum: true, L4Partial: true}},
		{"udp fragment", header.UDPProtocolNumber, 0, header.IPv4FlagMoreFragments, rings.TxOffload{}},
		{"icmp", header.ICMPv4ProtocolNumber, 0, 0, rings.TxOffload{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			views := offloadPacket(c.proto, c.opt, c.flags, 100)
			defer views.DecRef()
			frame := offloadPacket(c.proto, c.opt, c.flags, 100)
			defer frame.DecRef()
			// 30 bytes hold the Ethernet header and part of the IPv4 header
			// only, so the headers must come from the packet's views.
			fromViews := e.txChecksum(tq, views, firstSeg(views)[:30])
			fromFrame := e.txChecksum(tq, frame, firstSeg(frame))
			assert.Equal(t, c.want, fromFrame)
			assert.Equal(t, c.want, fromViews)
			assert.Equal(t, firstSeg(views), firstSeg(frame), "headers differ after seeding")
		})
	}
	assert.Zero(t, tq.swCsum.Load(), "checksums computed in software with a device that offloads both families")
}

// TestTxChecksumSoftware: a family the device cannot offload gets its
// TCP/UDP checksum computed here, complete and correct, and no request.
func TestTxChecksumSoftware(t *testing.T) {
	e := &Endpoint{caps: stack.CapabilityTXChecksumOffload, txOffV6: true}
	tq := &txQueue{}
	for _, proto := range []tcpip.TransportProtocolNumber{header.TCPProtocolNumber, header.UDPProtocolNumber} {
		pkt := offloadPacket(proto, 0, 0, 101)
		off := e.txChecksum(tq, pkt, firstSeg(pkt))
		require.Equal(t, rings.TxOffload{}, off)
		ip := header.IPv4(pkt.NetworkHeader().Slice())
		l4 := append(append([]byte(nil), pkt.TransportHeader().Slice()...), pkt.Data().AsRange().ToSlice()...)
		sum := header.PseudoHeaderChecksum(proto, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(l4)))
		assert.Equal(t, uint16(0xffff), checksum.Checksum(l4, sum), "protocol %d: checksum does not verify", proto)
		pkt.DecRef()
	}
	assert.Equal(t, uint64(2), tq.swCsum.Load())
}
