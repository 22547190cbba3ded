package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/enanet/enanet/ena/control"
	"github.com/enanet/enanet/ena/observe"
)

const statsHelp = `
Prints the device's counters under the names Linux's ena driver gives them
in ethtool -S: the device totals (GET_STATS BASIC), the ENI allowance
counters that tell when EC2 is shaping traffic (bw_in_allowance_exceeded,
bw_out_allowance_exceeded, pps_allowance_exceeded,
conntrack_allowance_exceeded, linklocal_allowance_exceeded) and
conntrack_allowance_available, the ENA Express (SRD) counters when the
device offers them, the driver's counters (resets by reason, admin queue,
keep-alives) and each queue's counters (queue_N_tx_cnt ...). With --watch
it prints again every interval with the per-second rate of each counter.

When a process holds the device (enahttp, enaperf, or a service that serves
the control socket), enactl reads it through that process's control socket
in /run/enanet. Otherwise it brings the device up itself, which needs the
device bound to vfio-pci (enactl bind) and not in use; --device sim then
starts a fresh simulated device whose counters start at zero.`

// cmdStats implements `enactl stats`.
func cmdStats(e *env, args []string) int {
	fs := flagSet("stats", "enactl stats --device ADDRESS|sim [--watch D] [--count N] [--json], or --socket PATH instead of --device", statsHelp)
	df := addDeviceFlags(fs)
	watch := fs.Duration("watch", 0, "print again every interval (e.g. 1s) with per-second rates, until interrupted")
	fs.DurationVar(watch, "interval", 0, "same as --watch")
	_ = fs.MarkHidden("interval")
	count := fs.Int("count", 0, "with --watch, stop after this many prints (0 = until interrupted)")
	asJSON := fs.Bool("json", false, "print one JSON object per sample (counters and rates by name)")
	socket := fs.String("socket", "", "read through this control socket instead of looking for one")
	df.socket = socket
	if ok, code := parseDevice(e, "stats", fs, df, args); !ok {
		return code
	}
	if *watch < 0 || *count < 0 {
		fmt.Fprintln(e.stderr, "enactl stats: --watch and --count must not be negative")
		return exitUsage
	}
	if *count > 0 && *watch == 0 {
		fmt.Fprintln(e.stderr, "enactl stats: --count needs --watch (e.g. --watch 1s --count 10)")
		return exitUsage
	}
	if *watch > 0 && *watch < 10*time.Millisecond {
		fmt.Fprintln(e.stderr, "enactl stats: --watch must be at least 10ms")
		return exitUsage
	}
	ctx, cancel := interruptible()
	defer cancel()
	take, closeFn, code := statsSource(ctx, e, fs, df, *socket)
	if take == nil {
		return code
	}
	defer closeFn()
	var prev *observe.Snapshot
	for n := 1; ; n++ {
		s, err := take(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return exitOK
			}
			return fail(e, "stats", err)
		}
		if s.Error != "" {
			// The device's part could not be read (a reset): its zeros
			// are not values, so leave them out rather than print them.
			s = withoutDeviceCounters(s)
		}
		var rates map[string]float64
		var restarted []string
		if prev != nil {
			rates = observe.Rates(*prev, s)
			restarted = restartedCounters(*prev, s)
		}
		if *asJSON {
			writeStatsJSON(e.stdout, s, rates, restarted)
		} else {
			if n > 1 {
				fmt.Fprintln(e.stdout)
			}
			observe.WriteTable(e.stdout, s, rates)
			if len(restarted) > 0 {
				fmt.Fprintf(e.stdout, "\nRestarted since the previous sample, so no rate this time: %s\n"+
					"(a device reset restarts the device's own counters; replacing rings restarts the ring counters)\n",
					strings.Join(restarted, ", "))
			}
		}
		prev = &s
		if *watch == 0 || (*count > 0 && n >= *count) {
			return exitOK
		}
		select {
		case <-ctx.Done():
			return exitOK
		case <-time.After(*watch):
		}
	}
}

// statsSource returns how to take a snapshot: through the holder's control
// socket, or from a device enactl brings up itself.
func statsSource(ctx context.Context, e *env, fs *flags, df deviceFlags, socket string) (func(context.Context) (observe.Snapshot, error), func(), int) {
	c, err := findHolder(ctx, e, "stats", *df.device, socket)
	if err != nil {
		return nil, nil, fail(e, "stats", err)
	}
	if c != nil {
		// One connection for the whole watch; if the server dropped it
		// (idle timeout with a long --watch), dial again once.
		path := c.Path()
		take := func(ctx context.Context) (observe.Snapshot, error) {
			s, err := c.Stats(ctx)
			var remote *control.Error
			if err == nil || errors.As(err, &remote) || ctx.Err() != nil {
				return s, err
			}
			c.Close()
			nc, derr := control.Dial(ctx, path)
			if derr != nil {
				return s, fmt.Errorf("lost %s: the process serving the device stopped or closed the socket (%v)", path, derr)
			}
			c = nc
			return c.Stats(ctx)
		}
		return take, func() { c.Close() }, exitOK
	}
	r, ok, code := openDevice(e, "stats", fs, df, oneQueue)
	if !ok {
		return nil, nil, code
	}
	// Said once the device is up: a device that cannot be opened gets
	// only the reason why.
	fmt.Fprintf(e.stderr, "enactl stats: no running process that this user can reach serves %s; brought it up here (counters start at zero)\n", *df.device)
	name := r.dev.Info().Identity.Address
	return func(ctx context.Context) (observe.Snapshot, error) {
		s := observe.Take(ctx, r.dev, name)
		if s.Error != "" && ctx.Err() != nil {
			return s, ctx.Err()
		}
		return s, nil
	}, r.Close, exitOK
}

// statsJSON is one sample of `enactl stats --json`.
type statsJSON struct {
	Device   string             `json:"device"`
	Time     time.Time          `json:"time"`
	Error    string             `json:"error,omitempty"`
	Counters map[string]uint64  `json:"counters"`
	Rates    map[string]float64 `json:"rates_per_second,omitempty"`
	// Restarted are the counters lower than in the previous sample (a
	// device reset, replaced rings): they have no rate in this sample.
	Restarted []string `json:"restarted,omitempty"`
}

func writeStatsJSON(w io.Writer, s observe.Snapshot, rates map[string]float64, restarted []string) {
	json.NewEncoder(w).Encode(statsJSON{Device: s.Device, Time: s.Time, Error: s.Error, Counters: s.Values(), Rates: rates, Restarted: restarted})
}

// restartedCounters names the counters (not gauges) of cur that are lower
// than in prev: observe.Rates gives them no rate, and the table would
// otherwise show a total that fell with no word why.
func restartedCounters(prev, cur observe.Snapshot) []string {
	old := prev.Values()
	var names []string
	for _, c := range cur.Counters {
		if p, ok := old[c.Name]; ok && !c.Gauge && c.Value < p {
			names = append(names, c.Name)
		}
	}
	return names
}

// withoutDeviceCounters is s without the counters that come from the
// device's GET_STATS (device totals, ENI allowances, ENA Express): in a
// snapshot whose device part failed they hold zeros, not readings. The
// next sample then shows them again, without a rate.
func withoutDeviceCounters(s observe.Snapshot) observe.Snapshot {
	var kept []observe.Counter
	for _, c := range s.Counters {
		switch observe.GroupOf(c) {
		case observe.GroupDevice, observe.GroupENI, observe.GroupSRD:
			continue
		}
		kept = append(kept, c)
	}
	s.Counters = kept
	return s
}
