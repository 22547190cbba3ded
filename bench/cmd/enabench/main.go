// Command enabench measures enanet against the alternatives in one run and
// writes bench/README.md (the generated section) and bench/enabench.png.
//
//	sudo go run ./bench/cmd/enabench            # everything, ~8 minutes on 2 cores
//	go run ./bench/cmd/enabench -rows b-gso -runs 1 -readme= -plot= -cpuprofile b.pprof
//
// Without root the veth rows (c, kernel) say "not measured: needs root".
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/enanet/enanet/bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "enabench:", err)
		bench.Cleanup()
		os.Exit(1)
	}
}

func run() error {
	repo, err := findRepo()
	if err != nil {
		return err
	}
	var (
		rows     = flag.String("rows", "", "comma-separated row IDs to run (driver, a-nogso, a-gso, b-nogso, b-gso, c-frame, c-swgso, c-hostgso, kernel, busypoll, demo, lifecycle, or links for every link row); empty means all")
		runs     = flag.Int("runs", 5, "goodput runs per cell (the median is reported)")
		warmup   = flag.Duration("warmup", 500*time.Millisecond, "traffic before each counted goodput window")
		duration = flag.Duration("duration", 1500*time.Millisecond, "counted window per goodput run")
		rttRuns  = flag.Int("rtt-runs", 3, "ping-pong runs per row")
		rttDur   = flag.Duration("rtt-duration", time.Second, "duration of one ping-pong run")
		readme   = flag.String("readme", filepath.Join(repo, "bench", "README.md"), "README whose generated section is replaced; empty: do not write")
		plot     = flag.String("plot", filepath.Join(repo, "bench", "enabench.png"), "PNG plot to write; empty: do not write")
		cpuprof  = flag.String("cpuprofile", "", "write a CPU profile of the whole run (use with -rows to profile one link)")
		reqConns = flag.Int("req-conns", 16, "keep-alive connections of the HTTP request-rate cells")
		reqRuns  = flag.Int("req-runs", 3, "request-rate runs per cell (the median is reported)")
		reqDur   = flag.Duration("req-duration", time.Second, "counted window per request-rate run")
		noReq    = flag.Bool("no-requests", false, "skip the HTTP request-rate cells of the link rows")
		mtus     = flag.String("mtus", "", "comma-separated IP MTUs of the goodput cells (e.g. 9001 to profile jumbo frames alone); empty means 1500,9001")
		timeout  = flag.Duration("timeout", 14*time.Minute, "stop measuring after this long (the rest is reported as not measured)")
	)
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	// Namespaces and veths are removed on every way out: normal return,
	// error, the first signal (cancels the run, which then cleans up) and a
	// second signal (cleans up at once and exits).
	defer bench.Cleanup()
	go func() {
		<-ctx.Done()
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		bench.Cleanup()
		os.Exit(130)
	}()

	ensureTools()
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	cfg := bench.Config{Repo: repo, Runs: *runs, Warmup: *warmup, Duration: *duration,
		RTTRuns: *rttRuns, RTTDuration: *rttDur, Log: os.Stderr,
		Requests: bench.RequestConfig{Conns: *reqConns, Runs: *reqRuns, Duration: *reqDur, Off: *noReq}}
	if *rows != "" {
		cfg.Rows = strings.Split(*rows, ",")
	}
	if *mtus != "" {
		for _, f := range strings.Split(*mtus, ",") {
			mtu, err := strconv.Atoi(f)
			if err != nil || mtu < 576 {
				return fmt.Errorf("-mtus: %q is not an MTU of at least 576", f)
			}
			cfg.MTUs = append(cfg.MTUs, mtu)
		}
	}
	res := bench.Run(ctx, cfg)

	plotName := ""
	if *plot != "" {
		f, err := os.Create(*plot)
		if err != nil {
			return err
		}
		err = res.WritePlot(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", *plot, err)
		}
		plotName = filepath.Base(*plot)
		fmt.Fprintf(os.Stderr, "wrote %s\n", *plot)
	}
	if *readme != "" {
		if err := bench.UpdateREADME(*readme, res.Markdown(plotName)); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", *readme)
	}
	fmt.Println("ratios (b)/(a) and (b)/(c):")
	fmt.Print(res.RatioTable())
	fmt.Println("targets:")
	for _, t := range res.Targets() {
		fmt.Println("  " + t.String())
	}
	return nil
}

// findRepo walks up from the working directory to the enanet module root.
func findRepo() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/enanet/enanet\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run enabench inside the enanet checkout (no go.mod for github.com/enanet/enanet above %s)", dir)
		}
		dir = parent
	}
}

// ensureTools installs iproute2 when it is missing and we are root (a clean
// Debian image may lack it); without root the veth rows are skipped anyway.
func ensureTools() {
	if _, err := exec.LookPath("ip"); err == nil || os.Geteuid() != 0 {
		return
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return
	}
	fmt.Fprintln(os.Stderr, "enabench: installing iproute2 (apt-get update && apt-get install -y iproute2)")
	for _, args := range [][]string{{"update"}, {"install", "-y", "iproute2"}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "enabench: apt-get %s: %v\n", args[0], err)
			return
		}
	}
}
