package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestModerationSmoke runs every moderation and Rx-buffer row briefly: the
// numbers are not checked (the machine is shared), only that each row
// measures traffic and the interrupts the devices delivered.
func TestModerationSmoke(t *testing.T) {
	o := ModerationOptions{Warmup: 100 * time.Millisecond, Duration: 300 * time.Millisecond}
	mod, err := MeasureModeration(context.Background(), o)
	require.NoError(t, err)
	require.Len(t, mod, 3)
	for _, r := range mod {
		require.Positive(t, r.Gbps, r.Mode)
		require.Positive(t, r.IntrPerSec, r.Mode)
	}
	rx, err := MeasureRxBuf(context.Background(), o)
	require.NoError(t, err)
	require.Len(t, rx, 2)
	var b strings.Builder
	require.NoError(t, WriteModerationReport(&b, mod, rx))
	require.Contains(t, b.String(), "| adaptive |")
	require.Contains(t, b.String(), "| 9216 B |")
}
