package enanic

import (
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/ena/spec"
)

// Each runtime change is made in the middle of a byte-checked TCP echo
// (echo compares every byte, both ways) and then read back from the device
// model, not from the driver.

func pair(t *testing.T) (a, b *side) {
	wa, wb := enasim.NewPair()
	return open(t, wa, "10.1.0.1/24", ""), open(t, wb, "10.1.0.2/24", "")
}

// echoPort gives each echo its own port: a closed listener's port stays
// taken while its last connection winds down.
var echoPort atomic.Uint32

// across runs change halfway through a 4 MiB echo from a to b.
func across(t *testing.T, a, b *side, change func() error) {
	t.Helper()
	n := 4 << 20
	port := uint16(1000 + echoPort.Add(1))
	got := echo(t, a.st, b.st, netip.AddrPortFrom(netip.MustParseAddr("10.1.0.2"), port), n, func() {
		if err := change(); err != nil {
			t.Errorf("change: %v", err)
		}
	})
	require.Equal(t, n, got)
}

func TestSetRingsUnderTransfer(t *testing.T) {
	a, b := pair(t)
	across(t, a, b, func() error { return a.dev.SetRings(512, 1024) })
	st := a.sim.State()
	require.Len(t, st.TxSQs, 2)
	for _, sq := range st.TxSQs {
		assert.Equal(t, 512, sq.Depth)
	}
	for _, sq := range st.RxSQs {
		assert.Equal(t, 1024, sq.Depth)
		assert.Equal(t, 1024, sq.CQDepth)
	}
	assert.Equal(t, 512, a.dev.Rings().TxDepth)
}

func TestSetRxBufSizeUnderTransfer(t *testing.T) {
	a, b := pair(t)
	require.Equal(t, ena.RxBuf2K, a.dev.Rings().RxBufSize, "automatic size at MTU 1500")
	across(t, a, b, func() error { return a.dev.SetRxBufSize(ena.RxBuf9K) })
	// The echo came back through a's Rx queues after the change.
	used := 0
	for _, sq := range a.sim.State().RxSQs {
		if sq.LastRxBufLen != 0 {
			assert.Equal(t, ena.RxBuf9K, sq.LastRxBufLen)
			used++
		}
	}
	assert.NotZero(t, used, "no Rx buffer used after the change")
}

func TestRSSUnderTransfer(t *testing.T) {
	a, b := pair(t)
	key := make([]byte, 40)
	for i := range key {
		key[i] = byte(i*7 + 1)
	}
	across(t, a, b, func() error { return a.dev.SetRSSKey(key) })
	st := a.sim.State()
	assert.Equal(t, key, st.RSSKey[:])

	across(t, a, b, func() error { return a.dev.SetRSSFunction(ena.RSSCRC32) })
	assert.Equal(t, spec.HashCRC32, a.sim.State().RSSFunction)

	across(t, a, b, func() error { return a.dev.SetRSSFields(spec.RSSTCP4, spec.RSSFieldL3SA|spec.RSSFieldL3DA) })
	assert.Equal(t, uint16(spec.RSSFieldL3SA|spec.RSSFieldL3DA), a.sim.State().RSSInputs[spec.RSSTCP4])

	// Whole table: everything to queue 1.
	cfg, err := a.dev.RSS()
	require.NoError(t, err)
	all1 := make([]int, len(cfg.Table))
	for i := range all1 {
		all1[i] = 1
	}
	before := a.sim.State().RSSTable
	require.Len(t, slices.Compact(slices.Sorted(slices.Values(before))), 2, "default table spreads over both queues")
	across(t, a, b, func() error { return a.dev.SetRSSTable(all1) })
	tab := a.sim.State().RSSTable
	require.Len(t, tab, len(all1))
	q1 := tab[0]
	for _, e := range tab {
		assert.Equal(t, q1, e)
	}
	// index:queue pairs: entry 3 back to queue 0.
	across(t, a, b, func() error { return a.dev.SetRSSEntries(map[int]int{3: 0}) })
	tab = a.sim.State().RSSTable
	assert.NotEqual(t, q1, tab[3])
	assert.Equal(t, q1, tab[2])

	// The settings survive a reset (the rebuild programs them again).
	require.NoError(t, a.dev.Reset(spec.ResetNormal))
	st = a.sim.State()
	assert.Equal(t, key, st.RSSKey[:])
	assert.Equal(t, spec.HashCRC32, st.RSSFunction)
	assert.Equal(t, tab, st.RSSTable)
}

func TestModerationUnderTransfer(t *testing.T) {
	a, b := pair(t)
	st := a.sim.State()
	require.True(t, st.ModerationNegotiated, "host-info must advertise interrupt_moderation")
	info := a.dev.Coalesce()
	require.True(t, info.Supported)

	across(t, a, b, func() error { return a.dev.SetCoalesce(ena.Coalesce{RxDelay: 50 * time.Microsecond}) })
	st = a.sim.State()
	res := time.Duration(st.IntrDelayResolution) * time.Microsecond
	want := uint16((50*time.Microsecond + res - 1) / res)
	for v, vs := range st.Vectors {
		if v >= 1 {
			assert.Equal(t, want, vs.RxDelay, "vector %d", v)
		}
	}
	assert.NotZero(t, st.InterruptsHeld, "the device held no interrupt")

	across(t, a, b, func() error { return a.dev.SetCoalesce(ena.Coalesce{Adaptive: true}) })
	st = a.sim.State()
	for v, vs := range st.Vectors {
		if v >= 1 {
			assert.Contains(t, []uint16{1, 8, 64, 128, 256}, vs.RxDelay*st.IntrDelayResolution, "vector %d: not a net_dim profile delay", v)
		}
	}

	across(t, a, b, func() error { return a.dev.SetCoalesce(ena.Coalesce{}) })
	for v, vs := range a.sim.State().Vectors {
		if v >= 1 {
			assert.Zero(t, vs.RxDelay, "vector %d", v)
		}
	}
}

// TestInvalidReconfigChangesNothing: every refused request names the
// problem and leaves the device as it was.
func TestInvalidReconfigChangesNothing(t *testing.T) {
	a, _ := pair(t)
	before := a.sim.State()
	rings := a.dev.Rings()
	for name, err := range map[string]error{
		"not a power of two":         a.dev.SetRings(1000, 0),
		"exceeds":                    a.dev.SetRings(0, 1<<20),
		"below the minimum":          a.dev.SetRings(16, 0),
		"not one of":                 a.dev.SetRxBufSize(3000),
		"exactly 40":                 a.dev.SetRSSKey(make([]byte, 39)),
		"names queue 2":              a.dev.SetRSSEntries(map[int]int{0: 2}),
		"outside":                    a.dev.SetRSSEntries(map[int]int{100000: 0}),
		"entries":                    a.dev.SetRSSTable([]int{0, 1}),
		"unknown RSS hash":           a.dev.SetRSSFunction(7),
		"exceeds the device maximum": a.dev.SetCoalesce(ena.Coalesce{RxDelay: time.Hour}),
		"negative":                   a.dev.SetCoalesce(ena.Coalesce{RxDelay: -1}),
	} {
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), name)
	}
	after := a.sim.State()
	assert.Equal(t, before.RSSKey, after.RSSKey)
	assert.Equal(t, before.RSSTable, after.RSSTable)
	assert.Equal(t, before.TxSQs, after.TxSQs)
	// LastRxBufLen is traffic, not configuration: the first frame (the
	// peer stack's router solicitation) may land between the snapshots
	// (seen once under -race at a load of 12).
	noTraffic := func(sqs []enasim.SQState) []enasim.SQState {
		sqs = slices.Clone(sqs)
		for i := range sqs {
			sqs[i].LastRxBufLen = 0
		}
		return sqs
	}
	assert.Equal(t, noTraffic(before.RxSQs), noTraffic(after.RxSQs))
	assert.Equal(t, rings, a.dev.Rings())
}

// TestSetChannelsUnderTransfer: the channel count goes down to one and up
// past the count opened (Config.Queues 2) to the device's maximum, each
// time in the middle of a byte-checked transfer through the stack's NIC,
// whose endpoint was sized at Open.
func TestSetChannelsUnderTransfer(t *testing.T) {
	a, b := pair(t)
	max := enasim.ProfileNitroV3.MaxQueues
	require.Equal(t, max, a.dev.MaxChannels(), "channels go up to the device's MAX_QUEUES")
	require.Equal(t, 2, a.dev.Channels())
	require.Len(t, a.sim.State().RxSQs, 2, "only the opened pairs have device queues")

	across(t, a, b, func() error { return a.dev.SetChannels(1) })
	st := a.sim.State()
	assert.Len(t, st.TxSQs, 1)
	assert.Len(t, st.RxSQs, 1)
	for _, e := range st.RSSTable {
		assert.Equal(t, st.RxSQs[0].Idx, e, "RSS must only name the enabled queue")
	}
	assert.Equal(t, 1, a.dev.Channels())

	for _, n := range []int{4, max} {
		across(t, a, b, func() error { return a.dev.SetChannels(n) })
		st = a.sim.State()
		assert.Len(t, st.TxSQs, n)
		assert.Len(t, st.RxSQs, n)
		assert.Len(t, slices.Compact(slices.Sorted(slices.Values(st.RSSTable))), n, "RSS spreads over every enabled queue")
		for _, sq := range st.RxSQs {
			assert.Equal(t, a.dev.Rings().RxDepth, sq.Depth, "a newly enabled pair gets rings of the current size")
		}
		assert.Equal(t, n, a.dev.Channels())
	}

	// Several flows at once spread over the new queues and all arrive.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); across(t, a, b, func() error { return nil }) }()
	}
	wg.Wait()
	busy := 0
	for _, sq := range a.sim.State().RxSQs {
		if sq.LastRxBufLen != 0 {
			busy++
		}
	}
	assert.Greater(t, busy, 1, "RSS delivered to one queue only")

	for _, n := range []int{0, -1, max + 1} {
		err := a.dev.SetChannels(n)
		require.Error(t, err, "%d channels", n)
	}
	assert.Contains(t, a.dev.SetChannels(max+1).Error(), "the device offers")
	assert.Len(t, a.sim.State().RxSQs, max, "a refused request changed the device")
	assert.Equal(t, max, a.dev.Channels())

	// Back down: the disabled pairs' queues go from the device.
	across(t, a, b, func() error { return a.dev.SetChannels(2) })
	assert.Len(t, a.sim.State().RxSQs, 2)
}

// TestSetChannelsBeyondMaxQueues: a Device opened with a lower
// Config.MaxQueues says which knob limits it.
func TestSetChannelsBeyondMaxQueues(t *testing.T) {
	sim, err := enasim.New(enasim.Config{})
	require.NoError(t, err)
	defer sim.Close()
	dev, err := ena.Open(sim, ena.Config{Queues: 1, MaxQueues: 2, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer dev.Close()
	require.Equal(t, 2, dev.MaxChannels())
	err = dev.SetChannels(3)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Config.MaxQueues")
	require.NoError(t, dev.SetChannels(2))
	assert.Len(t, sim.State().RxSQs, 2)
}

// TestAutoRxBufFromMTU: at MTU 9001 the automatic Rx buffer holds a whole
// frame, and the default ring shrinks to keep its memory.
func TestAutoRxBufFromMTU(t *testing.T) {
	sim, err := enasim.New(enasim.Config{})
	require.NoError(t, err)
	defer sim.Close()
	dev, err := ena.Open(sim, ena.Config{Queues: 1, MTU: 9001, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	defer dev.Close()
	r := dev.Rings()
	assert.Equal(t, ena.RxBuf9K, r.RxBufSize)
	assert.True(t, r.RxBufAuto)
	assert.Equal(t, 1024, r.RxDepth)
	assert.Equal(t, 1024, sim.State().RxSQs[0].Depth)
}

// TestMTURepicksAutoRxBuf: with the automatic Rx buffer size, an MTU change
// through the link endpoint (b) or the driver (a) rebuilds the queues with
// the buffer for the new MTU (Rx and Tx), and the default Rx ring with it,
// under a byte-checked transfer; a set size stays as set.
func TestMTURepicksAutoRxBuf(t *testing.T) {
	a, b := pair(t)
	setMTU := func(mtu int) func() error {
		return func() error {
			if err := b.st.Endpoint.SetMTUErr(mtu); err != nil {
				return err
			}
			return a.dev.SetMTU(mtu)
		}
	}
	check := func(s *side, mtu, buf, depth int) {
		t.Helper()
		r := s.dev.Rings()
		assert.Equal(t, buf, r.RxBufSize)
		assert.Equal(t, buf, r.TxBufSize, "the automatic Tx buffer follows the MTU too")
		assert.True(t, r.RxBufAuto)
		assert.Equal(t, depth, r.RxDepth)
		st := s.sim.State()
		assert.Equal(t, mtu, int(st.MTU))
		for _, sq := range st.RxSQs {
			assert.Equal(t, depth, sq.Depth)
			if sq.LastRxBufLen != 0 {
				assert.Equal(t, buf, sq.LastRxBufLen, "the device filled a buffer of the old size")
			}
		}
	}
	check(a, 1500, ena.RxBuf2K, 4096)

	across(t, a, b, setMTU(9001))
	across(t, a, b, func() error { return nil }) // a new connection at the jumbo MTU
	for _, s := range []*side{a, b} {
		check(s, 9001, ena.RxBuf9K, 1024)
	}
	assert.Equal(t, 9001, int(b.st.Endpoint.MTU()))

	across(t, a, b, setMTU(1500))
	across(t, a, b, func() error { return nil })
	for _, s := range []*side{a, b} {
		check(s, 1500, ena.RxBuf2K, 4096)
	}

	// A buffer size the user set does not follow the MTU.
	require.NoError(t, a.dev.SetRxBufSize(ena.RxBuf4K))
	require.NoError(t, a.dev.SetMTU(9001))
	assert.Equal(t, ena.RxBuf4K, a.dev.Rings().RxBufSize)
	assert.False(t, a.dev.Rings().RxBufAuto)
	assert.Equal(t, 9001, int(a.sim.State().MTU))
}
