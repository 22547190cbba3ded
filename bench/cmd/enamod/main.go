// Command enamod measures interrupt moderation (off, static, adaptive) and
// the Rx buffer size at MTU 9001 on two simulated ENA devices joined by a
// simulated cable, and prints the results as Markdown tables.
//
//	go run ./bench/cmd/enamod --duration 2s
//
// The numbers depend on what else the machine runs: compare rows of one
// run, not runs of different days.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/enanet/enanet/bench"
)

func main() {
	warmup := pflag.Duration("warmup", 500*time.Millisecond, "traffic before each counted window (slow start)")
	duration := pflag.Duration("duration", 2*time.Second, "counted window per row")
	rounds := pflag.Int("rounds", 1, "repeat the moderation rows, each round starting with the next setting, and report means")
	pflag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: enamod [flags]\n\nInterrupts/s and CPU per Gbit with interrupt moderation off, static and adaptive,\nand MTU 9001 goodput with 2 KiB and 9 KiB Rx buffers, on enasim devices.\n\n")
		pflag.PrintDefaults()
	}
	pflag.Parse()
	if *warmup < 0 || *duration <= 0 || *rounds < 1 {
		fmt.Fprintln(os.Stderr, "enamod: --duration and --rounds must be positive and --warmup not negative")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	o := bench.ModerationOptions{Warmup: *warmup, Duration: *duration, Rounds: *rounds}
	mod, err := bench.MeasureModeration(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "enamod:", err)
		os.Exit(1)
	}
	rx, err := bench.MeasureRxBuf(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "enamod:", err)
		os.Exit(1)
	}
	fmt.Printf("Measured %s (load average %s); noisy on a shared machine.\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), loadavg())
	if err := bench.WriteModerationReport(os.Stdout, mod, rx); err != nil {
		fmt.Fprintln(os.Stderr, "enamod:", err)
		os.Exit(1)
	}
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if err != nil || len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
