package main

import (
	"fmt"

	"github.com/enanet/enanet/vfio/pci"
)

const bindHelp = `
Binds each given ENA function to vfio-pci so enanet can drive it: writes
vfio-pci to its driver_override, unbinds it from its current driver and asks
the PCI bus to probe it again. It prints each write as a shell command.

It refuses a function whose interface carries the default route, or carries
the address this SSH session arrived on: that would cut the machine off the
network. Attach a second ENA to the instance for enanet, or pass --force.

vfio-pci must be loaded, and the machine needs an IOMMU or VFIO no-IOMMU mode
(EC2 instances other than .metal have no IOMMU): run enactl setup first.`

// cmdBind implements `enactl bind`.
func cmdBind(e *env, args []string) int {
	fs := flagSet("bind", "enactl bind [--force] [--dry-run] [--sysfs DIR] ADDRESS...", bindHelp)
	force := fs.Bool("force", false, "bind even the interface with the default route or the SSH session")
	dry := fs.Bool("dry-run", false, "print the writes without making them")
	routeFile := fs.String("route-file", "", "IPv4 routing table (default /proc/net/route)")
	_ = fs.MarkHidden("route-file")
	if ok, code := parse(e, fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(e.stderr, "enactl bind: give at least one PCI address (see `enactl list`)")
		return exitUsage
	}
	o := pci.BindOptions{Force: *force, DryRun: *dry, RouteFile: *routeFile, SSHConnection: e.getenv("SSH_CONNECTION")}
	return moveAll(e, "bind", fs.Args(), func(a string) ([]string, error) { return fs.sysfs().Bind(a, o) })
}

// moveAll runs bind or unbind for each address, printing the steps.
func moveAll(e *env, cmd string, addrs []string, f func(string) ([]string, error)) int {
	code := exitOK
	for _, a := range addrs {
		steps, err := f(a)
		for _, s := range steps {
			fmt.Fprintln(e.stdout, s)
		}
		if err != nil {
			fail(e, cmd, err)
			code = exitFailure
		}
	}
	return code
}
