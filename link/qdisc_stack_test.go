package link_test

import (
	"context"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/link"
)

// pingPong sends n small messages from a to a listener on b, each echoed
// before the next is sent: the request/response pattern of small HTTP
// requests on a keep-alive connection.
func pingPong(t *testing.T, r *rig, n, size int) {
	t.Helper()
	port, echoErr := echoOnce(t, r.b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := r.a.DialTCP(ctx, netip.AddrPortFrom(addrB.Addr(), port))
	require.NoError(t, err)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	msg, got := make([]byte, size), make([]byte, size)
	for range n {
		_, err := c.Write(msg)
		require.NoError(t, err)
		_, err = io.ReadFull(c, got)
		require.NoError(t, err)
	}
	require.NoError(t, c.Close())
	require.NoError(t, <-echoErr)
}

// TestTxBypassSmallRequests: on NewStack's default qdisc, the short frames
// of a ping-pong are written by their senders (no hand-off to the queue's
// goroutine), while a bulk transfer's full-sized frames still go through
// the queue in batches; StackOptions.NoTxBypass queues everything.
func TestTxBypassSmallRequests(t *testing.T) {
	r := newRig(t, rigConfig{queues: 2, offloads: fullOffloads})
	pingPong(t, r, 200, 1024)
	a, b := r.a.TxQDiscStats(), r.b.TxQDiscStats()
	// 200 requests from a, 200 responses from b: each one short frame
	// (plus the handshake, FINs and ACKs).
	assert.GreaterOrEqual(t, a.Direct, uint64(200), "client: %+v", a)
	assert.GreaterOrEqual(t, b.Direct, uint64(200), "server: %+v", b)

	transfer(t, r.a, r.b, addrB, 4<<20)
	bulk := r.a.TxQDiscStats()
	assert.Greater(t, bulk.Queued-a.Queued, uint64(1000), "full-sized frames must go through the queue: %+v", bulk)
	assert.Greater(t, float64(bulk.Queued-a.Queued)/float64(bulk.Batches-a.Batches), 1.5, "and leave in batches: %+v", bulk)
}

// TestTxNoBypass: with StackOptions.NoTxBypass every frame is queued.
func TestTxNoBypass(t *testing.T) {
	r := newRig(t, rigConfig{queues: 2, offloads: fullOffloads, noBypass: true})
	pingPong(t, r, 50, 1024)
	for _, st := range []interface{ TxQDiscStats() link.TxQDiscStats }{r.a, r.b} {
		s := st.TxQDiscStats()
		assert.Zero(t, s.Direct)
		assert.GreaterOrEqual(t, s.Queued, uint64(50))
	}
}
