package bench

import (
	"fmt"
	"time"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/ena/spec"
)

// Lifecycle holds bring-up and reset-recovery times on enasim.
type Lifecycle struct {
	Open  []time.Duration // ena.Open on a fresh enasim device: full init, queues, Rx posted
	Reset []time.Duration // ena.Device.Reset(user trigger): reset, re-init, queues rebuilt
	Err   string
}

// MeasureLifecycle opens n fresh enasim devices with the driver's defaults,
// timing ena.Open, then times one user-triggered Reset on each.
func MeasureLifecycle(n int) Lifecycle {
	var l Lifecycle
	for i := 0; i < n; i++ {
		sim, err := enasim.New(enasim.Config{Logger: quiet})
		if err != nil {
			l.Err = fmt.Sprintf("creating the enasim device: %v", err)
			return l
		}
		t0 := time.Now()
		dev, err := ena.Open(sim, ena.Config{Logger: quiet})
		if err != nil {
			sim.Close()
			l.Err = fmt.Sprintf("ena.Open: %v", err)
			return l
		}
		l.Open = append(l.Open, time.Since(t0))
		t1 := time.Now()
		err = dev.Reset(spec.ResetUserTrigger)
		d := time.Since(t1)
		dev.Close()
		sim.Close()
		if err != nil {
			l.Err = fmt.Sprintf("ena.Device.Reset: %v", err)
			return l
		}
		l.Reset = append(l.Reset, d)
	}
	return l
}

// medianDur is the median of ds (0 for none).
func medianDur(ds []time.Duration) time.Duration {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = float64(d)
	}
	return time.Duration(median(xs))
}

// maxDur is the largest of ds.
func maxDur(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}
