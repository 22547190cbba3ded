package link

import (
	"testing"

	"github.com/stretchr/testify/require"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/stack/gro"
)

// countingDispatcher counts the packets GRO hands up.
type countingDispatcher struct{ n int }

func (d *countingDispatcher) DeliverNetworkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {
	d.n++
}

func (d *countingDispatcher) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {}

// tcpSegment4 is an IPv4 TCP segment from srcPort with 100 bytes of
// payload and only ACK set: GRO holds it, waiting for the next one.
func tcpSegment4(srcPort uint16) *stack.PacketBuffer {
	const payload = 100
	b := make([]byte, header.IPv4MinimumSize+header.TCPMinimumSize+payload)
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(b)),
		TTL:         64,
		Protocol:    uint8(header.TCPProtocolNumber),
		SrcAddr:     tcpip.AddrFrom4([4]byte{10, 0, 0, 1}),
		DstAddr:     tcpip.AddrFrom4([4]byte{10, 0, 0, 2}),
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	header.TCP(b[header.IPv4MinimumSize:]).Encode(&header.TCPFields{
		SrcPort:    srcPort,
		DstPort:    80,
		SeqNum:     1000,
		DataOffset: header.TCPMinimumSize,
		Flags:      header.TCPFlagAck,
		WindowSize: 1000,
	})
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(b)})
	pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
	pkt.RXChecksumValidated = true
	return pkt
}

// TestGVisorGROFlushLeavesPackets is the minimal reproduction of a gVisor
// GRO bug: GRO.Flush (pkg/tcpip/stack/gro/gro.go) walks each bucket with
// `for p := Front(); p != nil; p = p.Next()` after removeOne(p), which
// unlinks and zeroes p, so Next() is nil and only the first held packet of
// each bucket goes up. Two TCP flows whose ports differ by 8 share one of
// the 8 buckets; after one Flush the second flow's segment is still held,
// and it stays held until the next packet arrives on that Rx queue, which
// for a request/response flow may be never. flushGRO works around it.
func TestGVisorGROFlushLeavesPackets(t *testing.T) {
	var d countingDispatcher
	var g gro.GRO
	g.Init(true)
	g.Dispatcher = &d
	for _, port := range []uint16{1000, 1008} {
		pkt := tcpSegment4(port)
		g.Enqueue(pkt)
		pkt.DecRef()
	}
	require.Zero(t, d.n, "GRO holds both segments until a flush")
	g.Flush()
	require.Equal(t, 1, d.n, "gVisor's Flush now delivers both held segments; flushGRO's loop can go")
	g.Flush()
	require.Equal(t, 2, d.n)
}

// TestFlushGROEmptiesEveryBucket checks the workaround: one flushGRO hands
// up every held segment, however many flows share a bucket.
func TestFlushGROEmptiesEveryBucket(t *testing.T) {
	var d countingDispatcher
	r := &rxQueue{}
	r.gro.Init(true)
	r.groOut.d = &d
	r.gro.Dispatcher = &r.groOut
	for i := range 8 {
		pkt := tcpSegment4(uint16(2000 + 8*i)) // all in one bucket
		r.gro.Enqueue(pkt)
		pkt.DecRef()
		pkt = tcpSegment4(uint16(3001 + 8*i)) // and in another
		r.gro.Enqueue(pkt)
		pkt.DecRef()
	}
	require.Zero(t, d.n)
	r.flushGRO()
	require.Equal(t, 16, d.n)
	if !raceDetector { // the race detector allocates
		require.Zero(t, testing.AllocsPerRun(100, r.flushGRO), "flushGRO is on the Rx path: it must not allocate")
	}
}
