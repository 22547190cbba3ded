package ena

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/enanet/enanet/ena/hw"
	"github.com/enanet/enanet/ena/spec"
)

// Driver version reported to the device. Some firmware interprets
// driver_version, and every vendor driver reports major 2 (§4.8), so we do
// too; minor and sub-minor count this driver's own releases.
const (
	driverMajor    = 2
	driverMinor    = 0
	driverSubMinor = 0
)

// hostOSType is the os_type we report: DPDK (3). enanet is what DPDK's ENA
// PMD is to the device: a userspace poll-mode driver over VFIO using the
// ena_com conventions (queue creation, LLQ policy, host features 0x10 like
// DPDK's). Reporting Linux would claim the kernel driver's netdev feature
// bits and version history, which we do not have; 3 is a value the fleet
// has seen from DPDK for years, while an unknown value might trip firmware
// that interprets the field (§4.8 notes old firmware was picky about it).
const hostOSType = spec.OSDPDK

// hostSupportedFeatures: we configure the RSS function and key ourselves
// (bit 4) and send interrupt moderation delays in the unmask word (bit 2,
// moderation.go). We do not advertise rx_offset: the Rx path expects
// packet data at offset 0 of each buffer.
const hostSupportedFeatures = spec.HostFeatRSSConfigurableFunctionKey | spec.HostFeatInterruptModeration

// fillHostInfo writes the host-info page (§4.8 HOST_ATTR_CONFIG) into a
// zeroed 4 KiB DMA page.
func fillHostInfo(page *hw.Region, id hw.Identity) {
	kernel := "unknown"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	h := spec.HostInfo{
		OSType:                  hostOSType,
		OSDistStr:               fmt.Sprintf("enanet %s/%s %s", runtime.GOOS, runtime.GOARCH, runtime.Version()),
		KernelVerStr:            truncate(kernel, spec.HostInfoKernelVerStrLen-1),
		DriverVersion:           spec.PackDriverVersion(driverMajor, driverMinor, driverSubMinor, 0),
		SpecVersion:             spec.ENASpecVersion,
		BDF:                     parseBDF(id.Address),
		NumCPUs:                 uint16(min(runtime.NumCPU(), 0xFFFF)),
		DriverSupportedFeatures: hostSupportedFeatures,
	}
	clear(page.Bytes)
	h.Encode(page.Bytes)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// parseBDF turns "0000:00:06.0" (or "00:06.0") into host_info.bdf; anything
// else (the simulator's "sim0") gives 0.
func parseBDF(addr string) uint16 {
	var dom, bus, dev, fn uint
	if n, _ := fmt.Sscanf(addr, "%x:%x:%x.%x", &dom, &bus, &dev, &fn); n == 4 {
		return spec.PackBDF(uint8(bus), uint8(dev), uint8(fn))
	}
	if n, _ := fmt.Sscanf(addr, "%x:%x.%x", &bus, &dev, &fn); n == 3 {
		return spec.PackBDF(uint8(bus), uint8(dev), uint8(fn))
	}
	return 0
}
