package vfio

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// VFIO ioctl numbers and argument layouts, from the kernel UAPI header
// linux/vfio.h. All VFIO ioctls are _IO(';', 100+n): no size or direction
// bits, so the numbers are the same on amd64 and arm64. ioctl_test.go compiles
// a C program against the installed header and checks every value below.
const (
	vfioType = ';'
	vfioBase = 100

	ioctlGetAPIVersion       = vfioType<<8 | (vfioBase + 0)
	ioctlCheckExtension      = vfioType<<8 | (vfioBase + 1)
	ioctlSetIOMMU            = vfioType<<8 | (vfioBase + 2)
	ioctlGroupGetStatus      = vfioType<<8 | (vfioBase + 3)
	ioctlGroupSetContainer   = vfioType<<8 | (vfioBase + 4)
	ioctlGroupUnsetContainer = vfioType<<8 | (vfioBase + 5)
	ioctlGroupGetDeviceFD    = vfioType<<8 | (vfioBase + 6)
	ioctlDeviceGetInfo       = vfioType<<8 | (vfioBase + 7)
	ioctlDeviceGetRegionInfo = vfioType<<8 | (vfioBase + 8)
	ioctlDeviceGetIRQInfo    = vfioType<<8 | (vfioBase + 9)
	ioctlDeviceSetIRQs       = vfioType<<8 | (vfioBase + 10)
	ioctlDeviceReset         = vfioType<<8 | (vfioBase + 11)
	ioctlIOMMUGetInfo        = vfioType<<8 | (vfioBase + 12)
	ioctlIOMMUMapDMA         = vfioType<<8 | (vfioBase + 13)
	ioctlIOMMUUnmapDMA       = vfioType<<8 | (vfioBase + 14)

	// apiVersion is VFIO_API_VERSION; the container must report it.
	apiVersion = 0

	// IOMMU backends for VFIO_SET_IOMMU / VFIO_CHECK_EXTENSION.
	type1IOMMU   = 1 // VFIO_TYPE1_IOMMU
	type1v2IOMMU = 3 // VFIO_TYPE1v2_IOMMU
	noIOMMU      = 8 // VFIO_NOIOMMU_IOMMU

	groupFlagsViable       = 1 << 0 // VFIO_GROUP_FLAGS_VIABLE
	groupFlagsContainerSet = 1 << 1 // VFIO_GROUP_FLAGS_CONTAINER_SET

	deviceFlagsPCI = 1 << 1 // VFIO_DEVICE_FLAGS_PCI

	regionInfoFlagRead  = 1 << 0 // VFIO_REGION_INFO_FLAG_READ
	regionInfoFlagWrite = 1 << 1 // VFIO_REGION_INFO_FLAG_WRITE
	regionInfoFlagMmap  = 1 << 2 // VFIO_REGION_INFO_FLAG_MMAP
	regionInfoFlagCaps  = 1 << 3 // VFIO_REGION_INFO_FLAG_CAPS

	// regionInfoCapSparseMmap is VFIO_REGION_INFO_CAP_SPARSE_MMAP: the
	// region may be mmapped only in the listed areas (vfio-pci uses it to
	// keep the MSI-X table out of a BAR mapping on some platforms).
	regionInfoCapSparseMmap = 1

	// PCI region and IRQ indexes of vfio-pci (VFIO_PCI_*_INDEX).
	pciBAR0RegionIndex   = 0
	pciBAR2RegionIndex   = 2
	pciConfigRegionIndex = 7
	pciMSIIRQIndex       = 1
	pciMSIXIRQIndex      = 2

	irqInfoEventfd = 1 << 0 // VFIO_IRQ_INFO_EVENTFD

	irqSetDataNone      = 1 << 0 // VFIO_IRQ_SET_DATA_NONE
	irqSetDataEventfd   = 1 << 2 // VFIO_IRQ_SET_DATA_EVENTFD
	irqSetActionTrigger = 1 << 5 // VFIO_IRQ_SET_ACTION_TRIGGER

	dmaMapFlagRead  = 1 << 0 // VFIO_DMA_MAP_FLAG_READ
	dmaMapFlagWrite = 1 << 1 // VFIO_DMA_MAP_FLAG_WRITE

	iommuInfoPgsizes = 1 << 0 // VFIO_IOMMU_INFO_PGSIZES
	iommuInfoCaps    = 1 << 1 // VFIO_IOMMU_INFO_CAPS

	// iommuType1InfoCapIOVARange is VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE:
	// the IOVA ranges the IOMMU can translate (reserved windows such as the
	// x86 MSI range are left out).
	iommuType1InfoCapIOVARange = 1
)

// groupStatus is struct vfio_group_status.
type groupStatus struct {
	Argsz uint32
	Flags uint32
}

// deviceInfo is struct vfio_device_info (with the cap_offset newer headers
// have; older kernels accept the larger argsz).
type deviceInfo struct {
	Argsz      uint32
	Flags      uint32
	NumRegions uint32
	NumIRQs    uint32
	CapOffset  uint32
}

// regionInfo is struct vfio_region_info.
type regionInfo struct {
	Argsz     uint32
	Flags     uint32
	Index     uint32
	CapOffset uint32
	Size      uint64
	Offset    uint64
}

// infoCapHeader is struct vfio_info_cap_header, which starts every
// capability in an info chain; Next is an offset from the start of the info
// struct, 0 at the end.
type infoCapHeader struct {
	ID      uint16
	Version uint16
	Next    uint32
}

// sparseMmapArea is struct vfio_region_sparse_mmap_area.
type sparseMmapArea struct {
	Offset uint64
	Size   uint64
}

// irqInfo is struct vfio_irq_info.
type irqInfo struct {
	Argsz uint32
	Flags uint32
	Index uint32
	Count uint32
}

// irqSetHeader is struct vfio_irq_set without its flexible data array; the
// eventfds (int32 each) follow it directly.
type irqSetHeader struct {
	Argsz uint32
	Flags uint32
	Index uint32
	Start uint32
	Count uint32
}

// dmaMap is struct vfio_iommu_type1_dma_map.
type dmaMap struct {
	Argsz uint32
	Flags uint32
	Vaddr uint64
	IOVA  uint64
	Size  uint64
}

// dmaUnmap is struct vfio_iommu_type1_dma_unmap (without the data tail).
type dmaUnmap struct {
	Argsz uint32
	Flags uint32
	IOVA  uint64
	Size  uint64
}

// iommuType1Info is struct vfio_iommu_type1_info.
type iommuType1Info struct {
	Argsz      uint32
	Flags      uint32
	IOVAPgsize uint64
	CapOffset  uint32
	Pad        uint32
}

// iovaRange is struct vfio_iova_range (inclusive end).
type iovaRange struct {
	Start uint64
	End   uint64
}

// Compile-time layout checks (the gcc test checks them against the header
// too; these catch an edit that breaks a struct before any test runs).
var (
	_ [16 - unsafe.Sizeof(irqInfo{})]byte
	_ [unsafe.Sizeof(irqInfo{}) - 16]byte
	_ [32 - unsafe.Sizeof(regionInfo{})]byte
	_ [unsafe.Sizeof(regionInfo{}) - 32]byte
	_ [32 - unsafe.Sizeof(dmaMap{})]byte
	_ [unsafe.Sizeof(dmaMap{}) - 32]byte
	_ [20 - unsafe.Sizeof(irqSetHeader{})]byte
	_ [unsafe.Sizeof(irqSetHeader{}) - 20]byte
)

// ioctl issues one ioctl whose argument is a pointer (or nil).
func ioctl(fd int, req uint, arg unsafe.Pointer) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
	if errno != 0 {
		return int(r), errno
	}
	return int(r), nil
}

// ioctlInt issues one ioctl whose argument is an integer.
func ioctlInt(fd int, req uint, arg uintptr) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), arg)
	if errno != 0 {
		return int(r), errno
	}
	return int(r), nil
}
