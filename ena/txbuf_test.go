package ena

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/rings"
)

// jumboFrame is an MTU 9001 frame: Ethernet header plus 9001 bytes.
const jumboFrame = 14 + 9001

// checkTxBuffers sends a frame of n bytes through the loopback and checks
// the rings' Tx buffer size and how many buffers the device read the
// frame from.
func checkTxBuffers(t *testing.T, d *Device, sim *enasim.Device, bufSize, n, descs int) {
	t.Helper()
	assert.Equal(t, bufSize, d.Rings().TxBufSize)
	loopbackSizeOK(t, d, 7, n)
	sqs := sim.State().TxSQs
	require.NotEmpty(t, sqs)
	assert.Equal(t, descs, sqs[0].LastTxDescs, "data descriptors of the %d-byte frame on the device", n)
}

// TestTxBufFollowsMTU: with the automatic Tx buffer size a whole frame of
// the MTU fits one buffer, so the device reads a jumbo frame from one
// descriptor; an MTU change that rebuilds the rings re-picks the size.
func TestTxBufFollowsMTU(t *testing.T) {
	for _, c := range []struct {
		name string
		llq  LLQPolicy
	}{{"host", LLQOff}, {"llq", LLQDefault}} {
		t.Run(c.name, func(t *testing.T) {
			d, sim := openSim(t, "nitro-v3", Config{Queues: 1, TxDepth: 256, RxDepth: 256, LLQ: c.llq}, 0)
			checkTxBuffers(t, d, sim, 2048, 1514, 1)

			require.NoError(t, d.SetMTU(9001))
			checkTxBuffers(t, d, sim, 9216, jumboFrame, 1)

			require.NoError(t, d.SetMTU(3000))
			checkTxBuffers(t, d, sim, 4096, 3014, 1)
		})
	}
}

// TestTxBufSizeSet: a Tx buffer size set in Config stays whatever the MTU,
// and a frame longer than one buffer spans several.
func TestTxBufSizeSet(t *testing.T) {
	d, sim := openSim(t, "nitro-v3", Config{Queues: 1, TxDepth: 256, RxDepth: 256, LLQ: LLQOff, MTU: 9001, TxBufSize: 2048}, 0)
	checkTxBuffers(t, d, sim, 2048, jumboFrame, 5)
	require.NoError(t, d.SetMTU(1500))
	require.NoError(t, d.SetRings(512, 0)) // a rebuild keeps the set size
	checkTxBuffers(t, d, sim, 2048, 1514, 1)
}

// TestTxBufSizeInvalid: a Tx buffer size the 16-bit descriptor length
// cannot carry is refused at Open.
func TestTxBufSizeInvalid(t *testing.T) {
	for _, n := range []int{-1, 32, 65536} {
		_, err := Open(nil, Config{TxBufSize: n})
		require.Error(t, err, "TxBufSize %d", n)
		assert.Contains(t, err.Error(), "Tx buffer size")
	}
}

// TestTxBufPoolKeepsMemory: 9 KiB Tx buffers are fewer, so the pool keeps
// the memory of depth × 2 KiB (64 slots: 15 buffers). When they are all
// in flight Send reports ErrNoSpace, and once the device has completed
// them (Flush rings the doorbell and reclaims) sending goes on.
func TestTxBufPoolKeepsMemory(t *testing.T) {
	d, _ := openSim(t, "nitro-v3", Config{Queues: 1, TxDepth: 64, RxDepth: 256, LLQ: LLQOff, MTU: 9001}, 0)
	q := d.Queue(0)
	f := testFrame(d.MAC(), 3, jumboFrame)
	sent := 0
	for ; sent < 64; sent++ {
		if err := q.Send([][]byte{f}, rings.TxOffload{}); err != nil {
			require.ErrorIs(t, err, rings.ErrNoSpace)
			break
		}
	}
	assert.Equal(t, (64*2048+9215)/9216, sent, "jumbo frames in flight before the buffers ran out")
	q.Flush()
	require.NoError(t, q.Send([][]byte{f}, rings.TxOffload{}), "buffers come back once the device completed the frames")
	q.Flush()
	drainRx(t, d)
}

// drainRx polls every queue until nothing more arrives.
func drainRx(t *testing.T, d *Device) {
	t.Helper()
	for i := range d.NumQueues() {
		for {
			n, err := d.Queue(i).Poll(64, func(*rings.RxPacket) {})
			require.NoError(t, err)
			if n == 0 {
				break
			}
		}
	}
}
