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
// The adaptive mode follows Linux's net_dim (lib/dim/net_dim.c): after
// each sample (dimEvents interrupts, at least dimMinWindow) it compares
// the queue's bytes, packets and interrupts per second with the previous
// sample and steps through a table of delays, continuing in the direction
// that helped, turning around when it did not, and parking on the best
// profile until the load changes.

// dimRxProfileUsec are the delays of Linux's net_dim Rx profile for
// DIM_CQ_PERIOD_MODE_START_FROM_EQE (rx_profile: 1, 8, 64, 128, 256 µs,
// paired there with 256..16 packets, which the ENA unmask word cannot
// express); dimStartIx is NET_DIM_DEF_PROFILE_EQE.
var dimRxProfileUsec = [...]uint16{1, 8, 64, 128, 256}

const (
	dimStartIx = 1
	// dimEvents is DIM_NEVENTS: a sample spans at least 64 interrupts.
	dimEvents = 64
	// dimMinWindow is the shortest sample. net_dim has none: a kernel
	// queue under load takes 64 interrupts in a few ms of steady NAPI
	// polling. Ours take 64 in 15..80 ms of goroutine scheduling, and on a
	// shared machine the bytes of one such window vary by more than the
	// 10 % net_dim treats as a real change (measured: ±15 %), so the
	// tuner walked at random; 100 ms windows average that out.
	dimMinWindow = 100 * time.Millisecond
	// dimTiredSteps is net_dim's NET_DIM_PARAMS_NUM_PROFILES * 2: the
	// steps a search may take before it rests, and how many samples it
	// rests.
	dimTiredSteps = 2 * len(dimRxProfileUsec)
	// dimIdlePPS: below a thousand packets per second latency matters
	// more than interrupts, so the shortest delay is used.
	dimIdlePPS = 1000
	// dimSignificant is IS_SIGNIFICANT_DIFF's 10 %.
	dimSignificant = 10
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
// goroutine (under the pair's Rx lock). The tuning fields are net_dim's
// struct dim.
type dimState struct {
	init                  bool
	ix                    int // index into dimRxProfileUsec
	tune                  dimTune
	stepsLeft, stepsRight int
	tired                 int
	prev                  dimRates

	// The sample in progress (net_dim's start_sample).
	events      int
	start       time.Time
	pkts, bytes uint64
}

// dimTune is net_dim's enum dim_tune_state.
type dimTune int

const (
	dimParkingOnTop dimTune = iota
	dimParkingTired
	dimGoingRight
	dimGoingLeft
)

// dimRates are one sample's rates: packets and bytes per second, bytes per
// interrupt. net_dim keeps rates per millisecond, which at the 1..5
// interrupts per ms our queues see rounds its tie-breaker (interrupts per
// ms) to 1 or 2, so it never differed by a tenth and never favoured longer
// delays.
type dimRates struct{ pps, bps, bpe uint64 }

// event records one interrupt re-arm and returns the Rx delay (µs) to
// program. A sample ends after dimEvents interrupts (net_dim's
// DIM_NEVENTS) and at least dimMinWindow; then decide moves through the
// profile.
func (s *dimState) event(p *QueuePair) uint16 {
	if !s.init {
		*s = dimState{init: true, ix: dimStartIx, tune: dimGoingRight}
	}
	s.events++
	if s.events < dimEvents && !s.start.IsZero() {
		return dimRxProfileUsec[s.ix]
	}
	now := time.Now()
	elapsed := now.Sub(s.start)
	if !s.start.IsZero() && elapsed < dimMinWindow {
		return dimRxProfileUsec[s.ix]
	}
	st := p.rx.Stats()
	if s.start.IsZero() || st.Packets < s.pkts { // first sample, or new rings
		s.start, s.pkts, s.bytes, s.events = now, st.Packets, st.Bytes, 0
		return dimRxProfileUsec[s.ix]
	}
	us := uint64(max(elapsed.Microseconds(), 1))
	cur := dimRates{
		pps: (st.Packets - s.pkts) * 1e6 / us,
		bps: (st.Bytes - s.bytes) * 1e6 / us,
		bpe: (st.Bytes - s.bytes) / uint64(max(s.events, 1)),
	}
	s.start, s.pkts, s.bytes, s.events = now, st.Packets, st.Bytes, 0
	s.decide(cur)
	return dimRxProfileUsec[s.ix]
}

// decide is net_dim_decision: while going left or right, keep going as
// long as the sample is better than the last one and turn around
// otherwise; park where a turn follows a single step back (the best
// profile) or at an edge, and leave the parking place when the load
// changes. Below dimIdlePPS the shortest delay is used.
func (s *dimState) decide(cur dimRates) {
	if cur.pps < dimIdlePPS {
		s.ix, s.tune, s.stepsLeft, s.stepsRight, s.tired, s.prev = 0, dimGoingRight, 0, 0, 0, dimRates{}
		return
	}
	prevTune := s.tune
	switch s.tune {
	case dimParkingOnTop:
		if dimCompare(cur, s.prev) != 0 {
			s.parkTired()
		}
	case dimParkingTired:
		s.tired--
		if s.tired <= 0 {
			s.exitParking()
		}
	default:
		if dimCompare(cur, s.prev) != 1 {
			s.turn()
		}
		if s.onTop() {
			s.parkOnTop()
			break
		}
		switch s.step() {
		case dimOnEdge:
			s.parkOnTop()
		case dimTooTired:
			s.parkTired()
		}
	}
	if prevTune != dimParkingOnTop || s.tune != dimParkingOnTop {
		s.prev = cur
	}
}

// net_dim_step results.
const (
	dimStepped = iota
	dimTooTired
	dimOnEdge
)

// step is net_dim_step: one profile in the current direction.
func (s *dimState) step() int {
	if s.tired >= dimTiredSteps {
		return dimTooTired
	}
	switch s.tune {
	case dimGoingRight:
		if s.ix == len(dimRxProfileUsec)-1 {
			return dimOnEdge
		}
		s.ix++
		s.stepsRight++
	case dimGoingLeft:
		if s.ix == 0 {
			return dimOnEdge
		}
		s.ix--
		s.stepsLeft++
	}
	s.tired++
	return dimStepped
}

// onTop is dim_on_top: a turn right after a single step back means the
// profile in between was the best.
func (s *dimState) onTop() bool {
	switch s.tune {
	case dimGoingRight:
		return s.stepsLeft > 1 && s.stepsRight == 1
	case dimGoingLeft:
		return s.stepsRight > 1 && s.stepsLeft == 1
	}
	return true
}

// turn is dim_turn.
func (s *dimState) turn() {
	switch s.tune {
	case dimGoingRight:
		s.tune, s.stepsLeft = dimGoingLeft, 0
	case dimGoingLeft:
		s.tune, s.stepsRight = dimGoingRight, 0
	}
}

// parkOnTop is dim_park_on_top.
func (s *dimState) parkOnTop() {
	s.stepsLeft, s.stepsRight, s.tired, s.tune = 0, 0, 0, dimParkingOnTop
}

// parkTired is dim_park_tired, resting dimTiredSteps samples. (net_dim
// rests for the steps it took; parked on top it has taken none and its u8
// counter wraps to 255 samples.)
func (s *dimState) parkTired() {
	s.stepsLeft, s.stepsRight, s.tired, s.tune = 0, 0, dimTiredSteps, dimParkingTired
}

// exitParking is dim_exit_parking: try the shorter delays first.
func (s *dimState) exitParking() {
	s.tune = dimGoingRight
	if s.ix > 0 {
		s.tune = dimGoingLeft
	}
	s.tired = 0
	s.step()
}

// dimCompare is net_dim_stats_compare (more bytes per second is better;
// with equal bytes, more packets) with one change: the tie-breaker is
// bytes per interrupt (more is better) instead of interrupts per second.
// Moderation changes that ratio directly, while the load of other
// processes on a shared machine moves bytes and interrupts per second
// alike (by ±15..25 % between windows with the setting unchanged). A
// difference counts when it exceeds 10 % (IS_SIGNIFICANT_DIFF). (A 25 %
// threshold for the rates, tried against that noise, let the tuner climb
// to 256 µs, where enamod's goodput fell by a third: a step that costs
// 20 % must count.)
//
// 1 better, -1 worse, 0 same.
func dimCompare(cur, prev dimRates) int {
	better := func(b bool) int {
		if b {
			return 1
		}
		return -1
	}
	switch {
	case prev.bps == 0:
		if cur.bps != 0 {
			return 1
		}
		return 0
	case differs(cur.bps, prev.bps, dimSignificant):
		return better(cur.bps > prev.bps)
	case prev.pps == 0:
		if cur.pps != 0 {
			return 1
		}
		return 0
	case differs(cur.pps, prev.pps, dimSignificant):
		return better(cur.pps > prev.pps)
	case prev.bpe == 0:
		return 0
	case differs(cur.bpe, prev.bpe, dimSignificant):
		return better(cur.bpe > prev.bpe)
	}
	return 0
}

// differs is IS_SIGNIFICANT_DIFF with the threshold in percent.
func differs(v, ref, pct uint64) bool {
	if ref == 0 {
		return false
	}
	d := v - ref
	if v < ref {
		d = ref - v
	}
	return 100*d/ref > pct
}
