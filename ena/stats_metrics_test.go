package ena

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/ena/spec"
)

// TestStatsCustomerMetrics reads conntrack_allowance_available through
// GET_STATS CUSTOMER_METRICS, and the ENI counters with it.
func TestStatsCustomerMetrics(t *testing.T) {
	d, _ := openSim(t, "nitro-v3", Config{Queues: 1}, 0)
	st, err := d.Stats(context.Background())
	require.NoError(t, err)
	require.True(t, st.Metrics.Has(spec.MetricConntrackAllowanceAvailable), "reported %#x", st.Metrics.Reported)
	require.Equal(t, enasim.ProfileNitroV3.ConntrackAllowance, st.Metrics.Values[spec.MetricConntrackAllowanceAvailable])
	require.True(t, st.ENIValid)
	require.False(t, st.SRDValid, "nitro-v3 does not offer ENA Express")

	// Support is discovered once: later reads cost BASIC and one
	// CUSTOMER_METRICS command, no more.
	before := st.Driver.AdminCommands
	st, err = d.Stats(context.Background())
	require.NoError(t, err)
	after, err := d.Stats(context.Background())
	require.NoError(t, err)
	require.Equal(t, uint64(2), after.Driver.AdminCommands-st.Driver.AdminCommands)
	require.Less(t, before, st.Driver.AdminCommands)
}

// TestStatsENAExpress reads the SRD counters from a device that offers
// ENA Express.
func TestStatsENAExpress(t *testing.T) {
	prof := enasim.ProfileNitroV4
	prof.ENAExpress = true
	wire := enasim.NewLoopback()
	sim, err := enasim.New(enasim.Config{Profile: prof, Wire: wire, KeepAlivePeriod: 50 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sim.Close(); _ = wire.Close() })
	d, err := Open(sim, Config{Queues: 1, TxDepth: 256, RxDepth: 256, Logger: quietLog})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	loopbackOK(t, d, 1)
	st, err := d.Stats(context.Background())
	require.NoError(t, err)
	require.True(t, st.SRDValid)
	require.Equal(t, uint64(spec.SRDEnabled|spec.SRDUDPEnabled), st.SRD.Flags)
	require.Equal(t, uint64(1), st.SRD.TxPkts)
	require.Equal(t, st.SRD.TxPkts, st.SRD.EligibleTxPkts)
	require.Equal(t, uint64(1), st.SRD.RxPkts)
}
