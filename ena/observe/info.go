package observe

import (
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/spec"
)

// Info is ena.Info for people and JSON: snake_case keys, names instead of
// bitmaps, units in the key names.
type Info struct {
	// Kind describes the device ("simulated ENA, profile nitro-v3",
	// "vfio 0000:00:06.0 (noiommu, LLQ BAR write-combined)").
	Kind              string   `json:"kind,omitempty"`
	Address           string   `json:"address"`
	PCIID             string   `json:"pci_id"`
	Revision          int      `json:"revision"`
	Version           string   `json:"version"`
	ControllerVersion string   `json:"controller_version"`
	ImplementationID  uint32   `json:"implementation_id"`
	ReadlessRegisters bool     `json:"readless_registers"`
	MAC               string   `json:"mac"`
	MTU               int      `json:"mtu"`
	MaxMTU            int      `json:"max_mtu"`
	LinkUp            bool     `json:"link_up"`
	Queues            int      `json:"queues"`
	MaxQueues         int      `json:"max_queues"`
	TxDepth           int      `json:"tx_depth"`
	MaxTxDepth        int      `json:"max_tx_depth"`
	RxDepth           int      `json:"rx_depth"`
	MaxRxDepth        int      `json:"max_rx_depth"`
	LLQ               bool     `json:"llq"`
	LLQReason         string   `json:"llq_reason,omitempty"`
	LLQEntryBytes     int      `json:"llq_entry_bytes,omitempty"`
	LLQDescsBeforeHdr int      `json:"llq_descs_before_header,omitempty"`
	LLQPushHeaderMax  int      `json:"llq_max_push_header_bytes,omitempty"`
	LLQBurstEntries   int      `json:"llq_burst_entries,omitempty"`
	Offloads          []string `json:"offloads"`
	AdminInterrupts   bool     `json:"admin_interrupts"`
	IOInterrupts      bool     `json:"io_interrupts"`
	DMAAddressBits    int      `json:"dma_address_bits"`
	Features          []string `json:"features"`
	Capabilities      []string `json:"capabilities"`
	AENQGroups        []string `json:"aenq_groups"`
	RSSTableEntries   int      `json:"rss_table_entries"`
	Hints             Hints    `json:"hints"`
}

// Hints are the device's hints (feature HW_HINTS); 0 means "driver default".
type Hints struct {
	MMIOReadTimeoutMs           int `json:"mmio_read_timeout_ms"`
	DriverWatchdogTimeoutMs     int `json:"driver_watchdog_timeout_ms"`
	MissingTxCompletionTimeout  int `json:"missing_tx_completion_timeout_ms"`
	MissedTxCompletionThreshold int `json:"missed_tx_completion_threshold"`
	AdminCompletionTimeoutMs    int `json:"admin_completion_timeout_ms"`
	NetdevWatchdogTimeoutMs     int `json:"netdev_watchdog_timeout_ms"`
	MaxTxSGL                    int `json:"max_tx_sgl"`
	MaxRxSGL                    int `json:"max_rx_sgl"`
}

// MakeInfo converts the driver's view; kind describes the device and
// linkUp is the link state (Device.LinkUp).
func MakeInfo(kind string, in ena.Info, linkUp bool) Info {
	o := Info{
		Kind:              kind,
		Address:           in.Identity.Address,
		PCIID:             fmt.Sprintf("%04x:%04x", in.Identity.Vendor, in.Identity.Device),
		Revision:          int(in.Identity.Revision),
		Version:           fmt.Sprintf("%d.%d", in.Version.Major, in.Version.Minor),
		ControllerVersion: fmt.Sprintf("%d.%d.%d", in.ControllerVersion.Major, in.ControllerVersion.Minor, in.ControllerVersion.SubMinor),
		ImplementationID:  in.ImplID,
		ReadlessRegisters: in.Readless,
		MAC:               net.HardwareAddr(in.MAC[:]).String(),
		MTU:               in.MTU,
		MaxMTU:            in.MaxMTU,
		LinkUp:            linkUp,
		Queues:            in.Queues,
		MaxQueues:         in.MaxQueues,
		TxDepth:           in.TxDepth,
		MaxTxDepth:        in.MaxTxDepth,
		RxDepth:           in.RxDepth,
		MaxRxDepth:        in.MaxRxDepth,
		LLQ:               in.LLQ,
		AdminInterrupts:   in.AdminInterrupts,
		IOInterrupts:      in.IOInterrupts,
		DMAAddressBits:    in.DMAAddrWidth,
		RSSTableEntries:   in.RSSTableSize,
		Offloads:          offloadNames(in.Offloads),
		Features:          []string{},
		Capabilities:      []string{},
		AENQGroups:        []string{},
		Hints: Hints{
			MMIOReadTimeoutMs:           int(in.Hints.MMIOReadTimeout),
			DriverWatchdogTimeoutMs:     int(in.Hints.DriverWatchdogTimeout),
			MissingTxCompletionTimeout:  int(in.Hints.MissingTxCompletionTimeout),
			MissedTxCompletionThreshold: int(in.Hints.MissedTxCompletionThreshold),
			AdminCompletionTimeoutMs:    int(in.Hints.AdminCompletionTxTimeout),
			NetdevWatchdogTimeoutMs:     int(in.Hints.NetdevWDTimeout),
			MaxTxSGL:                    int(in.Hints.MaxTxSGLSize),
			MaxRxSGL:                    int(in.Hints.MaxRxSGLSize),
		},
	}
	if in.LLQ {
		o.LLQEntryBytes, o.LLQDescsBeforeHdr = in.LLQEntrySize, in.LLQDescsBeforeHeader
		o.LLQPushHeaderMax, o.LLQBurstEntries = in.LLQMaxPushHeader, in.LLQBurstEntries
	} else {
		o.LLQReason = in.LLQReason
	}
	for i := range 32 {
		if in.SupportedFeatures&(1<<i) != 0 {
			o.Features = append(o.Features, spec.FeatureID(i).String())
		}
		if in.Capabilities&(1<<i) != 0 {
			o.Capabilities = append(o.Capabilities, spec.Capability(i).String())
		}
		if i < 16 && in.AENQGroups&(1<<i) != 0 {
			o.AENQGroups = append(o.AENQGroups, spec.AENQGroup(i).String())
		}
	}
	return o
}

func offloadNames(o ena.Offloads) []string {
	names := []string{}
	for _, f := range []struct {
		on   bool
		name string
	}{
		{o.TxCsumIPv4, "tx_csum_ipv4"},
		{o.TxL4CsumIPv4Partial, "tx_l4_csum_ipv4_partial"},
		{o.TxL4CsumIPv6Partial, "tx_l4_csum_ipv6_partial"},
		{o.RxCsumIPv4, "rx_csum_ipv4"},
		{o.RxCsumL4, "rx_csum_l4"},
		{o.RxHash, "rx_hash"},
	} {
		if f.on {
			names = append(names, f.name)
		}
	}
	return names
}

// WriteInfo prints in as an aligned two-column table with units: "key:"
// padded to 20 columns, then the value (scripts match these lines).
func WriteInfo(w io.Writer, in Info) error {
	var err error
	row := func(k, format string, a ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, "%-20s "+format+"\n", append([]any{k + ":"}, a...)...)
		}
	}
	if in.Kind != "" {
		row("device", "%s", in.Kind)
	}
	row("pci", "%s rev %02x at %s", in.PCIID, in.Revision, in.Address)
	row("version", "%s, controller %s (implementation %d)", in.Version, in.ControllerVersion, in.ImplementationID)
	row("register reads", "%s", yes(in.ReadlessRegisters, "readless (DMA)", "plain MMIO loads"))
	row("mac", "%s", in.MAC)
	row("link", "%s", yes(in.LinkUp, "up", "down"))
	row("mtu", "%d bytes (max %d)", in.MTU, in.MaxMTU)
	row("queues", "%d in use, device max %d", in.Queues, in.MaxQueues)
	row("ring depths", "Tx %d (max %d), Rx %d (max %d) descriptors", in.TxDepth, in.MaxTxDepth, in.RxDepth, in.MaxRxDepth)
	if in.LLQ {
		row("tx placement", "LLQ: %d B entries, %d descriptors before header, %d B pushed header, burst %d entries",
			in.LLQEntryBytes, in.LLQDescsBeforeHdr, in.LLQPushHeaderMax, in.LLQBurstEntries)
	} else {
		row("tx placement", "host memory (%s)", in.LLQReason)
	}
	row("offloads", "%s", list(in.Offloads))
	row("interrupts", "admin %s, I/O %s", yes(in.AdminInterrupts, "interrupt", "polling"), yes(in.IOInterrupts, "interrupt", "busy-poll"))
	row("dma width", "%d bits", in.DMAAddressBits)
	row("features", "%s", list(in.Features))
	row("capabilities", "%s", list(in.Capabilities))
	row("aenq groups", "%s", list(in.AENQGroups))
	row("rss table", "%d entries", in.RSSTableEntries)
	h := in.Hints
	row("hints", "watchdog %s, missing Tx completion %s after %d packets, admin timeout %s, MMIO read timeout %s",
		ms(h.DriverWatchdogTimeoutMs), ms(h.MissingTxCompletionTimeout), h.MissedTxCompletionThreshold,
		ms(h.AdminCompletionTimeoutMs), ms(h.MMIOReadTimeoutMs))
	return err
}

func ms(v int) string {
	switch v {
	case 0:
		return "default"
	case spec.HWHintDisabled:
		return "off"
	}
	return fmt.Sprintf("%d ms", v)
}

func yes(b bool, y, n string) string {
	if b {
		return y
	}
	return n
}

func list(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, " ")
}
