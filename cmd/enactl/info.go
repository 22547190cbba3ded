package main

const infoHelp = `
Brings the device up through the enanet driver (reset, admin queue, AENQ,
feature negotiation; no I/O queues) and prints what it reports: identity and
revision, MAC address, MTU limits, queue counts and depths, LLQ support and
the negotiated entry size and header size, whether LLQ runs write-combined,
offloads, DMA address width and the VFIO mode in use. Then it resets the
device and releases it.

The device must be bound to vfio-pci (enactl bind); --device sim uses the
software model instead.`

// cmdInfo implements `enactl info`.
func cmdInfo(e *env, args []string) int {
	fs := flagSet("info", "enactl info --device ADDRESS|sim [--mode auto|iommu|noiommu]", infoHelp)
	df := addDeviceFlags(fs)
	fs.Bool("json", false, "print JSON instead of text")
	_, code := startDevice(e, "info", fs, df, args)
	return code
}
