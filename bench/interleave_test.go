package bench

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestInterleavedJumbo is an opt-in measurement, not a check: it builds
// a-gso and b-gso pairs at MTU 9001 once and alternates short goodput
// windows over them (the order rotating every round), so every variant
// sees the same load on a shared machine. Per window it prints goodput,
// the process's CPU per GB with the model's and enanet's parts, and the
// Rx overruns of the (b) devices; then the medians.
//
//	ENABENCH_INTERLEAVE=10 ENABENCH_STREAMS=4 \
//	ENABENCH_VARIANTS=tx2k:1024:2048,auto:1024:0 go test -run Interleaved -v ./bench/
//
// A variant is name:rxDepth:txBufSize (0 = the driver's automatic choice).
func TestInterleavedJumbo(t *testing.T) {
	rounds, _ := strconv.Atoi(os.Getenv("ENABENCH_INTERLEAVE"))
	if rounds <= 0 {
		t.Skip("opt-in measurement: set ENABENCH_INTERLEAVE to the number of rounds")
	}
	streams, _ := strconv.Atoi(os.Getenv("ENABENCH_STREAMS"))
	streams = max(streams, 1)
	const mtu = 9001
	type variant struct {
		name string
		mk   func() (Pair, error)
	}
	vs := []variant{{"a-gso", func() (Pair, error) {
		ss, err := enaStackSettings(ENASettings{GSO: true, GRO: true, MTU: mtu})
		if err != nil {
			return nil, err
		}
		return NewChannelPair(ss)
	}}}
	specs := cmp.Or(os.Getenv("ENABENCH_VARIANTS"), "b-gso:0:0")
	for _, spec := range strings.Split(specs, ",") {
		f := strings.Split(spec, ":")
		if len(f) != 3 {
			t.Fatalf("variant %q: want name:rxDepth:txBufSize", spec)
		}
		depth, err1 := strconv.Atoi(f[1])
		txBuf, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			t.Fatalf("variant %q: want name:rxDepth:txBufSize", spec)
		}
		s := ENASettings{GSO: true, GRO: true, MTU: mtu, RxDepth: depth, TxBufSize: txBuf}
		vs = append(vs, variant{f[0], func() (Pair, error) { return NewENAPair(s) }})
	}
	pairs := make([]Pair, len(vs))
	for i, v := range vs {
		p, err := v.mk()
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		pairs[i] = p
		t.Cleanup(func() { _ = p.Close() })
	}
	overruns := func(p Pair) uint64 {
		if o, ok := p.(interface{ RxOverruns() uint64 }); ok {
			return o.RxOverruns()
		}
		return 0
	}
	type series struct{ gbps, cpu, sim, enanet, over []float64 }
	res := make([]series, len(vs))
	opts := GoodputOptions{Streams: streams, Warmup: 300 * time.Millisecond, Duration: time.Second}
	for r := range rounds {
		for k := range vs {
			i := (k + r) % len(vs)
			o0 := overruns(pairs[i])
			bps, a, err := GoodputAttributed(context.Background(), pairs[i], uint16(7000+r*len(vs)+i), opts)
			if err != nil {
				t.Fatalf("%s: %v", vs[i].name, err)
			}
			gb := a.Bytes / 1e9
			over := overruns(pairs[i]) - o0
			s := &res[i]
			s.gbps = append(s.gbps, bps/1e9)
			s.cpu = append(s.cpu, a.Total()/gb)
			s.sim = append(s.sim, a.PerGB(CatSim))
			s.enanet = append(s.enanet, a.PerGB(CatENANet))
			s.over = append(s.over, float64(over))
			fmt.Printf("round %d %-8s %5.2f Gbit/s  CPU %.2f s/GB (enasim %.2f, enanet %.2f)  overruns %d  load %s\n",
				r, vs[i].name, bps/1e9, a.Total()/gb, a.PerGB(CatSim), a.PerGB(CatENANet), over, loadavg())
		}
	}
	for i, v := range vs {
		s := res[i]
		fmt.Printf("median %-8s %5.2f Gbit/s  CPU %.2f s/GB (enasim %.2f, enanet %.2f)  overruns %.0f\n",
			v.name, median(s.gbps), median(s.cpu), median(s.sim), median(s.enanet), median(s.over))
	}
}
