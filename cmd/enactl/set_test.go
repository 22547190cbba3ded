package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena/spec"
)

// TestSetOnHeldDevice changes a held device over the control socket and
// reads the result back from the device model.
func TestSetOnHeldDevice(t *testing.T) {
	dir := t.TempDir()
	sim, d, _ := holdSim(t, dir)

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
