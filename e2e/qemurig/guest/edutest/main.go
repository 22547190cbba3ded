// Command edutest runs inside the QEMU test guest. It drives QEMU's edu
// device through package vfio in type1 IOMMU mode, exercising the paths the
// ENA proxy cannot reach: DMA through real IOMMU mappings (IOVA != GPA) and
// MSI delivery through VFIO_DEVICE_SET_IRQS eventfds. It prints EDU-OK or
// EDU-FAIL lines for the host-side test to read from the console.
//
// edu's register map: QEMU docs/specs/edu.txt.
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/enanet/enanet/ena/hw"
	"github.com/enanet/enanet/vfio"
)

const (
	eduID        = 0x00
	eduLiveness  = 0x04
	eduRaiseIRQ  = 0x60
	eduAckIRQ    = 0x64
	eduDMASrc    = 0x80
	eduDMADst    = 0x88
	eduDMACount  = 0x90
	eduDMACmd    = 0x98
	eduDMABuffer = 0x40000 // device-side buffer, 4 KiB
	// dmaLen stays below the full 4 KiB: QEMU 7.2's edu range check rejects
	// a transfer that ends exactly at the buffer's last byte and aborts.
	dmaLen   = 2048
	dmaStart = 1
	dmaToRAM = 2
)

func main() {
	if err := run(); err != nil {
		fmt.Printf("EDU-FAIL %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	addr, err := findEdu()
	if err != nil {
		return err
	}
	if err := bindVFIO(addr); err != nil {
		return err
	}
	dev, err := vfio.Open(addr, vfio.Options{Mode: vfio.ModeIOMMU, UseMSI: true, MaxVectors: 1})
	if err != nil {
		return err
	}
	defer dev.Close()
	regs := dev.Registers()
	if id := regs.Read32(eduID); id&0xff != 0xed {
		return fmt.Errorf("edu id register reads %#x, want 0x..ed", id)
	}
	regs.Write32(eduLiveness, 0x12345678)
	if v := regs.Read32(eduLiveness); v != ^uint32(0x12345678) {
		return fmt.Errorf("edu liveness reads %#x after writing 0x12345678, want its complement", v)
	}
	if err := dmaRoundTrip(dev, regs); err != nil {
		return err
	}
	return msi(dev, regs)
}

// dmaRoundTrip copies a page RAM → edu → another page through IOMMU
// mappings and compares.
func dmaRoundTrip(dev *vfio.Device, regs hw.RegisterBAR) error {
	src, err := dev.DMA().Alloc(4096, 4096)
	if err != nil {
		return err
	}
	defer src.Free()
	dst, err := dev.DMA().Alloc(4096, 4096)
	if err != nil {
		return err
	}
	defer dst.Free()
	for i := range src.Bytes {
		src.Bytes[i] = byte(i*7 + 3)
	}
	phys, _ := vfio.PhysAddr(src.Bytes)
	fmt.Printf("EDU-INFO src iova=%#x gpa=%#x dst iova=%#x\n", src.Addr, phys, dst.Addr)
	if err := eduDMA(regs, src.Addr, eduDMABuffer, 0); err != nil {
		return fmt.Errorf("DMA RAM to device: %w", err)
	}
	if err := eduDMA(regs, eduDMABuffer, dst.Addr, dmaToRAM); err != nil {
		return fmt.Errorf("DMA device to RAM: %w", err)
	}
	if !bytes.Equal(src.Bytes[:dmaLen], dst.Bytes[:dmaLen]) {
		return fmt.Errorf("DMA round trip through the IOMMU corrupted data (first bytes %x, want %x)", dst.Bytes[:8], src.Bytes[:8])
	}
	fmt.Printf("EDU-OK dma %d bytes through IOVA %#x and %#x\n", dmaLen, src.Addr, dst.Addr)
	return nil
}

func eduDMA(regs hw.RegisterBAR, from, to uint64, dir uint32) error {
	write64 := func(off uint32, v uint64) {
		regs.Write32(off, uint32(v))
		regs.Write32(off+4, uint32(v>>32))
	}
	write64(eduDMASrc, from)
	write64(eduDMADst, to)
	write64(eduDMACount, dmaLen)
	regs.Write32(eduDMACmd, dmaStart|dir)
	deadline := time.Now().Add(10 * time.Second)
	for regs.Read32(eduDMACmd)&dmaStart != 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("edu DMA did not finish in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// msi raises an interrupt from the device and waits for it on the vector's
// eventfd.
func msi(dev *vfio.Device, regs hw.RegisterBAR) error {
	in := dev.Interrupts()
	if in.NumVectors() < 1 {
		return fmt.Errorf("no MSI vector enabled")
	}
	regs.Write32(eduRaiseIRQ, 0x1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := in.Wait(ctx, 0)
	if err != nil {
		return fmt.Errorf("wait for MSI: %w", err)
	}
	regs.Write32(eduAckIRQ, 0x1)
	fmt.Printf("EDU-OK msi %d interrupt(s)\n", n)
	return nil
}

func findEdu() (string, error) {
	ents, err := os.ReadDir("/sys/bus/pci/devices")
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		v, _ := os.ReadFile("/sys/bus/pci/devices/" + e.Name() + "/vendor")
		d, _ := os.ReadFile("/sys/bus/pci/devices/" + e.Name() + "/device")
		if strings.TrimSpace(string(v)) == "0x1234" && strings.TrimSpace(string(d)) == "0x11e8" {
			return e.Name(), nil
		}
	}
	return "", fmt.Errorf("no edu device (1234:11e8) in /sys/bus/pci/devices")
}

func bindVFIO(addr string) error {
	p := "/sys/bus/pci/devices/" + addr
	if err := os.WriteFile(p+"/driver_override", []byte("vfio-pci"), 0); err != nil {
		return err
	}
	if _, err := os.Stat(p + "/driver"); err == nil {
		os.WriteFile(p+"/driver/unbind", []byte(addr), 0)
	}
	return os.WriteFile("/sys/bus/pci/drivers_probe", []byte(addr), 0)
}
