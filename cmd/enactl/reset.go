package main

import (
	"fmt"
)

const resetHelp = `
Asks the process that holds the device to reset it and bring it back up,
as the driver's watchdog would after a fault (reason USER_TRIGGER): the
device drops its queues and state, the driver rebuilds them, and traffic
resumes; packets in flight during the reset are lost and TCP retransmits
them. Use it to recover a device that misbehaves, or to test how a service
rides out a reset.

The device must be held by a running process that serves the control
socket in /run/enanet (enahttp, enaperf, or a service that calls
control.Serve); see enactl list.`

// cmdReset implements `enactl reset`.
func cmdReset(e *env, args []string) int {
	fs := flagSet("reset", "enactl reset --device ADDRESS|sim [--socket PATH]", resetHelp)
	device := fs.String("device", "", "the device to reset: a PCI address, or sim for a simulated one")
	socket := fs.String("socket", "", "use this control socket instead of looking for one")
	_ = fs.MarkHidden("sysfs") // the command talks to a socket, never to sysfs
	if ok, code := parse(e, fs, args); !ok {
		return code
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(e.stderr, "enactl reset: unexpected argument %q (use --device)\n", fs.Arg(0))
		return exitUsage
	}
	if *socket == "" {
		if err := checkDevice(*device); err != nil {
			fmt.Fprintf(e.stderr, "enactl reset: %v\n", err)
			return exitUsage
		}
	}
	ctx, cancel := interruptible()
	defer cancel()
	c, err := findHolder(ctx, e, "reset", *device, *socket)
	if err != nil {
		return fail(e, "reset", err)
	}
	if c == nil {
		return fail(e, "reset", fmt.Errorf("no running process serves %s: enactl reset acts on a device a process is using (enahttp, enaperf, or a service that serves the control socket); see enactl list", *device))
	}
	defer c.Close()
	h, err := c.Hello(ctx)
	if err != nil {
		return fail(e, "reset", err)
	}
	r, err := c.Reset(ctx)
	if err != nil {
		return fail(e, "reset", fmt.Errorf("%s (%s): %w", h.Device, holderName(h), err))
	}
	fmt.Fprintf(e.stdout, "reset %s (held by %s): reason %s, back up in %.1f ms\n", h.Device, holderName(h), r.Reason, r.DurationMs)
	return exitOK
}
