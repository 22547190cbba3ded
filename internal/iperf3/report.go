package iperf3

import (
	"net"
	"runtime"
	"time"
)

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
	TargetBitrate      uint64      `json:"target_bitrate"`
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
}

// Interval is one reporting period: per stream and summed.
type Interval struct {
	Streams []Sum `json:"streams"`
	Sum     Sum   `json:"sum"`
}

// Sum is a byte count over a time span, for one stream or all of them.
// UDP fields are present only for UDP tests. Sender says whether this side
// sent the data (iperf3's meaning). Socket is the stream id (0 in sums).
type Sum struct {
	Socket        int      `json:"socket,omitempty"`
	Start         float64  `json:"start"`
	End           float64  `json:"end"`
	Seconds       float64  `json:"seconds"`
	Bytes         uint64   `json:"bytes"`
	BitsPerSecond float64  `json:"bits_per_second"`
	Retransmits   *int64   `json:"retransmits,omitempty"`
	JitterMS      *float64 `json:"jitter_ms,omitempty"`
	LostPackets   *int64   `json:"lost_packets,omitempty"`
	Packets       *int64   `json:"packets,omitempty"`
	LostPercent   *float64 `json:"lost_percent,omitempty"`
	OutOfOrder    *int64   `json:"out_of_order,omitempty"`
	Omitted       *bool    `json:"omitted,omitempty"`
	Sender        bool     `json:"sender"`
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
	Streams               []EndStream `json:"streams,omitempty"`
	Sum                   *Sum        `json:"sum,omitempty"`
	SumSent               *Sum        `json:"sum_sent,omitempty"`
	SumReceived           *Sum        `json:"sum_received,omitempty"`
	CPUUtilizationPercent *CPU        `json:"cpu_utilization_percent,omitempty"`
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
			SystemInfo:    runtime.GOOS + " " + runtime.GOARCH + " " + runtime.Version(),
			Timestamp:     Timestamp{Time: now.UTC().Format(time.RFC1123), TimeSecs: now.Unix()},
			Cookie:        cookie,
			TargetBitrate: set.rate,
			TestStart: TestStart{
				Protocol: proto, NumStreams: set.parallel, BlkSize: set.blksize,
				Duration: int((set.duration + time.Second - 1) / time.Second),
				Reverse:  rev, TargetBitrate: set.rate,
			},
		},
		Intervals: []Interval{},
	}
}

func hostPort(a net.Addr) *HostPort {
	h, p := addrHostPort(a)
	return &HostPort{Host: h, Port: p}
}

// addStreams lists the data connections in start.connected.
func (r *Report) addStreams(streams []*stream) {
	for _, st := range streams {
		lh, lp := addrHostPort(st.local)
		rh, rp := addrHostPort(st.remote)
		r.Start.Connected = append(r.Start.Connected, Connected{Socket: st.id, LocalHost: lh, LocalPort: lp, RemoteHost: rh, RemotePort: rp})
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
	if peer != nil {
		for _, p := range peer.Streams {
			peerByID[p.ID] = p
		}
	}
	type side struct {
		bytes, packets, lost, ooo, retr int64
		secs, jitter                    float64
	}
	var sent, recv []side
	var local []side
	for _, st := range s.streams {
		l := side{bytes: st.final.bytes, packets: st.final.packets, lost: st.final.lost, ooo: st.final.ooo, secs: secs, jitter: st.final.jitter, retr: -1}
		p, ok := peerByID[st.id]
		var ps side
		if ok {
			ps = side{bytes: int64(p.Bytes), packets: p.Packets, lost: p.Errors, secs: p.EndTime - p.StartTime, jitter: p.Jitter, retr: p.Retransmits}
			if ps.secs <= 0 {
				ps.secs = secs
			}
		} else {
			ps = side{secs: secs, retr: -1}
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
	total := func(sides []side) side {
		var t side
		for _, sd := range sides {
			t.bytes += sd.bytes
			t.packets += sd.packets
			t.lost += sd.lost
			t.ooo += sd.ooo
			t.jitter += sd.jitter
			t.secs = max(t.secs, sd.secs)
			if sd.retr >= 0 {
				t.retr = max(t.retr, 0) + sd.retr
			}
		}
		if len(sides) > 0 {
			t.jitter /= float64(len(sides))
		} else {
			t.retr = -1
		}
		if t.retr == 0 && len(sides) > 0 && sides[0].retr < 0 {
			t.retr = -1
		}
		return t
	}
	localSender := len(s.streams) > 0 && s.streams[0].sender
	end := End{}
	for i, st := range s.streams {
		if s.set.udp {
			u := mk(st.id, local[i], st.sender)
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
		snd := mk(st.id, sent[i], st.sender)
		if sent[i].retr >= 0 {
			snd.Retransmits = ptr(sent[i].retr)
		}
		end.Streams = append(end.Streams, EndStream{Sender: snd, Receiver: mk(st.id, recv[i], st.sender)})
	}
	ts, tr := total(sent), total(recv)
	end.SumSent = mk(0, ts, true)
	end.SumReceived = mk(0, tr, false)
	if s.set.udp {
		tl := total(local)
		sum := mk(0, tl, localSender)
		sum.JitterMS = ptr(tr.jitter * 1000)
		sum.LostPackets = ptr(tr.lost)
		pk := ts.packets
		if pk == 0 {
			pk = tr.packets
		}
		sum.Packets = ptr(pk)
		sum.LostPercent = ptr(percent(tr.lost, pk))
		end.Sum = sum
		end.SumSent.JitterMS, end.SumSent.LostPackets, end.SumSent.Packets, end.SumSent.LostPercent = ptr(0.0), ptr(int64(0)), ptr(ts.packets), ptr(0.0)
		end.SumReceived.JitterMS, end.SumReceived.LostPackets, end.SumReceived.Packets, end.SumReceived.LostPercent = ptr(tr.jitter*1000), ptr(tr.lost), ptr(tr.packets), ptr(percent(tr.lost, tr.packets))
	} else if ts.retr >= 0 {
		end.SumSent.Retransmits = ptr(ts.retr)
	}
	cpu := &CPU{HostTotal: s.cpu.total, HostUser: s.cpu.user, HostSystem: s.cpu.system}
	if peer != nil {
		cpu.RemoteTotal, cpu.RemoteUser, cpu.RemoteSystem = peer.CPUUtilTotal, peer.CPUUtilUser, peer.CPUUtilSystem
	}
	end.CPUUtilizationPercent = cpu
	r.End = end
}
