package bench

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkRequestAlternated measures the 1 KiB request cell on warmed
// pairs of `a-gso`, `b-gso` and `b-gso` without the qdisc bypass, built
// once and alternated every run, so that the machine's other load falls
// on all rows alike (enabench measures one row after the other). Each
// iteration is one round: a 0.9 s request run (16 connections, 0.2 s
// warm-up) on every row in turn. It reports, per row, the process CPU per
// request (getrusage over the counted windows, whole process), requests
// per second, and for (b) the link Rx batches per request (wake-ups of
// the Rx goroutines). Before the first round each pair runs what enabench
// runs before its request cells: goodput with one and four streams.
//
//	go test -run '^$' -bench BenchmarkRequestAlternated -benchtime 8x ./bench/
func BenchmarkRequestAlternated(b *testing.B) {
	gso := ENASettings{GSO: true, GRO: true, MTU: 1500}
	ss, err := enaStackSettings(gso)
	if err != nil {
		b.Fatal(err)
	}
	noBypass := gso
	noBypass.NoTxBypass = true
	rows := []struct {
		name string
		make func() (Pair, error)
	}{
		{"a-gso", func() (Pair, error) { return NewChannelPair(ss) }},
		{"b-gso", func() (Pair, error) { return NewENAPair(gso) }},
		{"b-gso-nobypass", func() (Pair, error) { return NewENAPair(noBypass) }},
	}
	type acc struct {
		reqs, batches float64
		cpu, window   time.Duration
	}
	pairs := make([]Pair, len(rows))
	sums := make([]acc, len(rows))
	port := uint16(31000)
	for i, r := range rows {
		p, err := r.make()
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		pairs[i] = p
		for _, streams := range []int{1, 4} {
			port++
			if _, err := Goodput(context.Background(), p, port, GoodputOptions{Streams: streams, Warmup: 200 * time.Millisecond, Duration: 300 * time.Millisecond}); err != nil {
				b.Fatalf("%s: warm-up: %v", r.name, err)
			}
		}
	}
	b.ResetTimer()
	for range b.N {
		for i, p := range pairs {
			port++
			var b0 uint64
			ep, isENA := p.(*enaPair)
			if isENA {
				b0 = ep.RxBatches()
			}
			res, err := RequestRate(context.Background(), p, port, RequestOptions{Conns: 16, Body: 1 << 10, Warmup: 200 * time.Millisecond, Duration: 700 * time.Millisecond})
			if err != nil {
				b.Fatalf("%s: %v", rows[i].name, err)
			}
			s := &sums[i]
			s.reqs += float64(res.N)
			s.cpu += res.CPUPerReq * time.Duration(res.N)
			s.window += time.Duration(float64(res.N) / res.RPS * float64(time.Second))
			if isENA {
				// Batches span warm-up and window; scale by the requests
				// of both (the same rate).
				s.batches += float64(ep.RxBatches()-b0) * 0.7 / 0.9
			}
		}
	}
	b.StopTimer()
	for i, r := range rows {
		s := sums[i]
		if s.reqs == 0 {
			continue
		}
		b.ReportMetric(float64(s.cpu.Microseconds())/s.reqs, fmt.Sprintf("cpu-us/req(%s)", r.name))
		b.ReportMetric(s.reqs/s.window.Seconds(), fmt.Sprintf("req/s(%s)", r.name))
		if s.batches > 0 {
			b.ReportMetric(s.batches/s.reqs, fmt.Sprintf("rx-batches/req(%s)", r.name))
		}
	}
}
