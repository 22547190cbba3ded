package main

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/control"
	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/ena/spec"
)

// TestSetOnHeldDevice changes a held device over the control socket and
// reads the result back from the device model.
func TestSetOnHeldDevice(t *testing.T) {
	dir := t.TempDir()
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

	code, out, errs := enactlIn(t, dir, "set", "--device", "sim", "--channels", "1", "--tx-ring", "128",
		"--rss-func", "crc32", "--rss-entry", "3:0", "--rx-usecs", "20")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "changed channels, rings, rss_function, rss_entries, coalesce")
	st := sim.State()
	require.Len(t, st.TxSQs, 1)
	require.Equal(t, 128, st.TxSQs[0].Depth)
	require.Equal(t, spec.HashCRC32, st.RSSFunction)
	require.Equal(t, 20*time.Microsecond, d.Coalesce().RxDelay)

	code, _, errs = enactlIn(t, dir, "set", "--device", "sim", "--tx-ring", "100")
	require.NotEqual(t, 0, code)
	require.Contains(t, errs, "not a power of two")
	require.Equal(t, 128, sim.State().TxSQs[0].Depth)

	code, _, errs = enactlIn(t, dir, "set", "--device", "sim", "--rss-entry", "x")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errs, "INDEX:QUEUE")
}
