package enasim

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena/spec"
)

// advertiseModeration re-registers the host-info page with the
// interrupt_moderation driver feature (host-info bit 2, §4.8).
func advertiseModeration(lr *loopRig) {
	hi := spec.HostInfo{OSType: spec.OSLinux, DriverVersion: spec.PackDriverVersion(2, 0, 0, 0), NumCPUs: 2,
		DriverSupportedFeatures: spec.HostFeatInterruptModeration}
	hi.Encode(lr.hostInfo.Bytes)
	lr.mustOK(setFeat(spec.FeatHostAttrConfig, &spec.HostAttrConfig{OSInfoAddr: lr.hostInfo.Addr}))
}

func sendOne(lr *loopRig) {
	lr.tx.send(buildFrame(frameSpec{src: netip.MustParseAddr("10.0.0.1"), dst: netip.MustParseAddr("10.0.0.2"),
		proto: 17, sport: 1, dport: 2, payload: 100}), sendOpts{})
	lr.tx.doorbell()
}

// TestModerationHoldsInterrupt: with moderation negotiated, an interrupt
// due on an unmasked vector waits for the programmed delay (§7.8).
func TestModerationHoldsInterrupt(t *testing.T) {
	lr := newLoopRig(t, ProfileNoLLQ, 0, 64, 2048)
	advertiseModeration(lr)
	const units = 30000 // 30 ms at the profile's 1 µs resolution
	require.Equal(t, uint16(1), lr.m.State().IntrDelayResolution)
	lr.w(lr.rx.unmask, spec.UnmaskWord{Unmask: true, RxDelay: units, TxDelay: units}.Encode())
	st := lr.m.State()
	require.True(t, st.ModerationNegotiated)
	require.Equal(t, uint16(units), st.Vectors[1].RxDelay)

	start := time.Now()
	sendOne(lr)
	// A held interrupt can only come late, never before its delay.
	require.False(t, lr.waitIRQ(1, 10*time.Millisecond), "the interrupt was not held")
	require.True(t, lr.waitIRQ(1, 2*time.Second), "the held interrupt never fired")
	require.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
	require.Equal(t, uint64(1), lr.m.State().InterruptsHeld)
}

// TestModerationRefusedWithoutNegotiation: a driver that did not advertise
// interrupt_moderation gets its delays refused and its interrupts at once.
func TestModerationRefusedWithoutNegotiation(t *testing.T) {
	lr := newLoopRig(t, ProfileNoLLQ, 0, 64, 2048)
	lr.w(lr.rx.unmask, spec.UnmaskWord{Unmask: true, RxDelay: 30000}.Encode())
	st := lr.m.State()
	require.False(t, st.ModerationNegotiated)
	require.Equal(t, uint64(1), st.DelaysRefused)
	require.Zero(t, st.Vectors[1].RxDelay)
	sendOne(lr)
	require.True(t, lr.waitIRQ(1, 2*time.Second))
	require.Zero(t, lr.m.State().InterruptsHeld)
}
