package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/enanet/enanet/ena/control"
	"github.com/enanet/enanet/vfio/pci"
)

// controlDir is where running devices' control sockets live (the rule
// servers follow: $ENANET_CONTROL_DIR, /run/enanet for root,
// $XDG_RUNTIME_DIR/enanet for other users).
func controlDir(e *env) string { return control.DirFor(e.getenv, os.Geteuid()) }

// scanHolders lists the live control sockets, removing stale ones with a
// message on stderr.
func scanHolders(ctx context.Context, e *env, cmd string) control.Scan {
	sc := control.Discover(ctx, controlDir(e), true)
	for _, p := range sc.Removed {
		fmt.Fprintf(e.stderr, "enactl %s: removed stale control socket %s (the process that served it is gone)\n", cmd, p)
	}
	return sc
}

// findHolder looks for the process that holds device ("sim" or a PCI
// address) through its control socket, or uses socket when given. It
// returns a connected client, or nil when no process serves the device.
// A socket for the device that this user may not use is an error for a
// real device; for sim (where a fresh simulated device is an alternative)
// it is a warning.
func findHolder(ctx context.Context, e *env, cmd, device, socket string) (*control.Client, error) {
	if socket != "" {
		c, err := control.Dial(ctx, socket)
		if err != nil {
			return nil, err
		}
		if _, err := c.Hello(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("%s: %w", socket, err)
		}
		return c, nil
	}
	want := device
	if device != "sim" {
		want, _ = pci.NormalizeAddress(device)
	}
	sc := scanHolders(ctx, e, cmd)
	var match []control.Endpoint
	for _, ep := range sc.Live {
		if control.DeviceOfSocket(filepath.Base(ep.Path)) == want {
			match = append(match, ep)
		}
	}
	var unreachable error
	for _, p := range sc.Problems {
		if strings.Contains(p.Error(), "/"+want+".sock") || (want == "sim" && strings.Contains(p.Error(), "/sim-")) {
			unreachable = p
			if want == "sim" && cmd != "reset" {
				fmt.Fprintf(e.stderr, "enactl %s: warning: %v\n", cmd, p)
			}
		}
	}
	switch len(match) {
	case 0:
		if unreachable != nil && (want != "sim" || cmd == "reset") {
			return nil, unreachable
		}
		return nil, nil
	case 1:
		return control.Dial(ctx, match[0].Path)
	}
	var who []string
	for _, m := range match {
		who = append(who, fmt.Sprintf("%s pid %d (%s)", m.Hello.Program, m.Hello.PID, m.Path))
	}
	return nil, errors.New("several processes run a simulated device: " + strings.Join(who, ", ") + "; pick one with --socket PATH")
}

// holderName describes who serves a socket, for messages.
func holderName(h control.Hello) string {
	return fmt.Sprintf("%s pid %d", h.Program, h.PID)
}
