package link_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/link"
	"github.com/enanet/enanet/link/simnic"
)

// healthNIC is a simulated NIC that reports a recovery in progress.
type healthNIC struct {
	*simnic.NIC
	h link.DeviceHealth
}

func (n healthNIC) DeviceHealth() link.DeviceHealth { return n.h }

func TestStatsReportDeviceHealth(t *testing.T) {
	wa, wb := simnic.NewPipe()
	defer wb.Close()
	sn := simnic.New(wa, simnic.Config{MAC: macA, Queues: 1})
	defer sn.Close()
	ep, err := link.New(sn, link.Options{})
	require.NoError(t, err)
	require.Nil(t, ep.Stats().Health, "a NIC without HealthReporter reports no health")

	want := link.DeviceHealth{State: "recovering", Reason: "ADMIN_TO", Resets: 1, Attempt: 3,
		LastError: "ena: create Tx CQ 0: admin command timed out", NextAttempt: time.Unix(1e9, 0)}
	ep, err = link.New(healthNIC{sn, want}, link.Options{})
	require.NoError(t, err)
	got := ep.Stats().Health
	require.NotNil(t, got)
	require.Equal(t, want, *got)
}
