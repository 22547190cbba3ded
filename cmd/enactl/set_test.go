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

	// As ethtool -C: a moderation setting left out keeps its value.
	code, _, errs = enactlIn(t, dir, "set", "--device", "sim", "--tx-usecs", "8")
	require.Equal(t, 0, code, errs)
	require.Equal(t, 20*time.Microsecond, d.Coalesce().RxDelay, "--tx-usecs alone keeps --rx-usecs")
	require.Equal(t, 8*time.Microsecond, d.Coalesce().TxDelay)

	// Bad values: what to give, before anything reaches the device.
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, exitUsage, "give at least one setting, e.g. --channels 2"},
		{[]string{"--rss-key", "zz"}, exitUsage, `the key has 'z' at position 1, not a hex digit: want 80 hex digits`},
		{[]string{"--rss-key", "abc"}, exitUsage, "3 hex digits, an odd count"},
		{[]string{"--rx-usecs", "-1"}, exitUsage, "--rx-usecs -1: want 0 (off) or a delay in microseconds"},
		{[]string{"--rx-usecs", "99999999"}, exitFailure, "rx_usecs 99999999: the device's maximum is 32767 µs"},
	} {
		code, _, errs = enactlIn(t, dir, append([]string{"set", "--device", "sim"}, tc.args...)...)
		require.Equal(t, tc.code, code, "%v: %s", tc.args, errs)
		require.Contains(t, errs, tc.want, tc.args)
		require.NotContains(t, errs, "encoding/hex", tc.args)
	}
	require.Equal(t, 20*time.Microsecond, d.Coalesce().RxDelay, "refused settings change nothing")
}
