// Package qemurig tests the real-hardware path without hardware: it boots a
// Linux guest under QEMU (TCG) whose PCI device is the enasim model, served
// through QEMU 7.2's multi-process proxy (x-pci-proxy-dev), and runs the
// product's own binaries inside the guest against the guest kernel's
// vfio-pci.
//
// The pieces, one file each: proto.go reads and answers the proxy's
// messages on the socket QEMU inherits as fd 3; server.go serves config
// space and BAR accesses and records every access; pciconf.go is the type-0
// config header (32-bit BARs only, interrupt pin A); guestmem.go maps the
// guest's RAM from the memfd sections SYNC_SYSMEM sends, so the model DMAs
// by guest-physical address; enadev.go puts an enasim Model behind BAR0
// (registers) and BAR2 (LLQ), reset on DEVICE_RESET; guest.go builds the
// guest from Debian packages (the kernel extracted as an uncompressed PVH
// vmlinux, busybox-static, the VFIO modules, and vfio.ko rebuilt with
// CONFIG_VFIO_NOIOMMU), cached under e2e/.cache; image.go and initramfs.go
// assemble the initramfs with static Go binaries and an init script;
// qemu.go starts and always kills QEMU.
//
// The function offers MSI-X (msix.go: nine vectors, table and PBA in BAR0,
// mask and pending bits); the proxy cannot inject interrupts under TCG, so
// qtest.go writes each message into the guest's APIC window through QEMU's
// qtest server. intel-iommu runs with interrupt remapping off.
//
// The tests: TestProxyBoot (the proxy alone, busybox devmem on BAR0),
// TestEduType1 (package vfio against QEMU's edu device behind intel-iommu:
// type1 DMA with IOVA != GPA and MSI), TestENAGuestControl (enactl list,
// bind, info, stats in type1 and no-IOMMU modes), TestENAGuestHTTP
// (enahttp in interrupt mode in the guest serving a host-side netstack,
// bulk data checked both ways, admin and I/O vectors fired, no reads of
// write-only registers), TestLinuxENA (Debian's unmodified ena.ko on the
// model) and TestDPDKENA (DPDK 22.11's unmodified ENA PMD in dpdk-testpmd);
// README.md in this directory has what they found and the bring-up
// comparison. Every test with the model asserts it refused nothing.
// Write-combining can only be tested on EC2.
//
// In comments, "§n.m" refers to that section of docs/protocol.md.
package qemurig
