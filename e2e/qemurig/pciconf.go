package qemurig

import "encoding/binary"

// PCI config-space offsets and bits used below (PCI Local Bus spec 3.0 §6.2).
const (
	pciVendorID    = 0x00
	pciDeviceID    = 0x02
	pciCommand     = 0x04
	pciStatus      = 0x06
	pciRevision    = 0x08
	pciClassProg   = 0x09
	pciHeaderType  = 0x0e
	pciBAR0        = 0x10
	pciSubVendor   = 0x2c
	pciSubsystem   = 0x2e
	pciCapPtr      = 0x34
	pciIntLine     = 0x3c
	pciIntPin      = 0x3d
	pciConfigSize  = 256 // the proxy is a conventional PCI device: no extended space
	barMemPrefetch = 0x8
	statusCapList  = 0x0010 // status bit 4: a capability list starts at 0x34

	// Command bits the guest may change: I/O and memory decode, bus master,
	// parity and SERR response, INTx disable (vfio-pci toggles it).
	commandWritable = 0x0001 | 0x0002 | 0x0004 | 0x0040 | 0x0100 | 0x0400
)

// BAR describes one 32-bit memory BAR of the modelled device.
type BAR struct {
	Size        uint32 // power of two, at least 16
	Prefetch    bool
	present     bool
	baseWritten uint32
}

// configSpace is the device's 256-byte type-0 config header. Only 32-bit
// memory BARs are exposed: the 7.2 proxy mis-probes 64-bit BARs.
type configSpace struct {
	b    [pciConfigSize]byte
	bars [6]BAR
	// msixCap is the offset of the MSI-X capability (0 = none); writes to
	// its Message Control word go to msix.
	msixCap uint32
	msix    *MSIX
}

// newConfigSpace builds the header of a PCI function with the given ids and
// class code, interrupt pin A, no capabilities and the given BARs.
func newConfigSpace(vendor, device uint16, revision uint8, class uint32, bars map[int]BAR) *configSpace {
	c := &configSpace{}
	le := binary.LittleEndian
	le.PutUint16(c.b[pciVendorID:], vendor)
	le.PutUint16(c.b[pciDeviceID:], device)
	c.b[pciRevision] = revision
	c.b[pciClassProg] = byte(class)
	c.b[pciClassProg+1] = byte(class >> 8)
	c.b[pciClassProg+2] = byte(class >> 16)
	c.b[pciHeaderType] = 0
	le.PutUint16(c.b[pciSubVendor:], vendor)
	le.PutUint16(c.b[pciSubsystem:], 0)
	c.b[pciIntPin] = 1 // INTA: the guest reads the pin from us, not from the proxy
	for i, bar := range bars {
		bar.present = true
		c.bars[i] = bar
		c.writeBAR(i, 0)
	}
	return c
}

func (c *configSpace) barValue(i int) uint32 {
	bar := c.bars[i]
	if !bar.present {
		return 0
	}
	v := bar.baseWritten &^ (bar.Size - 1)
	if bar.Prefetch {
		v |= barMemPrefetch
	}
	return v
}

func (c *configSpace) writeBAR(i int, val uint32) {
	c.bars[i].baseWritten = val
	binary.LittleEndian.PutUint32(c.b[pciBAR0+4*i:], c.barValue(i))
}

// read returns len (1, 2 or 4) bytes at addr; out-of-range reads return 0.
func (c *configSpace) read(addr uint32, n int) uint32 {
	if addr >= pciConfigSize || int(addr)+n > pciConfigSize || (n != 1 && n != 2 && n != 4) {
		return 0
	}
	var v uint32
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint32(c.b[int(addr)+i])
	}
	return v
}

// addMSIX places an MSI-X capability at off as the only capability
// (PCI Local Bus 3.0, section 6.8.2): ID 0x11, Table Size N-1, table and PBA at
// their BAR offsets.
func (c *configSpace) addMSIX(off uint32, x *MSIX) {
	le := binary.LittleEndian
	le.PutUint16(c.b[pciStatus:], le.Uint16(c.b[pciStatus:])|statusCapList)
	c.b[pciCapPtr] = byte(off)
	c.b[off] = msixCapID
	c.b[off+1] = 0 // end of the list
	le.PutUint16(c.b[off+2:], uint16(x.Vectors()-1))
	le.PutUint32(c.b[off+4:], x.TableOffset()|uint32(x.BAR()))
	le.PutUint32(c.b[off+8:], x.PBAOffset()|uint32(x.BAR()))
	c.msixCap, c.msix = off, x
}

// resetMSIX clears Message Control's Enable and Function Mask and the
// function's MSI-X state, as a function reset does.
func (c *configSpace) resetMSIX() {
	if c.msix == nil {
		return
	}
	c.b[c.msixCap+3] &^= 0xc0
	c.msix.Reset()
}

// write applies a config write with the writable masks of a simple device:
// command bits, BAR addresses (size bits read back as zero), interrupt line.
// Everything else is read-only. The BAR at 0x28 (CardBus CIS) stays 0 so the
// proxy does not find a phantom region 6.
func (c *configSpace) write(addr uint32, n int, val uint32) {
	if addr >= pciConfigSize || int(addr)+n > pciConfigSize || (n != 1 && n != 2 && n != 4) {
		return
	}
	for i := 0; i < n; i++ {
		off := addr + uint32(i)
		b := byte(val >> (8 * i))
		switch {
		case off >= pciBAR0 && off < pciBAR0+24:
			bar := int(off-pciBAR0) / 4
			shift := 8 * ((off - pciBAR0) % 4)
			cur := c.bars[bar].baseWritten
			cur = cur&^(0xff<<shift) | uint32(b)<<shift
			c.writeBAR(bar, cur)
		case off == pciCommand || off == pciCommand+1:
			mask := byte(uint32(commandWritable) >> (8 * (off - pciCommand)))
			c.b[off] = c.b[off]&^mask | b&mask
		case off == pciIntLine:
			c.b[off] = b
		case c.msix != nil && off == c.msixCap+3:
			// Message Control bits 15 (MSI-X Enable) and 14 (Function
			// Mask) are the only writable ones.
			c.b[off] = c.b[off]&^0xc0 | b&0xc0
			c.msix.SetControl(b&0x80 != 0, b&0x40 != 0)
		}
	}
}

// memoryEnabled reports whether memory decode is on (command bit 1).
func (c *configSpace) memoryEnabled() bool { return c.b[pciCommand]&0x2 != 0 }

// busMaster reports whether the device may do DMA (command bit 2).
func (c *configSpace) busMaster() bool { return c.b[pciCommand]&0x4 != 0 }

// decode maps an absolute bus address to (BAR index, offset).
func (c *configSpace) decode(addr uint64, size int) (int, uint32, bool) {
	for i, bar := range c.bars {
		if !bar.present {
			continue
		}
		base := uint64(c.barValue(i) &^ 0xf)
		if base == 0 {
			continue
		}
		if addr >= base && addr+uint64(size) <= base+uint64(bar.Size) {
			return i, uint32(addr - base), true
		}
	}
	return 0, 0, false
}
