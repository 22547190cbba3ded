package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Link is one row of the table: a way of joining the two TCP endpoints.
type Link struct {
	ID    string // short name used by -rows and in the plot, e.g. "b-gso"
	Group string // "a", "b", "c" or "kernel"
	Label string // what the row is, for the table
	// Make builds the link for an IP MTU.
	Make func(mtu int) (Pair, error)
	// Needs says why the row cannot run on this machine ("" if it can).
	Needs func() string
}

// Links returns every row in table order.
func Links() []Link {
	noGSO := ENASettings{}
	gso := ENASettings{GSO: true, GRO: true}
	sameAs := func(e ENASettings) func(mtu int) (Pair, error) {
		return func(mtu int) (Pair, error) {
			e.MTU = mtu
			ss, err := enaStackSettings(e)
			if err != nil {
				return nil, fmt.Errorf("bench: reading (b)'s stack settings: %w", err)
			}
			return NewChannelPair(ss)
		}
	}
	ena := func(e ENASettings) func(mtu int) (Pair, error) {
		return func(mtu int) (Pair, error) { e.MTU = mtu; return NewENAPair(e) }
	}
	fd := func(f FDSettings) func(mtu int) (Pair, error) {
		return func(mtu int) (Pair, error) { f.MTU = mtu; return NewFDBasedPair(f) }
	}
	always := func() string { return "" }
	return []Link{
		{"a-nogso", "a", "(a) channel endpoint, stack as (b) without GSO/GRO", sameAs(noGSO), always},
		{"a-gso", "a", "(a) channel endpoint, stack as (b) with GSO+GRO", sameAs(gso), always},
		{"b-nogso", "b", "(b) enasim pair, ena driver + link, no GSO/GRO", ena(noGSO), always},
		{"b-gso", "b", "(b) enasim pair, ena driver + link, GSO+GRO", ena(gso), always},
		{"c-frame", "c", "(c) fdbased over veth, recvmmsg, per-frame (no GSO, no offload)", fd(FDSettings{}), canUseNetns},
		{"c-swgso", "c", "(c) fdbased over veth, gVisor GSO + Rx csum offload", fd(FDSettings{SoftGSO: true}), canUseNetns},
		{"c-hostgso", "c", "(c) fdbased over veth, runsc host GSO + Rx csum offload", fd(FDSettings{HostGSO: true}), canUseNetns},
		{"kernel", "kernel", "Linux kernel TCP over veth between two namespaces", NewKernelPair, canUseNetns},
	}
}

// Config bounds a run.
type Config struct {
	Repo        string        // module root (for the rings benchmarks and the commit)
	Rows        []string      // row IDs to run; empty means all
	MTUs        []int         // IP MTUs; default 1500 and 9001
	Streams     []int         // parallel streams; default 1 and 4
	Runs        int           // goodput runs per cell (median); default 5
	Warmup      time.Duration // per goodput run; default 500 ms
	Duration    time.Duration // counted window per goodput run; default 1.5 s
	RTTRuns     int           // ping-pong runs per row (median of p50 and p99); default 3
	RTTDuration time.Duration // per ping-pong run; default 1 s
	DriverCount int           // go test -count for the rings benchmarks; default 3
	DriverTime  string        // go test -benchtime; default "0.5s"
	Lifecycles  int           // bring-up/reset samples; default 5
	Requests    RequestConfig // the request-rate rows
	Log         io.Writer     // progress; nil means none
}

func (c *Config) defaults() {
	if len(c.MTUs) == 0 {
		c.MTUs = []int{1500, 9001}
	}
	if len(c.Streams) == 0 {
		c.Streams = []int{1, 4}
	}
	if c.Runs <= 0 {
		c.Runs = 5
	}
	if c.Warmup <= 0 {
		c.Warmup = 500 * time.Millisecond
	}
	if c.Duration <= 0 {
		c.Duration = 1500 * time.Millisecond
	}
	if c.RTTRuns <= 0 {
		c.RTTRuns = 3
	}
	if c.RTTDuration <= 0 {
		c.RTTDuration = time.Second
	}
	if c.DriverCount <= 0 {
		c.DriverCount = 3
	}
	if c.DriverTime == "" {
		c.DriverTime = "0.5s"
	}
	if c.Lifecycles <= 0 {
		c.Lifecycles = 5
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	c.Requests.defaults()
}

// Cell is one measured number: a median over runs, or why it is missing.
type Cell struct {
	Value   float64   // goodput in bit/s, or RTT in seconds
	Samples []float64 // every run
	Err     string    // non-empty: not measured, and why
}

// GoodputKey addresses a goodput cell.
type GoodputKey struct{ MTU, Streams int }

// LinkResult is one row's numbers.
type LinkResult struct {
	Link    Link
	Goodput map[GoodputKey]Cell
	RTTP50  Cell // MTU 1500 (or the first MTU), 64-byte ping-pong
	RTTP99  Cell
	Skipped string // the whole row was not run, and why
	// Attr is where the CPU went during the goodput runs ((b) rows only).
	Attr map[GoodputKey]Attribution
	// Requests is the request-rate run per body size (MTU 1500).
	Requests map[int]RequestCell
}

// Machine describes where the numbers come from.
type Machine struct {
	CPU, Kernel, GoVersion, Commit string
	Cores                          int
	LoadBefore, LoadAfter          string // /proc/loadavg at start and end
	Date                           time.Time
	Elapsed                        time.Duration
}

// Results is everything one run measured.
type Results struct {
	Config    Config
	Machine   Machine
	Driver    DriverBench
	Links     []LinkResult
	Lifecycle Lifecycle
	Demo      *LinkResult  // the enahttp demo path (request rate only); nil if not run
	BusyPoll  *BusyPollRTT // busy-poll RTT of (b) against (a); nil if not run
}

// Run measures everything cfg asks for, in table order.
func Run(ctx context.Context, cfg Config) *Results {
	cfg.defaults()
	start := time.Now()
	r := &Results{Config: cfg, Machine: describeMachine(cfg.Repo)}
	logf := func(format string, args ...any) { fmt.Fprintf(cfg.Log, format+"\n", args...) }

	if wantRow(cfg.Rows, "driver") {
		logf("driver: %s", "rings benchmarks")
		r.Driver = RunDriverBench(ctx, cfg.Repo, cfg.DriverCount, cfg.DriverTime)
		for _, d := range r.Driver.Results {
			logf("  %v", d)
		}
		if r.Driver.Missing != "" {
			logf("  %s", r.Driver.Missing)
		}
	} else {
		r.Driver.Missing = "not measured: not selected"
	}

	port := uint16(20000)
	for _, l := range Links() {
		if !wantRow(cfg.Rows, l.ID) {
			continue
		}
		lr := LinkResult{Link: l, Goodput: map[GoodputKey]Cell{}}
		if why := l.Needs(); why != "" {
			lr.Skipped = "not measured: " + why
			logf("%s: %s", l.ID, lr.Skipped)
			r.Links = append(r.Links, lr)
			continue
		}
		for i, mtu := range cfg.MTUs {
			if ctx.Err() != nil {
				break
			}
			p, err := l.Make(mtu)
			if err != nil {
				for _, s := range cfg.Streams {
					lr.Goodput[GoodputKey{mtu, s}] = Cell{Err: "not measured: " + err.Error()}
				}
				if i == 0 {
					lr.RTTP50 = Cell{Err: "not measured: " + err.Error()}
					lr.RTTP99 = lr.RTTP50
				}
				logf("%s mtu %d: %v", l.ID, mtu, err)
				continue
			}
			for _, s := range cfg.Streams {
				c := Cell{}
				var attr Attribution
				for run := 0; run < cfg.Runs && ctx.Err() == nil; run++ {
					port++
					o := GoodputOptions{Streams: s, Warmup: cfg.Warmup, Duration: cfg.Duration}
					bps, a, err := goodput(ctx, p, port, o, l.Group == "b")
					if err != nil {
						c.Err = "not measured: " + err.Error()
						break
					}
					c.Samples = append(c.Samples, bps)
					if a.Err != "" {
						attr.Err = a.Err
					}
					attr.add(a)
				}
				if l.Group == "b" {
					if lr.Attr == nil {
						lr.Attr = map[GoodputKey]Attribution{}
					}
					if attr.Err == "" && attr.Samples == 0 {
						attr.Err = "not measured: no profiled run"
					}
					lr.Attr[GoodputKey{mtu, s}] = attr
					logf("%s mtu %d streams %d: %s", l.ID, mtu, s, attr.summary())
				}
				if c.Err == "" && len(c.Samples) > 0 {
					c.Value = median(append([]float64(nil), c.Samples...))
				} else if c.Err == "" {
					c.Err = "not measured: interrupted"
				}
				lr.Goodput[GoodputKey{mtu, s}] = c
				logf("%s mtu %d streams %d: %.2f Gbit/s %s", l.ID, mtu, s, c.Value/1e9, c.Err)
			}
			if i == 0 {
				var p50s, p99s []float64
				var rerr string
				for run := 0; run < cfg.RTTRuns && ctx.Err() == nil; run++ {
					port++
					rt, err := RTT(ctx, p, port, 64, cfg.RTTDuration)
					if err != nil {
						rerr = "not measured: " + err.Error()
						break
					}
					p50s = append(p50s, rt.P50.Seconds())
					p99s = append(p99s, rt.P99.Seconds())
				}
				lr.RTTP50 = Cell{Samples: p50s, Err: rerr}
				lr.RTTP99 = Cell{Samples: p99s, Err: rerr}
				if rerr == "" && len(p50s) > 0 {
					lr.RTTP50.Value = median(append([]float64(nil), p50s...))
					lr.RTTP99.Value = median(append([]float64(nil), p99s...))
				} else if rerr == "" {
					lr.RTTP50.Err, lr.RTTP99.Err = "not measured: interrupted", "not measured: interrupted"
				}
				logf("%s rtt: p50 %.1f µs p99 %.1f µs %s", l.ID, lr.RTTP50.Value*1e6, lr.RTTP99.Value*1e6, rerr)
				lr.Requests = runRequests(ctx, cfg, p, &port, l.ID, logf)
			}
			if err := p.Close(); err != nil {
				logf("%s: closing: %v", l.ID, err)
			}
		}
		r.Links = append(r.Links, lr)
	}

	if wantRow(cfg.Rows, BusyPollLink.ID) {
		bp := MeasureBusyPollRTT(ctx, cfg.RTTRuns, cfg.RTTDuration, BusyPollWarmup, &port)
		r.BusyPoll = &bp
		p50, p99 := bp.Ratio()
		logf("busypoll rtt: (a) p50 %.1f µs p99 %.1f µs, (b) busy-poll p50 %.1f µs p99 %.1f µs, ratio p50 %.2f p99 %.2f %s",
			bp.AP50.Value*1e6, bp.AP99.Value*1e6, bp.BP50.Value*1e6, bp.BP99.Value*1e6, p50, p99, bp.Err)
	}

	if wantRow(cfg.Rows, "demo") {
		r.Demo = runDemo(ctx, cfg, &port, logf)
	}

	if wantRow(cfg.Rows, "lifecycle") {
		r.Lifecycle = MeasureLifecycle(cfg.Lifecycles)
		logf("lifecycle: open %v reset %v %s", medianDur(r.Lifecycle.Open), medianDur(r.Lifecycle.Reset), r.Lifecycle.Err)
	} else {
		r.Lifecycle.Err = "not selected"
	}
	r.Machine.LoadAfter = loadavg()
	r.Machine.Elapsed = time.Since(start)
	return r
}

func wantRow(rows []string, id string) bool {
	if len(rows) == 0 {
		return true
	}
	for _, r := range rows {
		if r == id || (r == "links" && id != "driver" && id != "lifecycle") {
			return true
		}
	}
	return false
}

// Find returns the row with id, or nil.
func (r *Results) Find(id string) *LinkResult {
	for i := range r.Links {
		if r.Links[i].Link.ID == id {
			return &r.Links[i]
		}
	}
	return nil
}

func describeMachine(repo string) Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), Date: time.Now().UTC(), LoadBefore: loadavg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.Commit = gitOut(repo, "rev-parse", "--short=12", "HEAD")
	if m.Commit != "" && gitOut(repo, "status", "--porcelain", "--untracked-files=no") != "" {
		m.Commit += " (with uncommitted changes)"
	} else if m.Commit != "" && gitOut(repo, "status", "--porcelain") != "" {
		m.Commit += " (with untracked files)"
	}
	if m.Commit == "" {
		m.Commit = "unknown (not a git checkout)"
	}
	return m
}

func gitOut(dir string, args ...string) string {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
