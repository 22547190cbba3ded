package vfio

import (
	"fmt"
	"github.com/enanet/enanet/internal/testenv"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// TestLayoutAgainstKernelHeader compiles a C program against the installed
// linux/vfio.h and checks every ioctl number, flag and struct layout we use.
func TestLayoutAgainstKernelHeader(t *testing.T) {
	gcc := testenv.RequireTool(t, "gcc", "apt-get install gcc linux-libc-dev")
	if _, err := os.Stat("/usr/include/linux/vfio.h"); err != nil {
		testenv.Missing(t, "linux/vfio.h (apt-get install linux-libc-dev)")
	}
	checks := []struct {
		c     string
		goVal uint64
	}{
		{"VFIO_API_VERSION", apiVersion},
		{"VFIO_GET_API_VERSION", ioctlGetAPIVersion},
		{"VFIO_CHECK_EXTENSION", ioctlCheckExtension},
		{"VFIO_SET_IOMMU", ioctlSetIOMMU},
		{"VFIO_GROUP_GET_STATUS", ioctlGroupGetStatus},
		{"VFIO_GROUP_SET_CONTAINER", ioctlGroupSetContainer},
		{"VFIO_GROUP_UNSET_CONTAINER", ioctlGroupUnsetContainer},
		{"VFIO_GROUP_GET_DEVICE_FD", ioctlGroupGetDeviceFD},
		{"VFIO_DEVICE_GET_INFO", ioctlDeviceGetInfo},
		{"VFIO_DEVICE_GET_REGION_INFO", ioctlDeviceGetRegionInfo},
		{"VFIO_DEVICE_GET_IRQ_INFO", ioctlDeviceGetIRQInfo},
		{"VFIO_DEVICE_SET_IRQS", ioctlDeviceSetIRQs},
		{"VFIO_DEVICE_RESET", ioctlDeviceReset},
		{"VFIO_IOMMU_GET_INFO", ioctlIOMMUGetInfo},
		{"VFIO_IOMMU_MAP_DMA", ioctlIOMMUMapDMA},
		{"VFIO_IOMMU_UNMAP_DMA", ioctlIOMMUUnmapDMA},
		{"VFIO_TYPE1_IOMMU", type1IOMMU},
		{"VFIO_TYPE1v2_IOMMU", type1v2IOMMU},
		{"VFIO_NOIOMMU_IOMMU", noIOMMU},
		{"VFIO_GROUP_FLAGS_VIABLE", groupFlagsViable},
		{"VFIO_GROUP_FLAGS_CONTAINER_SET", groupFlagsContainerSet},
		{"VFIO_DEVICE_FLAGS_PCI", deviceFlagsPCI},
		{"VFIO_REGION_INFO_FLAG_READ", regionInfoFlagRead},
		{"VFIO_REGION_INFO_FLAG_WRITE", regionInfoFlagWrite},
		{"VFIO_REGION_INFO_FLAG_MMAP", regionInfoFlagMmap},
		{"VFIO_REGION_INFO_FLAG_CAPS", regionInfoFlagCaps},
		{"VFIO_REGION_INFO_CAP_SPARSE_MMAP", regionInfoCapSparseMmap},
		{"VFIO_PCI_BAR0_REGION_INDEX", pciBAR0RegionIndex},
		{"VFIO_PCI_BAR2_REGION_INDEX", pciBAR2RegionIndex},
		{"VFIO_PCI_CONFIG_REGION_INDEX", pciConfigRegionIndex},
		{"VFIO_PCI_MSI_IRQ_INDEX", pciMSIIRQIndex},
		{"VFIO_PCI_MSIX_IRQ_INDEX", pciMSIXIRQIndex},
		{"VFIO_IRQ_INFO_EVENTFD", irqInfoEventfd},
		{"VFIO_IRQ_SET_DATA_NONE", irqSetDataNone},
		{"VFIO_IRQ_SET_DATA_EVENTFD", irqSetDataEventfd},
		{"VFIO_IRQ_SET_ACTION_TRIGGER", irqSetActionTrigger},
		{"VFIO_DMA_MAP_FLAG_READ", dmaMapFlagRead},
		{"VFIO_DMA_MAP_FLAG_WRITE", dmaMapFlagWrite},
		{"VFIO_IOMMU_INFO_PGSIZES", iommuInfoPgsizes},
		{"VFIO_IOMMU_INFO_CAPS", iommuInfoCaps},
		{"VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE", iommuType1InfoCapIOVARange},

		{"sizeof(struct vfio_group_status)", uint64(unsafe.Sizeof(groupStatus{}))},
		{"sizeof(struct vfio_device_info)", uint64(unsafe.Sizeof(deviceInfo{}))},
		{"offsetof(struct vfio_device_info, num_irqs)", uint64(unsafe.Offsetof(deviceInfo{}.NumIRQs))},
		{"offsetof(struct vfio_device_info, cap_offset)", uint64(unsafe.Offsetof(deviceInfo{}.CapOffset))},
		{"sizeof(struct vfio_region_info)", uint64(unsafe.Sizeof(regionInfo{}))},
		{"offsetof(struct vfio_region_info, index)", uint64(unsafe.Offsetof(regionInfo{}.Index))},
		{"offsetof(struct vfio_region_info, cap_offset)", uint64(unsafe.Offsetof(regionInfo{}.CapOffset))},
		{"offsetof(struct vfio_region_info, size)", uint64(unsafe.Offsetof(regionInfo{}.Size))},
		{"offsetof(struct vfio_region_info, offset)", uint64(unsafe.Offsetof(regionInfo{}.Offset))},
		{"sizeof(struct vfio_info_cap_header)", uint64(unsafe.Sizeof(infoCapHeader{}))},
		{"offsetof(struct vfio_info_cap_header, next)", uint64(unsafe.Offsetof(infoCapHeader{}.Next))},
		{"sizeof(struct vfio_region_info_cap_sparse_mmap)", 16},
		{"offsetof(struct vfio_region_info_cap_sparse_mmap, nr_areas)", 8},
		{"offsetof(struct vfio_region_info_cap_sparse_mmap, areas)", 16},
		{"sizeof(struct vfio_region_sparse_mmap_area)", uint64(unsafe.Sizeof(sparseMmapArea{}))},
		{"sizeof(struct vfio_irq_info)", uint64(unsafe.Sizeof(irqInfo{}))},
		{"offsetof(struct vfio_irq_info, count)", uint64(unsafe.Offsetof(irqInfo{}.Count))},
		{"sizeof(struct vfio_irq_set)", uint64(unsafe.Sizeof(irqSetHeader{}))},
		{"offsetof(struct vfio_irq_set, start)", uint64(unsafe.Offsetof(irqSetHeader{}.Start))},
		{"offsetof(struct vfio_irq_set, data)", uint64(unsafe.Sizeof(irqSetHeader{}))},
		{"sizeof(struct vfio_iommu_type1_dma_map)", uint64(unsafe.Sizeof(dmaMap{}))},
		{"offsetof(struct vfio_iommu_type1_dma_map, vaddr)", uint64(unsafe.Offsetof(dmaMap{}.Vaddr))},
		{"offsetof(struct vfio_iommu_type1_dma_map, iova)", uint64(unsafe.Offsetof(dmaMap{}.IOVA))},
		{"offsetof(struct vfio_iommu_type1_dma_map, size)", uint64(unsafe.Offsetof(dmaMap{}.Size))},
		{"sizeof(struct vfio_iommu_type1_dma_unmap)", uint64(unsafe.Sizeof(dmaUnmap{}))},
		{"offsetof(struct vfio_iommu_type1_dma_unmap, iova)", uint64(unsafe.Offsetof(dmaUnmap{}.IOVA))},
		{"offsetof(struct vfio_iommu_type1_dma_unmap, size)", uint64(unsafe.Offsetof(dmaUnmap{}.Size))},
		{"sizeof(struct vfio_iommu_type1_info)", uint64(unsafe.Sizeof(iommuType1Info{}))},
		{"offsetof(struct vfio_iommu_type1_info, iova_pgsizes)", uint64(unsafe.Offsetof(iommuType1Info{}.IOVAPgsize))},
		{"offsetof(struct vfio_iommu_type1_info, cap_offset)", uint64(unsafe.Offsetof(iommuType1Info{}.CapOffset))},
		{"offsetof(struct vfio_iommu_type1_info_cap_iova_range, nr_iovas)", 8},
		{"offsetof(struct vfio_iommu_type1_info_cap_iova_range, iova_ranges)", 16},
		{"sizeof(struct vfio_iova_range)", uint64(unsafe.Sizeof(iovaRange{}))},
	}
	var src strings.Builder
	src.WriteString("#include <stdio.h>\n#include <stddef.h>\n#include <linux/vfio.h>\nint main(void) {\n")
	for i, c := range checks {
		fmt.Fprintf(&src, "\tprintf(\"%d %%llu\\n\", (unsigned long long)(%s));\n", i, c.c)
	}
	src.WriteString("\treturn 0;\n}\n")
	dir := t.TempDir()
	cfile, bin := filepath.Join(dir, "layout.c"), filepath.Join(dir, "layout")
	if err := os.WriteFile(cfile, []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-o", bin, cfile).CombinedOutput(); err != nil {
		t.Fatalf("gcc failed (is linux/vfio.h too old?): %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("run layout program: %v", err)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		i, _ := strconv.Atoi(f[0])
		v, _ := strconv.ParseUint(f[1], 10, 64)
		if checks[i].goVal != v {
			t.Errorf("%s: Go has %#x, linux/vfio.h has %#x", checks[i].c, checks[i].goVal, v)
		}
		seen++
	}
	if seen != len(checks) {
		t.Fatalf("C program printed %d values, want %d", seen, len(checks))
	}
}
