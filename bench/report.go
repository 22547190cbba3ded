package bench

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"strings"
	"time"
)

// Comparison is one row of the ratio table: num/den for every goodput
// cell and for RTT p50 and p99.
type Comparison struct {
	Num, Den string    // row IDs
	Goodput  []float64 // in Config.MTUs × Config.Streams order; 0 = not measured
	RTTP50   float64
	RTTP99   float64
	Target   string // the target for this comparison, if any
}

// comparisons the issue asks for: (b)/(a) at equal stack settings and
// (b)/(c) against each fdbased variant.
var comparisons = []struct{ num, den, target string }{
	{"b-nogso", "a-nogso", "goodput >= 0.90, RTT <= 1.20"},
	{"b-gso", "a-gso", "goodput >= 0.90, RTT <= 1.20"},
	{"b-nogso", "c-frame", ""},
	{"b-gso", "c-frame", "MTU 1500 x1 >= 3 (three times fdbased per-frame)"},
	{"b-gso", "c-swgso", ""},
	{"b-gso", "c-hostgso", "close to 1 at MTU 1500"},
	{"b-gso", "kernel", ""},
}

// Comparisons computes the ratio table for the rows that were run.
func (r *Results) Comparisons() []Comparison {
	var out []Comparison
	for _, c := range comparisons {
		n, d := r.Find(c.num), r.Find(c.den)
		if n == nil || d == nil {
			continue
		}
		cmp := Comparison{Num: c.num, Den: c.den, Target: c.target}
		for _, mtu := range r.Config.MTUs {
			for _, s := range r.Config.Streams {
				k := GoodputKey{mtu, s}
				cmp.Goodput = append(cmp.Goodput, div(cellOf(n, k), cellOf(d, k)))
			}
		}
		cmp.RTTP50 = div(rttOf(n, true), rttOf(d, true))
		cmp.RTTP99 = div(rttOf(n, false), rttOf(d, false))
		out = append(out, cmp)
	}
	return out
}

func div(a, b Cell) float64 {
	if a.Err != "" || b.Err != "" || b.Value == 0 {
		return 0
	}
	return a.Value / b.Value
}

// Target is one absolute target of the issue, checked.
type Target struct {
	What, Want string
	Got        string // the measured value, or why there is none
	Met        bool
}

// Targets checks the absolute targets.
func (r *Results) Targets() []Target {
	var out []Target
	bg := cellOf(r.Find("b-gso"), GoodputKey{1500, 1})
	t := Target{What: "(b) with GSO+GRO, MTU 1500, 1 stream", Want: ">= 4.5 Gbit/s"}
	if bg.Err != "" {
		t.Got = bg.Err
	} else {
		t.Got = fmt.Sprintf("%.2f Gbit/s", bg.Value/1e9)
		t.Met = bg.Value >= 4.5e9
	}
	out = append(out, t)
	for _, cmp := range r.Comparisons() {
		if cmp.Den[0] != 'a' {
			continue
		}
		worstG, worstR := math.Inf(1), 0.0
		for _, g := range cmp.Goodput {
			if g > 0 {
				worstG = min(worstG, g)
			}
		}
		for _, x := range []float64{cmp.RTTP50, cmp.RTTP99} {
			worstR = max(worstR, x)
		}
		if !math.IsInf(worstG, 1) {
			out = append(out, Target{What: fmt.Sprintf("goodput (%s)/(%s), worst cell", cmp.Num, cmp.Den), Want: ">= 0.90",
				Got: fmt.Sprintf("%.2f", worstG), Met: worstG >= 0.9})
		}
		if worstR > 0 {
			out = append(out, Target{What: fmt.Sprintf("RTT (%s)/(%s), worse of p50 and p99", cmp.Num, cmp.Den), Want: "<= 1.20",
				Got: fmt.Sprintf("%.2f", worstR), Met: worstR <= 1.2})
		}
	}
	if len(r.Driver.Results) == 0 {
		out = append(out, Target{What: "driver Tx+Rx at batch 32", Want: "<= 40 ns/pkt (host, 64 B), 0 allocs", Got: r.Driver.Missing})
	}
	out = append(out, r.attributionTargets()...)
	out = append(out, r.requestTargets()...)
	out = append(out, r.busyPollTarget()...)
	for _, d := range r.Driver.Results {
		// The host-placement 64 B cell is the one compared with ixy's C
		// driver (about 36 ns per forwarded packet): 40 ns; the others 50.
		limit := 50.0
		if d.Mode == "host" && d.Size == 64 {
			limit = 40
		}
		out = append(out, Target{What: fmt.Sprintf("driver Tx+Rx at batch 32, %s placement, %d B (driver calls only)", d.Mode, d.Size),
			Want: fmt.Sprintf("<= %.0f ns/pkt, 0 allocs", limit), Got: fmt.Sprintf("%.1f ns/pkt, %.2f allocs/pkt", d.DrvNsPkt, d.AllocsPkt),
			Met: d.DrvNsPkt <= limit && d.AllocsPkt == 0})
	}
	return out
}

// String renders a target check on one line.
func (t Target) String() string {
	v := "MISSED"
	if t.Met {
		v = "met"
	}
	return fmt.Sprintf("%s: %s (target %s: %s)", t.What, t.Got, t.Want, v)
}

// RatioTable renders the comparisons as a Markdown table.
func (r *Results) RatioTable() string {
	var b bytes.Buffer
	b.WriteString("| ratio |")
	for _, mtu := range r.Config.MTUs {
		for _, s := range r.Config.Streams {
			fmt.Fprintf(&b, " MTU %d ×%d |", mtu, s)
		}
	}
	b.WriteString(" RTT p50 | RTT p99 | target |\n|---|")
	for range len(r.Config.MTUs) * len(r.Config.Streams) {
		b.WriteString("---:|")
	}
	b.WriteString("---:|---:|---|\n")
	f := func(x float64) string {
		if x == 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f", x)
	}
	for _, c := range r.Comparisons() {
		fmt.Fprintf(&b, "| (%s)/(%s) |", c.Num, c.Den)
		for _, g := range c.Goodput {
			fmt.Fprintf(&b, " %s |", f(g))
		}
		fmt.Fprintf(&b, " %s | %s | %s |\n", f(c.RTTP50), f(c.RTTP99), c.Target)
	}
	return b.String()
}

func cellOf(l *LinkResult, k GoodputKey) Cell {
	if l == nil {
		return Cell{Err: "not measured: row not run"}
	}
	if l.Skipped != "" {
		return Cell{Err: l.Skipped}
	}
	c, ok := l.Goodput[k]
	if !ok {
		return Cell{Err: "not measured: not selected"}
	}
	return c
}

func rttOf(l *LinkResult, p50 bool) Cell {
	if l == nil {
		return Cell{Err: "not measured: row not run"}
	}
	if l.Skipped != "" {
		return Cell{Err: l.Skipped}
	}
	if p50 {
		return l.RTTP50
	}
	return l.RTTP99
}

func gbit(c Cell) string {
	if c.Err != "" {
		return "—"
	}
	return fmt.Sprintf("%.2f", c.Value/1e9)
}

func micros(c Cell) string {
	if c.Err != "" {
		return "—"
	}
	return fmt.Sprintf("%.0f", c.Value*1e6)
}

// Markdown renders the results section of the README: machine, tables,
// ratios, and every "not measured" reason.
func (r *Results) Markdown(plotName string) string {
	var b bytes.Buffer
	m := r.Machine
	fmt.Fprintf(&b, "Measured %s by `go run ./bench/cmd/enabench` in %s.\n\n", m.Date.Format("2006-01-02 15:04 MST"), m.Elapsed.Round(time.Second))
	fmt.Fprintf(&b, "| machine | |\n|---|---|\n")
	fmt.Fprintf(&b, "| CPU | %s |\n| cores | %d |\n| kernel | %s |\n| Go | %s |\n| commit | %s |\n| load average (1/5/15 min) before / after | %s / %s |\n\n",
		m.CPU, m.Cores, m.Kernel, m.GoVersion, m.Commit, m.LoadBefore, m.LoadAfter)
	c := r.Config
	fmt.Fprintf(&b, "Goodput: median of %d runs of %v (after %v of warm-up) per cell, application bytes received, Gbit/s. "+
		"RTT: median over %d runs of each run's p50 and p99 of a 64-byte TCP ping-pong lasting %v, MTU %d, µs.\n\n",
		c.Runs, c.Duration, c.Warmup, c.RTTRuns, c.RTTDuration, c.MTUs[0])
	if plotName != "" {
		fmt.Fprintf(&b, "![goodput and RTT](%s)\n\n", plotName)
	}

	fmt.Fprintf(&b, "### TCP goodput (Gbit/s) and round-trip time (µs)\n\n| row | link |")
	for _, mtu := range c.MTUs {
		for _, s := range c.Streams {
			fmt.Fprintf(&b, " MTU %d ×%d |", mtu, s)
		}
	}
	fmt.Fprintf(&b, " RTT p50 | RTT p99 |\n|---|---|")
	for range len(c.MTUs) * len(c.Streams) {
		b.WriteString("---:|")
	}
	b.WriteString("---:|---:|\n")
	var notes []string
	for _, l := range r.Links {
		fmt.Fprintf(&b, "| `%s` | %s |", l.Link.ID, l.Link.Label)
		for _, mtu := range c.MTUs {
			for _, s := range c.Streams {
				cell := cellOf(&l, GoodputKey{mtu, s})
				fmt.Fprintf(&b, " %s |", gbit(cell))
				if cell.Err != "" && l.Skipped == "" {
					notes = append(notes, fmt.Sprintf("`%s` MTU %d ×%d: %s", l.Link.ID, mtu, s, cell.Err))
				}
			}
		}
		fmt.Fprintf(&b, " %s | %s |\n", micros(rttOf(&l, true)), micros(rttOf(&l, false)))
		if l.Skipped != "" {
			notes = append(notes, fmt.Sprintf("`%s`: %s", l.Link.ID, l.Skipped))
		} else if l.RTTP50.Err != "" {
			notes = append(notes, fmt.Sprintf("`%s` RTT: %s", l.Link.ID, l.RTTP50.Err))
		}
	}
	if len(notes) > 0 {
		b.WriteString("\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", oneLine(n))
		}
	}

	fmt.Fprintf(&b, "\n### Driver data path (rings, fake device, batch 32, Tx + Rx)\n\n")
	if len(r.Driver.Results) == 0 {
		fmt.Fprintf(&b, "%s\n", oneLine(r.Driver.Missing))
	} else {
		fmt.Fprintf(&b, "| Tx placement | frame | Mpkt/s | ns/pkt (with fake device) | driver ns/pkt | CPU ns/pkt | allocs/pkt | B/pkt |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, d := range r.Driver.Results {
			cpu := "—"
			if d.CPUNsPkt > 0 {
				cpu = fmt.Sprintf("%.1f", d.CPUNsPkt)
			}
			fmt.Fprintf(&b, "| %s | %d B | %.2f | %.1f | %.1f | %s | %.2f | %.0f |\n",
				d.Mode, d.Size, d.PktsPerSec/1e6, d.NsPerPkt, d.DrvNsPkt, cpu, d.AllocsPkt, d.BytesPkt)
		}
		fmt.Fprintf(&b, "\nFrom `%s` (medians).\n", r.Driver.Command)
	}

	fmt.Fprintf(&b, "\n### Bring-up and reset recovery on enasim\n\n")
	if r.Lifecycle.Err != "" && len(r.Lifecycle.Open) == 0 {
		fmt.Fprintf(&b, "not measured: %s\n", oneLine(r.Lifecycle.Err))
	} else {
		fmt.Fprintf(&b, "| | median | max | samples |\n|---|---:|---:|---:|\n")
		fmt.Fprintf(&b, "| `ena.Open` (reset, admin init, features, AENQ, queues, Rx posted) | %v | %v | %d |\n",
			medianDur(r.Lifecycle.Open).Round(time.Microsecond), maxDur(r.Lifecycle.Open).Round(time.Microsecond), len(r.Lifecycle.Open))
		fmt.Fprintf(&b, "| `Device.Reset` (user trigger: reset, re-init, queues rebuilt) | %v | %v | %d |\n",
			medianDur(r.Lifecycle.Reset).Round(time.Microsecond), maxDur(r.Lifecycle.Reset).Round(time.Microsecond), len(r.Lifecycle.Reset))
		if r.Lifecycle.Err != "" {
			fmt.Fprintf(&b, "\n%s\n", oneLine(r.Lifecycle.Err))
		}
	}

	b.WriteString(r.AttributionMarkdown())
	b.WriteString(r.RequestMarkdown())
	b.WriteString(r.BusyPoll.Markdown(c.RTTRuns, c.RTTDuration))
	fmt.Fprintf(&b, "\n### Ratios\n\n%s\n### Targets\n\n", r.RatioTable())
	for _, t := range r.Targets() {
		fmt.Fprintf(&b, "- %s\n", oneLine(t.String()))
	}
	return b.String()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Markers delimiting the generated part of the README; everything outside
// them (the how-to and the hand-written analysis) is kept.
const (
	BeginMarker = "<!-- enabench:begin (generated by go run ./bench/cmd/enabench; do not edit) -->"
	EndMarker   = "<!-- enabench:end -->"
)

// UpdateREADME replaces the generated section of the README at path with
// section (creating the file from a skeleton if needed).
func UpdateREADME(path, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("bench: reading %s: %w", path, err)
	}
	doc := string(old)
	i, j := strings.Index(doc, BeginMarker), strings.Index(doc, EndMarker)
	if i < 0 || j < i {
		doc = "# enanet benchmarks\n\n" + BeginMarker + "\n" + EndMarker + "\n"
		i, j = strings.Index(doc, BeginMarker), strings.Index(doc, EndMarker)
	}
	out := doc[:i+len(BeginMarker)] + "\n" + section + doc[j:]
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		return fmt.Errorf("bench: writing %s: %w", path, err)
	}
	return nil
}
