package enasim

import "time"

// EC2 per-ENI allowances (part of a Profile): every instance type
// has a packets-per-second and a bandwidth allowance. Traffic above them is
// shaped; what does not fit is dropped and counted in the ENI counters that
// GET_STATS ENI reports (§4.7: bw_in_allowance_exceeded,
// bw_out_allowance_exceeded, pps_allowance_exceeded). The guest sees no
// error: a dropped Tx packet is still completed, a dropped Rx frame never
// arrives.
//
// The model enforces each allowance with a token bucket per direction,
// refilled at the allowance rate and holding at most allowanceBurst worth of
// tokens, so short bursts pass (as they do on EC2) and sustained excess is
// dropped.

// allowanceBurst is how much traffic a full bucket lets through at line
// rate: 10 ms of the allowance.
const allowanceBurst = 10 * time.Millisecond

// minBurstPackets keeps tiny test allowances usable: a bucket always holds
// at least this many packets' worth.
const minBurstPackets = 8

// tokenBucket is one allowance in one direction. Tokens are packets (pps)
// or bits (bandwidth). The zero value with rate 0 means unlimited.
type tokenBucket struct {
	rate   float64 // tokens per second; 0 = unlimited
	burst  float64 // capacity
	tokens float64
	last   int64 // time of the last refill, ns (allowances.clock)
}

// init sets the rate and capacity and fills the bucket.
func (b *tokenBucket) init(rate uint64, minBurst float64, now int64) {
	b.rate = float64(rate)
	b.burst = max(b.rate*allowanceBurst.Seconds(), minBurst)
	b.tokens = b.burst
	b.last = now
}

// take removes n tokens if available and reports whether it did.
func (b *tokenBucket) take(now int64, n float64) bool {
	if b.rate == 0 {
		return true
	}
	if dt := now - b.last; dt > 0 {
		b.tokens = min(b.burst, b.tokens+b.rate*float64(dt)/1e9)
		b.last = now
	}
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// allowances are the ENI's buckets. They survive device resets: the
// allowance belongs to the ENI, not to the device's queue state.
type allowances struct {
	ready         bool
	ppsIn, ppsOut tokenBucket
	bwIn, bwOut   tokenBucket
	// clock returns the current time in ns; tests replace it to make
	// shaping deterministic. nil = the monotonic wall clock.
	clock func() int64
	epoch time.Time
}

// now returns the allowance clock, initialising the buckets from the
// profile on first use.
func (m *Model) allowanceNow() int64 {
	a := &m.io.allow
	var now int64
	if a.clock != nil {
		now = a.clock()
	} else {
		if a.epoch.IsZero() {
			a.epoch = time.Now()
		}
		now = int64(time.Since(a.epoch))
	}
	if !a.ready {
		a.ready = true
		p := m.prof
		a.ppsIn.init(p.PPSAllowance, minBurstPackets, now)
		a.ppsOut.init(p.PPSAllowance, minBurstPackets, now)
		// Bandwidth in bits; a minimum burst of 8 jumbo frames.
		bwMin := float64(minBurstPackets * (p.MaxMTU + ethHeaderLen) * 8)
		a.bwIn.init(p.BandwidthAllowance, bwMin, now)
		a.bwOut.init(p.BandwidthAllowance, bwMin, now)
	}
	return now
}

// allowTx charges one outgoing frame of n bytes to the ENI allowances and
// reports whether it may leave; a refused frame is counted in the matching
// ENI counter (PPS is checked first, as the packet rate is the usual limit
// for small frames).
func (m *Model) allowTx(n int) bool {
	now := m.allowanceNow()
	a := &m.io.allow
	if !a.ppsOut.take(now, 1) {
		m.stats.pps++
		return false
	}
	if !a.bwOut.take(now, float64(n*8)) {
		m.stats.bwOut++
		return false
	}
	return true
}

// allowRx charges one incoming frame of n bytes; see allowTx.
func (m *Model) allowRx(n int) bool {
	now := m.allowanceNow()
	a := &m.io.allow
	if !a.ppsIn.take(now, 1) {
		m.stats.pps++
		return false
	}
	if !a.bwIn.take(now, float64(n*8)) {
		m.stats.bwIn++
		return false
	}
	return true
}

// SetAllowanceClock replaces the clock the allowance token buckets use
// (nanoseconds, monotonic) and refills the buckets from the profile; nil
// restores the wall clock. Tests use it to make shaping deterministic.
func (m *Model) SetAllowanceClock(clock func() int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.io.allow.clock = clock
	m.io.allow.ready = false
	m.io.allow.epoch = time.Time{}
}
