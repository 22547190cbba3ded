package main

const statsHelp = `
Brings the device up through the enanet driver and prints its statistics
(GET_STATS: basic Tx/Rx counters, and the ENI allowance counters such as
bw_in_allowance_exceeded and pps_allowance_exceeded that tell when EC2 is
shaping traffic). With --interval it prints again every interval, --count
times (0 = until interrupted).

The device must be bound to vfio-pci (enactl bind) and not in use by another
process; --device sim uses the software model.`

// cmdStats implements `enactl stats`.
func cmdStats(e *env, args []string) int {
	fs := flagSet("stats", "enactl stats --device ADDRESS|sim [--interval D] [--count N]", statsHelp)
	df := addDeviceFlags(fs)
	fs.Duration("interval", 0, "print again every interval (e.g. 1s); 0 prints once")
	fs.Int("count", 0, "with --interval, stop after this many prints (0 = until interrupted)")
	fs.Bool("json", false, "print JSON instead of text")
	_, code := startDevice(e, "stats", fs, df, args)
	return code
}
