package observe_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/ena/observe"
)

func openSim(t *testing.T, prof enasim.Profile, queues int) *ena.Device {
	t.Helper()
	wire := enasim.NewLoopback()
	sim, err := enasim.New(enasim.Config{Profile: prof, Wire: wire})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sim.Close(); _ = wire.Close() })
	d, err := ena.Open(sim, ena.Config{Queues: queues, TxDepth: 256, RxDepth: 256, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func TestCountersUseEthtoolNames(t *testing.T) {
	prof := enasim.ProfileNitroV4
	prof.ENAExpress = true
	d := openSim(t, prof, 2)
	s := observe.Take(context.Background(), d, "sim0")
	require.Empty(t, s.Error)
	v := s.Values()
	for _, name := range []string{"tx_pkts", "rx_bytes", "bw_in_allowance_exceeded", "bw_out_allowance_exceeded",
		"pps_allowance_exceeded", "conntrack_allowance_exceeded", "linklocal_allowance_exceeded", "conntrack_allowance_available",
		"ena_srd_mode", "ena_srd_tx_pkts", "ena_srd_eligible_tx_pkts", "ena_srd_rx_pkts", "ena_srd_resource_utilization",
		"ena_admin_q_submitted_cmd", "ena_admin_q_no_completion", "ena_admin_q_out_of_space",
		"queue_0_tx_cnt", "queue_0_tx_bytes", "queue_0_tx_doorbells", "queue_1_rx_cnt", "queue_1_rx_refil_partial", "queue_1_rx_csum_bad"} {
		require.Contains(t, v, name)
	}
	require.Equal(t, prof.ConntrackAllowance, v["conntrack_allowance_available"])
	require.Equal(t, uint64(3), v["ena_srd_mode"])

	// Without ENA Express the SRD counters are absent, not zero.
	s = observe.Take(context.Background(), openSim(t, enasim.ProfileNitroV3, 1), "sim0")
	require.NotContains(t, s.Values(), "ena_srd_tx_pkts")
}

func TestRatesAndTable(t *testing.T) {
	prev := observe.Snapshot{Device: "sim0", Time: time.Unix(100, 0), Counters: []observe.Counter{
		{Name: "queue_0_tx_cnt", Queue: 0, Direction: "tx", Stat: "cnt", Value: 100, Unit: observe.Packets},
		{Name: "queue_0_tx_bytes", Queue: 0, Direction: "tx", Stat: "bytes", Value: 1000, Unit: observe.Bytes},
		{Name: "queue_0_tx_queue_stop", Queue: 0, Direction: "tx", Stat: "queue_stop", Value: 0, Unit: observe.Events},
		{Name: "tx_pkts", Queue: -1, Direction: "tx", Stat: "tx_pkts", Value: 50, Unit: observe.Packets},
		{Name: "conntrack_allowance_available", Queue: -1, Stat: "conntrack_allowance_available", Value: 9, Unit: observe.Connections, Gauge: true},
	}}
	cur := observe.Snapshot{Device: "sim0", Time: time.Unix(102, 0)}
	for _, c := range prev.Counters {
		c.Value *= 3
		cur.Counters = append(cur.Counters, c)
	}
	cur.Counters[0].Value = 300
	cur.Counters[2].Value = 7
	cur.Counters[3].Value = 10 // went backwards: a reset, no rate
	r := observe.Rates(prev, cur)
	require.InDelta(t, 100, r["queue_0_tx_cnt"], 1e-9)
	require.InDelta(t, 1000, r["queue_0_tx_bytes"], 1e-9)
	require.NotContains(t, r, "tx_pkts")
	require.NotContains(t, r, "conntrack_allowance_available")

	var b bytes.Buffer
	require.NoError(t, observe.WriteTable(&b, cur, r))
	out := b.String()
	for _, want := range []string{"COUNTER", "conntrack_allowance_available", "27 conn", "gauge",
		"QUEUE", "PACKETS/S", "100 pkt/s", "8.0 kbit/s", "2.9 KiB", "queue_stop 7"} {
		require.Contains(t, out, want)
	}
	require.NotContains(t, out, "map[")
	require.NotContains(t, out, "{")
}

func TestInfoSnakeCase(t *testing.T) {
	d := openSim(t, enasim.ProfileNitroV3, 1)
	in := observe.MakeInfo("simulated ENA", d.Info(), d.LinkUp())
	b, err := json.Marshal(in)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	for k := range m {
		require.Equal(t, strings.ToLower(k), k, "JSON key %q is not snake_case", k)
	}
	require.Contains(t, in.Capabilities, "CUSTOMER_METRICS")
	var txt bytes.Buffer
	require.NoError(t, observe.WriteInfo(&txt, in))
	require.Contains(t, txt.String(), "tx_csum_ipv4")
	// e2e/qemurig matches these lines.
	require.Contains(t, txt.String(), "tx placement:        LLQ: 128 B entries")
	require.Contains(t, txt.String(), "interrupts:          admin interrupt, I/O interrupt")
	require.NotContains(t, txt.String(), "{")
}

// failingSource answers the driver's counters and fails the device's, as
// ena.Device.Stats does during a reset; it records when it read them.
type failingSource struct {
	st   ena.Stats
	read time.Time
}

func (f *failingSource) Stats(context.Context) (ena.Stats, error) {
	f.read = time.Now()
	time.Sleep(2 * time.Millisecond) // the admin command the device part waits for
	return f.st, errors.New("ena: device is resetting")
}

// TestTakeDuringReset: when the device cannot be asked, its counters are
// left out (not shown as zeros), the driver's stay, and Time is when the
// driver's counters were read, not when the device's answer came back.
func TestTakeDuringReset(t *testing.T) {
	src := &failingSource{st: ena.Stats{
		Driver: ena.DriverStats{LinkChanges: 3},
		Queues: []ena.QueueStats{{}},
	}}
	s := observe.Take(context.Background(), src, "sim0")
	require.Equal(t, "ena: device is resetting", s.Error)
	v := s.Values()
	for _, name := range []string{"tx_pkts", "rx_bytes", "rx_drops", "bw_in_allowance_exceeded"} {
		require.NotContains(t, v, name)
	}
	require.Equal(t, uint64(3), v["link_changes"])
	require.Contains(t, v, "queue_0_tx_cnt")
	require.False(t, s.Time.After(src.read), "snapshot time %v is after the read at %v", s.Time, src.read)
}
