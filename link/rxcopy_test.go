package link

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/enanet/enanet/rings"
)

func TestRxPieceLen(t *testing.T) {
	for _, tc := range []struct {
		size int
		want []int
	}{
		{60, []int{60}},
		{1514, []int{1514}},
		{4096, []int{4096}},
		{7500, []int{7500}},      // 8 KiB chunk, under an eighth wasted
		{9014, []int{8192, 822}}, // MTU 9001: 9 KiB cleared, not 16
		{9018, []int{8192, 826}},
		{maxFrame, []int{65536, 14}},
		{40000, []int{32768, 4096, 3136}},
	} {
		var got []int
		for left := tc.size; left > 0; {
			n := rxPieceLen(left)
			got = append(got, n)
			left -= n
		}
		assert.Equal(t, tc.want, got, "frame of %d bytes", tc.size)
		assert.LessOrEqual(t, len(got), rxMaxParts)
	}
}

// jumboTCPFrame is an IPv4 TCP frame of size bytes with valid checksums.
func jumboTCPFrame(size int) []byte {
	f := make([]byte, size)
	for i := range f {
		f[i] = byte(i * 7)
	}
	header.Ethernet(f).Encode(&header.EthernetFields{Type: header.IPv4ProtocolNumber})
	ip := header.IPv4(f[header.EthernetMinimumSize:])
	src, dst := tcpip.AddrFrom4([4]byte{10, 0, 0, 1}), tcpip.AddrFrom4([4]byte{10, 0, 0, 2})
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(ip)), TTL: 64,
		Protocol: uint8(header.TCPProtocolNumber), SrcAddr: src, DstAddr: dst})
	ip.SetChecksum(^ip.CalculateChecksum())
	tcp := header.TCP(ip[header.IPv4MinimumSize:])
	tcp.Encode(&header.TCPFields{SrcPort: 4000, DstPort: 5002, SeqNum: 1, DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagAck, WindowSize: 1000})
	tcp.SetChecksum(0)
	sum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(len(tcp)))
	tcp.SetChecksum(^checksum.Checksum(tcp, sum))
	return f
}

// TestRxSplitVerify checks a jumbo frame copied into several views: the
// software checksum check covers every view, and a corrupted byte in the
// last one is caught, whichever way the frame lies in the Rx buffers.
func TestRxSplitVerify(t *testing.T) {
	for _, bufLen := range []int{2048, 4096, 9216} {
		f := jumboTCPFrame(9014)
		var p rings.RxPacket
		for off := 0; off < len(f); off += bufLen {
			p.Frags[p.NFrags] = f[off:min(off+bufLen, len(f))]
			p.NFrags++
		}
		r := &rxQueue{e: &Endpoint{}}
		r.copyIn(&p, len(f))
		require.Equal(t, 2, r.np, "Rx buffers of %d bytes", bufLen)
		b := r.parts[0][header.EthernetMinimumSize:]
		require.True(t, splitOK(header.IPv4ProtocolNumber, b))
		assert.True(t, r.verify(header.IPv4ProtocolNumber, b, len(f)-header.EthernetMinimumSize, &p), "intact frame")
		r.parts[1][100]++
		assert.False(t, r.verify(header.IPv4ProtocolNumber, b, len(f)-header.EthernetMinimumSize, &p), "corrupted frame")
		buf := r.payload()
		assert.Equal(t, int64(len(f)), buf.Size())
		want := f
		want[8192+100]++
		assert.Equal(t, want, buf.Flatten())
		buf.Release()
		assert.Equal(t, uint64(1), r.c.csumBad.Load())
	}
}

// TestRxCopyAllocs checks that copying a jumbo frame into its views and
// handing them over as a buffer allocates nothing once the pools are warm.
func TestRxCopyAllocs(t *testing.T) {
	if internalRace {
		t.Skip("the race detector makes sync.Pool drop items")
	}
	f := jumboTCPFrame(9014)
	var p rings.RxPacket
	p.Frags[0], p.NFrags = f, 1
	r := &rxQueue{e: &Endpoint{}}
	allocs := testing.AllocsPerRun(1000, func() {
		r.copyIn(&p, len(f))
		buf := r.payload()
		buf.Release()
	})
	assert.Zero(t, allocs)
}
