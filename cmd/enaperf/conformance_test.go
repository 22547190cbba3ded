package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/internal/iperf3/shape"
	"github.com/enanet/enanet/internal/testenv"
)

func schema(v any) map[string]string { return shape.Of(v) }

func schemaDiff(want, got map[string]string) []string { return shape.Diff(want, got, shape.EnanetOnly) }

// jsonStream collects the JSON documents a server prints one after the
// other.
func jsonStream(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var docs []map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if err != io.EOF && !strings.Contains(err.Error(), "unexpected EOF") {
				t.Fatalf("server output does not parse: %v\n%s", err, b)
			}
			return docs
		}
		docs = append(docs, m)
	}
}

// waitDocs waits until out holds n documents.
func waitDocs(t *testing.T, out *syncBuffer, n int) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		docs := jsonStream(t, out.Bytes())
		if len(docs) >= n {
			return docs[n-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("server printed %d reports, want %d:\n%s", len(docs), n, out.Bytes())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stockServer runs iperf3 -s -J on a free port for the test's life, on
// both families (the -6 case reaches it at ::1).
func stockServer(t *testing.T, bin string) (int, *syncBuffer) {
	t.Helper()
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-s", "-J", "-p", strconv.Itoa(port))
	out := &syncBuffer{}
	cmd.Stdout = out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	deadline := time.Now().Add(5 * time.Second)
	for !listening(port) {
		require.False(t, time.Now().After(deadline), "iperf3 -s did not start")
		time.Sleep(20 * time.Millisecond)
	}
	return port, out
}

// ourClient runs enaperf -c on the simulated ENA and returns its JSON.
func ourClient(t *testing.T, args ...string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := runMain(ctx, append(args, "-J"), &out, &errb, nil)
	var m map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &m), "enaperf %v exited %d: %s\n%s", args, code, errb.String(), out.String())
	require.Equal(t, 0, code, "enaperf %v: %s\n%s", args, errb.String(), out.String())
	return m
}

// conformanceCases are iperf3 client options, each run in all three
// pairings. Short tests: the point is the shape of the output and that
// both ends agree, not the throughput.
func conformanceCases(cport int) [][]string {
	return [][]string{
		{},
		{"-R"},
		{"-P", "2"},
		{"--bidir"},
		{"--bidir", "-P", "3"},
		{"-O", "1"},
		{"-n", "4M"},
		{"-k", "40"},
		{"-w", "256K"},
		{"-M", "1200"},
		{"-N"},
		{"-C", "cubic"},
		{"-S", "0x10"},
		{"-T", "conformance"},
		{"--get-server-output"},
		{"-Z"},
		{"--cport", strconv.Itoa(cport)},
		{"-u", "-b", "20M", "-l", "1400"},
		{"-u", "-b", "20M", "-l", "1400", "-R"},
		{"-6"},
	}
}

// TestConformance runs each option as iperf3 -> iperf3 -s (the
// reference), iperf3 -> enaperf -s and enaperf -c -> iperf3 -s, on
// loopback through the simulated ENA, and compares the JSON documents'
// shape (keys, nesting, types) with the reference field by field: the
// stock client's document against our server, our server's against
// iperf3 -s's, our client's against the stock client's.
func TestConformance(t *testing.T) {
	bin := testenv.RequireTool(t, "iperf3", "apt-get install iperf3")
	if v, _ := exec.Command(bin, "--version").Output(); !bytes.HasPrefix(v, []byte("iperf 3.12")) {
		t.Logf("iperf3 is not 3.12 (%s): the reference shape may differ", bytes.SplitN(v, []byte("\n"), 2)[0])
	}
	stockPort, stockOut := stockServer(t, bin)
	ourPort := freePort(t)
	// No --listen: 127.0.0.1 and ::1 are forwarded, to the stack's IPv4
	// and IPv6 addresses.
	// The simulated ENA has its default queues: streams keep their roles
	// although handshakes spread over them (see orderedDialer and the
	// client's createStreams).
	addr, ourOut := startServer(t, "-p", strconv.Itoa(ourPort), "-J")
	_, op, _ := net.SplitHostPort(addr)
	stockDocs, ourDocs := 0, 0
	for _, opts := range conformanceCases(freePort(t)) {
		name := strings.Join(opts, " ")
		if name == "" {
			name = "defaults"
		}
		t.Run(name, func(t *testing.T) {
			host := "127.0.0.1"
			if slices.Contains(opts, "-6") {
				host = "::1"
			}
			base := []string{"-c", host, "-i", "0.5"}
			if !hasCount(opts) {
				secs := "1"
				if raceEnabled && len(opts) > 0 && opts[0] == "--bidir" {
					// Under the race detector one direction through the
					// simulator can take most of a second to get going.
					secs = "3"
				}
				base = append(base, "-t", secs)
			}
			if raceEnabled && hasUDP(opts) {
				opts = append(opts[:len(opts):len(opts)], "-b", "5M")
			}
			// Reference: iperf3 -> iperf3 -s.
			ref := stock(t, append(append(base, "-p", strconv.Itoa(stockPort)), opts...)...)
			stockDocs++
			refServer := waitDocs(t, stockOut, stockDocs)

			// iperf3 -> enaperf -s.
			got := stock(t, append(append(base, "-p", op), opts...)...)
			ourDocs++
			ourServer := waitDocs(t, ourOut, ourDocs)
			require.Nil(t, ourServer["error"], "enaperf -s: %v", ourServer["error"])
			if d := schemaDiff(schema(ref), schema(got)); len(d) > 0 {
				t.Errorf("iperf3 -c against enaperf -s: the client's JSON differs from against iperf3 -s:\n%s", strings.Join(d, "\n"))
			}
			if d := schemaDiff(schema(refServer), schema(ourServer)); len(d) > 0 {
				t.Errorf("enaperf -s JSON differs from iperf3 -s:\n%s", strings.Join(d, "\n"))
			}

			// enaperf -c -> iperf3 -s.
			ours := ourClient(t, append(append(base, "-p", strconv.Itoa(stockPort)), opts...)...)
			stockDocs++
			waitDocs(t, stockOut, stockDocs)
			require.Nil(t, ours["error"], "enaperf -c: %v", ours["error"])
			if d := schemaDiff(schema(ref), schema(ours)); len(d) > 0 {
				t.Errorf("enaperf -c JSON differs from iperf3 -c:\n%s", strings.Join(d, "\n"))
			}
			for _, m := range []map[string]any{got, ours} {
				require.Greater(t, num(m, "end", "sum_received", "bytes"), 0.0, "nothing received: %v", m["end"])
			}
			// Scripts read the stream number ("socket", "[  5]"): the
			// first stream's is iperf3's on both ends.
			require.Equal(t, firstSocket(ref), firstSocket(ours), "enaperf -c numbers its first stream unlike iperf3 -c")
			require.Equal(t, firstSocket(refServer), firstSocket(ourServer), "enaperf -s numbers its first stream unlike iperf3 -s")
			checkOptionEffect(t, opts, got, ourServer, ours)
		})
	}
}

// firstSocket is the "socket" of a document's first connected stream.
func firstSocket(m map[string]any) any {
	conns, _ := m["start"].(map[string]any)["connected"].([]any)
	if len(conns) == 0 {
		return nil
	}
	return conns[0].(map[string]any)["socket"]
}

func hasCount(opts []string) bool {
	for _, o := range opts {
		if o == "-n" || o == "-k" {
			return true
		}
	}
	return false
}

func hasUDP(opts []string) bool {
	for _, o := range opts {
		if o == "-u" {
			return true
		}
	}
	return false
}

// checkOptionEffect checks that an option did what it says, beyond the
// document's shape: got is the stock client against our server, srv our
// server's document, ours our client against iperf3 -s.
func checkOptionEffect(t *testing.T, opts []string, got, srv, ours map[string]any) {
	t.Helper()
	if len(opts) == 0 {
		return
	}
	switch opts[0] {
	case "-n":
		for _, m := range []map[string]any{got, ours} {
			require.GreaterOrEqual(t, num(m, "end", "sum_sent", "bytes"), 4.0*(1<<20), "-n 4M sent less")
		}
	case "-k":
		for _, m := range []map[string]any{got, ours} {
			require.GreaterOrEqual(t, num(m, "end", "sum_sent", "bytes"), 40.0*128*1024, "-k 40 sent less")
		}
	case "--bidir":
		for _, m := range []map[string]any{got, ours} {
			require.Greater(t, num(m, "end", "sum_received_bidir_reverse", "bytes"), 0.0, "--bidir: nothing came back")
		}
	case "-T":
		require.Equal(t, "conformance", srv["title"])
		require.Equal(t, "conformance", ours["title"])
	case "--get-server-output":
		for _, m := range []map[string]any{got, ours} {
			require.NotNil(t, m["server_output_json"], "--get-server-output: no server output")
		}
	case "-O":
		// The omitted second is reported as such, then left out.
		for _, m := range []map[string]any{srv, ours} {
			ivs, _ := m["intervals"].([]any)
			require.NotEmpty(t, ivs)
			first := ivs[0].(map[string]any)["sum"].(map[string]any)
			require.Equal(t, true, first["omitted"], "-O 1: the first interval is not marked omitted")
		}
	case "-6":
		for _, m := range []map[string]any{got, srv, ours} {
			conns, _ := m["start"].(map[string]any)["connected"].([]any)
			require.NotEmpty(t, conns)
			for _, c := range conns {
				h, _ := c.(map[string]any)["local_host"].(string)
				require.Contains(t, h, ":", "-6: a stream ran over IPv4 (%s)", h)
			}
		}
	case "-Z":
		require.NotEmpty(t, ours["ignored_options"], "-Z is accepted and must be reported as ignored")
	}
	if !hasUDP(opts) {
		// Retransmits come from the stack's TCP statistics on both sides.
		require.NotNil(t, ours["end"].(map[string]any)["sum_sent"].(map[string]any)["retransmits"], "enaperf -c: no retransmits in sum_sent")
	}
}
