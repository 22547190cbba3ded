package main

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/internal/iperf3"
	"github.com/enanet/enanet/internal/testenv"
)

// requireHostIPv6 skips where the host has no IPv6 loopback.
func requireHostIPv6(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("the host has no IPv6 loopback: %v", err)
	}
	ln.Close()
}

// requireIPv6Stream checks that a report's data streams ran over IPv6
// between the simulated ENA's address and the VPC's.
func requireIPv6Stream(t *testing.T, what string, r iperf3.Report) {
	t.Helper()
	require.NotEmpty(t, r.Start.Connected, "%s: no streams", what)
	for _, c := range r.Start.Connected {
		for _, h := range []string{c.LocalHost, c.RemoteHost} {
			a, err := netip.ParseAddr(h)
			require.NoError(t, err, "%s: stream address %q", what, h)
			require.True(t, a.Is6() && !a.Is4In6(), "%s: stream %d is not IPv6: %s -> %s", what, c.Socket, c.LocalHost, c.RemoteHost)
		}
	}
}

// TestSimIPv6 runs -6 on the userspace stack in each pairing: stock
// iperf3 -c ::1 -6 against enaperf -s (forwarded from [::1] to the stack's
// IPv6 address), enaperf -c ::1 -6 against iperf3 -s on the host (through
// the VPC router's IPv6 address), and enaperf against enaperf, both on
// simulated ENAs.
func TestSimIPv6(t *testing.T) {
	bin := testenv.RequireTool(t, "iperf3", "apt-get install iperf3")
	requireHostIPv6(t)
	port := freePort(t)
	addr, srvOut := startServer(t, "-p", strconv.Itoa(port), "-J")
	require.Equal(t, "127.0.0.1:"+strconv.Itoa(port), addr, "the first address is IPv4's")

	t.Run("stock client", func(t *testing.T) {
		m := stock(t, "-c", "::1", "-6", "-p", strconv.Itoa(port), "-t", "1")
		require.Greater(t, num(m, "end", "sum_received", "bytes"), 0.0)
		rs := serverReports(t, srvOut, 1)
		checkReport(t, "iperf3 -c ::1 -6 -> enaperf -s (sim)", rs[0])
		requireIPv6Stream(t, "enaperf -s", rs[0])
	})
	t.Run("our client, our server", func(t *testing.T) {
		for i, extra := range [][]string{{}, {"-R"}, {"-u", "-b", "20M", "-l", "1200"}} {
			r := runClient(t, append([]string{"-c", "::1", "-6", "-p", strconv.Itoa(port), "-t", "1"}, extra...)...)
			checkReport(t, "enaperf -c ::1 -6 (sim) -> enaperf -s (sim)", r)
			requireIPv6Stream(t, "enaperf -c", r)
			srv := serverReports(t, srvOut, i+2)[i+1]
			requireIPv6Stream(t, "enaperf -s", srv)
			if len(extra) == 1 && extra[0] == "-R" {
				// The server's accepted streams keep their gVisor
				// endpoint (found through the stack): its TCP counters.
				require.NotNil(t, srv.End.SumSent.Retransmits, "enaperf -s -R: no retransmits from the accepted endpoint")
			}
		}
	})
	t.Run("stock server", func(t *testing.T) {
		sport := freePort(t)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, bin, "-s", "-B", "::1", "-p", strconv.Itoa(sport))
		var out bytes.Buffer
		cmd.Stdout = &out
		require.NoError(t, cmd.Start())
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			cancel()
		})
		deadline := time.Now().Add(5 * time.Second)
		for !listening(sport) {
			require.False(t, time.Now().After(deadline), "iperf3 -s -B ::1 did not start")
			time.Sleep(20 * time.Millisecond)
		}
		r := runClient(t, "-c", "::1", "-6", "-p", strconv.Itoa(sport), "-t", "1")
		checkReport(t, "enaperf -c ::1 -6 (sim) -> iperf3 -s", r)
		requireIPv6Stream(t, "enaperf -c", r)
	})
	t.Run("family mismatch", func(t *testing.T) {
		var out, errb bytes.Buffer
		code := runMain(context.Background(), []string{"-c", "127.0.0.1", "-6", "-p", strconv.Itoa(port)}, &out, &errb, nil)
		require.Equal(t, 1, code)
		require.Contains(t, errb.String(), "-6: 127.0.0.1 is not an IPv6 address")
	})
}

// TestSimServerIPv6Only: enaperf -s -6 listens on IPv6 only, forwarded
// from [::1].
func TestSimServerIPv6Only(t *testing.T) {
	testenv.RequireTool(t, "iperf3", "apt-get install iperf3")
	requireHostIPv6(t)
	port := freePort(t)
	addr, srvOut := startServer(t, "-6", "-p", strconv.Itoa(port), "-J")
	require.Equal(t, "[::1]:"+strconv.Itoa(port), addr)
	stock(t, "-c", "::1", "-p", strconv.Itoa(port), "-t", "1")
	requireIPv6Stream(t, "enaperf -s -6", serverReports(t, srvOut, 1)[0])
}

// serverReports waits for enaperf -s -J to have printed n reports and
// returns them.
func serverReports(t *testing.T, out *syncBuffer, n int) []iperf3.Report {
	t.Helper()
	require.GreaterOrEqual(t, waitReports(t, out, n), n, "enaperf -s reports:\n%s", out.Bytes())
	return reports(t, out.Bytes())
}
