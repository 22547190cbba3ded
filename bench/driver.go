package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// DriverResult is one data-path benchmark: a Tx placement mode and a frame
// size, batch 32, Tx plus Rx through the rings package against its fake
// device (medians over -count runs).
type DriverResult struct {
	Mode       string  // rings placement mode: host, llq128, llq256
	Size       int     // frame bytes
	PktsPerSec float64 // end to end, fake device included
	NsPerPkt   float64 // end to end, fake device included
	DrvNsPkt   float64 // the driver's own calls only (Send, Flush, Reclaim, Poll+refill)
	CPUNsPkt   float64 // CPU time per packet, when the benchmark reports it (0 otherwise)
	AllocsPkt  float64 // allocations per packet (b.N counts packets)
	BytesPkt   float64
}

// DriverBench holds the driver rows, or why there are none.
type DriverBench struct {
	Results []DriverResult
	Missing string // "not measured: ..." when Results is empty
	Command string
}

// benchLine matches "BenchmarkLoopback/host/64B/batch32-2  N  v unit  v unit ...".
var benchLine = regexp.MustCompile(`^BenchmarkLoopback/([^/]+)/(\d+)B/batch32(?:-\d+)?\s+\d+\s+(.*)$`)

// RunDriverBench runs the rings data-path benchmarks (BenchmarkLoopback at
// batch 32, 64 B and 1514 B, every placement mode) with go test in repo and
// parses them. It never invents a number: without the benchmarks the result
// says so.
func RunDriverBench(ctx context.Context, repo string, count int, benchtime string) DriverBench {
	args := []string{"test", "-run", "^$", "-bench", `^BenchmarkLoopback$/./^(64|1514)B$/^batch32$`,
		"-benchmem", "-benchtime", benchtime, "-count", strconv.Itoa(count), "./rings/"}
	db := DriverBench{Command: "go " + strings.Join(args, " ")}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = repo
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	db.Results = parseDriverBench(out.Bytes())
	switch {
	case len(db.Results) > 0:
	case err != nil && bytes.Contains(out.Bytes(), []byte("no Go files")):
		db.Missing = "not measured: rings package missing"
	case err != nil:
		db.Missing = "not measured: rings benchmarks failed: " + firstLine(out.String(), err)
	default:
		db.Missing = "not measured: rings benchmarks missing"
	}
	return db
}

func firstLine(s string, err error) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			return l
		}
	}
	return err.Error()
}

// parseDriverBench turns go test -bench output into one result per
// (mode, size), taking the median of repeated runs.
func parseDriverBench(out []byte) []DriverResult {
	type key struct {
		mode string
		size int
	}
	samples := map[key]map[string][]float64{}
	var order []key
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		size, _ := strconv.Atoi(m[2])
		k := key{m[1], size}
		if samples[k] == nil {
			samples[k] = map[string][]float64{}
			order = append(order, k)
		}
		f := strings.Fields(m[3])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err == nil {
				samples[k][f[i+1]] = append(samples[k][f[i+1]], v)
			}
		}
	}
	var res []DriverResult
	for _, k := range order {
		s := samples[k]
		r := DriverResult{Mode: k.mode, Size: k.size,
			PktsPerSec: median(s["pkts/s"]), NsPerPkt: median(s["ns/pkt"]),
			DrvNsPkt: median(s["drv-ns/pkt"]), CPUNsPkt: median(s["cpu-ns/pkt"]), AllocsPkt: median(s["allocs/op"]), BytesPkt: median(s["B/op"])}
		if r.NsPerPkt == 0 {
			r.NsPerPkt = median(s["ns/op"])
		}
		if r.PktsPerSec == 0 && r.NsPerPkt > 0 {
			r.PktsPerSec = 1e9 / r.NsPerPkt
		}
		res = append(res, r)
	}
	return res
}

// String is one line for the log.
func (r DriverResult) String() string {
	return fmt.Sprintf("%s %dB: %.1f Mpps, %.1f ns/pkt (driver %.1f), %.2f allocs/pkt",
		r.Mode, r.Size, r.PktsPerSec/1e6, r.NsPerPkt, r.DrvNsPkt, r.AllocsPkt)
}
