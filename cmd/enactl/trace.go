package main

import (
	"fmt"
	"time"

	"github.com/enanet/enanet/ena"
)

const traceHelp = `
Brings the device up through the enanet driver with the register-level
trace on and prints, as they happen, every register read and write, every
admin command and completion (decoded), every AENQ event and every device
reset with its reason, until --duration passes or it is interrupted. Use it
to see why bring-up fails (for example CREATE_CQ rejected by LLQ entry-size
negotiation) or to compare the bring-up order with ena-com's.

The device must be bound to vfio-pci (enactl bind) and not in use by another
process; --device sim uses the software model.`

// cmdTrace implements `enactl trace`.
func cmdTrace(e *env, args []string) int {
	fs := flagSet("trace", "enactl trace --device ADDRESS|sim [--duration D] [--queues N]", traceHelp)
	df := addDeviceFlags(fs)
	duration := fs.Duration("duration", 0, "keep tracing this long after bring-up (0 = stop after bring-up)")
	queues := fs.Int("queues", 1, "I/O queue pairs to create, to trace their creation")
	r, ok, code := startDevice(e, "trace", fs, df, args, func() (ena.Config, error) {
		if *queues < 1 || *queues > maxQueuePairs {
			return ena.Config{}, fmt.Errorf("--queues %d: want 1..%d queue pairs (the device may offer fewer)", *queues, maxQueuePairs)
		}
		if *duration < 0 {
			return ena.Config{}, fmt.Errorf("--duration %s: must not be negative", *duration)
		}
		return ena.Config{Queues: *queues, Trace: e.stdout}, nil
	})
	if !ok {
		return code
	}
	defer r.Close()
	if *duration > 0 {
		ctx, cancel := interruptible()
		defer cancel()
		select {
		case <-ctx.Done():
		case <-time.After(*duration):
		}
	}
	return exitOK
}
