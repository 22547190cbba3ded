package main

import (
	"encoding/json"
	"fmt"

	"github.com/enanet/enanet/ena/control"
	"github.com/enanet/enanet/ena/observe"
)

const infoHelp = `
Prints what the device reports and what the driver negotiated: identity and
revision, versions, MAC address, link, MTU limits, queue counts and depths,
LLQ mode with the negotiated entry size and pushed-header size (or why host
mode is used), offloads, DMA address width, interrupt use, capabilities
and the device's hints. When a running process holds the device, a
"held by" line names it, and when it reports the stack it runs on the
device (enahttp does), the stack's addresses follow: IPv4 and gateway,
IPv6 global, gateway and link-local, and DNS servers ("network" in
--json).

When a process holds the device (enahttp, enaperf, or a service that serves
the control socket), enactl asks it through its control socket in
/run/enanet. Otherwise it brings the device up itself (reset, admin queue,
AENQ, feature negotiation, one I/O queue pair), prints, and releases it:
that needs the device bound to vfio-pci (enactl bind); --device sim uses
the software model instead (--profile picks its instance class).`

// cmdInfo implements `enactl info`.
func cmdInfo(e *env, args []string) int {
	fs := flagSet("info", "enactl info --device ADDRESS|sim [--mode auto|iommu|noiommu] [--json], or enactl info --socket PATH [--json]", infoHelp)
	df := addDeviceFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON (snake_case keys) instead of text")
	socket := fs.String("socket", "", "ask through this control socket instead of looking for one")
	df.socket = socket
	if ok, code := parseDevice(e, "info", fs, df, args); !ok {
		return code
	}
	ctx, cancel := interruptible()
	defer cancel()
	var in observe.Info
	var network *control.Network // the holder's stack, if it says
	var holder control.Hello     // who answered, when a process holds the device
	c, err := findHolder(ctx, e, "info", *df.device, *socket)
	if err != nil {
		return fail(e, "info", err)
	}
	if c != nil {
		defer c.Close()
		if holder, err = c.Hello(ctx); err != nil {
			return fail(e, "info", err)
		}
		if in, network, err = c.InfoNetwork(ctx); err != nil {
			return fail(e, "info", err)
		}
	} else {
		r, ok, code := openDevice(e, "info", fs, df, oneQueue)
		if !ok {
			return code
		}
		defer r.Close()
		in = observe.MakeInfo(r.opened.Kind, r.dev.Info(), r.dev.LinkUp())
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(infoJSON{Info: in, Network: network}); err != nil {
			return fail(e, "info", err)
		}
		return exitOK
	}
	if err := observe.WriteInfo(e.stdout, in); err != nil {
		return fail(e, "info", fmt.Errorf("writing: %w", err))
	}
	if holder.PID != 0 {
		if _, err := fmt.Fprintf(e.stdout, "%-20s %s\n", "held by:", holderName(holder)); err != nil {
			return fail(e, "info", fmt.Errorf("writing: %w", err))
		}
	}
	if network != nil {
		if err := control.WriteNetwork(e.stdout, *network); err != nil {
			return fail(e, "info", fmt.Errorf("writing: %w", err))
		}
	}
	return exitOK
}

// infoJSON is `enactl info --json`: the device's attributes, and under
// "network" the addresses of the stack the holding process runs (absent
// when enactl brought the device up itself, or the holder does not say).
type infoJSON struct {
	observe.Info
	Network *control.Network `json:"network,omitempty"`
}
