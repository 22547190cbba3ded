package link

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
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
// after a device reset that lost what was in flight.
type lossyPipe struct {
	dropFrom, dropN int64
	dataSeen        atomic.Int64
	dropped         atomic.Int64
	lost            map[uint32]bool // sequence numbers dropped; forward goroutine A-to-B only
}

func (p *lossyPipe) forward(ctx context.Context, from, to *channel.Endpoint, drop bool, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		pkt := from.ReadContext(ctx)
		if pkt == nil {
			return
		}
		v := pkt.ToView()
		pkt.DecRef()
		if drop && p.drops(v.AsSlice()) {
			v.Release()
			continue
		}
		np := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithView(v)})
		to.InjectInbound(header.IPv4ProtocolNumber, np)
		np.DecRef()
	}
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
	if p.lost[seq] || int64(len(p.lost)) >= p.dropN {
		return false // a retransmission, or the hole is complete
	}
	p.lost[seq] = true
	p.dropped.Add(1)
	return true
}

// holeTransfer sends n bytes from a to b through a pipe that loses hole
// consecutive data segments after the first 2000, with a write deadline,
// and returns how long it took (or the write error) and a's TCP counters.
func holeTransfer(t *testing.T, n int, hole int64, deadline time.Duration, tune func(*stack.Stack)) (time.Duration, error, tcpip.TCPStats) {
	const mtu = 1500
	mk := func(addr tcpip.Address) (*stack.Stack, *channel.Endpoint) {
		s := NewNetstack()
		if tune != nil {
			tune(s)
		}
		ep := channel.New(4096, mtu, "")
		require.Nil(t, s.CreateNIC(1, ep))
		require.Nil(t, s.AddProtocolAddress(1, tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber,
			AddressWithPrefix: addr.WithPrefix()}, stack.AddressProperties{}))
		s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: 1}})
		return s, ep
	}
	addrA, addrB := tcpip.AddrFrom4([4]byte{10, 7, 0, 1}), tcpip.AddrFrom4([4]byte{10, 7, 0, 2})
	a, ea := mk(addrA)
	b, eb := mk(addrB)
	p := &lossyPipe{dropFrom: 2000, dropN: hole, lost: map[uint32]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go p.forward(ctx, ea, eb, true, &wg)
	go p.forward(ctx, eb, ea, false, &wg)
	defer func() {
		cancel()
		wg.Wait()
		a.Close()
		b.Close()
		a.Wait()
		b.Wait()
	}()
	ln, err := gonet.ListenTCP(b, tcpip.FullAddress{NIC: 1, Addr: addrB, Port: 80}, ipv4.ProtocolNumber)
	require.NoError(t, err)
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		c.SetDeadline(time.Now().Add(deadline + time.Second))
		m, _ := io.Copy(io.Discard, c)
		c.Close()
		got <- m
	}()
	c, err := gonet.DialContextTCP(context.Background(), a, tcpip.FullAddress{NIC: 1, Addr: addrB, Port: 80}, ipv4.ProtocolNumber)
	require.NoError(t, err)
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

// TestTCPHoleRecovery: with NewNetstack's settings a hole of up to 1500
// consecutive segments is repaired by SACK recovery instead of crawling
// through retransmission timeouts. The deadline is a hang bound, not a
// timing assertion (the transfer takes well under a second). Under the
// race detector, about ten times slower, the first recovery round of a
// 1500-segment hole outlasts the 200 ms RTO and gVisor's recovery after an
// RTO crawls even without RACK (see TestGVisorRACKLargeHole), so only
// the 300-segment hole runs there.
func TestTCPHoleRecovery(t *testing.T) {
	holes, deadline := []int64{50, 300, 1500}, 30*time.Second
	if raceDetector {
		holes, deadline = []int64{300}, 60*time.Second
	}
	for _, hole := range holes {
		took, err, st := holeTransfer(t, 8<<20, hole, deadline, nil)
		require.NoError(t, err, "hole of %d segments: timeouts %d", hole, st.Timeouts.Value())
		t.Logf("hole %4d: 8 MiB in %v; timeouts %d, retransmits %d, SACK recoveries %d",
			hole, took.Round(time.Millisecond), st.Timeouts.Value(), st.Retransmits.Value(), st.SACKRecovery.Value())
	}
}

// TestGVisorRACKLargeHole is the minimal reproduction of what made RACK
// unusable as NewNetstack's loss detection: gVisor's defaults (SACK with
// RACK, tcpip.TCPRACKLossDetection, Reno) and a hole of 1500 consecutive
// first transmissions. The first recovery does not repair the hole and a
// retransmission timeout follows (snd.go, sender.retransmitTimerExpired:
// SACK scoreboard expunged, writeNext back to the first unacknowledged
// segment). From then on every ACK of the retransmission re-enters
// recovery (snd.go, sender.enterRecovery after cc.HandleLossDetected) with
// ssthresh cut from the one or two segments outstanding (the stall
// reports show cwnd 5, ssthresh 2, state SACKRecovery), and rack.go's
// rackControl.DoRecovery retransmits only lost segments before writeNext:
// two segments are repaired per 200 ms RTO (the RTO never backs off, since
// each one makes progress), so 8 MiB takes minutes instead of the 0.1 to
// 0.4 s SACK recovery without RACK needs. The same happens with CUBIC and
// RFC 6675 recovery (TCPRecovery 0) for holes of 300 segments and more,
// not with Reno. The test asserts the stall (8 MiB not done in 5 s, 15 s
// under the race detector, with RTOs); if gVisor fixes it, it fails, and RACK can be reconsidered.
func TestGVisorRACKLargeHole(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out a 3 s stall; skipped with -short")
	}
	// The bound must outlast the first recovery round and the first RTO
	// on a busy machine: under the race detector at a load of 20 the
	// first round alone took more than 3 s. Repaired at two segments per
	// RTO, 8 MiB would take minutes, so the stall shows at either bound.
	deadline := 5 * time.Second
	if raceDetector {
		deadline = 15 * time.Second
	}
	rack := tcpip.TCPRecovery(tcpip.TCPRACKLossDetection)
	took, err, st := holeTransfer(t, 8<<20, 1500, deadline, func(s *stack.Stack) {
		s.SetTransportProtocolOption(tcp.ProtocolNumber, &rack)
	})
	t.Logf("RACK, hole of 1500: after %v: %v; timeouts %d, retransmits %d, SACK recoveries %d", took.Round(time.Millisecond), err,
		st.Timeouts.Value(), st.Retransmits.Value(), st.SACKRecovery.Value())
	require.Error(t, err, "gVisor's RACK repaired a 1500-segment hole in %v: reconsider it as NewNetstack's default", took)
	require.NotZero(t, st.Timeouts.Value())
}
