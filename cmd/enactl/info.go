package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/spec"
)

const infoHelp = `
Brings the device up through the enanet driver (reset, admin queue, AENQ,
feature negotiation, one I/O queue pair) and prints what it reports:
identity and revision, versions, MAC address, MTU limits, queue counts and
depths, LLQ mode with the negotiated entry size and pushed-header size (or
why host mode is used), offloads, DMA address width, interrupt use and the
device's hints. Then it resets the device and releases it.

The device must be bound to vfio-pci (enactl bind); --device sim uses the
software model instead (--profile picks its instance class).`

// cmdInfo implements `enactl info`.
func cmdInfo(e *env, args []string) int {
	fs := flagSet("info", "enactl info --device ADDRESS|sim [--mode auto|iommu|noiommu] [--json]", infoHelp)
	df := addDeviceFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	r, ok, code := startDevice(e, "info", fs, df, args, oneQueue)
	if !ok {
		return code
	}
	defer r.Close()
	in := r.dev.Info()
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(in); err != nil {
			return fail(e, "info", err)
		}
		return exitOK
	}
	printInfo(e.stdout, r.opened.Kind, in)
	return exitOK
}

func printInfo(w io.Writer, kind string, in ena.Info) {
	row := func(k, format string, args ...any) {
		fmt.Fprintf(w, "%-20s "+format+"\n", append([]any{k + ":"}, args...)...)
	}
	row("device", "%s", kind)
	row("pci", "%04x:%04x rev %02x at %s", in.Identity.Vendor, in.Identity.Device, in.Identity.Revision, in.Identity.Address)
	row("version", "%d.%d, controller %d.%d.%d (implementation %d)", in.Version.Major, in.Version.Minor,
		in.ControllerVersion.Major, in.ControllerVersion.Minor, in.ControllerVersion.SubMinor, in.ControllerVersion.ImplID)
	row("register reads", "%s", map[bool]string{true: "readless (DMA)", false: "plain MMIO loads"}[in.Readless])
	row("mac", "%s", net.HardwareAddr(in.MAC[:]))
	row("mtu", "%d (max %d)", in.MTU, in.MaxMTU)
	row("queues", "%d in use, device max %d", in.Queues, in.MaxQueues)
	row("depths", "Tx %d (max %d), Rx %d (max %d)", in.TxDepth, in.MaxTxDepth, in.RxDepth, in.MaxRxDepth)
	if in.LLQ {
		row("tx placement", "LLQ: %d B entries, %d descriptors before header, %d B pushed header, burst %d entries",
			in.LLQEntrySize, in.LLQDescsBeforeHeader, in.LLQMaxPushHeader, in.LLQBurstEntries)
	} else {
		row("tx placement", "host memory (%s)", in.LLQReason)
	}
	row("offloads", "%+v", in.Offloads)
	row("interrupts", "admin %s, I/O %s", onOff(in.AdminInterrupts, "interrupt", "polling"), onOff(in.IOInterrupts, "interrupt", "busy-poll"))
	row("dma width", "%d bits", in.DMAAddrWidth)
	row("features", "%s", featureNames(in.SupportedFeatures))
	row("capabilities", "%#x", in.Capabilities)
	row("aenq groups", "%#x", in.AENQGroups)
	row("rss table", "%d entries", in.RSSTableSize)
	row("hints", "%+v", in.Hints)
}

func onOff(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

func featureNames(bits uint32) string {
	var names []string
	for i := 0; i < 32; i++ {
		if bits&(1<<i) != 0 {
			names = append(names, spec.FeatureID(i).String())
		}
	}
	return strings.Join(names, " ")
}
