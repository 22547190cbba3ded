package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/internal/devopen"
	"github.com/enanet/enanet/vfio"
)

// deviceFlags adds the flags shared by the commands that bring a device up
// through the driver (info, stats, trace).
type deviceFlags struct {
	device     *string
	mode       *string
	profile    *string
	iovaIsPhys *bool
	poll       *bool
	verbose    *bool
	// socket is the command's --socket flag (info, stats): given, it names
	// the device's holder, so --device may be left out.
	socket *string
}

func addDeviceFlags(fs *flags) deviceFlags {
	d := deviceFlags{
		device:     fs.String("device", "", "device to open: a PCI address bound to vfio-pci, or sim for the software model"),
		mode:       fs.String("mode", "auto", "VFIO IOMMU mode: auto, iommu or noiommu (also --vfio-mode, as enahttp and enaperf spell it)"),
		profile:    fs.String("profile", "", "enasim instance profile with --device sim: nitro-v3 (default), nitro-v4, no-llq; add +express for ENA Express"),
		iovaIsPhys: fs.Bool("iova-is-phys", false, "type1 mode: map DMA at IOVA == physical address (the QEMU proxy test rig needs it)"),
		poll:       fs.Bool("poll", false, "use no interrupts: poll the admin queue and I/O completions"),
		verbose:    fs.BoolP("verbose", "v", false, "log driver events to stderr"),
	}
	fs.MarkHidden("iova-is-phys")
	return d
}

// check validates the shared flags; a non-nil error is a usage error.
func (d deviceFlags) check() error {
	if d.socket != nil && *d.socket != "" && *d.device == "" {
		return nil // the socket names the device; the other flags apply to none
	}
	if err := checkDevice(*d.device); err != nil {
		return err
	}
	if *d.profile != "" && *d.device != devopen.Sim {
		return fmt.Errorf("--profile applies to --device sim only")
	}
	_, err := vfio.ParseMode(*d.mode)
	return err
}

// running is a device brought up through the driver.
type running struct {
	opened *devopen.Opened
	dev    *ena.Device
}

func (r *running) Close() {
	if r.dev != nil {
		r.dev.Close()
	}
	r.opened.Close()
}

// startDevice parses and validates the flags, opens the device and brings
// it up with the configuration config returns (trace, queues). config runs
// after the flags are parsed, so it sees their values, not their defaults;
// an error from it is a usage error. It returns ok=false with the exit code
// to stop with.
func startDevice(e *env, cmd string, fs *flags, df deviceFlags, args []string, config func() (ena.Config, error)) (r *running, ok bool, code int) {
	if ok, code := parseDevice(e, cmd, fs, df, args); !ok {
		return nil, false, code
	}
	return openDevice(e, cmd, fs, df, config)
}

// parseDevice parses and validates a device command's flags.
func parseDevice(e *env, cmd string, fs *flags, df deviceFlags, args []string) (ok bool, code int) {
	if ok, code := parse(e, fs, args); !ok {
		return false, code
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(e.stderr, "enactl %s: unexpected argument %q (use --device)\n", cmd, fs.Arg(0))
		return false, exitUsage
	}
	if err := df.check(); err != nil {
		fmt.Fprintf(e.stderr, "enactl %s: %v\n", cmd, err)
		return false, exitUsage
	}
	return true, exitOK
}

// openDevice opens the device the parsed flags name and brings it up.
func openDevice(e *env, cmd string, fs *flags, df deviceFlags, config func() (ena.Config, error)) (r *running, ok bool, code int) {
	cfg, err := config()
	if err != nil {
		fmt.Fprintf(e.stderr, "enactl %s: %v\n", cmd, err)
		return nil, false, exitUsage
	}
	lg := slog.New(slog.DiscardHandler)
	if *df.verbose {
		lg = slog.New(slog.NewTextHandler(e.stderr, nil))
	}
	opened, err := devopen.Open(devopen.Options{
		Device: *df.device, Profile: *df.profile, VFIOMode: *df.mode,
		IOVAIsPhys: *df.iovaIsPhys, NoInterrupts: *df.poll, SysfsRoot: *fs.sysfsRoot, Logger: lg,
	})
	if err != nil {
		return nil, false, fail(e, cmd, err)
	}
	cfg.Logger = lg
	if *df.poll {
		cfg.PollMode, cfg.AdminPolling = true, true
	}
	dev, err := ena.Open(opened, cfg)
	if err != nil {
		opened.Close()
		return nil, false, fail(e, cmd, fmt.Errorf("bring up %s: %w", opened.Kind, err))
	}
	return &running{opened: opened, dev: dev}, true, exitOK
}

// interruptible returns a context cancelled by SIGINT.
func interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt)
}

var _ io.Closer = (*os.File)(nil)

// oneQueue is the configuration of commands that need a single queue pair.
func oneQueue() (ena.Config, error) { return ena.Config{Queues: 1}, nil }

// maxQueuePairs is the most I/O queue pairs an ENA offers (32 per ENI on
// the largest instances).
const maxQueuePairs = 32
