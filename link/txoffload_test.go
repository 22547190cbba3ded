package link

import (
	"bytes"
	"testing"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
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

// TestTxOffloadIPv4MatchesGeneral: the fast path reading headers from the
// frame bytes asks the device for exactly what the general path (through
// the packet's header views) asks, and seeds the same checksum field.
func TestTxOffloadIPv4MatchesGeneral(t *testing.T) {
	e := &Endpoint{caps: stack.CapabilityTXChecksumOffload, txOffV4: true, txOffV6: true}
	tq := &txQueue{}
	for _, c := range []struct {
		name  string
		proto tcpip.TransportProtocolNumber
		opt   int
		flags uint8
	}{
		{"tcp", header.TCPProtocolNumber, 0, header.IPv4FlagDontFragment},
		{"udp", header.UDPProtocolNumber, 0, 0},
		{"tcp with IP options", header.TCPProtocolNumber, 4, header.IPv4FlagDontFragment},
		{"udp fragment", header.UDPProtocolNumber, 0, header.IPv4FlagMoreFragments},
		{"icmp", header.ICMPv4ProtocolNumber, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			slow := offloadPacket(c.proto, c.opt, c.flags, 100)
			defer slow.DecRef()
			fast := offloadPacket(c.proto, c.opt, c.flags, 100)
			defer fast.DecRef()
			want := e.txOffload(slow, tq)
			got, ok := e.txOffloadIPv4(fast, firstSeg(fast))
			if c.proto == header.ICMPv4ProtocolNumber {
				if ok {
					t.Fatalf("fast path took an ICMP packet: %+v", got)
				}
				return
			}
			if !ok {
				t.Fatal("fast path declined")
			}
			if frag := c.flags&header.IPv4FlagMoreFragments != 0; want.L4Csum == frag {
				t.Fatalf("general path offload %+v for a packet with fragment flag %v", want, frag)
			}
			if got != want {
				t.Fatalf("offload %+v, general path %+v", got, want)
			}
			if a, b := firstSeg(fast), firstSeg(slow); !bytes.Equal(a, b) {
				t.Fatalf("headers differ after seeding:\n%x\n%x", a, b)
			}
		})
	}
	// Headers split across segments: the fast path declines.
	pkt := offloadPacket(header.TCPProtocolNumber, 0, 0, 10)
	defer pkt.DecRef()
	if _, ok := e.txOffloadIPv4(pkt, firstSeg(pkt)[:30]); ok {
		t.Fatal("fast path took a truncated header segment")
	}
}
