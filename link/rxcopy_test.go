package link

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

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
	}
	// copyIn gives the last part whatever is left, which must not happen.
	for size := header.EthernetMinimumSize; size <= maxFrame; size++ {
		parts := 0
		for left := size; left > 0; left -= rxPieceLen(left) {
			parts++
		}
		require.Less(t, parts, rxMaxParts, "frame of %d bytes", size)
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
		require.True(t, rxSplitGuess(&p, len(f)))
		r.copyIn(&p, len(f), true)
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

// TestRxCopyAllocs checks that copying an MTU 1500 and a jumbo frame into
// their views and handing them over as a buffer allocates nothing once the
// pools are warm.
func TestRxCopyAllocs(t *testing.T) {
	if internalRace {
		t.Skip("the race detector makes sync.Pool drop items")
	}
	for _, size := range []int{1514, 9014} {
		f := jumboTCPFrame(size)
		var p rings.RxPacket
		p.Frags[0], p.NFrags = f, 1
		r := &rxQueue{e: &Endpoint{}}
		allocs := testing.AllocsPerRun(1000, func() {
			r.copyIn(&p, len(f), true)
			buf := r.payload()
			buf.Release()
		})
		assert.Zero(t, allocs, "frame of %d bytes", size)
	}
}

// TestRxSplitGuess checks that a jumbo IP fragment, which the fragment
// verifier needs in one view, is copied into one view (not split and then
// joined, a second copy), while a TCP frame of the same length is split,
// and that a frame whose headers are not in the first buffer is guessed
// splittable (receive joins it if not).
func TestRxSplitGuess(t *testing.T) {
	frag := jumboTCPFrame(9014)
	ip := header.IPv4(frag[header.EthernetMinimumSize:])
	ip.SetFlagsFragmentOffset(header.IPv4FlagMoreFragments, 0)
	ip.SetChecksum(0)
	ip.SetChecksum(^ip.CalculateChecksum())
	var p rings.RxPacket
	p.Frags[0], p.NFrags = frag, 1
	assert.False(t, rxSplitGuess(&p, len(frag)), "IPv4 fragment")
	r := &rxQueue{e: &Endpoint{}}
	r.copyIn(&p, len(frag), false)
	assert.Equal(t, 1, r.np)
	assert.Equal(t, frag, r.parts[0])
	r.releaseParts()

	p.Frags[0] = jumboTCPFrame(9014)
	assert.True(t, rxSplitGuess(&p, 9014), "TCP")
	assert.False(t, rxSplitGuess(&p, rxSplitMin), "short frame")
	p.Frags[0], p.Frags[1], p.NFrags = frag[:10], frag[10:], 2
	assert.True(t, rxSplitGuess(&p, len(frag)), "headers across buffers")
}

// TestRxSharedChunkIsCopied records why frames are not packed densely into
// one larger chunk shared by their views (see the top of rxcopy.go): the
// stack's first header consume pulls the header up, and Buffer.PullUp
// copies a chunk that another view references, so every frame would pay
// for a copy of the whole shared chunk. Should gVisor stop doing that,
// this test fails and dense packing is worth measuring again.
func TestRxSharedChunkIsCopied(t *testing.T) {
	f := jumboTCPFrame(1514)
	shared := buffer.NewView(16 << 10)
	for range 2 {
		_, err := shared.Write(f)
		require.NoError(t, err)
	}
	second := shared.Clone()
	second.TrimFront(len(f))
	first := shared // the first frame's view, now one of two references
	first.CapLength(len(f))
	before := &first.AsSlice()[0]
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithView(first)})
	defer pkt.DecRef()
	defer second.Release()
	pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	views, _ := pkt.AsViewList()
	assert.NotSame(t, before, &views.Front().AsSlice()[0], "the shared chunk was not copied")
	whole := pkt.ToView()
	defer whole.Release()
	assert.Equal(t, f, whole.AsSlice())
}

// BenchmarkRxCopy measures the Rx copy of one frame out of a DMA buffer
// into pooled views as receive does it (joined again when a split frame
// must stay whole), wrapped in a PacketBuffer whose Ethernet and IP
// headers the stack then consumes (each consume pulls its header up), and
// released. In a loop the pools hand back the same warm chunk, so this
// shows the instructions and allocations, not the cache misses of the
// real path, where the chunk was last touched by the application's read.
func BenchmarkRxCopy(b *testing.B) {
	frag := jumboTCPFrame(9014)
	ip := header.IPv4(frag[header.EthernetMinimumSize:])
	ip.SetFlagsFragmentOffset(header.IPv4FlagMoreFragments, 0)
	for _, tc := range []struct {
		name string
		f    []byte
	}{
		{"tcp-66", jumboTCPFrame(66)},
		{"tcp-1514", jumboTCPFrame(1514)},
		{"tcp-9014", jumboTCPFrame(9014)},
		{"ipv4-fragment-9014", frag},
	} {
		b.Run(tc.name, func(b *testing.B) {
			size := len(tc.f)
			var p rings.RxPacket
			p.Frags[0], p.NFrags = tc.f, 1
			r := &rxQueue{e: &Endpoint{}}
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				r.copyIn(&p, size, rxSplitGuess(&p, size))
				if r.np > 1 && !splitOK(header.IPv4ProtocolNumber, r.parts[0][header.EthernetMinimumSize:]) {
					r.join(size)
				}
				pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: r.payload()})
				pkt.LinkHeader().Consume(header.EthernetMinimumSize)
				pkt.NetworkHeader().Consume(header.IPv4MinimumSize)
				pkt.DecRef()
			}
		})
	}
}
