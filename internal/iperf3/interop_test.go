package iperf3

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/enanet/enanet/internal/testenv"
)

// stockReport is the part of iperf3 -J output the tests read.
type stockReport struct {
	Start struct {
		Connected []struct {
			Socket int `json:"socket"`
		} `json:"connected"`
		TestStart struct {
			Protocol   string `json:"protocol"`
			NumStreams int    `json:"num_streams"`
			Reverse    int    `json:"reverse"`
		} `json:"test_start"`
	} `json:"start"`
	End struct {
		Streams []json.RawMessage `json:"streams"`
		Sum     *struct {
			Bytes       uint64  `json:"bytes"`
			Packets     int64   `json:"packets"`
			LostPackets int64   `json:"lost_packets"`
			JitterMS    float64 `json:"jitter_ms"`
		} `json:"sum"`
		SumSent struct {
			Bytes         uint64  `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_sent"`
		SumReceived struct {
			Bytes         uint64  `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// freePort finds a port free for both TCP and UDP on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 20; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

// listening reports whether something listens on 127.0.0.1:port (TCP),
// from /proc/net/tcp, without connecting (a probe connection would be
// taken by iperf3 -s -1 as its one client).
func listening(port int) bool {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return false
	}
	defer f.Close()
	want := fmt.Sprintf(":%04X", port)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 3 && strings.HasSuffix(fields[1], want) && fields[3] == "0A" {
			return true
		}
	}
	return false
}

// stockIperf3 starts a stock iperf3 with args; the process is killed in
// Cleanup. wait returns its stdout after it exits.
func stockIperf3(t *testing.T, args ...string) (wait func() []byte) {
	t.Helper()
	bin := testenv.RequireTool(t, "iperf3", "apt-get install iperf3")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting iperf3: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		cancel()
	})
	return func() []byte {
		select {
		case err := <-done:
			done <- err // for Cleanup
			if err != nil {
				t.Logf("iperf3 %v: %v; stderr: %s", args, err, errb.String())
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("iperf3 %v did not finish", args)
		}
		return out.Bytes()
	}
}

func parseStock(t *testing.T, b []byte) *stockReport {
	t.Helper()
	var r stockReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("iperf3 -J output does not parse: %v\n%s", err, b)
	}
	if r.Error != "" {
		t.Fatalf("iperf3 reports an error: %s", r.Error)
	}
	return &r
}

type interopCase struct {
	name     string
	udp      bool
	reverse  bool
	parallel int
}

var interopCases = []interopCase{
	{"tcp", false, false, 1},
	{"tcp-R", false, true, 1},
	{"tcp-P2", false, false, 2},
	{"udp", true, false, 1},
	{"udp-R-P2", true, true, 2},
}

func (c interopCase) args() []string {
	a := []string{"-t", "1", "-J", "-P", strconv.Itoa(c.parallel)}
	if c.udp {
		rate := "200M"
		if raceEnabled {
			rate = "50M"
		}
		a = append(a, "-u", "-b", rate, "-l", "1400")
	}
	if c.reverse {
		a = append(a, "-R")
	}
	return a
}

// checkConsistent compares the two sides' totals: equal where one side's
// number is the other's (exchanged results), close where both measured.
func checkConsistent(t *testing.T, c interopCase, stock *stockReport, ours *Report) {
	t.Helper()
	if ours.Error != "" {
		t.Fatalf("our report has an error: %s", ours.Error)
	}
	ss, sr := stock.End.SumSent, stock.End.SumReceived
	os, or := ours.End.SumSent, ours.End.SumReceived
	t.Logf("%s: iperf3 sent %d B (%.2f Gbit/s) received %d B (%.2f Gbit/s); ours sent %d B (%.2f Gbit/s) received %d B (%.2f Gbit/s)",
		c.name, ss.Bytes, ss.BitsPerSecond/1e9, sr.Bytes, sr.BitsPerSecond/1e9, os.Bytes, os.BitsPerSecond/1e9, or.Bytes, or.BitsPerSecond/1e9)
	if ss.Bytes == 0 || sr.Bytes == 0 || ss.BitsPerSecond == 0 || sr.BitsPerSecond == 0 {
		t.Errorf("iperf3 reports zero: sent %+v received %+v", ss, sr)
	}
	if os.Bytes == 0 || or.Bytes == 0 {
		t.Errorf("we report zero: sent %+v received %+v", os, or)
	}
	if or.Bytes > os.Bytes || float64(or.Bytes) < 0.5*float64(os.Bytes) {
		t.Errorf("we received %d of %d sent", or.Bytes, os.Bytes)
	}
	// The side that sent reports its own count, the other side got it in
	// the results exchange: the byte counts must agree within the little
	// that stock iperf3 (which prints before the exchange on the server)
	// may differ by. Rates must agree within 25%.
	near := func(what string, a, b float64, tol float64) {
		if a == 0 && b == 0 {
			return
		}
		if d := (a - b) / max(a, b); d > tol || d < -tol {
			t.Errorf("%s: iperf3 %.0f vs ours %.0f (more than %.0f%% apart)", what, a, b, tol*100)
		}
	}
	if sr.Bytes != 0 && or.Bytes != 0 {
		near("received bytes", float64(sr.Bytes), float64(or.Bytes), 0.02)
		near("received rate", sr.BitsPerSecond, or.BitsPerSecond, 0.25)
	}
	if ss.Bytes != 0 {
		near("sent bytes", float64(ss.Bytes), float64(os.Bytes), 0.02)
		near("sent rate", ss.BitsPerSecond, os.BitsPerSecond, 0.25)
	}
	if got := len(stock.Start.Connected); got != c.parallel {
		t.Errorf("iperf3 saw %d streams, want %d", got, c.parallel)
	}
	if c.udp && stock.End.Sum != nil && stock.End.Sum.Packets == 0 {
		t.Errorf("iperf3 UDP sum has no packets: %+v", stock.End.Sum)
	}
}

// TestOurClientStockServer drives `iperf3 -s -1` with our client.
func TestOurClientStockServer(t *testing.T) {
	testenv.RequireTool(t, "iperf3", "apt-get install iperf3")
	for _, c := range interopCases {
		t.Run(c.name, func(t *testing.T) {
			port := freePort(t)
			wait := stockIperf3(t, "-s", "-1", "-J", "-B", "127.0.0.1", "-p", strconv.Itoa(port))
			deadline := time.Now().Add(5 * time.Second)
			for !listening(port) {
				if time.Now().After(deadline) {
					t.Fatal("iperf3 -s did not start listening")
				}
				time.Sleep(20 * time.Millisecond)
			}
			cfg := ClientConfig{Addr: fmt.Sprintf("127.0.0.1:%d", port), UDP: c.udp, Reverse: c.reverse,
				Parallel: c.parallel, Duration: time.Second, Timeout: 5 * time.Second}
			if c.udp {
				cfg.Bitrate, cfg.BlockLen = 200e6, 1400
				if raceEnabled {
					cfg.Bitrate = 50e6
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ours, err := Run(ctx, cfg)
			if err != nil {
				t.Fatalf("our client: %v", err)
			}
			stock := parseStock(t, wait())
			// The stock server prints before the results exchange, so its
			// view of the other side is zero; compare what it measured.
			if c.reverse {
				checkServerSide(t, c, stock.End.SumSent.Bytes, ours.End.SumSent.Bytes, ours)
			} else {
				checkServerSide(t, c, stock.End.SumReceived.Bytes, ours.End.SumReceived.Bytes, ours)
			}
		})
	}
}

// checkServerSide compares what a stock server measured (its own
// direction) with what our client reports for that direction.
func checkServerSide(t *testing.T, c interopCase, stockBytes, oursBytes uint64, ours *Report) {
	t.Helper()
	if ours.Error != "" {
		t.Fatalf("our report has an error: %s", ours.Error)
	}
	os, or := ours.End.SumSent, ours.End.SumReceived
	t.Logf("%s: iperf3 server measured %d B; ours sent %d B (%.2f Gbit/s) received %d B (%.2f Gbit/s)",
		c.name, stockBytes, os.Bytes, os.BitsPerSecond/1e9, or.Bytes, or.BitsPerSecond/1e9)
	if stockBytes == 0 || oursBytes == 0 || os.BitsPerSecond == 0 || or.BitsPerSecond == 0 {
		t.Fatalf("zero numbers: iperf3 %d, ours %d, sent %+v received %+v", stockBytes, oursBytes, os, or)
	}
	// Our report for that direction comes from the server's own results.
	if stockBytes != oursBytes {
		t.Errorf("iperf3 server measured %d B, our client reports %d B for it", stockBytes, oursBytes)
	}
	if or.Bytes > os.Bytes || float64(or.Bytes) < 0.5*float64(os.Bytes) {
		t.Errorf("received %d of %d sent", or.Bytes, os.Bytes)
	}
	if len(ours.End.Streams) != c.parallel {
		t.Errorf("%d streams in our report, want %d", len(ours.End.Streams), c.parallel)
	}
}

// TestStockClientOurServer drives our server with `iperf3 -c`.
func TestStockClientOurServer(t *testing.T) {
	testenv.RequireTool(t, "iperf3", "apt-get install iperf3")
	for _, c := range interopCases {
		t.Run(c.name, func(t *testing.T) {
			addr, reports := ourServer(t)
			_, port, _ := net.SplitHostPort(addr)
			wait := stockIperf3(t, append([]string{"-c", "127.0.0.1", "-p", port}, c.args()...)...)
			stock := parseStock(t, wait())
			ours := nextReport(t, reports)
			checkConsistent(t, c, stock, ours)
		})
	}
}
