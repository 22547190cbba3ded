package enanic

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWindowDeadlockFromStallReport runs the stall report's window check
// on the sequence state of the residual stall as a matrix run reported it
// (no-llq/device-reset-request at a load average of 20 to 30; RcvAcc minus
// RcvNxt is the unscaled window of each side's last ACK): each side's
// SndNxt lies 115 bytes beyond the edge the other accepts, and each side
// already holds the other's first unacknowledged segment (1420 bytes).
func TestWindowDeadlockFromStallReport(t *testing.T) {
	a := tcpSeqState{rcvNxt: 3094925162, rcvWnd: 3099029790 - 3094925162, rcvWndScale: 8,
		sndUna: 1891143535, sndNxt: 1895265135, ok: true}
	b := tcpSeqState{rcvNxt: 1891144955, rcvWnd: 1895265203 - 1891144955, rcvWndScale: 8,
		sndUna: 3094923742, sndNxt: 3099029726, ok: true}
	require.Contains(t, windowDeadlock("A", a, b), "A's SndNxt is 115 bytes beyond")
	require.Contains(t, windowDeadlock("A", a, b), "the peer has 1420 bytes past")
	require.Contains(t, windowDeadlock("B", b, a), "B's SndNxt is 115 bytes beyond")
	require.Contains(t, windowDeadlock("B", b, a), "the peer has 1420 bytes past")
}
