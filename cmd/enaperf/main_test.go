package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/internal/iperf3"
	"github.com/enanet/enanet/internal/testenv"
)

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.b.Bytes()...)
}

// reports decodes the JSON reports enaperf -J printed, one after another.
func reports(t *testing.T, b []byte) []iperf3.Report {
	t.Helper()
	var out []iperf3.Report
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		var r iperf3.Report
		if err := dec.Decode(&r); err == io.EOF {
			return out
		} else if err != nil {
			t.Fatalf("enaperf -J output does not parse: %v\n%s", err, b)
		}
		out = append(out, r)
	}
}

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
	t.Fatal("no free port")
	return 0
}

// startServer runs `enaperf -s args` in-process and returns the address
// to reach it and its stdout.
func startServer(t *testing.T, args ...string) (string, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	var errb syncBuffer
	readyc := make(chan string, 1)
	done := make(chan int, 1)
	go func() {
		done <- runMain(ctx, append([]string{"-s"}, args...), out, &errb, func(a string) { readyc <- a })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("enaperf -s did not stop")
		}
	})
	select {
	case a := <-readyc:
		return a, out
	case code := <-done:
		t.Fatalf("enaperf -s exited %d: %s", code, errb.Bytes())
	case <-time.After(30 * time.Second):
		t.Fatalf("enaperf -s not ready: %s", errb.Bytes())
	}
	return "", nil
}

func runClient(t *testing.T, args ...string) iperf3.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	if code := runMain(ctx, append(args, "-J"), &out, &errb, nil); code != 0 {
		t.Fatalf("enaperf %v exited %d: %s\n%s", args, code, errb.String(), out.String())
	}
	rs := reports(t, out.Bytes())
	if len(rs) != 1 {
		t.Fatalf("%d reports", len(rs))
	}
	return rs[0]
}

func checkReport(t *testing.T, what string, r iperf3.Report) {
	t.Helper()
	if r.Error != "" {
		t.Fatalf("%s: %s", what, r.Error)
	}
	s, v := r.End.SumSent, r.End.SumReceived
	if s == nil || v == nil || s.Bytes == 0 || v.Bytes == 0 || s.BitsPerSecond == 0 || v.BitsPerSecond == 0 {
		t.Fatalf("%s: zero numbers: %+v %+v", what, s, v)
	}
	// Through the forwarder the sender's count includes what sits in
	// the relay's buffers when the test ends, and on a slow machine (-race)
	// that can be most of it; received can never exceed sent.
	if v.Bytes > s.Bytes {
		t.Errorf("%s: received %d of %d sent", what, v.Bytes, s.Bytes)
	}
	t.Logf("%s: sent %.1f Mbit/s, received %.1f Mbit/s", what, s.BitsPerSecond/1e6, v.BitsPerSecond/1e6)
}

func TestKernelDevice(t *testing.T) {
	port := freePort(t)
	addr, srvOut := startServer(t, "--device", "kernel", "-B", "127.0.0.1", "-p", strconv.Itoa(port), "-J")
	host, p, _ := net.SplitHostPort(addr)
	r := runClient(t, "--device", "kernel", "-c", host, "-p", p, "-t", "0.5", "-P", "2")
	checkReport(t, "kernel tcp -P 2", r)
	// The server takes one test at a time and answers ACCESS_DENIED while
	// it finishes the last one: wait for its report before the next.
	waitReports(t, srvOut, 1)
	r = runClient(t, "--device", "kernel", "-c", host, "-p", p, "-t", "0.5", "-u", "-b", "20M", "-R")
	checkReport(t, "kernel udp -R", r)
	if n := waitReports(t, srvOut, 2); n != 2 {
		t.Errorf("server printed %d reports, want 2", n)
	}
}

// waitReports waits up to 5 s for the server to have printed n reports
// and returns how many it printed.
func waitReports(t *testing.T, out *syncBuffer, n int) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(reports(t, out.Bytes())) < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return len(reports(t, out.Bytes()))
}

// stock runs a stock iperf3 to completion (bounded; killed on Cleanup)
// and returns its parsed -J output.
func stock(t *testing.T, args ...string) map[string]any {
	t.Helper()
	bin := testenv.RequireTool(t, "iperf3", "apt-get install iperf3")
	for try := 0; ; try++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, bin, append(args, "-J")...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		cancel()
		var m map[string]any
		if jerr := json.Unmarshal(out.Bytes(), &m); jerr != nil {
			t.Fatalf("iperf3 %v: %v / %v: %s %s", args, err, jerr, out.String(), errb.String())
		}
		e, failed := m["error"]
		// iperf3 -s reopens its listener after each test: a client in
		// between is refused or told the server is busy.
		if es, _ := e.(string); failed && try < 5 && (strings.Contains(es, "refused") || strings.Contains(es, "busy")) {
			t.Logf("iperf3 %v: %s; retrying", args, es)
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if failed {
			t.Fatalf("iperf3 %v: %v", args, e)
		}
		return m
	}
}

func num(m map[string]any, path ...string) float64 {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return 0
		}
		v = mm[p]
	}
	f, _ := v.(float64)
	return f
}

// TestSimServerStockClient: a host iperf3 -c reaches enaperf -s on the
// simulated ENA through the forwarded port, TCP and UDP, both directions.
func TestSimServerStockClient(t *testing.T) {
	testenv.RequireTool(t, "iperf3", "apt-get install iperf3")
	port := freePort(t)
	addr, srvOut := startServer(t, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "-J")
	_, p, _ := net.SplitHostPort(addr)
	cases := [][]string{
		{},
		{"-R"},
		{"-u", "-b", "50M"}, // default length: from the forwarded MSS
		{"-u", "-b", "50M", "-l", "1400", "-R", "-P", "2"},
	}
	if raceEnabled {
		cases[3] = []string{"-u", "-b", "10M", "-l", "1400", "-R"}
	}
	for i, extra := range cases {
		m := stock(t, append([]string{"-c", "127.0.0.1", "-p", p, "-t", "1"}, extra...)...)
		var ours []iperf3.Report
		deadline := time.Now().Add(5 * time.Second)
		for ours = reports(t, srvOut.Bytes()); len(ours) <= i && time.Now().Before(deadline); ours = reports(t, srvOut.Bytes()) {
			time.Sleep(50 * time.Millisecond)
		}
		if len(ours) <= i {
			t.Fatalf("enaperf printed no report for iperf3 %v", extra)
		}
		what := "iperf3 -c " + strings.Join(extra, " ") + " -> enaperf -s (sim)"
		checkReport(t, what, ours[i])
		ss, sr := num(m, "end", "sum_sent", "bytes"), num(m, "end", "sum_received", "bytes")
		if ss == 0 || sr == 0 {
			t.Errorf("%s: iperf3 reports zero: sent %v received %v", what, ss, sr)
		}
		// The receiving side's count travels in the results exchange:
		// both reports carry the same number.
		if uint64(sr) != ours[i].End.SumReceived.Bytes {
			t.Errorf("%s: iperf3 says %v B received, enaperf %d", what, sr, ours[i].End.SumReceived.Bytes)
		}
		if uint64(ss) != ours[i].End.SumSent.Bytes {
			t.Errorf("%s: iperf3 says %v B sent, enaperf %d", what, ss, ours[i].End.SumSent.Bytes)
		}
		t.Logf("%s: iperf3 sent %.1f Mbit/s received %.1f Mbit/s", what,
			num(m, "end", "sum_sent", "bits_per_second")/1e6, num(m, "end", "sum_received", "bits_per_second")/1e6)
	}
}

// listening reports a TCP listener on port (IPv4 or IPv6) without
// connecting.
func listening(port int) bool {
	want := fmt.Sprintf(":%04X", port)
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) > 3 && strings.HasSuffix(fs[1], want) && fs[3] == "0A" {
				f.Close()
				return true
			}
		}
		f.Close()
	}
	return false
}

// TestSimClientStockServer: enaperf -c on the simulated ENA drives a host
// iperf3 -s through the VPC router's forwarded port.
func TestSimClientStockServer(t *testing.T) {
	bin := testenv.RequireTool(t, "iperf3", "apt-get install iperf3")
	port := freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	cmd := exec.CommandContext(ctx, bin, "-s", "-B", "127.0.0.1", "-p", strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		cancel()
	})
	deadline := time.Now().Add(5 * time.Second)
	for !listening(port) {
		if time.Now().After(deadline) {
			t.Fatal("iperf3 -s did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, extra := range [][]string{{}, {"-u", "-b", "50M"}, {"-u", "-b", "50M", "-R"}} {
		r := runClient(t, append([]string{"-c", "127.0.0.1", "-p", strconv.Itoa(port), "-t", "1"}, extra...)...)
		checkReport(t, "enaperf -c (sim) "+strings.Join(extra, " ")+" -> iperf3 -s", r)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-s", "-c", "x"},
		{"-c", "127.0.0.1", "-P", "0"},
		{"-c", "127.0.0.1", "-l", "2M"},
		{"-c", "127.0.0.1", "-b", "fast"},
		{"-s", "--device", "kernel", "--mtu", "9001"},
	} {
		var out, errb bytes.Buffer
		if code := runMain(context.Background(), args, &out, &errb, nil); code == 0 {
			t.Errorf("%v: exit 0", args)
		}
	}
	if n, err := parseSize("1.5M", 1000); err != nil || n != 1500000 {
		t.Errorf("parseSize 1.5M = %d, %v", n, err)
	}
	if n, err := parseSize("128K", 1024); err != nil || n != 131072 {
		t.Errorf("parseSize 128K = %d, %v", n, err)
	}
}

// TestFlagValueErrorsNameTheFlag: a value the flag parser rejects is
// reported with the flag and what it takes, on stderr with exit 2, never
// with the Go parse function's name.
func TestFlagValueErrorsNameTheFlag(t *testing.T) {
	for _, tc := range []struct{ args, want string }{
		{"-t abc", `--time "abc": want a number`},
		{"-p abc", `--port "abc": want a whole number`},
		{"-i abc", `--interval "abc": want a number`},
		{"--tiem 3", `unknown flag --tiem: did you mean --time?`},
	} {
		var out, errb bytes.Buffer
		code := runMain(context.Background(), append([]string{"-c", "127.0.0.1"}, strings.Fields(tc.args)...), &out, &errb, nil)
		require.Equal(t, 2, code, tc.args)
		require.Empty(t, out.String(), tc.args)
		require.Contains(t, errb.String(), tc.want, tc.args)
		require.NotRegexp(t, `strconv|Parse|invalid syntax`, errb.String(), tc.args)
	}
}

// TestHelpGoesToStdout: --help prints to stdout and exits 0, as iperf3,
// enahttp and enactl do, so `enaperf --help | less` works.
func TestHelpGoesToStdout(t *testing.T) {
	for _, arg := range []string{"--help", "-h"} {
		var out, errb bytes.Buffer
		require.Equal(t, 0, runMain(context.Background(), []string{arg}, &out, &errb, nil), arg)
		require.Contains(t, out.String(), "Usage: enaperf -s", arg)
		require.Contains(t, out.String(), "--time", arg)
		require.Empty(t, errb.String(), arg)
	}
}

// TestErrorsNameCauseAndFix: bad flags and an unreachable server give one
// sentence with the cause and the fix, no Go internals, no repetition.
func TestErrorsNameCauseAndFix(t *testing.T) {
	var out, errb bytes.Buffer
	require.Equal(t, 2, runMain(context.Background(), []string{"-c", "127.0.0.1", "-l", "0"}, &out, &errb, nil))
	require.NotContains(t, errb.String(), "<nil>")
	require.Contains(t, errb.String(), "want a length in 1..")

	port := freePort(t) // nothing listens there
	for _, dev := range []string{"kernel", "sim"} {
		out.Reset()
		errb.Reset()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		code := runMain(ctx, []string{"-c", "127.0.0.1", "-p", strconv.Itoa(port), "-t", "1", "--device", dev}, &out, &errb, nil)
		cancel()
		require.Equal(t, 1, code, dev)
		all := out.String() + errb.String()
		require.Contains(t, all, "connection refused", dev)
		require.Contains(t, all, "iperf3 -s", dev, "the fix: start a server")
		require.NotContains(t, all, "state byte", dev)
		require.Equal(t, 1, strings.Count(all, "connection refused"), "%s: said more than once:\n%s", dev, all)
	}
}

// TestOutputOptions: -v, --logfile, -T, --timestamps, -I and -A on a
// kernel-socket test against our own server.
func TestOutputOptions(t *testing.T) {
	var out, errb bytes.Buffer
	require.Equal(t, 0, runMain(context.Background(), []string{"-v"}, &out, &errb, nil))
	require.Contains(t, out.String(), "iperf 3.12 protocol")

	port := freePort(t)
	addr, _ := startServer(t, "--device", "kernel", "-p", strconv.Itoa(port))
	_, p, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	logfile, pidfile := dir+"/out.log", dir+"/pid"
	out.Reset()
	errb.Reset()
	code := runMain(context.Background(), []string{"-c", "127.0.0.1", "-p", p, "--device", "kernel", "-t", "0.3", "-i", "0.1",
		"--logfile", logfile, "-T", "mytitle", "--timestamps=%Y ", "-I", pidfile, "-A", "0", "--forceflush"}, &out, &errb, nil)
	require.Equal(t, 0, code, errb.String())
	require.Empty(t, out.String(), "--logfile takes the output")
	b, err := os.ReadFile(logfile)
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		require.True(t, strings.HasPrefix(line, fmt.Sprintf("%d mytitle:  ", time.Now().Year())), "line %q lacks the timestamp and title", line)
	}
	require.Contains(t, string(b), "Retr")
	require.Contains(t, string(b), "iperf Done.")
	_, err = os.Stat(pidfile)
	require.True(t, os.IsNotExist(err), "-I's file is removed at exit")

	// -V: iperf3 3.12's verbose lines, in iperf3's order.
	for try := 0; try < 20; try++ { // the server may still be ending the last test
		out.Reset()
		errb.Reset()
		if code = runMain(context.Background(), []string{"-c", "127.0.0.1", "-p", p, "--device", "kernel", "-t", "0.3", "-V", "-R"}, &out, &errb, nil); !strings.Contains(errb.String(), "busy") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.Equal(t, 0, code, errb.String())
	require.Regexp(t, `(?s)iperf 3\.12 protocol\)\n\S+ .*\nTime: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT\n`+
		`Connecting to host 127\.0\.0\.1.*\n      Cookie: [a-z0-9]{36}\n      TCP MSS: \d+ \(default\)\n`+
		`Reverse mode.*\n\[  5\] local .*\n`+
		`Starting Test: protocol: TCP, 1 streams, 131072 byte blocks, omitting 0 seconds, 1 second test, tos 0\n`+
		`\[ ID\] Interval           Transfer     Bitrate\n.*`+
		`- - - - - - - - - - - - - - - - - - - - - - - - -\nTest Complete\. Summary Results:\n.*`+
		`CPU Utilization: local/receiver \d+\.\d% \(\d+\.\d%u/\d+\.\d%s\), remote/sender \d+\.\d% \(\d+\.\d%u/\d+\.\d%s\)\n`+
		`snd_tcp_congestion \w+\nrcv_tcp_congestion \w+\n\niperf Done\.\n$`, out.String())
}

// TestBindOnTheUserspaceStack: -B names an address of the userspace
// stack; another address is refused with the one it has.
func TestBindOnTheUserspaceStack(t *testing.T) {
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := runMain(ctx, []string{"-s", "-B", "10.9.9.9", "-p", strconv.Itoa(freePort(t))}, &out, &errb, nil)
	require.Equal(t, 1, code)
	require.Contains(t, errb.String(), "-B 10.9.9.9: the userspace stack has no such address (it has 172.31.0.10 and fd00:ec2:0:1::10)")

	port := freePort(t)
	addr, srvOut := startServer(t, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "-B", "172.31.0.10", "-J")
	_, p, _ := net.SplitHostPort(addr)
	m := stock(t, "-c", "127.0.0.1", "-p", p, "-t", "1")
	require.Positive(t, num(m, "end", "sum_received", "bytes"))
	waitReports(t, srvOut, 1)
	r := reports(t, srvOut.Bytes())[0]
	require.Equal(t, "172.31.0.10", r.Start.Connected[0].LocalHost)
}
