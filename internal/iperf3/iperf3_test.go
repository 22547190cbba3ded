package iperf3

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// ourServer runs a Server on 127.0.0.1 with kernel sockets and returns its
// address and a channel of reports.
func ourServer(t *testing.T) (string, <-chan *Report) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	reports := make(chan *Report, 4)
	srv := &Server{
		Listener:  ln,
		ListenUDP: func() (net.PacketConn, error) { return net.ListenPacket("udp", addr) },
		OnReport: func(r *Report, err error) {
			if r != nil {
				reports <- r
			}
		},
		Timeout: 5 * time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return")
		}
	})
	return addr, reports
}

func nextReport(t *testing.T, ch <-chan *Report) *Report {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no server report")
		return nil
	}
}

func TestOursAgainstOurs(t *testing.T) {
	cases := []struct {
		name string
		cfg  ClientConfig
	}{
		{"tcp", ClientConfig{}},
		{"tcp-reverse", ClientConfig{Reverse: true}},
		{"tcp-P3", ClientConfig{Parallel: 3, BlockLen: 16 << 10}},
		{"udp", ClientConfig{UDP: true, Bitrate: 50e6}},
		{"udp-reverse-P2", ClientConfig{UDP: true, Reverse: true, Parallel: 2, Bitrate: 20e6, Counters64: true}},
		{"tcp-paced", ClientConfig{Bitrate: 80e6, BlockLen: 8 << 10}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, reports := ourServer(t)
			cfg := tc.cfg
			cfg.Addr = addr
			cfg.Duration = 400 * time.Millisecond
			cfg.Interval = 100 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			rep, err := Run(ctx, cfg)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			srep := nextReport(t, reports)
			if srep.Error != "" {
				t.Fatalf("server report error: %s", srep.Error)
			}
			sent, recv := rep.End.SumSent, rep.End.SumReceived
			if sent.Bytes == 0 || recv.Bytes == 0 || sent.BitsPerSecond == 0 {
				t.Fatalf("zero numbers: sent %+v received %+v", sent, recv)
			}
			// Both sides saw the same test.
			if srep.End.SumSent.Bytes != sent.Bytes || srep.End.SumReceived.Bytes != recv.Bytes {
				t.Errorf("client says sent %d received %d; server says sent %d received %d",
					sent.Bytes, recv.Bytes, srep.End.SumSent.Bytes, srep.End.SumReceived.Bytes)
			}
			// UDP may lose much on a loaded machine (-race, packages in
			// parallel); TCP on loopback delivers nearly everything.
			if recv.Bytes > sent.Bytes || (!cfg.UDP && float64(recv.Bytes) < 0.5*float64(sent.Bytes)) {
				t.Errorf("received %d of %d sent", recv.Bytes, sent.Bytes)
			}
			want := max(cfg.Parallel, 1)
			if len(rep.End.Streams) != want || len(rep.Start.Connected) != want {
				t.Errorf("%d end streams, %d connected, want %d", len(rep.End.Streams), len(rep.Start.Connected), want)
			}
			// Stock iperf3 3.12 numbers streams by fd: 5, 7, ... on the
			// client, 5, 8, ... on a server.
			if rep.Start.Connected[0].Socket != 5 || (want > 1 && rep.Start.Connected[1].Socket != 7) {
				t.Errorf("client stream numbers %+v, want 5, 7, ...", rep.Start.Connected)
			}
			if len(srep.Start.Connected) > 0 && (srep.Start.Connected[0].Socket != 5 || (want > 1 && srep.Start.Connected[1].Socket != 8)) {
				t.Errorf("server stream numbers %+v, want 5, 8, ...", srep.Start.Connected)
			}
			if len(rep.Intervals) < 1 {
				t.Errorf("%d intervals, want several", len(rep.Intervals))
			}
			if cfg.Bitrate > 0 {
				per := sent.BitsPerSecond / float64(want)
				if per > 1.3*float64(cfg.Bitrate) || per < 0.5*float64(cfg.Bitrate) {
					t.Errorf("paced at %.0f bit/s per stream, asked %d", per, cfg.Bitrate)
				}
			}
			if cfg.UDP {
				if rep.End.Sum == nil || rep.End.Sum.Packets == nil || *rep.End.Sum.Packets == 0 || rep.End.Sum.JitterMS == nil {
					t.Errorf("UDP sum missing packets or jitter: %+v", rep.End.Sum)
				}
			}
			// The report is valid JSON with iperf3's top-level shape.
			b, err := json.Marshal(rep)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"start", "intervals", "end"} {
				if _, ok := m[k]; !ok {
					t.Errorf("report lacks %q", k)
				}
			}
		})
	}
}

func TestBusyServerDenies(t *testing.T) {
	addr, reports := ourServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	var firstErr error
	go func() {
		defer wg.Done()
		_, firstErr = Run(ctx, ClientConfig{Addr: addr, Duration: time.Second, Bitrate: 10e6})
	}()
	// Wait until the first test is running, then try a second one.
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		_, err = Run(ctx, ClientConfig{Addr: addr, Duration: 200 * time.Millisecond})
		if errors.Is(err, ErrBusy) {
			break
		}
	}
	if !errors.Is(err, ErrBusy) {
		t.Errorf("second client: %v, want ErrBusy", err)
	}
	wg.Wait()
	if firstErr != nil {
		t.Errorf("first client: %v", firstErr)
	}
	nextReport(t, reports)
}

func TestServerRefusesUnsupported(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Listener: ln, OneOff: true, Timeout: 2 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background()) }()
	// No ListenUDP: a UDP test is refused with SERVER_ERROR.
	_, err = Run(context.Background(), ClientConfig{Addr: ln.Addr().String(), UDP: true, Duration: time.Second})
	var se *ServerError
	if !errors.As(err, &se) || se.Code != ieProtocol {
		t.Errorf("UDP on a TCP-only server: %v, want ServerError %d", err, ieProtocol)
	}
	if err := <-done; err == nil {
		t.Errorf("OneOff Serve returned nil after a refused test")
	}
}

func TestJSONFraming(t *testing.T) {
	var buf bytes.Buffer
	if err := writeJSON(&buf, params{TCP: true, Time: 3, Parallel: 2, Len: 1000}); err != nil {
		t.Fatal(err)
	}
	n := binary.BigEndian.Uint32(buf.Bytes()[:4])
	if int(n) != buf.Len()-4 {
		t.Fatalf("length prefix %d, body %d", n, buf.Len()-4)
	}
	var p params
	if err := readJSON(&buf, &p); err != nil || p.Parallel != 2 || !p.TCP {
		t.Fatalf("round trip: %+v, %v", p, err)
	}
	// A hostile length is refused before allocation.
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], 1<<31)
	if err := readJSON(bytes.NewReader(hdr[:]), &p); err == nil || !strings.Contains(err.Error(), "allowed") {
		t.Errorf("huge length: %v", err)
	}
	// cJSON-style numbers in exponent form decode.
	body := []byte(`{"udp":true,"time":1,"parallel":1,"len":1460,"bandwidth":1e+10}`)
	var b2 bytes.Buffer
	binary.Write(&b2, binary.BigEndian, uint32(len(body)))
	b2.Write(body)
	if err := readJSON(&b2, &p); err != nil || p.Bandwidth != 1e10 {
		t.Errorf("exponent bandwidth: %v %v", p.Bandwidth, err)
	}
}

func TestStreamIDsAndCookie(t *testing.T) {
	want := []int{1, 3, 4, 5}
	for i, w := range want {
		if got := streamID(i); got != w {
			t.Errorf("streamID(%d) = %d, want %d", i, got, w)
		}
	}
	c, err := newCookie()
	if err != nil {
		t.Fatal(err)
	}
	if c[CookieSize-1] != 0 || len(cookieString(c)) != CookieSize-1 {
		t.Errorf("cookie %q not 36 characters and a NUL", c)
	}
	for _, b := range cookieString(c) {
		if !strings.ContainsRune(cookieChars, b) {
			t.Errorf("cookie character %q outside iperf3's alphabet", b)
		}
	}
	var le [4]byte
	binary.LittleEndian.PutUint32(le[:], udpConnectReply)
	if !udpReplyOK(le[:]) || udpReplyOK([]byte{1, 2, 3, 4}) {
		t.Errorf("udpReplyOK wrong")
	}
}

func TestUDPAccounting(t *testing.T) {
	st := &stream{udp: true}
	pkt := func(seq uint32) []byte {
		b := make([]byte, 100)
		now := time.Now()
		binary.BigEndian.PutUint32(b[0:], uint32(now.Unix()))
		binary.BigEndian.PutUint32(b[4:], uint32(now.Nanosecond()/1000))
		binary.BigEndian.PutUint32(b[8:], seq)
		return b
	}
	for _, seq := range []uint32{1, 2, 5, 3, 6} { // 3 and 4 missing, then 3 late
		st.receiveUDP(pkt(seq), time.Now(), false)
	}
	s := st.snapshot()
	if s.packets != 6 || s.lost != 1 || s.ooo != 1 || s.bytes != 500 {
		t.Errorf("got %+v, want packets 6 lost 1 out-of-order 1 bytes 500", s)
	}
	// Garbage shorter than a header is counted as bytes, not as a packet.
	st.receiveUDP([]byte{1, 2}, time.Now(), false)
	if s := st.snapshot(); s.packets != 6 || s.bytes != 502 {
		t.Errorf("short datagram: %+v", s)
	}
}

// TestUDPConnectOK: only a connect message opens a UDP stream; a late data
// datagram of the previous test must not.
func TestUDPConnectOK(t *testing.T) {
	for _, c := range []struct {
		b    []byte
		want bool
	}{
		{[]byte{0x39, 0x38, 0x37, 0x36}, true},  // 0x36373839 little-endian, as iperf3 writes it
		{[]byte{0x36, 0x37, 0x38, 0x39}, true},  // the same, big-endian
		{[]byte{0x15, 0xcd, 0x5b, 0x07}, true},  // legacy 123456789 little-endian
		{[]byte{0x39, 0x38, 0x37}, false},       // short
		{make([]byte, 1400), false},             // a data datagram
		{[]byte{0x00, 0x00, 0x00, 0x01}, false}, // anything else
	} {
		if got := udpConnectOK(c.b); got != c.want {
			t.Errorf("udpConnectOK(% x) = %v, want %v", c.b, got, c.want)
		}
	}
}
