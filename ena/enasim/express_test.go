package enasim

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena/spec"
)

func TestProfileExpressSuffix(t *testing.T) {
	p, err := ProfileByName("nitro-v4+express")
	require.NoError(t, err)
	require.True(t, p.ENAExpress)
	require.Equal(t, "nitro-v4+express", p.Name)
	require.False(t, ProfileNitroV4.ENAExpress, "the built-in profile is not changed")
	_, err = ProfileByName("nitro-v9+express")
	require.ErrorContains(t, err, "+express for ENA Express")
}

// TestGetStatsENASRD: the ENA_SRD statistics answer only when the profile
// offers ENA Express, and the capability bit says so.
func TestGetStatsENASRD(t *testing.T) {
	prof := ProfileNitroV4
	prof.ENAExpress = true
	h := newHarness(t, Config{Profile: prof})
	h.bringUp()
	require.True(t, spec.CapENASRDInfo.In(h.m.capabilities()))
	h.m.mu.Lock()
	h.m.stats.txPkts, h.m.stats.rxPkts = 5, 7
	h.m.mu.Unlock()
	p := h.mustOK(getStats(spec.StatsENASRD, 0, 0, 0))
	s := spec.DecodeSRDStats(p)
	require.Equal(t, spec.SRDStats{Flags: spec.SRDEnabled | spec.SRDUDPEnabled, TxPkts: 5, EligibleTxPkts: 5, RxPkts: 7}, s)
}
