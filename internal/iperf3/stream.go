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
}

// stream is one data stream, either side, either direction.
type stream struct {
	id     int
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

	// Snapshot taken when the test ends.
	final streamSnapshot
}

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
	set     testSettings
	streams []*stream

	counting atomic.Bool
	stopping atomic.Bool
	stop     chan struct{}
	sendWG   sync.WaitGroup // sender goroutines
	recvWG   sync.WaitGroup // receiver goroutines
	errOnce  sync.Once
	errc     chan error // the first stream failure, for the owner to act on

	start, end time.Time
	cpuStart   cpuSample
	cpu        cpuPercent

	interval  time.Duration
	sampler   sync.WaitGroup
	intervals []Interval
	lastBytes []int64
	lastPkts  []int64
	lastLost  []int64
	lastAt    time.Time
	mu        sync.Mutex // intervals, last*
}

func newSession(set testSettings, interval time.Duration) *session {
	return &session{set: set, stop: make(chan struct{}), errc: make(chan error, 1), interval: interval}
}

// fail records the first stream failure unless the session is stopping.
func (s *session) fail(err error) {
	if s.stopping.Load() {
		return
	}
	s.errOnce.Do(func() { s.errc <- err })
}

// begin starts the clock, the senders and receivers. pcReceivers says that
// UDP receivers on the shared server socket are fed by the caller's
// demultiplexer rather than by a goroutine per stream.
func (s *session) begin() {
	s.start = time.Now()
	s.cpuStart = takeCPUSample()
	s.lastAt = s.start
	s.lastBytes = make([]int64, len(s.streams))
	s.lastPkts = make([]int64, len(s.streams))
	s.lastLost = make([]int64, len(s.streams))
	s.counting.Store(true)
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
	if s.interval > 0 {
		s.sampler.Add(1)
		go s.sample()
	}
}

// finish stops counting, takes the final numbers and stops the senders
// (their blocked writes are cut short by a deadline). Receivers keep
// draining until closeAll, so a peer still flushing does not see a reset.
func (s *session) finish() {
	if !s.counting.Swap(false) {
		return
	}
	s.end = time.Now()
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
		if s.set.rate > 0 {
			elapsed := time.Since(s.start).Seconds()
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

// sample records an interval every s.interval until the session stops.
func (s *session) sample() {
	defer s.sampler.Done()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.mu.Lock()
			if s.counting.Load() {
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
	if final && s.interval > 0 && secs < 0.1*s.interval.Seconds() {
		return
	}
	if s.interval <= 0 || secs <= 0 {
		return
	}
	iv := Interval{}
	sum := Sum{Start: s.lastAt.Sub(s.start).Seconds(), End: now.Sub(s.start).Seconds(), Seconds: secs}
	var sumJitter float64
	var sumPkts, sumLost int64
	for i, st := range s.streams {
		snap := st.snapshot()
		if final {
			snap = st.final
		}
		b := snap.bytes - s.lastBytes[i]
		p := snap.packets - s.lastPkts[i]
		l := snap.lost - s.lastLost[i]
		s.lastBytes[i], s.lastPkts[i], s.lastLost[i] = snap.bytes, snap.packets, snap.lost
		one := Sum{Socket: st.id, Start: sum.Start, End: sum.End, Seconds: secs, Bytes: uint64(b),
			BitsPerSecond: float64(b) * 8 / secs, Sender: st.sender}
		omitted := false
		one.Omitted = &omitted
		if st.udp {
			one.Packets = ptr(p)
			if !st.sender {
				one.JitterMS = ptr(snap.jitter * 1000)
				one.LostPackets = ptr(l)
				one.LostPercent = ptr(percent(l, p))
				sumJitter += snap.jitter * 1000
				sumLost += l
			}
			sumPkts += p
		}
		sum.Bytes += uint64(b)
		sum.Sender = st.sender
		iv.Streams = append(iv.Streams, one)
	}
	sum.BitsPerSecond = float64(sum.Bytes) * 8 / secs
	if s.set.udp {
		sum.Packets = ptr(sumPkts)
		if len(s.streams) > 0 && !s.streams[0].sender {
			sum.JitterMS = ptr(sumJitter / float64(len(s.streams)))
			sum.LostPackets = ptr(sumLost)
			sum.LostPercent = ptr(percent(sumLost, sumPkts))
		}
	}
	omitted := false
	sum.Omitted = &omitted
	iv.Sum = sum
	s.intervals = append(s.intervals, iv)
	s.lastAt = now
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
	}
	receiverOnly := true
	for _, st := range s.streams {
		if st.sender {
			receiverOnly = false
		}
	}
	if receiverOnly {
		r.SenderHasRetransmits = -1
	}
	secs := s.end.Sub(s.start).Seconds()
	for _, st := range s.streams {
		sr := streamResult{
			ID: st.id, Bytes: uint64(st.final.bytes), Retransmits: -1,
			Jitter: st.final.jitter, Errors: st.final.lost, Packets: st.final.packets,
			StartTime: 0, EndTime: secs,
		}
		r.Streams = append(r.Streams, sr)
	}
	return r
}
