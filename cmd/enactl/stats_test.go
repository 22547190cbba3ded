package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/observe"
)

func snapshot(at time.Time, st ena.Stats, errText string) observe.Snapshot {
	return observe.Snapshot{Device: "sim0", Time: at, Counters: observe.Counters(&st), Error: errText}
}

// TestStatsAcrossReset: device totals that a reset restarted are named as
// restarted (no rate), and a sample taken while the device part could not
// be read shows no device counters instead of zeros.
func TestStatsAcrossReset(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var before, after ena.Stats
	before.Device.TxPkts, before.Device.RxPkts = 22499, 11506
	before.Driver.KeepAlives = 10
	after.Device.TxPkts, after.Device.RxPkts = 3544, 1758
	after.Driver.KeepAlives = 11
	prev, cur := snapshot(t0, before, ""), snapshot(t0.Add(time.Second), after, "")
	require.ElementsMatch(t, []string{"tx_pkts", "rx_pkts"}, restartedCounters(prev, cur))
	rates := observe.Rates(prev, cur)
	require.NotContains(t, rates, "tx_pkts", "no rate for a counter that restarted")
	require.InDelta(t, 1, rates["keep_alives"], 1e-9)

	var b bytes.Buffer
	writeStatsJSON(&b, cur, rates, restartedCounters(prev, cur))
	var doc statsJSON
	require.NoError(t, json.Unmarshal(b.Bytes(), &doc))
	require.ElementsMatch(t, []string{"tx_pkts", "rx_pkts"}, doc.Restarted)

	// The device part failed: its zeros are left out, the driver's kept.
	failed := withoutDeviceCounters(snapshot(t0.Add(2*time.Second), ena.Stats{Driver: ena.DriverStats{KeepAlives: 12}}, "ena: device is resetting"))
	v := failed.Values()
	require.NotContains(t, v, "tx_pkts")
	require.NotContains(t, v, "bw_in_allowance_exceeded")
	require.Equal(t, uint64(12), v["keep_alives"])
	require.Empty(t, restartedCounters(cur, failed), "missing is not restarted")
	// The next good sample has the totals again, without a made-up rate.
	next := snapshot(t0.Add(3*time.Second), after, "")
	require.NotContains(t, observe.Rates(failed, next), "tx_pkts")
}
