package link

import (
	"context"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// A hole of consecutive lost segments in the middle of a bulk transfer,
// between two stacks made by newNetstack and joined by gVisor's channel
// endpoints (no device, no driver): what a device reset does to the frames
// arriving at the device being reset. This is the minimal reproduction of
// how gVisor's loss recovery copes with a large hole.

// lossyPipe forwards packets between two channel endpoints. From the
// dropFrom'th A-to-B packet carrying TCP payload on, it drops the first
// transmission of the next dropN segments; their retransmissions pass, as
// after a device reset that lost what was in flight. With holdRetx, the
// retransmissions of the hole are lost too until holdRetx after its first
// segment was: a hole that outlasts the retransmission timer.
type lossyPipe struct {
	dropFrom, dropN int64
	holdRetx        time.Duration
	dataSeen        atomic.Int64
	dropped         atomic.Int64
	// A-to-B forward goroutine only:
	lost      map[uint32]bool // sequence numbers dropped
	firstDrop time.Time
}

// drop drops the IPv4 packet v if it is to be lost.
func (p *lossyPipe) drop(v *buffer.View) bool {
	if !p.drops(v.AsSlice()) {
		return false
	}
	v.Release()
	return true
}

// drops reports whether the IPv4 packet b is to be lost.
func (p *lossyPipe) drops(b []byte) bool {
	ip := header.IPv4(b)
	if len(b) < header.IPv4MinimumSize || ip.TransportProtocol() != header.TCPProtocolNumber {
		return false
	}
	tcpHdr := header.TCP(ip.Payload())
	if int(ip.PayloadLength()) <= int(tcpHdr.DataOffset()) {
		return false // no payload
	}
	if p.dataSeen.Add(1)-1 < p.dropFrom {
		return false
	}
	seq := tcpHdr.SequenceNumber()
	if p.lost[seq] {
		return time.Since(p.firstDrop) < p.holdRetx // a retransmission
	}
	if int64(len(p.lost)) >= p.dropN {
		return false // the hole is complete
	}
	if len(p.lost) == 0 {
		p.firstDrop = time.Now()
	}
	p.lost[seq] = true
	p.dropped.Add(1)
	return true
}

// holeTransfer sends n bytes from a to b through a pipe that loses hole
// consecutive data segments after the first 2000 (and their
// retransmissions for holdRetx), with a write deadline, and returns how
// long it took (or the write error) and a's TCP counters.
func holeTransfer(t *testing.T, n int, hole int64, holdRetx, deadline time.Duration, tune func(*stack.Stack)) (time.Duration, error, tcpip.TCPStats) {
	bp := newBarePair(t, 7, func(int) *stack.Stack {
		s := NewNetstack()
		if tune != nil {
			tune(s)
		}
		return s
	})
	a := bp.a
	p := &lossyPipe{dropFrom: 2000, dropN: hole, holdRetx: holdRetx, lost: map[uint32]bool{}}
	bp.start(func(ctx context.Context, wg *sync.WaitGroup) { pipe(ctx, bp.ea, bp.eb, wg, p.drop) },
		func(ctx context.Context, wg *sync.WaitGroup) { pipe(ctx, bp.eb, bp.ea, wg, nil) })
	defer bp.close()
	ln := bp.listen(t)
	defer ln.Close()
	got := drainOne(ln, deadline+time.Second)
	c := bp.dial(t)
	defer c.Close()
	start := time.Now()
	c.SetDeadline(start.Add(deadline))
	buf := make([]byte, 64<<10)
	for sent := 0; sent < n; sent += len(buf) {
		if _, err := c.Write(buf); err != nil {
			st := a.Stats().TCP
			c.Close()
			<-got
			return time.Since(start), err, st
		}
	}
	c.Close()
	require.Equal(t, int64(n), <-got)
	took := time.Since(start)
	require.Equal(t, hole, p.dropped.Load())
	return took, nil, a.Stats().TCP
}

// TestTCPHoleRecovery: with NewNetstack's settings a hole of 50 or 300
// consecutive lost segments is repaired and every byte arrives. The
// deadline is a hang bound, not a timing assertion: usually the transfer
// takes well under a second, but gVisor's recovery is a race between the
// first recovery round and the retransmission timer, and once the timer
// wins it crawls (TestGVisorLargeHole): on an idle machine a 300-segment
// hole once took 6.7 s through 33 RTOs, and a 1500-segment hole took 0.9 s,
// 1.5 s and 24 s in three runs, which is why 1500 is left to the
// reproduction. Under the race detector, about ten times slower, only the
// 300-segment hole runs.
func TestTCPHoleRecovery(t *testing.T) {
	holes, deadline := []int64{50, 300}, 60*time.Second
	if raceDetector {
		holes = []int64{300}
	}
	for _, hole := range holes {
		took, err, st := holeTransfer(t, 8<<20, hole, 0, deadline, nil)
		require.NoError(t, err, "hole of %d segments: timeouts %d", hole, st.Timeouts.Value())
		t.Logf("hole %4d: 8 MiB in %v; timeouts %d, retransmits %d, SACK recoveries %d",
			hole, took.Round(time.Millisecond), st.Timeouts.Value(), st.Retransmits.Value(), st.SACKRecovery.Value())
	}
}

// TestGVisorLargeHole is the reproduction of how gVisor's TCP crawls when
// a large hole is not repaired before the retransmission timer fires. After
// the timeout (snd.go, sender.retransmitTimerExpired: SACK scoreboard
// expunged, writeNext back to the first unacknowledged segment) every ACK
// of a retransmission can re-enter recovery (snd.go, sender.enterRecovery
// after cc.HandleLossDetected) with ssthresh cut from the one or two
// segments outstanding (the stall reports showed cwnd 5, ssthresh 2, state
// SACKRecovery), and recovery retransmits only the segments it deems lost
// (rack.go, rackControl.DoRecovery with RACK): about two segments per 200
// ms RTO, so 8 MiB takes minutes. Whether a transfer gets there is a race
// between the first recovery round and the timer, so the outcome depends
// on the machine's speed: on an idle machine gVisor's defaults (SACK with
// RACK) repaired a 1500-segment hole in 0.2 to 0.5 s in about one run of
// four and crawled in the others, NewNetstack's settings (no RACK) repaired
// it in 0.5 to 1.5 s in most runs and crawled in some (24 s once), and
// crawled in about half the runs when its retransmissions were also lost
// for 300 ms, past the first RTO. The
// test is therefore opt-in and counts: ENANET_HOLE_REPRO=N runs N
// transfers per case and asserts that at least one crawled (8 MiB not done
// in 5 s, 15 s under the race detector, with RTOs); if gVisor fixes it,
// it fails.
func TestGVisorLargeHole(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ENANET_HOLE_REPRO"))
	if n <= 0 {
		t.Skip("a timing-dependent gVisor reproduction: ENANET_HOLE_REPRO=8 go test -run TestGVisorLargeHole -v ./link/")
	}
	deadline := 5 * time.Second
	if raceDetector {
		deadline = 15 * time.Second
	}
	rack := tcpip.TCPRecovery(tcpip.TCPRACKLossDetection)
	withRACK := func(s *stack.Stack) { s.SetTransportProtocolOption(tcp.ProtocolNumber, &rack) }
	for _, c := range []struct {
		name     string
		holdRetx time.Duration
		tune     func(*stack.Stack)
	}{
		{"gVisor's defaults (SACK, RACK)", 0, withRACK},
		{"NewNetstack (SACK, no RACK), retransmissions lost for 300 ms", 300 * time.Millisecond, nil},
	} {
		crawled := 0
		for i := range n {
			took, err, st := holeTransfer(t, 8<<20, 1500, c.holdRetx, deadline, c.tune)
			t.Logf("%s, run %d: after %v: %v; timeouts %d, retransmits %d, SACK recoveries %d", c.name, i,
				took.Round(time.Millisecond), err, st.Timeouts.Value(), st.Retransmits.Value(), st.SACKRecovery.Value())
			if err != nil && st.Timeouts.Value() > 0 {
				crawled++
			}
		}
		t.Logf("%s: %d of %d crawled", c.name, crawled, n)
		require.NotZero(t, crawled, "%s: gVisor repaired every 1500-segment hole: update this test and the README", c.name)
	}
}
