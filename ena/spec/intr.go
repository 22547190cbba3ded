package spec

// Per-queue interrupt registers (§7.8). Their BAR0 offsets are chosen by the
// device and returned in the CREATE_CQ response; only their 32-bit values are
// defined here.

// Interrupt unmask register fields (§7.8), struct ena_eth_io_intr_reg
// intr_control.
const (
	IntrRxDelayMask            uint32 = 0x00007FFF // ENA_ETH_IO_INTR_REG_RX_INTR_DELAY_MASK
	IntrTxDelayShift                  = 15         // ENA_ETH_IO_INTR_REG_TX_INTR_DELAY_SHIFT
	IntrTxDelayMask            uint32 = 0x3FFF8000 // ENA_ETH_IO_INTR_REG_TX_INTR_DELAY_MASK
	IntrUnmaskMask             uint32 = 1 << 30    // ENA_ETH_IO_INTR_REG_INTR_UNMASK_MASK
	IntrNoModerationUpdateMask uint32 = 1 << 31    // ENA_ETH_IO_INTR_REG_NO_MODERATION_UPDATE_MASK

	// IntrMaxDelay is the largest delay each 15-bit field holds, in units of
	// intr_delay_resolution µs.
	IntrMaxDelay = 0x7FFF

	// IntrUnmaskKeepDelays (0xC0000000) unmasks the vector and leaves the
	// moderation delays alone: what drivers write without adaptive
	// moderation, and DPDK's Rx-interrupt enable.
	IntrUnmaskKeepDelays = IntrUnmaskMask | IntrNoModerationUpdateMask
	// IntrMaskKeepDelays (0x80000000) is DPDK's Rx-interrupt disable: no
	// unmask, delays unchanged.
	IntrMaskKeepDelays = IntrNoModerationUpdateMask
)

// UnmaskWord is the value written to a CQ's interrupt unmask register
// (§7.8). The device auto-masks an I/O vector after each interrupt; writing
// a word with Unmask set re-arms it. Tx and Rx CQs of a pair share a vector.
type UnmaskWord struct {
	// RxDelay and TxDelay are the moderation delays in units of
	// intr_delay_resolution µs; 15 bits each. Encode saturates larger values
	// at IntrMaxDelay rather than wrapping them to a short delay.
	RxDelay uint16
	TxDelay uint16
	// Unmask (INTR_UNMASK) re-arms the vector.
	Unmask bool
	// NoModerationUpdate tells the device to ignore the delay fields in
	// this write.
	NoModerationUpdate bool
}

// Encode returns the register value.
func (w UnmaskWord) Encode() uint32 {
	rx, tx := uint32(min(w.RxDelay, IntrMaxDelay)), uint32(min(w.TxDelay, IntrMaxDelay))
	return rx | tx<<IntrTxDelayShift |
		ioBit(w.Unmask, IntrUnmaskMask) |
		ioBit(w.NoModerationUpdate, IntrNoModerationUpdateMask)
}

// DecodeUnmaskWord splits a register value the driver wrote; every 32-bit
// value decodes (the fields cover all bits).
func DecodeUnmaskWord(v uint32) UnmaskWord {
	return UnmaskWord{
		RxDelay:            uint16(v & IntrRxDelayMask),
		TxDelay:            uint16((v & IntrTxDelayMask) >> IntrTxDelayShift),
		Unmask:             v&IntrUnmaskMask != 0,
		NoModerationUpdate: v&IntrNoModerationUpdateMask != 0,
	}
}

// NUMA node register fields (§7.8), struct ena_eth_io_numa_node_cfg_reg
// numa_cfg.
const (
	NUMANodeMask        uint32 = 0x000000FF // ENA_ETH_IO_NUMA_NODE_CFG_REG_NUMA_MASK
	NUMANodeEnabledMask uint32 = 1 << 31    // ENA_ETH_IO_NUMA_NODE_CFG_REG_ENABLED_MASK
	// NUMANodeReservedMask is reserved bits 30:8.
	NUMANodeReservedMask uint32 = 0x7FFFFF00
)

// NUMANodeConfig is the value of a CQ's optional NUMA node register (§7.8):
// a placement hint (used for TPH) written only if CREATE_CQ returned a
// non-zero numa_node_register_offset.
type NUMANodeConfig struct {
	Node    uint8
	Enabled bool
	// Reserved is bits 30:8 in place; drivers write 0.
	Reserved uint32
}

// Encode returns the register value.
func (c NUMANodeConfig) Encode() uint32 {
	return uint32(c.Node) | c.Reserved&NUMANodeReservedMask | ioBit(c.Enabled, NUMANodeEnabledMask)
}

// DecodeNUMANodeConfig splits a NUMA node register value.
func DecodeNUMANodeConfig(v uint32) NUMANodeConfig {
	return NUMANodeConfig{
		Node:     uint8(v & NUMANodeMask),
		Enabled:  v&NUMANodeEnabledMask != 0,
		Reserved: v & NUMANodeReservedMask,
	}
}

// NUMANodeRegValue is the value drivers write to bind a CQ to node:
// node | enabled (§7.8).
func NUMANodeRegValue(node uint8) uint32 {
	return uint32(node) | NUMANodeEnabledMask
}
