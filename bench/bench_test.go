package bench

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enanet/enanet/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// smoke runs one tiny goodput and one tiny ping-pong over p.
func smoke(t *testing.T, p Pair) {
	t.Helper()
	ctx := context.Background()
	bps, err := Goodput(ctx, p, 7001, GoodputOptions{Streams: 2, Warmup: 50 * time.Millisecond, Duration: 200 * time.Millisecond})
	if err != nil || bps <= 0 {
		t.Fatalf("Goodput = %v, %v; want > 0", bps, err)
	}
	rt, err := RTT(ctx, p, 7002, 64, 150*time.Millisecond)
	if err != nil || rt.N == 0 || rt.P50 <= 0 || rt.P99 < rt.P50 {
		t.Fatalf("RTT = %+v, %v; want samples with 0 < p50 <= p99", rt, err)
	}
	t.Logf("goodput %.2f Gbit/s, rtt p50 %v p99 %v (%d samples)", bps/1e9, rt.P50, rt.P99, rt.N)
}

func TestChannelPair(t *testing.T) {
	for _, s := range []StackSettings{{MTU: 1500}, {MTU: 9001, GSO: true, GRO: true, TxCsum: true, RxCsum: true}} {
		p, err := NewChannelPair(s)
		if err != nil {
			t.Fatal(err)
		}
		smoke(t, p)
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestENAPair(t *testing.T) {
	p, err := NewENAPair(ENASettings{GSO: true, GRO: true, MTU: 1500})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	smoke(t, p)
}

// TestSameStackSettings: the (a) rows copy what (b)'s endpoint advertises.
func TestSameStackSettings(t *testing.T) {
	s, err := enaStackSettings(ENASettings{GSO: true, GRO: true, MTU: 9001})
	if err != nil {
		t.Fatal(err)
	}
	if !s.GSO || !s.GRO || !s.RxCsum || s.MTU != 9001 {
		t.Fatalf("enaStackSettings = %+v; want GSO, GRO, Rx offload and MTU 9001", s)
	}
}

// TestVethPairs needs root: the kernel and fdbased rows, and that their
// namespaces are gone afterwards.
func TestVethPairs(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "ip", "apt-get install iproute2")
	defer Cleanup()
	for name, mk := range map[string]func() (Pair, error){
		"kernel":    func() (Pair, error) { return NewKernelPair(1500) },
		"c-hostgso": func() (Pair, error) { return NewFDBasedPair(FDSettings{MTU: 1500, HostGSO: true}) },
	} {
		t.Run(name, func(t *testing.T) {
			p, err := mk()
			if err != nil {
				t.Fatal(err)
			}
			smoke(t, p)
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	if strings.Contains(string(out), "enabench-") {
		t.Fatalf("namespaces left behind:\n%s", out)
	}
}

const benchOut = `goos: linux
BenchmarkLoopback/host/64B/batch32-2         	 1598281	       230.2 ns/op	       224.4 cpu-ns/pkt	       107.7 drv-ns/pkt	       230.2 ns/pkt	   4344163 pkts/s	       0 B/op	       0 allocs/op
BenchmarkLoopback/host/64B/batch32-2         	 1598281	       210.2 ns/op	       224.4 cpu-ns/pkt	       100.1 drv-ns/pkt	       210.2 ns/pkt	   4757373 pkts/s	       0 B/op	       0 allocs/op
BenchmarkLoopback/host/64B/batch32-2         	 1598281	       250.2 ns/op	       224.4 cpu-ns/pkt	       120.0 drv-ns/pkt	       250.2 ns/pkt	   3996803 pkts/s	       0 B/op	       0 allocs/op
BenchmarkLoopback/llq128/1514B/batch32-2     	  467342	       890.8 ns/op	       436.2 cpu-ns/pkt	       359.5 drv-ns/pkt	       890.7 ns/pkt	   1122701 pkts/s	      16 B/op	       1 allocs/op
BenchmarkLoopback/llq128/1514B/batch8-2     	  467342	       890.8 ns/op
PASS
`

func TestParseDriverBench(t *testing.T) {
	res := parseDriverBench([]byte(benchOut))
	if len(res) != 2 {
		t.Fatalf("parsed %d results, want 2: %+v", len(res), res)
	}
	h := res[0]
	if h.Mode != "host" || h.Size != 64 || h.DrvNsPkt != 107.7 || h.NsPerPkt != 230.2 || h.PktsPerSec != 4344163 || h.AllocsPkt != 0 {
		t.Errorf("host 64B = %+v; want the medians of the three runs", h)
	}
	if l := res[1]; l.Mode != "llq128" || l.Size != 1514 || l.AllocsPkt != 1 || l.BytesPkt != 16 {
		t.Errorf("llq128 1514B = %+v", l)
	}
	if parseDriverBench([]byte("PASS\n")) != nil {
		t.Error("results from output without benchmarks")
	}
}

// fakeResults is a full table with one row that could not run.
func fakeResults() *Results {
	cfg := Config{}
	cfg.defaults()
	r := &Results{Config: cfg, Machine: Machine{CPU: "test CPU", Cores: 2, Kernel: "6.1", GoVersion: "go1.26", Commit: "abc", Date: time.Unix(0, 0).UTC()}}
	for i, l := range Links() {
		lr := LinkResult{Link: l, Goodput: map[GoodputKey]Cell{}}
		if l.ID == "kernel" {
			lr.Skipped = "not measured: needs root"
		} else {
			for _, mtu := range cfg.MTUs {
				for _, s := range cfg.Streams {
					lr.Goodput[GoodputKey{mtu, s}] = Cell{Value: float64(i+1) * float64(mtu) * float64(s) * 1e5}
				}
			}
			if l.Group == "b" {
				lr.Attr = map[GoodputKey]Attribution{
					{1500, 1}: {CPU: [numCats]float64{1, 0.5, 2, 0.4, 0.1}, Samples: 400, Bytes: 1e9, Packets: 1e6},
					{9001, 1}: {Err: "not measured: CPU profile: cpu profiling already in use"},
				}
			}
			lr.Requests = map[int]RequestCell{1024: {RPS: float64(1000 * (i + 1)), P50: time.Duration(i+1) * time.Millisecond, P99: time.Duration(i+1) * 4 * time.Millisecond,
				CPUPerReq: time.Duration(i+1) * 50 * time.Microsecond},
				65536: {Err: "not measured: bench: GET failed"}}
			lr.RTTP50 = Cell{Value: float64(i+1) * 10e-6}
			lr.RTTP99 = Cell{Value: float64(i+1) * 40e-6}
		}
		r.Links = append(r.Links, lr)
	}
	r.Driver = DriverBench{Results: parseDriverBench([]byte(benchOut)), Command: "go test ..."}
	r.Demo = &LinkResult{Link: DemoLink, Requests: map[int]RequestCell{1024: {RPS: 500, P50: 8 * time.Millisecond, P99: 20 * time.Millisecond, CPUPerReq: 300 * time.Microsecond}}}
	r.Lifecycle = Lifecycle{Open: []time.Duration{time.Millisecond}, Reset: []time.Duration{2 * time.Millisecond}}
	return r
}

func TestWriters(t *testing.T) {
	r := fakeResults()
	var img bytes.Buffer
	if err := r.WritePlot(&img); err != nil {
		t.Fatal(err)
	}
	pic, err := png.Decode(&img)
	if err != nil {
		t.Fatalf("plot is not a PNG: %v", err)
	}
	if b := pic.Bounds(); b.Dx() < 600 || b.Dy() < 300 {
		t.Errorf("plot is %v, too small to read", b)
	}

	md := r.Markdown("enabench.png")
	for _, want := range []string{"| `b-gso` |", "| CPU | test CPU |", "`kernel`: not measured: needs root",
		"| (b-gso)/(a-gso) | 2.00 |", "llq128 | 1514 B", "MISSED", "![goodput and RTT](enabench.png)",
		"| `b-gso` | 1500 | 1 | 400 | 1.00 | 0.50 | 2.00 | 0.40 | 0.10 | 4.00 |", "| `b-gso` | 1500 | 1 | 500 | 512 | 12 % |",
		"`b-gso` MTU 9001 ×1: not measured: CPU profile: cpu profiling already in use", "enanet's own share of CPU in b-gso, MTU 1500 ×1: 12.5 %",
		"| `b-gso` | 4000 | 4000 | 16000 | 200 | — | — | — | — |", "| `demo` | 500 | 8000 | 20000 | 300 | — | — | — | — |",
		"| (b-gso)/(a-gso) | 2.00 | 2.00 | 2.00 | 2.00 | — | — | — | — | 1 KiB req/s >= 0.80 |", "`b-gso` 64 KiB: not measured: bench: GET failed",
		"request rate (b-gso)/(a-gso), 1 KiB bodies: 2.00 (target >= 0.80: met)"} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	path := filepath.Join(t.TempDir(), "README.md")
	hand := "# title\n\nhow to run\n\n" + BeginMarker + "\nold\n" + EndMarker + "\n\n## What limits (b)\nanalysis\n"
	if err := os.WriteFile(path, []byte(hand), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := UpdateREADME(path, md); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if s := string(got); !strings.HasPrefix(s, "# title\n\nhow to run\n\n"+BeginMarker) ||
		!strings.HasSuffix(s, EndMarker+"\n\n## What limits (b)\nanalysis\n") || strings.Contains(s, "\nold\n") || !strings.Contains(s, md) {
		t.Errorf("UpdateREADME did not replace only the generated section:\n%s", s)
	}
}

func TestMedianQuantile(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
	s := make([]time.Duration, 100)
	for i := range s {
		s[i] = time.Duration(i + 1)
	}
	if q := quantile(s, 0.5); q != 50 {
		t.Errorf("p50 = %v", q)
	}
	if q := quantile(s, 0.99); q != 99 {
		t.Errorf("p99 = %v", q)
	}
}

// failingDial is a pair whose client side cannot connect.
type failingDial struct{ Pair }

func (failingDial) Dial(context.Context, uint16) (net.Conn, error) {
	return nil, errors.New("refused")
}

// TestGoodputDialFailure: a failed dial ends the run with an error and
// leaves no goroutine blocked in Accept.
func TestGoodputDialFailure(t *testing.T) {
	p, err := NewChannelPair(StackSettings{MTU: 1500})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	done := make(chan error, 1)
	go func() {
		_, err := Goodput(context.Background(), failingDial{p}, 7003, GoodputOptions{Streams: 1, Duration: time.Millisecond})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Goodput succeeded without a connection")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Goodput hung after a failed dial")
	}
	if _, err := RTT(context.Background(), failingDial{p}, 7004, 64, time.Millisecond); err == nil {
		t.Fatal("RTT succeeded without a connection")
	}
}

// TestAttribution is the quick mode of the attribution: one short profiled
// goodput run over (b); every category is accounted for, and the model,
// enanet and gVisor each show up.
func TestAttribution(t *testing.T) {
	p, err := NewENAPair(ENASettings{GSO: true, GRO: true, MTU: 1500})
	require.NoError(t, err)
	defer p.Close()
	// A loaded machine may give the process few profile ticks in one short
	// window: accumulate up to five windows.
	var a Attribution
	var bps float64
	for run := 0; run < 5 && (a.Samples < 10 || a.CPU[CatSim]+a.CPU[CatENANet]+a.CPU[CatGVisor] == 0); run++ {
		var r Attribution
		bps, r, err = GoodputAttributed(context.Background(), p, uint16(7005+run), GoodputOptions{Streams: 1, Warmup: 50 * time.Millisecond, Duration: 400 * time.Millisecond})
		require.NoError(t, err)
		require.Empty(t, r.Err)
		require.Positive(t, bps)
		a.add(r)
	}
	require.Positive(t, a.Packets, "no wire frames counted")
	require.Positive(t, a.Bytes)
	require.Positive(t, a.Samples, "no profile samples")
	assert.InDelta(t, a.Total(), a.CPU[CatSim]+a.CPU[CatENANet]+a.CPU[CatGVisor]+a.CPU[CatRuntime]+a.CPU[CatOther], 1e-9)
	assert.Positive(t, a.CPU[CatSim]+a.CPU[CatENANet]+a.CPU[CatGVisor], "no CPU attributed to the model, enanet or gVisor")
	t.Logf("%d samples, %.0f frames; %s", a.Samples, a.Packets, a.summary())
}

func TestClassify(t *testing.T) {
	st := func(fns ...string) profSample { return profSample{Count: 1, Stack: fns} }
	const m = "github.com/enanet/enanet/"
	for _, tc := range []struct {
		s    profSample
		want Category
	}{
		{st("runtime.memmove", m+"ena/enasim.(*Model).rxDeliver", m+"ena/enasim.(*Model).RegWrite", m+"rings.(*TxQueue).Flush", "gvisor.dev/gvisor/pkg/tcpip/transport/tcp.(*sender).sendData"), CatSim},
		{st("gvisor.dev/gvisor/pkg/tcpip/checksum.Checksum", m+"ena/enasim.(*Model).txFrame"), CatSim},
		{st("runtime.memmove", m+"rings.gather", m+"link.(*Endpoint).WritePackets", "gvisor.dev/gvisor/pkg/tcpip/stack.(*nic).writePackets"), CatENANet},
		{st("runtime.memmove", "gvisor.dev/gvisor/pkg/buffer.NewViewWithData", m+"link.(*rxQueue).deliver"), CatENANet},
		{st("gvisor.dev/gvisor/pkg/tcpip/transport/tcp.(*endpoint).HandlePacket", "gvisor.dev/gvisor/pkg/tcpip/stack.(*nic).DeliverNetworkPacket", m+"link.(*rxQueue).deliver"), CatGVisor},
		{st("runtime.mallocgc", "gvisor.dev/gvisor/pkg/tcpip/stack.NewPacketBuffer", m+"link.(*rxQueue).deliver"), CatRuntime},
		{st("runtime.gcBgMarkWorker"), CatRuntime},
		{st("sync.(*Mutex).Lock", "gvisor.dev/gvisor/pkg/tcpip/transport/tcp.(*endpoint).Read"), CatGVisor},
		{profSample{Count: 1, Stack: []string{"sync.(*Mutex).Lock", "time.Sleep"}, Labels: map[string]string{SimLabelKey: SimLabelValue}}, CatSim},
		{st("golang.org/x/sys/unix.Syscall"), CatOther},
		{st("runtime/pprof.profileWriter"), CatOther},
		{st("__tsan_read", "runtime.racecall", "runtime.raceread", m+"rings.(*RxQueue).next"), CatENANet},
	} {
		assert.Equal(t, tc.want, classify(tc.s), "%v", tc.s.Stack)
	}
}

// TestRequestRate: a short request-rate run over (b) and over the demo
// path, both body sizes (a window of a second: under -race on a loaded
// machine a 64 KiB GET can take a quarter of one).
func TestRequestRate(t *testing.T) {
	for name, mk := range map[string]func() (Pair, error){
		"b-gso": func() (Pair, error) { return NewENAPair(ENASettings{GSO: true, GRO: true, MTU: 1500}) },
		"demo":  NewDemoPair,
	} {
		t.Run(name, func(t *testing.T) {
			p, err := mk()
			require.NoError(t, err)
			defer p.Close()
			for i, body := range []int{1 << 10, 64 << 10} {
				res, err := RequestRate(context.Background(), p, uint16(7010+i), RequestOptions{Conns: 4, Body: body, Warmup: 50 * time.Millisecond, Duration: time.Second})
				require.NoError(t, err)
				require.Positive(t, res.N)
				require.LessOrEqual(t, res.P50, res.P99)
				t.Logf("%d B: %.0f req/s, p50 %v, p99 %v", body, res.RPS, res.P50, res.P99)
			}
		})
	}
}

// TestBusyPollRTT: the busy-poll comparison runs over (a) and (b) and
// renders; the numbers are not checked against the target (timing), and the
// pairs are not warmed (a smoke test, not a measurement).
func TestBusyPollRTT(t *testing.T) {
	port := uint16(7300)
	r := MeasureBusyPollRTT(context.Background(), 1, 100*time.Millisecond, 0, &port)
	require.Empty(t, r.Err)
	for _, c := range []Cell{r.AP50, r.AP99, r.BP50, r.BP99} {
		assert.Positive(t, c.Value)
		assert.Len(t, c.Samples, 1)
	}
	assert.LessOrEqual(t, r.BP50.Value, r.BP99.Value)
	md := r.Markdown(1, 100*time.Millisecond)
	assert.Contains(t, md, "| `busypoll` |")
	assert.Contains(t, md, "(busypoll)/(a-nogso): p50")
	res := &Results{BusyPoll: &r}
	require.Len(t, res.busyPollTarget(), 1)
	t.Logf("(a) p50 %v, (b) busy-poll p50 %v", time.Duration(r.AP50.Value*1e9), time.Duration(r.BP50.Value*1e9))
}
