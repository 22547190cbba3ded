package ena

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/enanet/enanet/ena/spec"
)

// Interrupt moderation (§7.8, §4.8 INTERRUPT_MODERATION), what `ethtool -C`
// sets on Linux. Negotiation: the host-info page advertises the
// interrupt_moderation driver feature (bit 2), the device advertises
// feature INTERRUPT_MODERATION and reports its delay resolution (µs per
// unit, 0 meaning 1), and every unmask write carries the Rx and Tx delays
// in those units with NO_MODERATION_UPDATE clear. The device then holds an
// I/O interrupt until the delay has passed (or enough completions wait).
//
// The adaptive mode follows Linux's net_dim (lib/dim/net_dim.c): every
// dimEvents interrupts it compares the queue's throughput with the previous
// sample and steps through a table of delays, continuing in the direction
// that helped and turning around when it hurt.

// dimRxProfileUsec are the delays of Linux's net_dim Rx profile for
// DIM_CQ_PERIOD_MODE_START_FROM_EQE (rx_profile: 1, 8, 64, 128, 256 µs,
// paired there with 256..16 packets, which the ENA unmask word cannot
// express); dimStartIx is NET_DIM_DEF_PROFILE_EQE.
var dimRxProfileUsec = [...]uint16{1, 8, 64, 128, 256}

const (
	dimStartIx = 1
	// dimEvents is DIM_NEVENTS: one decision every 64 interrupts.
	dimEvents = 64
	// dimIdlePPMS: below one packet per millisecond latency matters more
	// than interrupts, so the shortest delay is used.
	dimIdlePPMS = 1
)

// Coalesce is the interrupt moderation setting (ethtool -c / -C).
type Coalesce struct {
	// RxDelay and TxDelay are static delays, rounded up to the device's
	// resolution. The driver has no Tx interrupt (Tx completions are
	// reclaimed inline), so TxDelay is programmed but wakes nothing.
	RxDelay time.Duration `json:"rx_delay"`
	TxDelay time.Duration `json:"tx_delay"`
	// Adaptive picks the Rx delay per queue from net_dim's profile;
	// RxDelay is then ignored.
	Adaptive bool `json:"adaptive"`
}

// CoalesceInfo is the setting in use and what the device offers.
type CoalesceInfo struct {
	Coalesce
	// Supported is false when the device does not offer moderation or
	// the queues are polled.
	Supported bool `json:"supported"`
	// Resolution is the device's delay unit; MaxDelay the longest delay
	// the 15-bit fields hold.
	Resolution time.Duration `json:"resolution"`
	MaxDelay   time.Duration `json:"max_delay"`
}

// moderation is the negotiated capability (bring-up, under resetMu) and
// the setting (atomics: the Rx goroutines read them at every unmask).
type moderation struct {
	supported  bool
	resolution uint32 // µs per unit, >= 1
	rxUnits    atomic.Uint32
	txUnits    atomic.Uint32
	adaptive   atomic.Bool
	setting    atomic.Pointer[Coalesce]
}

// readModeration asks the device for its delay resolution (§6 step 22).
// A device without the feature, or polled queues, leave moderation off.
func (d *Device) readModeration() error {
	d.mod.supported = false
	if !d.featureSupported(spec.FeatInterruptModeration) {
		return nil
	}
	p, err := d.getFeature("get interrupt moderation", spec.FeatInterruptModeration, 0, nil)
	if err != nil {
		return err
	}
	res := uint32(spec.DecodeInterruptModeration(p).DelayResolution)
	if res == 0 {
		res = 1 // §4.8: 0 is treated as 1
	}
	d.mod.resolution = res
	d.mod.supported = true
	return nil
}

// ErrNoModeration is returned by SetCoalesce when the device does not
// offer interrupt moderation or the I/O queues are polled.
var ErrNoModeration = errors.New("ena: interrupt moderation is unavailable: the device does not offer INTERRUPT_MODERATION or the queues are polled (Config.PollMode)")

// Coalesce returns the interrupt moderation in use.
func (d *Device) Coalesce() CoalesceInfo {
	d.resetMu.Lock()
	defer d.resetMu.Unlock()
	in := CoalesceInfo{Supported: d.mod.supported && d.ioIntr}
	if c := d.mod.setting.Load(); c != nil {
		in.Coalesce = *c
	}
	if in.Supported {
		in.Resolution = time.Duration(d.mod.resolution) * time.Microsecond
		in.MaxDelay = spec.IntrMaxDelay * in.Resolution
	}
	return in
}

// SetCoalesce changes interrupt moderation on the running device; the
// delays reach the device with each queue's next unmask write.
func (d *Device) SetCoalesce(c Coalesce) error {
	if c.RxDelay < 0 || c.TxDelay < 0 {
		return fmt.Errorf("ena: interrupt delays must not be negative (rx %v, tx %v)", c.RxDelay, c.TxDelay)
	}
	d.resetMu.Lock()
	defer d.resetMu.Unlock()
	if !d.mod.supported || !d.ioIntr {
		if c == (Coalesce{}) {
			return nil
		}
		return ErrNoModeration
	}
	rx, err := d.delayUnits("Rx", c.RxDelay)
	if err != nil {
		return err
	}
	tx, err := d.delayUnits("Tx", c.TxDelay)
	if err != nil {
		return err
	}
	d.mod.rxUnits.Store(rx)
	d.mod.txUnits.Store(tx)
	d.mod.adaptive.Store(c.Adaptive)
	d.mod.setting.Store(&c)
	d.log.Info("ena: interrupt moderation changed", "rx_delay", c.RxDelay, "tx_delay", c.TxDelay, "adaptive", c.Adaptive)
	// Waiters re-arm with the new delays at once.
	for _, p := range d.queues {
		p.Wake()
	}
	return nil
}

// delayUnits converts a delay to device units, rounding up; resetMu held.
func (d *Device) delayUnits(what string, t time.Duration) (uint32, error) {
	res := time.Duration(d.mod.resolution) * time.Microsecond
	u := (t + res - 1) / res
	if u > spec.IntrMaxDelay {
		return 0, fmt.Errorf("ena: %s interrupt delay %v exceeds the device maximum %v (15 bits of %v)", what, t, spec.IntrMaxDelay*res, res)
	}
	return uint32(u), nil
}

// unmaskWord is the value that re-arms p's vector (§7.8): with moderation
// the delays travel in every write; without, NO_MODERATION_UPDATE keeps
// the device's (zero) delays. Called with p's Rx lock or resetMu held.
func (p *QueuePair) unmaskWord() uint32 {
	m := &p.d.mod
	if !m.supported {
		return spec.UnmaskWord{Unmask: true, NoModerationUpdate: true}.Encode()
	}
	rx := m.rxUnits.Load()
	if m.adaptive.Load() {
		usec := p.dim.event(p)
		rx = (uint32(usec) + m.resolution - 1) / m.resolution
	}
	return spec.UnmaskWord{Unmask: true, RxDelay: uint16(rx), TxDelay: uint16(m.txUnits.Load())}.Encode()
}

// dimState is one queue's adaptive moderation state, owned by its Rx
// goroutine (under the pair's Rx lock).
type dimState struct {
	ix, dir     int
	events      int
	start       time.Time
	pkts, bytes uint64
	prev        dimRates
	havePrev    bool
}

// dimRates are one sample's rates per millisecond.
type dimRates struct{ ppms, bpms, epms uint64 }

// event records one interrupt re-arm and returns the Rx delay (µs) to
// program; every dimEvents it re-decides (net_dim's net_dim()).
func (s *dimState) event(p *QueuePair) uint16 {
	if s.dir == 0 {
		s.ix, s.dir = dimStartIx, 1
	}
	s.events++
	if s.events < dimEvents && !s.start.IsZero() {
		return dimRxProfileUsec[s.ix]
	}
	now := time.Now()
	st := p.rx.Stats()
	if s.start.IsZero() || st.Packets < s.pkts {
		s.start, s.pkts, s.bytes, s.events, s.havePrev = now, st.Packets, st.Bytes, 0, false
		return dimRxProfileUsec[s.ix]
	}
	ms := uint64(max(now.Sub(s.start).Milliseconds(), 1))
	cur := dimRates{ppms: (st.Packets - s.pkts) / ms, bpms: (st.Bytes - s.bytes) / ms, epms: uint64(s.events) / ms}
	s.start, s.pkts, s.bytes, s.events = now, st.Packets, st.Bytes, 0
	switch {
	case cur.ppms < dimIdlePPMS:
		s.ix, s.dir = 0, 1
	case !s.havePrev:
		s.step()
	default:
		switch dimCompare(cur, s.prev) {
		case 1:
			s.step()
		case -1:
			s.dir = -s.dir
			s.step()
		}
	}
	s.prev, s.havePrev = cur, true
	return dimRxProfileUsec[s.ix]
}

// step moves one profile in the current direction, turning at the ends.
func (s *dimState) step() {
	n := s.ix + s.dir
	if n < 0 || n >= len(dimRxProfileUsec) {
		s.dir = -s.dir
		n = s.ix + s.dir
	}
	s.ix = n
}

// dimCompare is net_dim_stats_compare: more bytes per ms is better; with
// equal bytes, fewer interrupts per ms is better. 1 better, -1 worse, 0
// same. A difference counts when it exceeds 10 % (IS_SIGNIFICANT_DIFF).
func dimCompare(cur, prev dimRates) int {
	if prev.bpms == 0 {
		if cur.bpms != 0 {
			return 1
		}
		return 0
	}
	if significant(cur.bpms, prev.bpms) {
		if cur.bpms > prev.bpms {
			return 1
		}
		return -1
	}
	if significant(cur.ppms, prev.ppms) {
		return 0
	}
	if significant(cur.epms, prev.epms) {
		if cur.epms < prev.epms {
			return 1
		}
		return -1
	}
	return 0
}

func significant(v, ref uint64) bool {
	if ref == 0 {
		return false
	}
	d := v - ref
	if v < ref {
		d = ref - v
	}
	return 100*d/ref > 10
}
