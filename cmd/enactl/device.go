package main

import (
	"fmt"

	"github.com/enanet/enanet/vfio"
)

// deviceFlags adds the flags shared by the commands that bring a device up
// through the driver (info, stats, trace).
type deviceFlags struct {
	device *string
	mode   *string
}

func addDeviceFlags(fs *flags) deviceFlags {
	return deviceFlags{
		device: fs.String("device", "", "device to open: a PCI address bound to vfio-pci, or sim for the software model"),
		mode:   fs.String("mode", "auto", "VFIO IOMMU mode: auto, iommu or noiommu"),
	}
}

// check validates the shared flags; a non-nil error is a usage error.
func (d deviceFlags) check() error {
	if err := checkDevice(*d.device); err != nil {
		return err
	}
	_, err := vfio.ParseMode(*d.mode)
	return err
}

// notAvailable is what info, stats and trace say until the driver lands.
func notAvailable(e *env, cmd string) int {
	fmt.Fprintf(e.stderr, "enactl %s: not available yet: the ena driver package is not merged\n", cmd)
	return exitUsage
}

// startDevice validates the flags and would bring the device up; it returns
// ok=false with the exit code to stop with.
func startDevice(e *env, cmd string, fs *flags, df deviceFlags, args []string) (ok bool, code int) {
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
	return false, notAvailable(e, cmd)
}
