package iperf3

import (
	"encoding/json"
	"net"
	"runtime"
	"time"
)

// TimeLayout is how iperf3 writes times (start.timestamp.time, -V's
// "Time:" line): RFC 1123 in GMT.
const TimeLayout = "Mon, 02 Jan 2006 15:04:05 GMT"

func goSystemInfo() string { return runtime.GOOS + " " + runtime.GOARCH + " " + runtime.Version() }

// Version is what reports give as "version".
const Version = "enanet iperf3 (iperf " + protocolVersion + " protocol)"

// Report is the JSON document `iperf3 -J` prints, with the fields scripts
// read: start, intervals, end.sum_sent / end.sum_received (bytes,
// bits_per_second, seconds), per-stream numbers, and for UDP jitter and
// loss. Fields appear in iperf3's order.
type Report struct {
	Start     Start      `json:"start"`
	Intervals []Interval `json:"intervals"`
	End       End        `json:"end"`
	// Title is the client's -T, on both sides.
	Title string `json:"title,omitempty"`
	// ServerOutputJSON is the server's report (--get-server-output, when
	// the server prints JSON).
	ServerOutputJSON json.RawMessage `json:"server_output_json,omitempty"`
	// ServerOutputText is the server's text output (--get-server-output,
	// when the server prints text).
	ServerOutputText string `json:"server_output_text,omitempty"`
	// Ignored lists the options this side accepted but cannot honour,
	// and why (an enanet addition; iperf3 has no such key).
	Ignored []string `json:"ignored_options,omitempty"`
	// Error is set when the test failed, as iperf3 -J does.
	Error string `json:"error,omitempty"`
}

// Start describes the test: connections, parameters, cookie.
type Start struct {
	Connected          []Connected `json:"connected"`
	Version            string      `json:"version"`
	SystemInfo         string      `json:"system_info"`
	Timestamp          Timestamp   `json:"timestamp"`
	ConnectingTo       *HostPort   `json:"connecting_to,omitempty"`
	AcceptedConnection *HostPort   `json:"accepted_connection,omitempty"`
	Cookie             string      `json:"cookie"`
	TCPMSS             *int        `json:"tcp_mss,omitempty"`
	TCPMSSDefault      *int        `json:"tcp_mss_default,omitempty"`
	TargetBitrate      uint64      `json:"target_bitrate"`
	SockBufsize        int         `json:"sock_bufsize"`
	SndbufActual       int         `json:"sndbuf_actual"`
	RcvbufActual       int         `json:"rcvbuf_actual"`
	TestStart          TestStart   `json:"test_start"`
}

// Connected is one data stream's addresses; Socket is the stream id.
type Connected struct {
	Socket     int    `json:"socket"`
	LocalHost  string `json:"local_host"`
	LocalPort  int    `json:"local_port"`
	RemoteHost string `json:"remote_host"`
	RemotePort int    `json:"remote_port"`
}

// Timestamp is the wall-clock start of the test.
type Timestamp struct {
	Time     string `json:"time"`
	TimeSecs int64  `json:"timesecs"`
}

// HostPort is a peer address.
type HostPort struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

// TestStart repeats the agreed parameters.
type TestStart struct {
	Protocol      string `json:"protocol"`
	NumStreams    int    `json:"num_streams"`
	BlkSize       int    `json:"blksize"`
	Omit          int    `json:"omit"`
	Duration      int    `json:"duration"`
	Bytes         uint64 `json:"bytes"`
	Blocks        uint64 `json:"blocks"`
	Reverse       int    `json:"reverse"`
	TOS           int    `json:"tos"`
	TargetBitrate uint64 `json:"target_bitrate"`

	isBidir bool
}

// Bidir says the test runs both directions (--bidir).
func (t TestStart) Bidir() bool { return t.isBidir }

// Interval is one reporting period: per stream and summed. With --bidir,
// Sum adds up the client-to-server streams and SumBidirReverse the others.
type Interval struct {
	Streams         []Sum `json:"streams"`
	Sum             Sum   `json:"sum"`
	SumBidirReverse *Sum  `json:"sum_bidir_reverse,omitempty"`
}

// Sum is a byte count over a time span, for one stream or all of them.
// UDP fields are present only for UDP tests. Sender says whether this side
// sent the data (iperf3's meaning). Socket is the stream id (0 in sums).
type Sum struct {
	Socket        int     `json:"socket,omitempty"`
	Start         float64 `json:"start"`
	End           float64 `json:"end"`
	Seconds       float64 `json:"seconds"`
	Bytes         uint64  `json:"bytes"`
	BitsPerSecond float64 `json:"bits_per_second"`
	Retransmits   *int64  `json:"retransmits,omitempty"`
	// TCP sender statistics: per interval as sampled (bytes, µs) ...
	SndCwnd *int64 `json:"snd_cwnd,omitempty"`
	SndWnd  *int64 `json:"snd_wnd,omitempty"`
	RTT     *int64 `json:"rtt,omitempty"`
	RTTVar  *int64 `json:"rttvar,omitempty"`
	PMTU    *int64 `json:"pmtu,omitempty"`
	// ... and over the test in end.streams[].sender.
	MaxSndCwnd *int64 `json:"max_snd_cwnd,omitempty"`
	MaxSndWnd  *int64 `json:"max_snd_wnd,omitempty"`
	MaxRTT     *int64 `json:"max_rtt,omitempty"`
	MinRTT     *int64 `json:"min_rtt,omitempty"`
	MeanRTT    *int64 `json:"mean_rtt,omitempty"`

	JitterMS    *float64 `json:"jitter_ms,omitempty"`
	LostPackets *int64   `json:"lost_packets,omitempty"`
	Packets     *int64   `json:"packets,omitempty"`
	LostPercent *float64 `json:"lost_percent,omitempty"`
	OutOfOrder  *int64   `json:"out_of_order,omitempty"`
	Omitted     *bool    `json:"omitted,omitempty"`
	Sender      bool     `json:"sender"`
}

// EndStream is one stream's totals: sender and receiver for TCP, udp for
// UDP (as iperf3 prints them).
type EndStream struct {
	Sender   *Sum `json:"sender,omitempty"`
	Receiver *Sum `json:"receiver,omitempty"`
	UDP      *Sum `json:"udp,omitempty"`
}

// End holds the totals. SumSent is what the senders sent; SumReceived what
// the receivers received (from the peer's results when the peer received).
type End struct {
	Streams                 []EndStream `json:"streams,omitempty"`
	Sum                     *Sum        `json:"sum,omitempty"`
	SumSent                 *Sum        `json:"sum_sent,omitempty"`
	SumReceived             *Sum        `json:"sum_received,omitempty"`
	SumBidirReverse         *Sum        `json:"sum_bidir_reverse,omitempty"`
	SumSentBidirReverse     *Sum        `json:"sum_sent_bidir_reverse,omitempty"`
	SumReceivedBidirReverse *Sum        `json:"sum_received_bidir_reverse,omitempty"`
	CPUUtilizationPercent   *CPU        `json:"cpu_utilization_percent,omitempty"`
	SenderTCPCongestion     string      `json:"sender_tcp_congestion,omitempty"`
	ReceiverTCPCongestion   string      `json:"receiver_tcp_congestion,omitempty"`
}

// CPU is CPU use in percent of wall time, here and at the peer.
type CPU struct {
	HostTotal    float64 `json:"host_total"`
	HostUser     float64 `json:"host_user"`
	HostSystem   float64 `json:"host_system"`
	RemoteTotal  float64 `json:"remote_total"`
	RemoteUser   float64 `json:"remote_user"`
	RemoteSystem float64 `json:"remote_system"`
}

// newReport fills the start section.
func newReport(set testSettings, cookie string, now time.Time) *Report {
	proto := "TCP"
	if set.udp {
		proto = "UDP"
	}
	rev := 0
	if set.reverse {
		rev = 1
	}
	return &Report{
		Start: Start{
			Version:       Version,
			SystemInfo:    SystemInfo(),
			Timestamp:     Timestamp{Time: now.UTC().Format(TimeLayout), TimeSecs: now.Unix()},
			Cookie:        cookie,
			TargetBitrate: set.rate,
			TestStart: TestStart{
				Protocol: proto, NumStreams: set.parallel, BlkSize: set.blksize,
				Omit:     int((set.omit + time.Second - 1) / time.Second),
				Duration: int((set.duration + time.Second - 1) / time.Second),
				Bytes:    set.bytes, Blocks: set.blocks,
				Reverse: rev, TOS: set.sock.TOS, TargetBitrate: set.rate, isBidir: set.bidir,
			},
			SockBufsize: set.sock.Window,
		},
		Intervals: []Interval{},
		Title:     set.title,
	}
}

// describeControl fills the TCP facts iperf3 reads from the control
// connection: the MSS (tcp_mss when -M was given, else tcp_mss_default).
func (r *Report) describeControl(c net.Conn, set testSettings) {
	if set.udp {
		return
	}
	if set.sock.MSS > 0 {
		r.Start.TCPMSS = ptr(set.sock.MSS)
	} else {
		r.Start.TCPMSSDefault = ptr(mssOf(c))
	}
}

func hostPort(a net.Addr) *HostPort {
	h, p := addrHostPort(a)
	return &HostPort{Host: h, Port: p}
}

// addStreams lists the data connections in start.connected.
func (r *Report) addStreams(streams []*stream) {
	if len(streams) > 0 && streams[0].conn != nil {
		r.Start.SndbufActual, r.Start.RcvbufActual = bufferSizes(streams[0].conn)
	}
	for _, st := range streams {
		lh, lp := addrHostPort(st.local)
		rh, rp := addrHostPort(st.remote)
		r.Start.Connected = append(r.Start.Connected, Connected{Socket: st.sock, LocalHost: lh, LocalPort: lp, RemoteHost: rh, RemotePort: rp})
	}
}

// finish fills intervals and end from the session and the peer's results
// (nil if the exchange did not happen).
func (r *Report) finish(s *session, peer *results) {
	s.mu.Lock()
	r.Intervals = append(r.Intervals, s.intervals...)
	s.mu.Unlock()
	secs := s.end.Sub(s.start).Seconds()
	peerByID := map[int]streamResult{}
	peerRetr := false
	if peer != nil {
		for _, p := range peer.Streams {
			peerByID[p.ID] = p
		}
		// iperf3's client reports the server's retransmits; its server
		// reports only its own.
		peerRetr = peer.SenderHasRetransmits == 1 && s.isClient
	}
	// side is one end of a stream: what it counted.
	type side struct {
		bytes, packets, lost, ooo, retr int64
		secs, jitter                    float64
		hasRetr                         bool
		tcp                             tcpStats
	}
	var sent, recv, local []side
	for _, st := range s.streams {
		c := st.final.minus(st.base)
		l := side{bytes: c.bytes, packets: c.packets, lost: c.lost, ooo: c.ooo, secs: secs, jitter: c.jitter,
			hasRetr: st.sender && st.tcp.ok, tcp: st.tcp}
		if l.hasRetr {
			l.retr = st.retransmits()
		}
		var ps side
		if p, ok := peerByID[st.id]; ok {
			ps = side{bytes: int64(p.Bytes), packets: p.Packets, lost: p.Errors, secs: p.EndTime - p.StartTime,
				jitter: p.Jitter, retr: max(p.Retransmits, 0), hasRetr: !st.sender && peerRetr}
			if ps.secs <= 0 {
				ps.secs = secs
			}
		} else {
			ps = side{secs: secs}
		}
		if st.sender {
			sent, recv = append(sent, l), append(recv, ps)
		} else {
			sent, recv = append(sent, ps), append(recv, l)
		}
		local = append(local, l)
	}
	mk := func(id int, sd side, sender bool) *Sum {
		sm := &Sum{Socket: id, Start: 0, End: sd.secs, Seconds: sd.secs, Bytes: uint64(max(sd.bytes, 0)), Sender: sender}
		if sd.secs > 0 {
			sm.BitsPerSecond = float64(sm.Bytes) * 8 / sd.secs
		}
		return sm
	}
	type totals struct {
		side
		n int
	}
	add := func(t *totals, sd side) {
		t.n++
		t.bytes += sd.bytes
		t.packets += sd.packets
		t.lost += sd.lost
		t.ooo += sd.ooo
		t.jitter += sd.jitter
		t.secs = max(t.secs, sd.secs)
		t.retr += sd.retr
		t.hasRetr = sd.hasRetr
	}
	// Two directions: forward (client to server) and, with --bidir, the
	// reverse; without --bidir every stream is "forward".
	var ts, tr, tl [2]totals
	end := End{}
	for i, st := range s.streams {
		dir := 0
		if s.set.bidir && !s.forward(st) {
			dir = 1
		}
		add(&ts[dir], sent[i])
		add(&tr[dir], recv[i])
		add(&tl[dir], local[i])
		if s.set.udp {
			u := mk(st.sock, local[i], st.sender)
			u.JitterMS = ptr(recv[i].jitter * 1000)
			u.LostPackets = ptr(recv[i].lost)
			u.Packets = ptr(sent[i].packets)
			if sent[i].packets == 0 {
				u.Packets = ptr(recv[i].packets)
			}
			u.LostPercent = ptr(percent(recv[i].lost, *u.Packets))
			u.OutOfOrder = ptr(recv[i].ooo)
			end.Streams = append(end.Streams, EndStream{UDP: u})
			continue
		}
		snd := mk(st.sock, sent[i], st.sender)
		if sent[i].hasRetr {
			t := sent[i].tcp
			snd.Retransmits = ptr(sent[i].retr)
			snd.MaxSndCwnd, snd.MaxSndWnd = ptr(t.maxCwnd), ptr(t.maxSndWnd)
			snd.MaxRTT, snd.MinRTT = ptr(t.maxRTT.Microseconds()), ptr(t.minRTT.Microseconds())
			mean := int64(0)
			if t.nRTT > 0 {
				mean = (t.sumRTT / time.Duration(t.nRTT)).Microseconds()
			}
			snd.MeanRTT = ptr(mean)
		}
		rcv := mk(st.sock, recv[i], st.sender)
		end.Streams = append(end.Streams, EndStream{Sender: snd, Receiver: rcv})
	}
	for dir := 0; dir < 2; dir++ {
		if dir == 1 && !s.set.bidir {
			break
		}
		// iperf3 marks a direction's sums with whether this side sends it.
		localSends := s.isClient == (dir == 0)
		if !s.set.bidir {
			localSends = len(s.streams) > 0 && s.streams[0].sender
		}
		sumSent := mk(0, ts[dir].side, localSends)
		sumRecv := mk(0, tr[dir].side, localSends)
		var sum *Sum
		if s.set.udp {
			sum = mk(0, tl[dir].side, localSends)
			sum.JitterMS = ptr(tr[dir].jitter / float64(max(tr[dir].n, 1)) * 1000)
			sum.LostPackets = ptr(tr[dir].lost)
			pk := ts[dir].packets
			if pk == 0 {
				pk = tr[dir].packets
			}
			sum.Packets = ptr(pk)
			sum.LostPercent = ptr(percent(tr[dir].lost, pk))
			sumSent.JitterMS, sumSent.LostPackets, sumSent.Packets, sumSent.LostPercent = ptr(0.0), ptr(int64(0)), ptr(ts[dir].packets), ptr(0.0)
			sumRecv.JitterMS, sumRecv.LostPackets, sumRecv.Packets, sumRecv.LostPercent = ptr(*sum.JitterMS), ptr(tr[dir].lost), ptr(tr[dir].packets), ptr(percent(tr[dir].lost, tr[dir].packets))
			sumSent.Sender, sumRecv.Sender = true, false
		} else if ts[dir].hasRetr {
			sumSent.Retransmits = ptr(ts[dir].retr)
		}
		if dir == 0 {
			end.Sum, end.SumSent, end.SumReceived = sum, sumSent, sumRecv
		} else {
			end.SumBidirReverse, end.SumSentBidirReverse, end.SumReceivedBidirReverse = sum, sumSent, sumRecv
		}
	}
	cpu := &CPU{HostTotal: s.cpu.total, HostUser: s.cpu.user, HostSystem: s.cpu.system}
	if peer != nil {
		cpu.RemoteTotal, cpu.RemoteUser, cpu.RemoteSystem = peer.CPUUtilTotal, peer.CPUUtilUser, peer.CPUUtilSystem
	}
	end.CPUUtilizationPercent = cpu
	if !s.set.udp {
		remote := ""
		if peer != nil && s.isClient {
			remote = peer.CongestionUsed
		}
		localSends := s.set.bidir || (len(s.streams) > 0 && s.streams[0].sender)
		if localSends {
			end.SenderTCPCongestion, end.ReceiverTCPCongestion = s.congestion, remote
		} else {
			end.SenderTCPCongestion, end.ReceiverTCPCongestion = remote, s.congestion
		}
	}
	r.End = end
}
