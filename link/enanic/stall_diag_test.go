package enanic

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"runtime/pprof"
	"strings"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// stallReport describes one side when a transfer stops moving: the
// endpoint's per-queue counters, the driver's ring counters and health, the
// model's counters and, for every TCP endpoint of the stack, gVisor's view
// of the connection (RTO, SRTT, window, congestion state) and the stack's
// loss-recovery counters. It reads nothing through the admin queue.
func (s *faultSide) stallReport(name string) string {
	var b strings.Builder
	ep := s.st.Endpoint.Stats()
	fmt.Fprintf(&b, "side %s: link up %v, health %+v\n", name, ep.LinkUp, s.dev.Health())
	for i, q := range ep.Tx {
		fmt.Fprintf(&b, "  link tx %d: %+v\n", i, q)
	}
	for i, q := range ep.Rx {
		fmt.Fprintf(&b, "  link rx %d: pkts %d bytes %d batches %d bad %d malformed %d nodisp %d pollerr %d\n",
			i, q.Packets, q.Bytes, q.Batches, q.ChecksumBad, q.Malformed, q.NoDispatcher, q.PollErrors)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // driver and ring counters only
	ds, _ := s.dev.Stats(ctx)
	fmt.Fprintf(&b, "  driver: %+v\n", ds.Driver)
	for i, q := range ds.Queues {
		fmt.Fprintf(&b, "  ring tx %d: %+v\n  ring rx %d: %+v\n", i, q.Tx, i, q.Rx)
	}
	fmt.Fprintf(&b, "  model: %+v\n", s.sim.Stats())
	tcp := s.st.Stack.Stats().TCP
	fmt.Fprintf(&b, "  tcp: sent %d retrans %d timeouts %d fastrecovery %d sackrecovery %d tlp %d slowstart-retrans %d fastretransmit %d spurious %d spurious-rto %d send-errors %d invalid-rcvd %d\n",
		tcp.SegmentsSent.Value(), tcp.Retransmits.Value(), tcp.Timeouts.Value(), tcp.FastRecovery.Value(),
		tcp.SACKRecovery.Value(), tcp.TLPRecovery.Value(), tcp.SlowStartRetransmits.Value(), tcp.FastRetransmit.Value(),
		tcp.SpuriousRecovery.Value(), tcp.SpuriousRTORecovery.Value(), tcp.SegmentSendErrors.Value(), tcp.InvalidSegmentsReceived.Value())
	ip := s.st.Stack.Stats().IP
	fmt.Fprintf(&b, "  ip: out-requests %d outgoing-errors %d\n", ip.PacketsSent.Value(), ip.OutgoingPacketErrors.Value())
	nic := s.st.Stack.Stats().NICs
	fmt.Fprintf(&b, "  nic: tx %d, tx dropped no buffer space %d, stack dropped %d\n", nic.Tx.Packets.Value(), nic.TxPacketsDroppedNoBufferSpace.Value(), s.st.Stack.Stats().DroppedPackets.Value())
	// Every drop gVisor counts (checksum, malformed, no route, segment
	// queue full, closed receiver, window) shows up here.
	stats := s.st.Stack.Stats()
	fmt.Fprintf(&b, "  stack counters: %s\n", nonZeroCounters(reflect.ValueOf(&stats).Elem()))
	for _, te := range s.st.Stack.RegisteredEndpoints() {
		e, ok := te.(tcpip.Endpoint)
		if !ok {
			continue
		}
		var info tcpip.TCPInfoOption
		if err := e.GetSockOpt(&info); err != nil {
			continue
		}
		id := te.(interface{ Info() tcpip.EndpointInfo }).Info()
		fmt.Fprintf(&b, "  tcp endpoint %+v: %+v\n", id, info)
		fmt.Fprintf(&b, "    endpoint counters: %s\n", nonZeroCounters(reflect.ValueOf(e.Stats()).Elem()))
		if !raceOn { // unlocked reads of the endpoint's internals
			fmt.Fprintf(&b, "    internals: %s\n", tcpInternals(te))
		}
	}
	return b.String()
}

// dumpGoroutines writes every goroutine's stack to a file named after the
// test and returns its path ("" if it could not).
func dumpGoroutines(name string) string {
	f, err := os.CreateTemp("", "stall-"+strings.NewReplacer("/", "_").Replace(name)+"-*.txt")
	if err != nil {
		return ""
	}
	defer f.Close()
	_ = pprof.Lookup("goroutine").WriteTo(f, 2)
	return f.Name()
}

// stallQuiet is how long a transfer may move less than 1 MiB before a
// stall report is logged (5 s); the connections' deadline is 18 of them
// (90 s). ENANET_STALL_QUIET (a time.Duration) shortens both, for loops
// hunting a rare stall.
func stallQuiet() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("ENANET_STALL_QUIET")); err == nil && d > 0 {
		return d
	}
	return 5 * time.Second
}

// watchStall logs both sides' stallReport when du moves less than 1 MiB
// in quiet (a crawl counts as a stall), and again every quiet while it
// stays that slow, until du ends.
func watchStall(logf func(string, ...any), name string, du *duplex, a, b *faultSide, quiet time.Duration) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		last := du.total()
		tick := time.NewTicker(quiet)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-du.done:
				return
			case <-tick.C:
			}
			n := du.total()
			moved := n - last
			last = n
			if moved >= 1<<20 {
				continue
			}
			// The goroutines first: a report that blocks on a lock is
			// itself a finding.
			logf("transfer crawled: %d bytes in %v (A got %d, B got %d bytes); goroutines in %s", moved, quiet,
				du.recvA.Load(), du.recvB.Load(), dumpGoroutines(name))
			logf("%s", a.stallReport("A"))
			logf("%s", b.stallReport("B"))
			if !raceOn { // unlocked reads
				sa, sb := a.connectedTCP(), b.connectedTCP()
				logf("window check: %s; %s", windowDeadlock("A", sa, sb), windowDeadlock("B", sb, sa))
			}
		}
	}()
	return func() { close(done); <-finished }
}

var statCounterPtr = reflect.TypeOf((*tcpip.StatCounter)(nil))

// nonZeroCounters lists the non-zero *tcpip.StatCounter fields of the
// struct v, nested structs included, as name=value.
func nonZeroCounters(v reflect.Value) string {
	var out []string
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		for i := range v.NumField() {
			f, name := v.Field(i), prefix+v.Type().Field(i).Name
			if !f.CanInterface() {
				continue
			}
			// Stack counters are pointers, an endpoint's are values; a
			// value is reached through its address, never copied (the
			// copy would race with the stack's atomic increments).
			var c *tcpip.StatCounter
			switch {
			case f.Type() == statCounterPtr:
				c = f.Interface().(*tcpip.StatCounter)
			case f.Type() == statCounterPtr.Elem() && f.CanAddr():
				c = f.Addr().Interface().(*tcpip.StatCounter)
			case f.Kind() == reflect.Struct:
				walk(name+".", f)
				continue
			default:
				continue
			}
			if c != nil && c.Value() != 0 {
				out = append(out, fmt.Sprintf("%s=%d", name, c.Value()))
			}
		}
	}
	walk("", v)
	return strings.Join(out, " ")
}

// tcpInternals prints the receiver's and sender's sequence state and the
// timestamp state of a gVisor TCP endpoint, read without its locks (a
// diagnostic taken while the connection is stuck).
func tcpInternals(ep any) string {
	v := reflect.ValueOf(ep)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return "?"
	}
	v = v.Elem()
	var b strings.Builder
	if rcv := v.FieldByName("rcv"); rcv.IsValid() && !rcv.IsNil() {
		fmt.Fprintf(&b, "rcv %+v; ", rcv.Elem().FieldByName("TCPReceiverState"))
		// rcvWnd (unscaled) and rcvWUP bound what receiver.acceptable
		// takes: a segment outside them is dropped with only an ACK.
		fmt.Fprintf(&b, "rcvWnd %v rcvWUP %v; ", rcv.Elem().FieldByName("rcvWnd"), rcv.Elem().FieldByName("rcvWUP"))
		fmt.Fprintf(&b, "rcv pending %v; ", rcv.Elem().FieldByName("pendingRcvdSegments").Len())
	}
	// rcvMemUsed above the receive buffer size makes segmentQueue.enqueue
	// drop every data segment (SegmentQueueDropped).
	fmt.Fprintf(&b, "rcvMemUsed %v; ", v.FieldByName("rcvMemUsed"))
	if snd := v.FieldByName("snd"); snd.IsValid() && !snd.IsNil() {
		st := snd.Elem().FieldByName("TCPSenderState")
		for _, n := range []string{"SndUna", "SndNxt", "SndWnd", "SndWndScale", "SndCwnd", "Ssthresh", "RTO", "DupAckCount", "Outstanding", "SackedOut", "MaxSentAck", "FastRecovery"} {
			fmt.Fprintf(&b, "%s %+v ", n, st.FieldByName(n))
		}
		for _, n := range []string{"zeroWindowProbing", "unackZeroWindowProbes", "state"} {
			fmt.Fprintf(&b, "%s %v ", n, snd.Elem().FieldByName(n))
		}
	}
	fmt.Fprintf(&b, "; ts %+v; rcvbuf %+v", v.FieldByName("TCPEndpointStateInner"), v.FieldByName("TCPRcvBufState"))
	return b.String()
}

// tcpSeqState is what windowDeadlock needs of one gVisor TCP endpoint,
// read without its locks.
type tcpSeqState struct {
	rcvNxt, sndUna, sndNxt uint32
	rcvWnd                 uint64 // unscaled, as receiver.acceptable reads it
	rcvWndScale            uint
	ok                     bool
}

// connectedTCP returns the sequence state of the stack's connected TCP
// endpoint (the one with a remote port), if there is one.
func (s *faultSide) connectedTCP() tcpSeqState {
	for _, te := range s.st.Stack.RegisteredEndpoints() {
		info, ok := te.(interface{ Info() tcpip.EndpointInfo })
		if !ok {
			continue
		}
		if id, ok := info.Info().(*stack.TransportEndpointInfo); !ok || id.ID.RemotePort == 0 {
			continue
		}
		v := reflect.ValueOf(te)
		if v.Kind() != reflect.Pointer {
			continue
		}
		v = v.Elem()
		rcv, snd := v.FieldByName("rcv"), v.FieldByName("snd")
		if !rcv.IsValid() || rcv.IsNil() || !snd.IsValid() || snd.IsNil() {
			continue
		}
		rs, ss := rcv.Elem().FieldByName("TCPReceiverState"), snd.Elem().FieldByName("TCPSenderState")
		return tcpSeqState{
			rcvNxt:      uint32(rs.FieldByName("RcvNxt").Uint()),
			rcvWndScale: uint(rs.FieldByName("RcvWndScale").Uint()),
			rcvWnd:      rcv.Elem().FieldByName("rcvWnd").Uint(),
			sndUna:      uint32(ss.FieldByName("SndUna").Uint()),
			sndNxt:      uint32(ss.FieldByName("SndNxt").Uint()),
			ok:          true,
		}
	}
	return tcpSeqState{}
}

// windowDeadlock says, for the direction from x to y, whether y discards
// everything x can send in RTO recovery (README, "the residual stall"):
// x's pure ACKs carry sequence number SndNxt, beyond the right edge y
// accepts (RcvNxt plus its last window rounded down to the window scale),
// and y already has x's first unacknowledged segment, so x's one-segment
// retransmission ends at or before y's RcvNxt and is discarded as old,
// its acknowledgment unread.
func windowDeadlock(xName string, x, y tcpSeqState) string {
	if !x.ok || !y.ok {
		return ""
	}
	edge := y.rcvNxt + uint32(y.rcvWnd>>y.rcvWndScale<<y.rcvWndScale)
	beyond := int32(x.sndNxt - (edge + 1))
	old := int32(y.rcvNxt - x.sndUna)
	return fmt.Sprintf("%s's SndNxt is %d bytes beyond the peer's accepted edge (> 0: its pure ACKs are discarded); the peer has %d bytes past %s's SndUna (>= one segment: its RTO retransmission is discarded as old)",
		xName, beyond, old, xName)
}
