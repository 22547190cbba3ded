package ena

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
)

// runDim feeds n samples from load (the rates a queue shows at a profile
// index) to a fresh tuner and returns the indexes it chose after each.
func runDim(n int, load func(ix int) dimRates) []int {
	s := dimState{init: true, ix: dimStartIx, tune: dimGoingRight}
	var ixs []int
	for range n {
		s.decide(load(s.ix))
		ixs = append(ixs, s.ix)
	}
	return ixs
}

// share is the fraction of samples after the first skip spent at ix >= min.
func share(ixs []int, skip, min int) float64 {
	n := 0
	for _, ix := range ixs[skip:] {
		if ix >= min {
			n++
		}
	}
	return float64(n) / float64(len(ixs)-skip)
}

// bulk is a CPU-bound transfer: throughput does not depend on the delay
// (apart from noise), bytes per interrupt grow with it.
func bulk(noise float64, r *rand.Rand) func(int) dimRates {
	return func(ix int) dimRates {
		f := 1 + noise*(2*r.Float64()-1)
		bps := uint64(200e6 * f)
		return dimRates{pps: bps / 1450, bps: bps, bpe: uint64(20e3 * float64(1+int(dimRxProfileUsec[ix])/8))}
	}
}

func TestDimBulkParksOnLongDelays(t *testing.T) {
	ixs := runDim(100, bulk(0, rand.New(rand.NewPCG(1, 1))))
	assert.Equal(t, len(dimRxProfileUsec)-1, ixs[len(ixs)-1], "steady bulk load: the longest delay (%v)", ixs)
	assert.GreaterOrEqual(t, share(ixs, 10, 3), 0.8, "profiles chosen: %v", ixs)
}

// TestDimBulkWithNoise: ±20 % throughput noise from other processes, which
// net_dim's 10 % threshold took for the effect of each step.
func TestDimBulkWithNoise(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	ixs := runDim(300, bulk(0.2, r))
	assert.GreaterOrEqual(t, share(ixs, 20, 3), 0.7, "profiles chosen: %v", ixs)
}

// TestDimLatencyBound: request/response, where every µs of delay costs
// throughput and an interrupt carries one packet whatever the delay.
func TestDimLatencyBound(t *testing.T) {
	ixs := runDim(200, func(ix int) dimRates {
		rtt := 30.0 + float64(dimRxProfileUsec[ix]) // µs
		pps := uint64(1e6 / rtt)
		return dimRates{pps: pps, bps: pps * 100, bpe: 100}
	})
	assert.GreaterOrEqual(t, 1-share(ixs, 20, 2), 0.8, "latency-bound load must keep short delays: %v", ixs)
}

func TestDimIdleUsesShortestDelay(t *testing.T) {
	ixs := runDim(20, func(int) dimRates { return dimRates{pps: 100, bps: 10000, bpe: 100} })
	for _, ix := range ixs {
		assert.Equal(t, 0, ix)
	}
}

func TestDimCompare(t *testing.T) {
	base := dimRates{pps: 1000, bps: 1e6, bpe: 1000}
	assert.Equal(t, 1, dimCompare(base, dimRates{}), "anything beats nothing")
	assert.Equal(t, 0, dimCompare(base, base))
	assert.Equal(t, 0, dimCompare(dimRates{pps: 1050, bps: 1.05e6, bpe: 1050}, base), "5 %% is the same")
	assert.Equal(t, -1, dimCompare(dimRates{pps: 800, bps: 0.8e6, bpe: 1500}, base), "a step that costs 20 %% is worse")
	assert.Equal(t, -1, dimCompare(dimRates{pps: 600, bps: 0.6e6, bpe: 1000}, base))
	assert.Equal(t, 1, dimCompare(dimRates{pps: 1000, bps: 1e6, bpe: 1200}, base), "more bytes per interrupt")
	assert.Equal(t, -1, dimCompare(dimRates{pps: 1000, bps: 1e6, bpe: 800}, base))
}
