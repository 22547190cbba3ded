package ena

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/ena/spec"
)

// TestRxStallAfterSetChannels: with fewer channels than queue pairs the
// watchdog still sees an Rx stall on an enabled queue (disabled pairs have
// no ring to judge) and resets the device, which then receives again.
func TestRxStallAfterSetChannels(t *testing.T) {
	for _, tc := range []struct {
		name       string
		open, down int
	}{{"4to2", 4, 2}, {"2to1", 2, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			d, s := openSim(t, "nitro-v3", Config{Queues: tc.open, WatchdogInterval: 20 * time.Millisecond}, 0)
			// Only the stall may reset the device: a keep-alive the loaded
			// machine delivers late must not.
			d.keepAliveTimeout.Store(int64(time.Minute))
			require.Greater(t, d.MaxChannels(), tc.open)
			require.NoError(t, d.SetChannels(tc.down))
			require.Len(t, s.State().RxSQs, tc.down)
			loopbackOK(t, d, 1)

			s.Faults().StallRx(true)
			done := sendUntilReset(d, spec.ResetGeneric)
			waitReset(t, d, spec.ResetGeneric, 3*time.Second)
			<-done
			assert.Equal(t, tc.down, d.Channels(), "the reset keeps the channel count")
			assert.Len(t, s.State().RxSQs, tc.down)
			loopbackOK(t, d, 2)
		})
	}
}

// TestSetChannelsRaisesToDeviceMax: from one channel up to the device's
// maximum and back, on every profile (LLQ and host placement) and in poll
// mode; frames go through after each change, the device has exactly the
// enabled queues, and disabled pairs hold no rings.
func TestSetChannelsRaisesToDeviceMax(t *testing.T) {
	for _, profile := range enasim.ProfileNames() {
		for _, poll := range []bool{false, true} {
			name := profile
			if poll {
				name += "/poll"
			}
			t.Run(name, func(t *testing.T) {
				d, s := openSim(t, profile, Config{Queues: 1, PollMode: poll}, 0)
				max := d.MaxChannels()
				require.Equal(t, d.NumQueues(), max)
				require.Greater(t, max, 1)
				for _, n := range []int{max, 1, 2} {
					require.NoError(t, d.SetChannels(n))
					assert.Equal(t, n, d.Channels())
					assert.Len(t, s.State().RxSQs, n)
					st, _ := d.Stats(context.Background())
					assert.Len(t, st.Queues, n)
					for i := range d.NumQueues() {
						assert.Equal(t, i < n, d.Queue(i).published.Load() != nil, "pair %d rings with %d channels", i, n)
					}
					loopbackOK(t, d, byte(n))
				}
				err := d.SetChannels(max + 1)
				require.Error(t, err)
				assert.Contains(t, err.Error(), "the device offers")
				assert.Len(t, s.State().RxSQs, 2)
			})
		}
	}
}
