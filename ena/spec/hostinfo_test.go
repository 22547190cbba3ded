package spec

import (
	"strings"
	"testing"
)

// ena_admin_defs.h struct ena_admin_host_info: os_type u32 @0,
// os_dist_str[128] @4, os_dist u32 @132, kernel_ver_str[32] @136,
// kernel_ver u32 @168, driver_version u32 @172,
// supported_network_features[2] @176, ena_spec_version u16 @184, bdf u16
// @186, num_cpus u16 @188, reserved u16 @190, driver_supported_features
// u32 @192.
func TestHostInfoVector(t *testing.T) {
	h := HostInfo{OSType: OSDPDK, OSDistStr: "enanet", OSDist: 0x11, KernelVerStr: "6.8", KernelVer: 0x22,
		DriverVersion:            PackDriverVersion(2, 1, 0, 0),
		SupportedNetworkFeatures: [2]uint32{0x33, 0x44}, SpecVersion: ENASpecVersion,
		BDF: PackBDF(0, 6, 0), NumCPUs: 2,
		DriverSupportedFeatures: HostFeatRxOffset | HostFeatRSSConfigurableFunctionKey}
	want := cpAt(t, HostInfoSize,
		0, "03 00 00 00 65 6e 61 6e 65 74", // "enanet"
		132, "11 00 00 00 36 2e 38", // "6.8"
		168, "22 00 00 00 02 01 00 00 33 00 00 00 44 00 00 00",
		184, "00 02 30 00 02 00 00 00 12 00 00 00")
	b := cpDirty(HostInfoSize)
	h.Encode(b)
	cpCheck(t, "host info", b, want)
	if DecodeHostInfo(want) != h {
		t.Errorf("decode = %+v", DecodeHostInfo(want))
	}
}

func TestHostInfoStrings(t *testing.T) {
	long := strings.Repeat("x", 300)
	b := make([]byte, HostInfoSize)
	(&HostInfo{OSDistStr: long, KernelVerStr: long}).Encode(b)
	if b[4+126] != 'x' || b[4+127] != 0 || b[136+30] != 'x' || b[136+31] != 0 || b[132] != 0 || b[168] != 0 {
		t.Error("strings not truncated with a NUL inside their fields")
	}
	// A page without NULs decodes to the fields minus the terminator byte,
	// never beyond them.
	for i := 4; i < 132; i++ {
		b[i] = 'a'
	}
	for i := 136; i < 168; i++ {
		b[i] = 'k'
	}
	b[132] = 'Z'
	h := DecodeHostInfo(b)
	if h.OSDistStr != strings.Repeat("a", 127) || h.KernelVerStr != strings.Repeat("k", 31) {
		t.Errorf("decode = %q %q", h.OSDistStr, h.KernelVerStr)
	}
}

// ena_admin_defs.h ENA_ADMIN_HOST_INFO_{MAJOR,MINOR,SUB_MINOR,MODULE_TYPE}
// (7:0, 15:8, 23:16, 31:24) and {FUNCTION,DEVICE,BUS} (2:0, 7:3, 15:8).
func TestHostInfoPacking(t *testing.T) {
	if v := PackDriverVersion(2, 17, 0, 'g'); v != 0x67001102 {
		t.Errorf("PackDriverVersion = %#x", v)
	}
	if a, b, c, d := UnpackDriverVersion(0x04030201); a != 1 || b != 2 || c != 3 || d != 4 {
		t.Error("UnpackDriverVersion")
	}
	if v := PackBDF(0x12, 0x1F, 7); v != 0x12FF {
		t.Errorf("PackBDF = %#x", v)
	}
	if v := PackBDF(0, 0x20, 8); v != 0 {
		t.Errorf("PackBDF out of range = %#x", v)
	}
	if bus, dev, fn := UnpackBDF(0x12F5); bus != 0x12 || dev != 0x1E || fn != 5 {
		t.Errorf("UnpackBDF = %x %x %x", bus, dev, fn)
	}
	if ENASpecVersion != 0x0200 || HostFeatDebugAreaExt != 0x200 || HostFeatPHC != 0x100 ||
		HostFeatRxPageReuse != 0x40 || HostFeatTxIPv6CsumOffload != 0x80 ||
		HostFeatInterruptModeration != 4 || HostFeatRxBufMirroring != 8 {
		t.Error("host info constants")
	}
	if OSLinux.String() != "LINUX" || OSType(9).String() != "OS(9)" {
		t.Error("OSType strings")
	}
}
