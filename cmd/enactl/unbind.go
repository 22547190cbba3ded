package main

import (
	"fmt"

	"github.com/enanet/enanet/vfio/pci"
)

const unbindHelp = `
Gives each ENA function back to the kernel's ena driver: clears its
driver_override, unbinds it from vfio-pci and asks the PCI bus to probe it
again, so its network interface comes back. The ena module must be loaded
(modprobe ena). Stop any enanet process using the device first.`

// cmdUnbind implements `enactl unbind`.
func cmdUnbind(e *env, args []string) int {
	fs := flagSet("unbind", "enactl unbind [--dry-run] [--sysfs DIR] ADDRESS...", unbindHelp)
	dry := fs.Bool("dry-run", false, "print the writes without making them")
	if ok, code := parse(e, fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(e.stderr, "enactl unbind: give at least one PCI address (see `enactl list`)")
		return exitUsage
	}
	o := pci.BindOptions{DryRun: *dry}
	return moveAll(e, "unbind", fs.Args(), func(a string) ([]string, error) { return fs.sysfs().Unbind(a, o) })
}
