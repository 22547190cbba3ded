package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/enanet/enanet/ena"
)

const statsHelp = `
Brings the device up through the enanet driver and prints its statistics:
device counters (GET_STATS BASIC), the ENI allowance counters that tell
when EC2 is shaping traffic (bw_in/bw_out/pps/conntrack/linklocal
allowance exceeded), the driver's counters (resets by reason, admin
commands, keep-alives) and each queue's ring counters. With --interval it
prints again every interval, --count times (0 = until interrupted).

The device must be bound to vfio-pci (enactl bind) and not in use by another
process; --device sim uses the software model.`

// cmdStats implements `enactl stats`.
func cmdStats(e *env, args []string) int {
	fs := flagSet("stats", "enactl stats --device ADDRESS|sim [--interval D] [--count N] [--json]", statsHelp)
	df := addDeviceFlags(fs)
	interval := fs.Duration("interval", 0, "print again every interval (e.g. 1s); 0 prints once")
	count := fs.Int("count", 0, "with --interval, stop after this many prints (0 = until interrupted)")
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	r, ok, code := startDevice(e, "stats", fs, df, args, oneQueue)
	if !ok {
		return code
	}
	defer r.Close()
	if *interval < 0 || *count < 0 {
		fmt.Fprintln(e.stderr, "enactl stats: --interval and --count must not be negative")
		return exitUsage
	}
	ctx, cancel := interruptible()
	defer cancel()
	for n := 1; ; n++ {
		st, err := r.dev.Stats(ctx)
		if err != nil {
			return fail(e, "stats", err)
		}
		if *asJSON {
			json.NewEncoder(e.stdout).Encode(st)
		} else {
			printStats(e.stdout, st)
		}
		if *interval == 0 || (*count > 0 && n >= *count) {
			return exitOK
		}
		select {
		case <-ctx.Done():
			return exitOK
		case <-time.After(*interval):
		}
	}
}

func printStats(w io.Writer, st ena.Stats) {
	d := st.Device
	fmt.Fprintf(w, "device: tx %d pkts %d bytes, rx %d pkts %d bytes, rx_drops %d, tx_drops %d, rx_overruns %d\n",
		d.TxPkts, d.TxBytes, d.RxPkts, d.RxBytes, d.RxDrops, d.TxDrops, d.RxOverruns)
	if st.ENIValid {
		n := st.ENI
		fmt.Fprintf(w, "eni: bw_in_allowance_exceeded %d, bw_out_allowance_exceeded %d, pps_allowance_exceeded %d, conntrack_allowance_exceeded %d, linklocal_allowance_exceeded %d\n",
			n.BWInAllowanceExceeded, n.BWOutAllowanceExceeded, n.PPSAllowanceExceeded, n.ConntrackAllowanceExceeded, n.LinklocalAllowanceExceeded)
	} else {
		fmt.Fprintln(w, "eni: not reported by this device")
	}
	dr := st.Driver
	fmt.Fprintf(w, "driver: admin commands %d (failed %d, timed out %d), aenq events %d, keep-alives %d, link changes %d, resets %v\n",
		dr.AdminCommands, dr.AdminFailures, dr.AdminTimeouts, dr.AENQEvents, dr.KeepAlives, dr.LinkChanges, dr.Resets)
	for i, q := range st.Queues {
		fmt.Fprintf(w, "queue %d: tx %d pkts %d bytes %d doorbells %d no-space; rx %d pkts %d bytes %d doorbells %d no-buffer %d l4csum-bad\n",
			i, q.Tx.Packets, q.Tx.Bytes, q.Tx.Doorbells, q.Tx.NoSpace, q.Rx.Packets, q.Rx.Bytes, q.Rx.Doorbells, q.Rx.NoBuffer, q.Rx.L4CsumBad)
	}
}
