package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/enanet/enanet/ena/control"
	"github.com/enanet/enanet/vfio/pci"
)

const listHelp = `
Lists the PCI functions with an ENA id (vendor 1d0f, device ec20, ec21, 0ec2
or 1ec2) and, for each: the driver it is bound to (ena = the kernel owns it,
vfio-pci = ready for enanet), its network interface, IOMMU group, NUMA node,
BAR0 (registers) and BAR2 (LLQ memory), and whether sysfs offers a
write-combining mapping of BAR2 (resource2_wc). An interface marked * carries
the default route; enactl bind refuses it without --force.

The HOLDER column names the process that runs each device (enahttp,
enaperf, or a service that serves the control socket in /run/enanet), and
simulated devices that processes run are listed after the table. A control
socket whose process is gone is removed, with a message.

With --device sim it prints the simulated device that enanet's software model
provides, and the processes running one.`

// cmdList implements `enactl list`.
func cmdList(e *env, args []string) int {
	fs := flagSet("list", "enactl list [--device sim] [--sysfs DIR]", listHelp)
	device := fs.String("device", "", "show only this device (a PCI address, or sim for the software model)")
	routeFile := fs.String("route-file", "", "IPv4 routing table (default /proc/net/route)")
	_ = fs.MarkHidden("route-file")
	if ok, code := parse(e, fs, args); !ok {
		return code
	}
	ctx, cancel := interruptible()
	defer cancel()
	holders := map[string]control.Endpoint{}
	var sims []control.Endpoint
	for _, ep := range scanHolders(ctx, e, "list").Live {
		if dev := control.DeviceOfSocket(filepath.Base(ep.Path)); dev == "sim" {
			sims = append(sims, ep)
		} else {
			holders[dev] = ep
		}
	}
	if *device == "sim" {
		fmt.Fprintln(e.stdout, "ADDRESS  ID         DRIVER  DESCRIPTION")
		fmt.Fprintln(e.stdout, "sim0     1d0f:ec20  enasim  software model of an ENA VF (LLQ, no hardware needed)")
		printSims(e, sims)
		return exitOK
	}
	if *device != "" {
		if err := checkDevice(*device); err != nil {
			fmt.Fprintf(e.stderr, "enactl list: %v\n", err)
			return exitUsage
		}
	}
	sys := fs.sysfs()
	devs, scanned, err := sys.ENA()
	if err != nil {
		return fail(e, "list", err)
	}
	if *device != "" {
		want, _ := pci.NormalizeAddress(*device)
		var keep []pci.Device
		for _, d := range devs {
			if d.Address == want {
				keep = append(keep, d)
			}
		}
		devs = keep
	}
	if len(devs) == 0 {
		fmt.Fprintf(e.stdout, "No ENA devices found: scanned %d PCI devices in %s for vendor 1d0f, device %s.\n",
			scanned, sys.DevicesDir(), idList())
		if *device != "" {
			fmt.Fprintf(e.stdout, "No ENA device at %s.\n", *device)
		} else {
			fmt.Fprintln(e.stdout, "This machine has no ENA (it is not an EC2 instance with ENA networking).")
		}
		printSims(e, sims)
		return exitOK
	}
	defRoute, _ := pci.DefaultRouteInterfaces(*routeFile, "")
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tID\tDRIVER\tIFACE\tGROUP\tNUMA\tBAR0\tBAR2 (LLQ)\tWC\tHOLDER")
	for _, d := range devs {
		drv := d.Driver
		if drv == "" {
			drv = "-"
		}
		var ifs []string
		for _, i := range d.Interfaces {
			if defRoute[i] {
				i += "*"
			}
			ifs = append(ifs, i)
		}
		holder := "-"
		if ep, ok := holders[d.Address]; ok {
			holder = holderName(ep.Hello)
		}
		fmt.Fprintf(tw, "%s\t%04x:%04x\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Address, d.Vendor, d.Device, drv,
			dash(strings.Join(ifs, ",")), num(d.IOMMUGroup), num(d.NUMANode), bar(d, 0), bar(d, 2), yesNo(d.WCPossible), holder)
	}
	tw.Flush()
	fmt.Fprintf(e.stdout, "\n%d ENA device(s) of %d PCI devices scanned in %s.\n", len(devs), scanned, sys.DevicesDir())
	if sys.IOMMUPresent() {
		fmt.Fprintln(e.stdout, "IOMMU: present (VFIO type1 mode).")
	} else if on, supported := sys.NoIOMMUMode(); on {
		fmt.Fprintln(e.stdout, "IOMMU: none; VFIO no-IOMMU mode is on.")
	} else if supported {
		fmt.Fprintln(e.stdout, "IOMMU: none, and VFIO no-IOMMU mode is off: run `enactl setup` before `enactl bind`.")
	} else {
		fmt.Fprintln(e.stdout, "IOMMU: none; vfio is not loaded or lacks no-IOMMU support: run `enactl setup`.")
	}
	printSims(e, sims)
	return exitOK
}

// printSims lists the processes that run a simulated device.
func printSims(e *env, sims []control.Endpoint) {
	if len(sims) == 0 {
		return
	}
	fmt.Fprintln(e.stdout, "\nSimulated devices in use:")
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  HOLDER\tQUEUES\tSINCE\tSOCKET")
	for _, ep := range sims {
		h := ep.Hello
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\n", holderName(h), h.Queues, h.Started.Local().Format("2006-01-02 15:04:05"), ep.Path)
	}
	tw.Flush()
}

func idList() string {
	var s []string
	for _, id := range pci.ENADeviceIDs {
		s = append(s, fmt.Sprintf("%04x", id))
	}
	return strings.Join(s, ", ")
}

func bar(d pci.Device, i int) string {
	b, ok := d.BAR(i)
	if !ok {
		return "-"
	}
	s := b.String()
	return strings.TrimPrefix(s, fmt.Sprintf("BAR%d ", i))
}

func num(n int) string {
	if n < 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
