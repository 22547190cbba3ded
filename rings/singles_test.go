package rings

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena/spec"
)

// TestPollSinglesChunks: one Poll with a budget larger than rxSinglesMax
// delivers every one-buffer frame in order, across several claim chunks,
// a wrap of the Rx rings and parse results that change every few frames
// (each change starts a new run of the counters), and counts them as
// frame-by-frame counting would; a smaller budget is honoured.
func TestPollSinglesChunks(t *testing.T) {
	tx, rx, f := newPair(t, pairOpts{depth: 512, rxDepth: 256, metaCaching: true})
	offs := []TxOffload{
		{},
		{L3: spec.L3ProtoIPv4, L4: spec.L4ProtoUDP, L3Csum: true, L4Csum: true, L3HdrOff: 14, L3HdrLen: 20, L4HdrLen: 2},
		{L3: spec.L3ProtoIPv4, L4: spec.L4ProtoTCP, L3Csum: true, L3HdrOff: 14, L3HdrLen: 20},
	}
	var want RxStats
	type sent struct {
		frame []byte
		off   TxOffload
	}
	send := func(n, first int) []sent {
		var frames []sent
		for i := first; i < first+n; i++ {
			fr := mkFrame(60+i%40, uint32(i))
			off := offs[i/7%len(offs)]
			require.NoError(t, tx.Send([][]byte{fr[:14], fr[14:]}, off))
			frames = append(frames, sent{fr, off})
			want.Packets++
			want.Bytes += uint64(len(fr))
			if off.L3 == spec.L3ProtoIPv4 {
				want.L3CsumGood++
			}
			switch {
			case off.L4Csum:
				want.L4CsumGood++
			case off.L4 != 0:
				want.L4CsumUnchecked++
			}
		}
		tx.Flush()
		f.process()
		_, err := tx.Reclaim()
		require.NoError(t, err)
		return frames
	}
	check := func(frames []sent, budget int) {
		got := 0
		for got < len(frames) {
			n, err := rx.Poll(budget, func(p *RxPacket) {
				require.Less(t, got, len(frames), "more frames than sent")
				w := frames[got]
				require.Equal(t, 1, p.NFrags, "frame %d", got)
				require.Equal(t, w.frame, p.Frags[0], "frame %d", got)
				require.Equal(t, len(w.frame), p.Len, "frame %d", got)
				require.Equal(t, w.off.L3, p.L3, "frame %d", got)
				require.Equal(t, w.off.L4, p.L4, "frame %d", got)
				require.Equal(t, w.off.L4Csum, p.L4CsumChecked, "frame %d", got)
				got++
			})
			require.NoError(t, err)
			require.LessOrEqual(t, n, budget)
			require.NotZero(t, n, "frames missing after %d of %d", got, len(frames))
		}
	}
	// 150 frames, one Poll of budget 200: chunks of 64, 64 and 22.
	check(send(150, 0), 200)
	// 200 more wrap the 256-entry Rx rings; polled 10 at a time.
	check(send(200, 150), 10)
	f.check(t)
	rs := rx.Stats()
	assert.Equal(t, want.Packets, rs.Packets)
	assert.Equal(t, want.Bytes, rs.Bytes)
	assert.Equal(t, want.L3CsumGood, rs.L3CsumGood)
	assert.Equal(t, want.L4CsumGood, rs.L4CsumGood)
	assert.Equal(t, want.L4CsumUnchecked, rs.L4CsumUnchecked)
	assert.Zero(t, rs.L3CsumBad+rs.L4CsumBad)
	assert.Equal(t, rx.Depth()-1, rx.Posted(), "every buffer re-posted")
}

// TestBufStride: a buffer stride holds the buffer, is whole cache lines,
// and is an odd number of them, so 64 consecutive buffers start in 64
// different L1 sets (address bits 6 to 11).
func TestBufStride(t *testing.T) {
	for _, size := range []int{64, 100, 128, 1000, 1024, 1536, 2048, 4096, 9216, 65536} {
		s := bufStride(size)
		assert.GreaterOrEqual(t, s, size, "size %d", size)
		assert.Less(t, s-size, 128, "size %d", size)
		assert.Zero(t, s%64, "size %d", size)
		assert.Equal(t, 1, s/64%2, "size %d", size)
	}
	p, err := newBufPool(newFakeDMA(), "tx", "Tx buffers", 1024, 2048)
	require.NoError(t, err)
	defer p.free()
	require.Len(t, p.mem, 1024)
	sets := map[uint64]bool{}
	for i := 0; i < 64; i++ {
		sets[p.addr[i]>>6&63] = true
		assert.Len(t, p.mem[i], 2048)
		assert.Equal(t, 2048, cap(p.mem[i]), "buffer %d may not reach into the next", i)
	}
	assert.Len(t, sets, 64)
	for i := 1; i < len(p.mem); i++ {
		if p.addr[i] > p.addr[i-1] { // same slab
			assert.GreaterOrEqual(t, p.addr[i]-p.addr[i-1], uint64(2048))
		}
		assert.LessOrEqual(t, p.addr[i]+2048, uint64(spec.MaxMemAddr)+1)
	}
}

// TestSendUnbound: Send's own path runs only on a bound host-placement
// queue: before Bind and after Reset the queue refuses frames of every
// size, and takes them again once bound.
func TestSendUnbound(t *testing.T) {
	f := &fakeDev{dma: newFakeDMA(), regs: &fakeRegs{}}
	tx, err := NewTx(TxConfig{Name: "tx 0", Depth: 64, DMA: f.dma, Regs: f.regs})
	require.NoError(t, err)
	defer tx.Close()
	fr := mkFrame(64, 1)
	big := mkFrame(5000, 2)
	require.ErrorIs(t, tx.Send([][]byte{fr[:14], fr[14:]}, TxOffload{}), errNotBound)
	require.ErrorIs(t, tx.Send([][]byte{big}, TxOffload{}), errNotBound)
	tx.Bind(fakeTxDoorbell, 0)
	require.NoError(t, tx.Send([][]byte{fr[:14], fr[14:]}, TxOffload{}))
	require.NoError(t, tx.Send([][]byte{big}, TxOffload{}))
	tx.Reset()
	require.ErrorIs(t, tx.Send([][]byte{fr[:14], fr[14:]}, TxOffload{}), errNotBound)
	require.Zero(t, tx.InFlight())
}

// TestStoreParse: the packed parse result (parseOf, storeParse) writes
// exactly the fields setParse writes, for every value of the status bits
// they come from, and leaves the rest of the packet alone.
func TestStoreParse(t *testing.T) {
	for cls := uint32(0); cls <= rxCountMask; cls++ {
		if cls&^rxCountMask != 0 {
			continue
		}
		w0 := cls | spec.RxCdescPhaseMask | spec.RxCdescFirstMask | spec.RxCdescLastMask
		hash := 0x9e3779b9 ^ cls
		var want, got RxPacket
		want.Len, got.Len = 77, 77
		want.setParse(w0, hash)
		r := parseOf(w0)
		r.lo |= uint64(hash)
		got.storeParse(r)
		require.Equal(t, want, got, "status %#x", w0)
	}
}
