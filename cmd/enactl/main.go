// Command enactl finds ENA functions, moves them between the kernel's ena
// driver and vfio-pci, prepares the machine (hugepages, VFIO no-IOMMU mode),
// and inspects a device through the enanet driver.
//
// Each sub-command lives in its own file as one function; main only
// dispatches. Exit codes: 0 success, 1 failure, 2 usage error or a
// sub-command that is not available.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/enanet/enanet/internal/flagerr"
	"github.com/enanet/enanet/vfio/pci"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// env is what a sub-command may touch of the outside world, so tests can
// run commands against fixture trees and capture their output.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

// command is one sub-command.
type command struct {
	name    string
	summary string
	run     func(e *env, args []string) int
}

// commands in the order `enactl --help` lists them.
var commands = []command{
	{"list", "list ENA devices and what they are bound to", cmdList},
	{"bind", "bind ENA devices to vfio-pci for enanet", cmdBind},
	{"unbind", "give ENA devices back to the kernel's ena driver", cmdUnbind},
	{"setup", "reserve hugepages and enable VFIO (no-IOMMU mode when there is no IOMMU)", cmdSetup},
	{"info", "print a device's attributes and features", cmdInfo},
	{"stats", "print a device's counters (ethtool -S names), once or --watch", cmdStats},
	{"reset", "reset a device a running process holds", cmdReset},
	{"set", "change channels, rings, RSS or interrupt moderation of a held device", cmdSet},
	{"trace", "bring a device up and trace admin commands and events", cmdTrace},
	{"doctor", "qualify this machine for enanet and write a report", cmdDoctor},
}

func main() {
	os.Exit(run(os.Args[1:], &env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}))
}

// run dispatches to a sub-command and returns the exit code.
func run(args []string, e *env) int {
	if len(args) == 0 {
		usage(e.stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(e.stdout)
		return exitOK
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(e, args[1:])
		}
	}
	fmt.Fprintf(e.stderr, "enactl: unknown command %q\n\n", args[0])
	usage(e.stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "enactl manages Amazon ENA network devices for enanet (a userspace driver over VFIO).")
	fmt.Fprintln(w, "\nUsage: enactl <command> [flags]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun `enactl <command> --help` for a command's flags and what it does.")
	fmt.Fprintln(w, "Typical first use on EC2: enactl setup && enactl list && enactl bind <address>")
}

// flags is a sub-command's flag set with the text its --help prints.
type flags struct {
	*pflag.FlagSet
	synopsis, help string
	sysfsRoot      *string
}

// flagSet makes a sub-command's flag set with the --sysfs flag every
// command shares.
func flagSet(name, synopsis, help string) *flags {
	fs := pflag.NewFlagSet("enactl "+name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse reports errors itself
	fs.SortFlags = false
	fs.Usage = func() {}
	// enahttp and enaperf spell --mode as --vfio-mode; accept both here so
	// a command line carries over.
	fs.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		if name == "vfio-mode" {
			name = "mode"
		}
		return pflag.NormalizedName(name)
	})
	f := &flags{FlagSet: fs, synopsis: synopsis, help: help}
	f.sysfsRoot = fs.String("sysfs", "/sys", "sysfs root (tests point this at a fixture tree)")
	return f
}

// parse parses args. It returns ok=false with the exit code when the
// command should stop: after --help (0) or on a usage error (2).
func parse(e *env, f *flags, args []string) (ok bool, code int) {
	err := f.Parse(args)
	if errors.Is(err, pflag.ErrHelp) {
		f.printHelp(e.stdout)
		return false, exitOK
	}
	if err != nil {
		// The error and the synopsis, not the whole help: the fix stays on
		// screen (--help has the rest).
		fmt.Fprintf(e.stderr, "%s: %v\nUsage: %s\n", f.Name(), flagerr.Rewrite(f.FlagSet, err), f.synopsis)
		return false, exitUsage
	}
	return true, exitOK
}

func (f *flags) printHelp(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n\nFlags:\n%s\n", f.synopsis, strings.TrimSpace(f.help), strings.TrimRight(f.FlagUsages(), "\n"))
}

// sysfs returns the pci.Sysfs the --sysfs flag names.
func (f *flags) sysfs() pci.Sysfs { return sysfsAt(*f.sysfsRoot) }

// sysfsAt makes the pci.Sysfs for a root; tests replace it with one whose
// fixture plays the kernel's part in bind and unbind.
var sysfsAt = func(root string) pci.Sysfs { return pci.Sysfs{Root: root} }

// fail prints "enactl <cmd>: err" and returns exitFailure.
func fail(e *env, cmd string, err error) int {
	fmt.Fprintf(e.stderr, "enactl %s: %v\n", cmd, err)
	return exitFailure
}

// checkDevice validates a --device value: "sim" or a PCI address.
func checkDevice(v string) error {
	if v == "sim" {
		return nil
	}
	if v == "" {
		return fmt.Errorf("--device is required (a PCI address from `enactl list`, or sim)")
	}
	if _, err := pci.NormalizeAddress(v); err != nil {
		return fmt.Errorf("--device %q: want a PCI address such as 0000:00:06.0, or sim", v)
	}
	return nil
}
