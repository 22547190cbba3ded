package iperf3

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// testSettings are the parameters both sides agree on in PARAM_EXCHANGE.
type testSettings struct {
	udp        bool
	reverse    bool
	parallel   int
	duration   time.Duration // the client's timer; the server only uses it for timeouts
	blksize    int
	rate       uint64 // bits per second per stream; 0 = unlimited
	counters64 bool   // UDP header carries a 64-bit packet counter

	omit         time.Duration // -O: leading time left out of the results
	bytes        uint64        // -n: end after this many bytes (all streams); 0 = by time
	blocks       uint64        // -k: end after this many blocks (all streams); 0 = by time
	bidir        bool          // --bidir: both directions at once
	sock         SocketOptions // -w, -M, -N, -C, -S
	title        string        // -T
	serverOutput bool          // --get-server-output
}

// ended reports whether a byte or block count ends the test.
func (t testSettings) byCount() bool { return t.bytes > 0 || t.blocks > 0 }

// stream is one data stream, either side, either direction.
type stream struct {
	// id is the stream's number in the results exchange (streamID);
	// sock is the number iperf3 shows for it, "[  5]" and JSON "socket"
	// (socketNumber), which stock iperf3 takes from the socket's fd.
	id     int
	sock   int
	sender bool // this side sends on it
	udp    bool

	conn net.Conn       // TCP, or a connected UDP socket (client side)
	pc   net.PacketConn // server-side UDP: the shared socket ...
	peer net.Addr       // ... and the client's address on it

	local, remote net.Addr

	// Counters, written by the stream's own goroutine and read by the
	// interval sampler and at the end.
	bytes   atomic.Uint64
	packets atomic.Int64  // UDP: packets sent, or the highest sequence number received
	lost    atomic.Int64  // UDP receiver: sequence gaps not yet filled
	ooo     atomic.Int64  // UDP receiver: out-of-order packets
	jitter  atomic.Uint64 // UDP receiver: float64 bits, seconds (RFC 1889 §6.3.1)

	// Receiver state owned by whichever goroutine reads the stream.
	prevTransit float64
	gotFirst    bool

	// Snapshot taken when the test ends, and the one taken when the
	// omitted period (-O) ended, which the results leave out.
	final, base streamSnapshot

	// TCP statistics of a sender on a stack that reports them, sampled by
	// the interval sampler and at the end (session.mu).
	tcp tcpStats
}

// tcpStats are a TCP sender's statistics over the test, as iperf3 keeps
// them per stream.
type tcpStats struct {
	ok                 bool
	last               TCPInfo // the latest sample
	retrBase, retrLast uint64  // retransmits when counting began, and at the last interval
	maxCwnd, maxSndWnd int64
	maxRTT, minRTT     time.Duration
	sumRTT             time.Duration
	nRTT               int64
}

// sampleTCP takes a TCP_INFO sample and folds it into the maxima.
func (s *stream) sampleTCP() bool {
	if s.udp || s.conn == nil {
		return false
	}
	info, ok := tcpInfo(s.conn)
	if !ok {
		return false
	}
	t := &s.tcp
	t.ok = true
	t.last = info
	t.maxCwnd = max(t.maxCwnd, info.SndCwnd)
	t.maxSndWnd = max(t.maxSndWnd, info.SndWnd)
	if info.RTT > 0 {
		t.maxRTT = max(t.maxRTT, info.RTT)
		if t.minRTT == 0 || info.RTT < t.minRTT {
			t.minRTT = info.RTT
		}
		t.sumRTT += info.RTT
		t.nRTT++
	}
	return true
}

// resetTCP starts the per-test TCP counts afresh (at the start, and when
// the omitted period ends).
func (s *stream) resetTCP() {
	if !s.sampleTCP() {
		return
	}
	r := s.tcp.last.Retransmits
	s.tcp = tcpStats{ok: true, last: s.tcp.last, retrBase: r, retrLast: r}
}

// retransmits is the count since counting began.
func (s *stream) retransmits() int64 { return int64(s.tcp.last.Retransmits - s.tcp.retrBase) }

// streamSnapshot is a stream's numbers at the end of the test.
type streamSnapshot struct {
	bytes, packets, lost, ooo int64
	jitter                    float64
}

func (s *stream) snapshot() streamSnapshot {
	return streamSnapshot{
		bytes:   int64(s.bytes.Load()),
		packets: s.packets.Load(),
		lost:    s.lost.Load(),
		ooo:     s.ooo.Load(),
		jitter:  math.Float64frombits(s.jitter.Load()),
	}
}

// minus is what was counted since base.
func (a streamSnapshot) minus(base streamSnapshot) streamSnapshot {
	return streamSnapshot{bytes: a.bytes - base.bytes, packets: a.packets - base.packets,
		lost: a.lost - base.lost, ooo: a.ooo - base.ooo, jitter: a.jitter}
}

// udpHeaderLen is the iperf3 UDP payload header: seconds and microseconds
// of the send time and the packet counter, big-endian (iperf_udp.c).
func udpHeaderLen(counters64 bool) int {
	if counters64 {
		return 16
	}
	return 12
}

// receiveUDP accounts one datagram the way iperf3's receiver does: bytes,
// sequence gaps counted as lost and taken back when a late packet fills
// one, and the RFC 1889 interarrival jitter of the one-way transit time.
func (s *stream) receiveUDP(b []byte, now time.Time, counters64 bool) {
	if len(b) < udpHeaderLen(counters64) {
		// Too short to carry a header (the 4-byte connect message, or
		// garbage): iperf3 would misread it; count the bytes only.
		s.bytes.Add(uint64(len(b)))
		return
	}
	s.bytes.Add(uint64(len(b)))
	sec := binary.BigEndian.Uint32(b[0:4])
	usec := binary.BigEndian.Uint32(b[4:8])
	var seq int64
	if counters64 {
		v := binary.BigEndian.Uint64(b[8:16])
		if v > math.MaxInt64 {
			v = math.MaxInt64
		}
		seq = int64(v)
	} else {
		seq = int64(binary.BigEndian.Uint32(b[8:12]))
	}
	high := s.packets.Load()
	if seq >= high+1 {
		if seq > high+1 {
			s.lost.Add(seq - 1 - high)
		}
		s.packets.Store(seq)
	} else {
		s.ooo.Add(1)
		if s.lost.Load() > 0 {
			s.lost.Add(-1)
		}
	}
	sent := float64(sec) + float64(usec)/1e6
	arrival := float64(now.UnixNano()) / 1e9
	transit := arrival - sent
	if !s.gotFirst {
		s.gotFirst = true
		s.prevTransit = transit
	}
	d := math.Abs(transit - s.prevTransit)
	s.prevTransit = transit
	j := math.Float64frombits(s.jitter.Load())
	j += (d - j) / 16
	s.jitter.Store(math.Float64bits(j))
}

// session runs the data phase of one test on a set of streams; client and
// server share it.
type session struct {
	set      testSettings
	isClient bool
	streams  []*stream

	// onInterval, if set, gets each interval as it is recorded (live text
	// output); it runs with mu held and must not block.
	onInterval func(Interval)

	counting atomic.Bool
	omitting atomic.Bool
	stopping atomic.Bool
	stop     chan struct{}
	sendWG   sync.WaitGroup // sender goroutines
	recvWG   sync.WaitGroup // receiver goroutines
	errOnce  sync.Once
	errc     chan error // the first stream failure, for the owner to act on

	// -n/-k: totals since counting began, and done, closed when the count
	// is reached.
	sentBytes, sentBlocks, recvBytes atomic.Uint64
	done                             chan struct{}
	doneOnce                         sync.Once

	start, end time.Time // of the counted period (after -O)
	began      time.Time // when the streams started
	cpuStart   cpuSample
	cpu        cpuPercent
	hasRetr    bool // local TCP senders report retransmits
	congestion string

	interval  time.Duration
	sampler   sync.WaitGroup
	intervals []Interval
	last      []streamSnapshot
	lastAt    time.Time
	mu        sync.Mutex // intervals, last*, streams' tcp and base
}

func newSession(set testSettings, interval time.Duration, isClient bool) *session {
	return &session{set: set, isClient: isClient, stop: make(chan struct{}), errc: make(chan error, 1),
		done: make(chan struct{}), interval: interval}
}

// fail records the first stream failure unless the session is stopping.
func (s *session) fail(err error) {
	if s.stopping.Load() {
		return
	}
	s.errOnce.Do(func() { s.errc <- err })
}

// forward reports whether st carries data from the client to the server
// (iperf3's "sum"; the other direction of --bidir is "sum_bidir_reverse").
func (s *session) forward(st *stream) bool { return st.sender == s.isClient }

// begin starts the clock, the senders and receivers.
func (s *session) begin() {
	s.start = time.Now()
	s.began = s.start
	s.cpuStart = takeCPUSample()
	s.lastAt = s.start
	s.last = make([]streamSnapshot, len(s.streams))
	s.omitting.Store(s.set.omit > 0)
	s.counting.Store(true)
	for _, st := range s.streams {
		if st.sender && !st.udp {
			st.resetTCP()
			if st.tcp.ok {
				s.hasRetr = true
				s.congestion = st.tcp.last.Congestion
			}
		}
		if s.congestion == "" && !st.udp && st.conn != nil {
			if info, ok := tcpInfo(st.conn); ok {
				s.congestion = info.Congestion
			}
		}
	}
	for _, st := range s.streams {
		switch {
		case st.sender:
			s.sendWG.Add(1)
			go s.send(st)
		case st.conn != nil:
			s.recvWG.Add(1)
			go s.receive(st)
		}
	}
	if s.interval > 0 || s.set.omit > 0 {
		s.sampler.Add(1)
		go s.sample()
	}
}

// countReached ends a -n/-k test.
func (s *session) countReached() { s.doneOnce.Do(func() { close(s.done) }) }

// countSent adds a sender's write to the -n/-k totals; false once the
// count is reached (the sender then stops, as iperf3's does).
func (s *session) countSent(n int) bool {
	if !s.set.byCount() || s.omitting.Load() {
		return true
	}
	b := s.sentBytes.Add(uint64(n))
	k := s.sentBlocks.Add(1)
	if (s.set.bytes > 0 && b >= s.set.bytes) || (s.set.blocks > 0 && k >= s.set.blocks) {
		s.countReached()
		return false
	}
	return true
}

// countReceived adds a receiver's read to the -n/-k totals.
func (s *session) countReceived(n int) {
	if !s.set.byCount() || s.omitting.Load() {
		return
	}
	b := s.recvBytes.Add(uint64(n))
	if (s.set.bytes > 0 && b >= s.set.bytes) || (s.set.blocks > 0 && b >= s.set.blocks*uint64(s.set.blksize)) {
		s.countReached()
	}
}

// sendQuota reports whether a sender may write another block.
func (s *session) sendQuota() bool {
	if !s.set.byCount() || s.omitting.Load() {
		return true
	}
	return !(s.set.bytes > 0 && s.sentBytes.Load() >= s.set.bytes) && !(s.set.blocks > 0 && s.sentBlocks.Load() >= s.set.blocks)
}

// endOmit closes the omitted period (-O): what was counted so far becomes
// the base the results leave out, and the clock restarts, as iperf3 resets
// its statistics.
func (s *session) endOmit(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.counting.Load() || !s.omitting.Load() {
		return
	}
	if s.interval > 0 && now.Sub(s.lastAt) >= s.interval/10 {
		s.addInterval(now, false)
	}
	for i, st := range s.streams {
		st.base = st.snapshot()
		s.last[i] = st.base
		if st.sender && !st.udp {
			st.resetTCP()
		}
	}
	s.start, s.lastAt = now, now
	s.cpuStart = takeCPUSample()
	s.omitting.Store(false)
}

// finish stops counting, takes the final numbers and stops the senders
// (their blocked writes are cut short by a deadline). Receivers keep
// draining until closeAll, so a peer still flushing does not see a reset.
func (s *session) finish() {
	if !s.counting.Swap(false) {
		return
	}
	s.end = time.Now()
	if s.omitting.Load() {
		// The test ended inside the omitted period: nothing was counted.
		s.start = s.end
	}
	s.cpu = takeCPUSample().since(s.cpuStart, s.end.Sub(s.start))
	s.stopping.Store(true)
	close(s.stop)
	past := time.Now().Add(-time.Second)
	for _, st := range s.streams {
		if !st.sender {
			continue
		}
		if st.conn != nil {
			st.conn.SetWriteDeadline(past)
		} else if st.pc != nil {
			st.pc.SetWriteDeadline(past)
		}
	}
	// Every byte a sender wrote counts (the peer may have read it), so
	// senders are snapshot after they stopped; receivers now.
	for _, st := range s.streams {
		if !st.sender {
			st.final = st.snapshot()
		}
	}
	s.sendWG.Wait()
	for _, st := range s.streams {
		if st.sender {
			st.final = st.snapshot()
		}
	}
	s.sampler.Wait()
	s.mu.Lock()
	if s.omitting.Load() {
		for _, st := range s.streams {
			st.base = st.final
		}
	}
	for _, st := range s.streams {
		if st.sender && st.tcp.ok {
			st.sampleTCP()
		}
	}
	s.addInterval(s.end, true)
	s.mu.Unlock()
}

// closeAll closes every stream connection and waits for the goroutines.
func (s *session) closeAll() {
	s.stopping.Store(true)
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	for _, st := range s.streams {
		if st.conn != nil {
			st.conn.Close()
		}
	}
	s.sendWG.Wait()
	s.recvWG.Wait()
	s.sampler.Wait()
}

// send writes blocks until the session stops, paced to the target rate the
// way iperf3 throttles: a block may go when the average rate since the
// start is below the target.
func (s *session) send(st *stream) {
	defer s.sendWG.Done()
	buf := make([]byte, s.set.blksize)
	if _, err := rand.Read(buf); err != nil {
		s.fail(fmt.Errorf("iperf3: stream %d: filling the send buffer: %w", st.id, err))
		return
	}
	var sent uint64
	hdr := udpHeaderLen(s.set.counters64)
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		if !s.sendQuota() {
			return
		}
		if s.set.rate > 0 {
			elapsed := time.Since(s.began).Seconds()
			ahead := float64(sent)*8/float64(s.set.rate) - elapsed
			if ahead > 0 {
				t := time.NewTimer(time.Duration(ahead * float64(time.Second)))
				select {
				case <-s.stop:
					t.Stop()
					return
				case <-t.C:
				}
			}
		}
		if st.udp {
			now := time.Now()
			seq := st.packets.Load() + 1
			if len(buf) >= hdr {
				binary.BigEndian.PutUint32(buf[0:4], uint32(now.Unix()))
				binary.BigEndian.PutUint32(buf[4:8], uint32(now.Nanosecond()/1000))
				if s.set.counters64 {
					binary.BigEndian.PutUint64(buf[8:16], uint64(seq))
				} else {
					binary.BigEndian.PutUint32(buf[8:12], uint32(seq))
				}
			}
			var n int
			var err error
			if st.conn != nil {
				n, err = st.conn.Write(buf)
			} else {
				n, err = st.pc.WriteTo(buf, st.peer)
			}
			if err != nil {
				if s.stopping.Load() {
					return
				}
				if isTransientUDP(err) {
					// A full socket buffer or an ICMP error from a peer
					// not yet reading; iperf3 treats these as soft.
					time.Sleep(100 * time.Microsecond)
					continue
				}
				s.fail(fmt.Errorf("iperf3: stream %d: sending: %w", st.id, err))
				return
			}
			st.packets.Store(seq)
			st.bytes.Add(uint64(n))
			sent += uint64(n)
			if !s.countSent(n) {
				return
			}
			continue
		}
		n, err := st.conn.Write(buf)
		st.bytes.Add(uint64(n))
		sent += uint64(n)
		if err != nil {
			if !s.stopping.Load() {
				s.fail(fmt.Errorf("iperf3: stream %d: sending: %w", st.id, err))
			}
			return
		}
		if !s.countSent(n) {
			return
		}
	}
}

// receive reads a stream with its own connection until it is closed.
func (s *session) receive(st *stream) {
	defer s.recvWG.Done()
	size := s.set.blksize
	if st.udp {
		size = 65536
	}
	buf := make([]byte, size)
	for {
		n, err := st.conn.Read(buf)
		if n > 0 && s.counting.Load() {
			if st.udp {
				st.receiveUDP(buf[:n], time.Now(), s.set.counters64)
			} else {
				st.bytes.Add(uint64(n))
			}
			s.countReceived(n)
		}
		if err != nil {
			if s.stopping.Load() {
				return
			}
			if st.udp && isTransientUDP(err) {
				continue
			}
			s.fail(fmt.Errorf("iperf3: stream %d: receiving: %w", st.id, err))
			return
		}
	}
}

// isTransientUDP reports errors a UDP socket returns for a moment (an ICMP
// port unreachable echoed as ECONNREFUSED, a full buffer) that iperf3
// tolerates.
func isTransientUDP(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	s := err.Error()
	for _, sub := range []string{"connection refused", "no buffer space", "resource temporarily unavailable"} {
		if contains(s, sub) {
			return true
		}
	}
	return false
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// sample records an interval every s.interval, and ends the omitted
// period, until the session stops.
func (s *session) sample() {
	defer s.sampler.Done()
	var tick <-chan time.Time
	if s.interval > 0 {
		t := time.NewTicker(s.interval)
		defer t.Stop()
		tick = t.C
	}
	var omitEnd <-chan time.Time
	if s.set.omit > 0 {
		t := time.NewTimer(s.set.omit)
		defer t.Stop()
		omitEnd = t.C
	}
	for {
		select {
		case <-s.stop:
			return
		case now := <-omitEnd:
			s.endOmit(now)
		case now := <-tick:
			s.mu.Lock()
			if s.counting.Load() && now.Sub(s.lastAt) >= s.interval/2 {
				s.addInterval(now, false)
			}
			s.mu.Unlock()
		}
	}
}

// addInterval appends the interval since the last one. final uses the
// end snapshots and skips a sliver shorter than 10% of the interval
// period. Called with s.mu held.
func (s *session) addInterval(now time.Time, final bool) {
	secs := now.Sub(s.lastAt).Seconds()
	if final && s.interval > 0 && secs < 0.1*s.interval.Seconds() && len(s.intervals) > 0 {
		return
	}
	if s.interval <= 0 || secs <= 0 {
		return
	}
	omitted := s.omitting.Load()
	start, end := s.lastAt.Sub(s.start).Seconds(), now.Sub(s.start).Seconds()
	iv := Interval{Streams: []Sum{}}
	var fwd, rev group
	for i, st := range s.streams {
		snap := st.snapshot()
		if final {
			snap = st.final
		}
		d := snap.minus(s.last[i])
		s.last[i] = snap
		one := Sum{Socket: st.sock, Start: start, End: end, Seconds: secs, Bytes: uint64(max(d.bytes, 0)),
			BitsPerSecond: float64(max(d.bytes, 0)) * 8 / secs, Omitted: ptr(omitted), Sender: st.sender}
		var retr int64
		if st.udp {
			one.Packets = ptr(d.packets)
			if !st.sender {
				one.JitterMS = ptr(snap.jitter * 1000)
				one.LostPackets = ptr(d.lost)
				one.LostPercent = ptr(percent(d.lost, d.packets))
			}
		} else if st.sender && st.tcp.ok {
			if !final {
				st.sampleTCP()
			}
			info := st.tcp.last
			retr = int64(info.Retransmits - st.tcp.retrLast)
			st.tcp.retrLast = info.Retransmits
			one.Retransmits = ptr(retr)
			one.SndCwnd = ptr(info.SndCwnd)
			one.SndWnd = ptr(info.SndWnd)
			one.RTT = ptr(info.RTT.Microseconds())
			one.RTTVar = ptr(info.RTTVar.Microseconds())
			one.PMTU = ptr(int64(info.PMTU))
		}
		g := &fwd
		if s.set.bidir && !s.forward(st) {
			g = &rev
		}
		g.add(st, d, snap.jitter, retr)
		iv.Streams = append(iv.Streams, one)
	}
	iv.Sum = fwd.sum(s, start, end, secs, omitted)
	if s.set.bidir {
		iv.SumBidirReverse = ptr(rev.sum(s, start, end, secs, omitted))
	}
	s.intervals = append(s.intervals, iv)
	s.lastAt = now
	if s.onInterval != nil {
		s.onInterval(iv)
	}
}

// group adds up the streams of one direction for an interval sum.
type group struct {
	n                          int
	sender, udp, tcpInfo       bool
	bytes, packets, lost, retr int64
	jitter                     float64
}

func (g *group) add(st *stream, d streamSnapshot, jitter float64, retr int64) {
	g.n++
	g.sender, g.udp = st.sender, st.udp
	g.tcpInfo = st.tcp.ok
	g.bytes += max(d.bytes, 0)
	g.packets += d.packets
	g.lost += d.lost
	g.retr += retr
	g.jitter += jitter
}

func (g *group) sum(s *session, start, end, secs float64, omitted bool) Sum {
	sum := Sum{Start: start, End: end, Seconds: secs, Bytes: uint64(g.bytes), BitsPerSecond: float64(g.bytes) * 8 / secs,
		Omitted: ptr(omitted), Sender: g.sender}
	switch {
	case g.udp:
		sum.Packets = ptr(g.packets)
		if !g.sender && g.n > 0 {
			sum.JitterMS = ptr(g.jitter / float64(g.n) * 1000)
			sum.LostPackets = ptr(g.lost)
			sum.LostPercent = ptr(percent(g.lost, g.packets))
		}
	case g.sender && g.tcpInfo:
		sum.Retransmits = ptr(g.retr)
	}
	return sum
}

func ptr[T any](v T) *T { return &v }

func percent(part, whole int64) float64 {
	if whole <= 0 {
		return 0
	}
	return 100 * float64(part) / float64(whole)
}

// localResults is this side's results document (send_results).
func (s *session) localResults() results {
	r := results{
		CPUUtilTotal: s.cpu.total, CPUUtilUser: s.cpu.user, CPUUtilSystem: s.cpu.system,
		CongestionUsed: s.congestion,
	}
	receiverOnly := true
	for _, st := range s.streams {
		if st.sender {
			receiverOnly = false
		}
	}
	switch {
	case receiverOnly:
		r.SenderHasRetransmits = -1
	case s.hasRetr:
		r.SenderHasRetransmits = 1
	}
	secs := s.end.Sub(s.start).Seconds()
	for _, st := range s.streams {
		c := st.final.minus(st.base)
		sr := streamResult{
			ID: st.id, Bytes: uint64(max(c.bytes, 0)), Retransmits: -1,
			Jitter: c.jitter, Errors: c.lost, Packets: c.packets,
			StartTime: 0, EndTime: secs,
		}
		if st.sender && st.tcp.ok {
			sr.Retransmits = st.retransmits()
		}
		r.Streams = append(r.Streams, sr)
	}
	return r
}
