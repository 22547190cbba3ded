package bench

import (
	"bytes"
	"fmt"
	"time"
)

// requestRows are the rows with request-rate cells, demo last.
func (r *Results) requestRows() []*LinkResult {
	var out []*LinkResult
	for i := range r.Links {
		if r.Links[i].Requests != nil || r.Links[i].Skipped != "" {
			out = append(out, &r.Links[i])
		}
	}
	if r.Demo != nil {
		out = append(out, r.Demo)
	}
	return out
}

func (r *Results) findReq(id string) *LinkResult {
	if id == "demo" {
		return r.Demo
	}
	return r.Find(id)
}

func reqCell(l *LinkResult, body int) RequestCell {
	switch {
	case l == nil:
		return RequestCell{Err: "not measured: row not run"}
	case l.Skipped != "":
		return RequestCell{Err: l.Skipped}
	}
	c, ok := l.Requests[body]
	if !ok {
		return RequestCell{Err: "not measured: not selected"}
	}
	return c
}

// requestComparisons: (b) against (a) at equal stack settings, and the
// demo path against (b) and the kernel.
var requestComparisons = []struct{ num, den, target string }{
	{"b-nogso", "a-nogso", "1 KiB req/s >= 0.80"},
	{"b-gso", "a-gso", "1 KiB req/s >= 0.80"},
	{"b-gso", "c-hostgso", ""},
	{"b-gso", "kernel", ""},
	{"demo", "b-gso", ""},
	{"demo", "kernel", ""},
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/1e3) }

// RequestMarkdown renders the request-rate rows and their ratios.
func (r *Results) RequestMarkdown() string {
	rows := r.requestRows()
	if len(rows) == 0 {
		return ""
	}
	rc := r.Config.Requests
	var b bytes.Buffer
	fmt.Fprintf(&b, "\n### HTTP request rate\n\nHTTP/1.1 keep-alive GETs against Go's net/http on the server side of each row "+
		"(MTU 1500): %d connections from an in-process client (net/http Transport), each with one request outstanding "+
		"(a closed loop, like wrk); requests completed per second over %v after %v of warm-up, and the latency of "+
		"those requests; median of %d runs. Latency in µs. CPU is the whole process's CPU time (user+system) in the window per "+
		"request completed, in µs: both stacks, the link (and for (b) the device model), client and server; it does not "+
		"shrink when other processes take the cores, as req/s does.\n\n", rc.Conns, rc.Duration, rc.Warmup, rc.Runs)
	b.WriteString("| row |")
	for _, body := range rc.Bodies {
		fmt.Fprintf(&b, " %s req/s | %s p50 | %s p99 | %s CPU |", kib(body), kib(body), kib(body), kib(body))
	}
	b.WriteString("\n|---|")
	for range rc.Bodies {
		b.WriteString("---:|---:|---:|---:|")
	}
	b.WriteString("\n")
	var notes []string
	for _, l := range rows {
		fmt.Fprintf(&b, "| `%s` |", l.Link.ID)
		for _, body := range rc.Bodies {
			c := reqCell(l, body)
			if c.Err != "" {
				b.WriteString(" — | — | — | — |")
				if l.Skipped == "" {
					notes = append(notes, fmt.Sprintf("`%s` %s: %s", l.Link.ID, kib(body), c.Err))
				}
				continue
			}
			fmt.Fprintf(&b, " %.0f | %s | %s | %s |", c.RPS, us(c.P50), us(c.P99), us(c.CPUPerReq))
		}
		b.WriteString("\n")
		if l.Skipped != "" {
			notes = append(notes, fmt.Sprintf("`%s`: %s", l.Link.ID, l.Skipped))
		}
	}
	if r.Demo != nil {
		fmt.Fprintf(&b, "\n`demo` is %s: netenv opens the simulated device and VPC exactly as `cmd/enahttp` does, "+
			"and the VPC's forwarder splices each kernel-loopback connection into the router's stack.\n", DemoLink.Label)
	}
	for _, n := range notes {
		fmt.Fprintf(&b, "\n- %s", oneLine(n))
	}
	if len(notes) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("\nRatios (req/s: higher is better; latency and CPU per request: lower is better):\n\n| ratio |")
	for _, body := range rc.Bodies {
		fmt.Fprintf(&b, " %s req/s | %s p50 | %s p99 | %s CPU |", kib(body), kib(body), kib(body), kib(body))
	}
	b.WriteString(" target |\n|---|")
	for range rc.Bodies {
		b.WriteString("---:|---:|---:|---:|")
	}
	b.WriteString("---|\n")
	for _, cmp := range requestComparisons {
		n, d := r.findReq(cmp.num), r.findReq(cmp.den)
		if n == nil || d == nil {
			continue
		}
		fmt.Fprintf(&b, "| (%s)/(%s) |", cmp.num, cmp.den)
		for _, body := range rc.Bodies {
			x, y := reqCell(n, body), reqCell(d, body)
			if x.Err != "" || y.Err != "" || y.RPS == 0 || y.P50 == 0 || y.P99 == 0 {
				b.WriteString(" — | — | — | — |")
				continue
			}
			cpu := "—"
			if x.CPUPerReq > 0 && y.CPUPerReq > 0 {
				cpu = fmt.Sprintf("%.2f", float64(x.CPUPerReq)/float64(y.CPUPerReq))
			}
			fmt.Fprintf(&b, " %.2f | %.2f | %.2f | %s |", x.RPS/y.RPS, float64(x.P50)/float64(y.P50), float64(x.P99)/float64(y.P99), cpu)
		}
		fmt.Fprintf(&b, " %s |\n", cmp.target)
	}
	return b.String()
}

// requestTargets checks (b) >= 0.8 × (a) in requests per second, 1 KiB.
func (r *Results) requestTargets() []Target {
	var out []Target
	for _, cmp := range requestComparisons[:2] {
		n, d := r.findReq(cmp.num), r.findReq(cmp.den)
		if n == nil || d == nil {
			continue
		}
		t := Target{What: fmt.Sprintf("request rate (%s)/(%s), 1 KiB bodies", cmp.num, cmp.den), Want: ">= 0.80"}
		x, y := reqCell(n, 1<<10), reqCell(d, 1<<10)
		switch {
		case x.Err != "":
			t.Got = x.Err
		case y.Err != "" || y.RPS == 0:
			t.Got = "not measured: " + cmp.den + " missing"
		default:
			t.Got = fmt.Sprintf("%.2f", x.RPS/y.RPS)
			t.Met = x.RPS/y.RPS >= 0.8
		}
		out = append(out, t)
	}
	return out
}

func kib(n int) string {
	if n%1024 == 0 {
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}
