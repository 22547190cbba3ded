package main

import (
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/control"
	"github.com/enanet/enanet/ena/enasim"
)

// holdSim runs a simulated device in this process and serves its control
// socket in dir, as enahttp does; the model is returned too, so tests can
// read what the device really holds.
func holdSim(t *testing.T, dir string) (*enasim.Device, *ena.Device, *control.Server) {
	t.Helper()
	wire := enasim.NewLoopback()
	sim, err := enasim.New(enasim.Config{Wire: wire})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sim.Close(); _ = wire.Close() })
	d, err := ena.Open(sim, ena.Config{Queues: 2, TxDepth: 256, RxDepth: 256, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	srv, err := control.Serve(d, control.Options{Dir: dir, Program: "enahttp", Kind: "simulated ENA"})
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	return sim, d, srv
}

func TestCommandsOnHeldDevice(t *testing.T) {
	dir := t.TempDir()
	_, _, srv := holdSim(t, dir)

	code, out, errs := enactlIn(t, dir, "stats", "--device", "sim", "--watch", "20ms", "--count", "3")
	require.Equal(t, 0, code, errs)
	require.NotContains(t, errs, "brought it up here")
	require.Equal(t, 3, strings.Count(out, "COUNTER"))
	require.Contains(t, out, "1      rx", "the held device's 2 queues, not a fresh one's 1")
	require.Contains(t, out, "pkt/s")

	code, out, errs = enactlIn(t, dir, "stats", "--device", "sim", "--json", "--watch", "20ms", "--count", "2")
	require.Equal(t, 0, code, errs)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2)
	var sample struct {
		Counters map[string]uint64  `json:"counters"`
		Rates    map[string]float64 `json:"rates_per_second"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &sample))
	require.Contains(t, sample.Counters, "queue_1_tx_cnt")
	require.Contains(t, sample.Rates, "queue_1_tx_cnt")

	code, out, errs = enactlIn(t, dir, "info", "--device", "sim", "--json")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, `"queues": 2`)

	code, out, errs = enactlIn(t, dir, "reset", "--device", "sim")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "held by enahttp pid")
	require.Contains(t, out, "reason USER_TRIGGER")
	_, out, _ = enactlIn(t, dir, "stats", "--device", "sim")
	require.Contains(t, out, "reset_user_trigger")

	code, out, errs = enactlIn(t, dir, "list", "--device", "sim")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "Simulated devices in use:")
	require.Contains(t, out, srv.Path())

	// Explicit sockets: ours, and paths that are not.
	code, _, errs = enactlIn(t, dir, "info", "--device", "sim", "--socket", srv.Path())
	require.Equal(t, 0, code, errs)
	notOurs := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(notOurs, []byte("x"), 0o600))
	code, _, errs = enactlIn(t, dir, "stats", "--device", "sim", "--socket", notOurs)
	require.Equal(t, exitFailure, code)
	require.Contains(t, errs, "is not an enanet control socket (it is a regular file")
}

func TestStaleSocketRemoved(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sim-999999.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err)
	ln.SetUnlinkOnClose(false)
	ln.Close()
	code, _, errs := enactlIn(t, dir, "list", "--device", "sim")
	require.Equal(t, 0, code)
	require.Contains(t, errs, "removed stale control socket "+path+" (the process that served it is gone)")
	_, err = os.Stat(path)
	require.True(t, os.IsNotExist(err))

	code, _, errs = enactlIn(t, dir, "reset", "--device", "sim")
	require.Equal(t, exitFailure, code)
	require.Contains(t, errs, "no running process serves sim")
}

// TestListShowsHolder: a process serving 0000:00:06.0's socket appears in
// the HOLDER column.
func TestListShowsHolder(t *testing.T) {
	tr, rt := tree(t)
	dir := t.TempDir()
	wire := enasim.NewLoopback()
	sim, err := enasim.New(enasim.Config{Wire: wire})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sim.Close(); _ = wire.Close() })
	d, err := ena.Open(sim, ena.Config{Queues: 1, TxDepth: 256, RxDepth: 256, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	srv, err := control.Serve(d, control.Options{Path: filepath.Join(dir, "0000:00:06.0.sock"), Program: "myservice"})
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	code, out, errs := enactlIn(t, dir, "list", "--sysfs", tr.Root, "--route-file", rt)
	require.Equal(t, 0, code, errs)
	require.Regexp(t, `(?m)^0000:00:06\.0 .* myservice pid \d+$`, out)
	require.Regexp(t, `(?m)^0000:00:05\.0 .* -$`, out)
}

// TestListShowsHeldSimWithoutENA: on a machine with no ENA (most, and CI),
// enactl list still names the processes running a simulated device.
func TestListShowsHeldSimWithoutENA(t *testing.T) {
	dir := t.TempDir()
	holdSim(t, dir)
	sysfs := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(sysfs, "bus", "pci", "devices"), 0o755))
	code, out, errs := enactlIn(t, dir, "list", "--sysfs", sysfs)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "No ENA devices found")
	require.Contains(t, out, "Simulated devices in use:")
	require.Regexp(t, `(?m)^\s+enahttp pid \d+\s+2\s`, out)
}

// TestInfoShowsHolderAddresses: enactl info prints the addresses of the
// holder's stack, in text and under "network" in JSON, with --socket
// alone naming the holder.
func TestInfoShowsHolderAddresses(t *testing.T) {
	dir := t.TempDir()
	_, _, srv := holdSim(t, dir)
	code, out, errs := enactlIn(t, dir, "info", "--socket", srv.Path())
	require.Equal(t, 0, code, errs)
	require.NotContains(t, out, "ipv4:", "a holder that reports no stack shows no addresses")

	srv.SetNetwork(func() control.Network {
		return control.Network{Address: "172.31.0.10/20", Gateway: "172.31.0.1", DHCP: true,
			Address6: "fd00:ec2:0:1::10/128", Gateway6: "fe80::ec:2fff:fe00:1", LinkLocal: "fe80::1:2ff:fe03:405", DHCP6: true,
			DNS: []string{"172.31.0.2", "fd00:ec2::253"}}
	})
	code, out, errs = enactlIn(t, dir, "info", "--socket", srv.Path())
	require.Equal(t, 0, code, errs)
	require.Regexp(t, `held by:\s+enahttp pid \d+\n`, out)
	require.Contains(t, out, "ipv4:                172.31.0.10/20 (DHCP)\n")
	require.Contains(t, out, "ipv4 gateway:        172.31.0.1\n")
	require.Contains(t, out, "ipv6:                fd00:ec2:0:1::10/128 (DHCPv6)\n")
	require.Contains(t, out, "ipv6 gateway:        fe80::ec:2fff:fe00:1\n")
	require.Contains(t, out, "ipv6 link-local:     fe80::1:2ff:fe03:405\n")
	require.Contains(t, out, "dns:                 172.31.0.2, fd00:ec2::253\n")

	code, out, errs = enactlIn(t, dir, "info", "--device", "sim", "--json")
	require.Equal(t, 0, code, errs)
	var doc struct {
		Queues  int             `json:"queues"`
		Network control.Network `json:"network"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &doc))
	require.Equal(t, 2, doc.Queues, "the device's keys stay at the top level")
	require.Equal(t, "fe80::1:2ff:fe03:405", doc.Network.LinkLocal)
	require.Equal(t, []string{"172.31.0.2", "fd00:ec2::253"}, doc.Network.DNS)

	code, _, errs = enactlIn(t, dir, "stats", "--socket", srv.Path())
	require.Equal(t, 0, code, errs)
}
