package spec

import (
	"bytes"
	"fmt"
)

// Host-info page geometry (§4.8 HOST_ATTR_CONFIG).
const (
	// HostInfoPageSize is the zeroed, physically contiguous page the driver
	// hands over in HostAttrConfig.OSInfoAddr.
	HostInfoPageSize = 4096
	// HostInfoSize is the used part of the page. ena_admin_defs.h struct
	// ena_admin_host_info.
	HostInfoSize = 196
	// HostInfoOSDistStrLen is the os_dist_str field (NUL-terminated).
	HostInfoOSDistStrLen = 128
	// HostInfoKernelVerStrLen is the kernel_ver_str field (NUL-terminated).
	HostInfoKernelVerStrLen = 32
)

// OSType is host_info.os_type (§4.8).
type OSType uint32

// OS types; all but Linux and FreeBSD come from the older HAL enum
// ena_admin_os_type, now spread over each driver's platform header.
const (
	// OSLinux is ena_com.h ENA_ADMIN_OS_LINUX.
	OSLinux OSType = 1
	// OSWindows is ENA_ADMIN_OS_WIN (older ena_admin_defs.h).
	OSWindows OSType = 2
	// OSDPDK is ENA_ADMIN_OS_DPDK (older ena_admin_defs.h; ena_plat_dpdk.h).
	OSDPDK OSType = 3
	// OSFreeBSD is ena_plat.h ENA_ADMIN_OS_FREEBSD.
	OSFreeBSD OSType = 4
	// OSIPXE is ENA_ADMIN_OS_IPXE (older ena_admin_defs.h).
	OSIPXE OSType = 5
	// OSESXi is ENA_ADMIN_OS_ESXI (older ena_admin_defs.h).
	OSESXi OSType = 6
)

// String returns the OS name, e.g. "LINUX".
func (o OSType) String() string {
	switch o {
	case OSLinux:
		return "LINUX"
	case OSWindows:
		return "WIN"
	case OSDPDK:
		return "DPDK"
	case OSFreeBSD:
		return "FREEBSD"
	case OSIPXE:
		return "IPXE"
	case OSESXi:
		return "ESXI"
	}
	return fmt.Sprintf("OS(%d)", uint32(o))
}

// ENASpecVersion is host_info.ena_spec_version: (major << 8) | minor = 2.0.
const ENASpecVersion = SpecVersionMajor<<8 | SpecVersionMinor

// driver_version bit fields.
const (
	// DriverVersionMajorMask is ena_admin_defs.h ENA_ADMIN_HOST_INFO_MAJOR_MASK.
	DriverVersionMajorMask = 0x000000FF
	// DriverVersionMinorShift is ena_admin_defs.h ENA_ADMIN_HOST_INFO_MINOR_SHIFT.
	DriverVersionMinorShift = 8
	// DriverVersionSubMinorShift is ena_admin_defs.h
	// ENA_ADMIN_HOST_INFO_SUB_MINOR_SHIFT.
	DriverVersionSubMinorShift = 16
	// DriverVersionModuleTypeShift is ena_admin_defs.h
	// ENA_ADMIN_HOST_INFO_MODULE_TYPE_SHIFT.
	DriverVersionModuleTypeShift = 24
)

// PackDriverVersion builds host_info.driver_version. Some firmware reads the
// major number, and every vendor driver reports major 2 (§4.8).
func PackDriverVersion(major, minor, subMinor, moduleType uint8) uint32 {
	return uint32(moduleType)<<DriverVersionModuleTypeShift |
		uint32(subMinor)<<DriverVersionSubMinorShift |
		uint32(minor)<<DriverVersionMinorShift | uint32(major)
}

// UnpackDriverVersion splits host_info.driver_version.
func UnpackDriverVersion(v uint32) (major, minor, subMinor, moduleType uint8) {
	return uint8(v), uint8(v >> DriverVersionMinorShift), uint8(v >> DriverVersionSubMinorShift),
		uint8(v >> DriverVersionModuleTypeShift)
}

// bdf bit fields.
const (
	// BDFFunctionMask is ena_admin_defs.h ENA_ADMIN_HOST_INFO_FUNCTION_MASK.
	BDFFunctionMask = 0x0007
	// BDFDeviceShift is ena_admin_defs.h ENA_ADMIN_HOST_INFO_DEVICE_SHIFT.
	BDFDeviceShift = 3
	// BDFDeviceMask is ena_admin_defs.h ENA_ADMIN_HOST_INFO_DEVICE_MASK.
	BDFDeviceMask = 0x00F8
	// BDFBusShift is ena_admin_defs.h ENA_ADMIN_HOST_INFO_BUS_SHIFT.
	BDFBusShift = 8
	// BDFBusMask is ena_admin_defs.h ENA_ADMIN_HOST_INFO_BUS_MASK.
	BDFBusMask = 0xFF00
)

// PackBDF builds host_info.bdf from a PCI bus, device (0..31) and function
// (0..7); out-of-range device and function bits are dropped.
func PackBDF(bus, device, function uint8) uint16 {
	return uint16(bus)<<BDFBusShift | uint16(device)<<BDFDeviceShift&BDFDeviceMask |
		uint16(function)&BDFFunctionMask
}

// UnpackBDF splits host_info.bdf.
func UnpackBDF(bdf uint16) (bus, device, function uint8) {
	return uint8(bdf >> BDFBusShift), uint8(bdf & BDFDeviceMask >> BDFDeviceShift), uint8(bdf & BDFFunctionMask)
}

// host_info.driver_supported_features bits (§4.8).
const (
	// HostFeatRxOffset is ena_admin_defs.h ENA_ADMIN_HOST_INFO_RX_OFFSET_MASK.
	HostFeatRxOffset = 1 << 1
	// HostFeatInterruptModeration is ena_admin_defs.h
	// ENA_ADMIN_HOST_INFO_INTERRUPT_MODERATION_MASK.
	HostFeatInterruptModeration = 1 << 2
	// HostFeatRxBufMirroring is ena_admin_defs.h
	// ENA_ADMIN_HOST_INFO_RX_BUF_MIRRORING_MASK.
	HostFeatRxBufMirroring = 1 << 3
	// HostFeatRSSConfigurableFunctionKey is ena_admin_defs.h
	// ENA_ADMIN_HOST_INFO_RSS_CONFIGURABLE_FUNCTION_KEY_MASK.
	HostFeatRSSConfigurableFunctionKey = 1 << 4
	// HostFeatRxPageReuse is ena_admin_defs.h ENA_ADMIN_HOST_INFO_RX_PAGE_REUSE_MASK.
	HostFeatRxPageReuse = 1 << 6
	// HostFeatTxIPv6CsumOffload is ena_admin_defs.h
	// ENA_ADMIN_HOST_INFO_TX_IPV6_CSUM_OFFLOAD_MASK.
	HostFeatTxIPv6CsumOffload = 1 << 7
	// HostFeatPHC is ena_admin_defs.h ENA_ADMIN_HOST_INFO_PHC_MASK.
	HostFeatPHC = 1 << 8
	// HostFeatDebugAreaExt is ena_admin_defs.h (Linux)
	// ENA_ADMIN_HOST_INFO_DEBUG_AREA_EXT_MASK.
	HostFeatDebugAreaExt = 1 << 9
)

// HostInfo is the host-info page (§4.8 HOST_ATTR_CONFIG). Encode writes the
// first HostInfoSize bytes; the rest of the page must stay zero.
type HostInfo struct {
	OSType OSType // 0
	// OSDistStr is offset 4, at most 127 bytes (NUL-terminated on the wire).
	OSDistStr string
	OSDist    uint32 // 132
	// KernelVerStr is offset 136, at most 31 bytes (NUL-terminated).
	KernelVerStr string
	KernelVer    uint32 // 168
	// DriverVersion is offset 172; see PackDriverVersion.
	DriverVersion uint32
	// SupportedNetworkFeatures is offset 176 (Linux netdev bits; others 0).
	SupportedNetworkFeatures [2]uint32
	// SpecVersion is offset 184; ENASpecVersion.
	SpecVersion uint16
	// BDF is offset 186; see PackBDF.
	BDF     uint16
	NumCPUs uint16 // 188 (190..191 reserved)
	// DriverSupportedFeatures is offset 192: HostFeat* bits.
	DriverSupportedFeatures uint32
}

// Encode writes the 196 used bytes. Strings longer than their field minus
// the terminating NUL are truncated.
func (h *HostInfo) Encode(b []byte) {
	_ = b[HostInfoSize-1]
	clear(b[:HostInfoSize])
	le.PutUint32(b[0:], uint32(h.OSType))
	putCString(b[4:4+HostInfoOSDistStrLen], h.OSDistStr)
	le.PutUint32(b[132:], h.OSDist)
	putCString(b[136:136+HostInfoKernelVerStrLen], h.KernelVerStr)
	le.PutUint32(b[168:], h.KernelVer)
	le.PutUint32(b[172:], h.DriverVersion)
	le.PutUint32(b[176:], h.SupportedNetworkFeatures[0])
	le.PutUint32(b[180:], h.SupportedNetworkFeatures[1])
	le.PutUint16(b[184:], h.SpecVersion)
	le.PutUint16(b[186:], h.BDF)
	le.PutUint16(b[188:], h.NumCPUs)
	le.PutUint32(b[192:], h.DriverSupportedFeatures)
}

// DecodeHostInfo reads the page. A string without a NUL is cut at its
// field's last byte, so a hostile page cannot make the reader run past it.
func DecodeHostInfo(b []byte) HostInfo {
	_ = b[HostInfoSize-1]
	return HostInfo{
		OSType:                   OSType(le.Uint32(b[0:])),
		OSDistStr:                getCString(b[4 : 4+HostInfoOSDistStrLen]),
		OSDist:                   le.Uint32(b[132:]),
		KernelVerStr:             getCString(b[136 : 136+HostInfoKernelVerStrLen]),
		KernelVer:                le.Uint32(b[168:]),
		DriverVersion:            le.Uint32(b[172:]),
		SupportedNetworkFeatures: [2]uint32{le.Uint32(b[176:]), le.Uint32(b[180:])},
		SpecVersion:              le.Uint16(b[184:]),
		BDF:                      le.Uint16(b[186:]),
		NumCPUs:                  le.Uint16(b[188:]),
		DriverSupportedFeatures:  le.Uint32(b[192:]),
	}
}

// putCString copies s into field, truncated so a NUL always follows.
// field must already be zero.
func putCString(field []byte, s string) {
	copy(field[:len(field)-1], s)
}

// getCString returns field up to its first NUL. The last byte of the field
// is reserved for the terminator, so at most len(field)-1 bytes come back
// even when a page forgot the NUL; that keeps Encode(Decode(x)) stable.
func getCString(field []byte) string {
	field = field[:len(field)-1]
	if i := bytes.IndexByte(field, 0); i >= 0 {
		field = field[:i]
	}
	return string(field)
}
