package main

const traceHelp = `
Brings the device up through the enanet driver with tracing on and prints,
as they happen, every admin command and completion (opcode, status, time
taken), every AENQ event (link change, keep-alive, notifications) and every
device reset with its reason, until --duration passes or it is interrupted.
Use it to see why bring-up fails (for example CREATE_CQ rejected by LLQ
entry-size negotiation) or how the device behaves over time.

The device must be bound to vfio-pci (enactl bind) and not in use by another
process; --device sim uses the software model.`

// cmdTrace implements `enactl trace`.
func cmdTrace(e *env, args []string) int {
	fs := flagSet("trace", "enactl trace --device ADDRESS|sim [--duration D] [--queues N]", traceHelp)
	df := addDeviceFlags(fs)
	fs.Duration("duration", 0, "stop after this long (0 = until interrupted)")
	fs.Int("queues", 0, "also create this many I/O queue pairs, to trace their creation (0 = admin only)")
	_, code := startDevice(e, "trace", fs, df, args)
	return code
}
