package ena

import (
	"context"
	"encoding/binary"
	"sync/atomic"

	"github.com/enanet/enanet/ena/hw"
	"github.com/enanet/enanet/ena/spec"
	"github.com/enanet/enanet/rings"
)

// numResetReasons covers every code of §2.3.
const numResetReasons = 21

// driverCounters are the driver's own event counts.
type driverCounters struct {
	resets                              [numResetReasons + 1]atomic.Uint64 // last slot: unknown codes
	aenqEvents, keepAlives, linkChanges atomic.Uint64
	kaRxDrops, kaTxDrops, kaRxOverruns  atomic.Uint64 // from the last keep-alive (§5.3)
	// metricsMask caches the customer metrics the device supports
	// (metricsKnown set once discovered); customerMetrics clears it when a
	// read fails, so the next one asks again.
	metricsMask atomic.Uint64
	// missedIntr and missedAdminIntr count missed interrupts (missintr.go).
	missedIntr, missedAdminIntr atomic.Uint64
}

// metricsKnown marks metricsMask as discovered.
const metricsKnown = 1 << 63

func (c *driverCounters) countReset(r spec.ResetReason) {
	c.resets[min(int(r), numResetReasons)].Add(1)
}

// DriverStats are the driver's counters.
type DriverStats struct {
	// Resets counts device resets by reason (§2.3); only reasons that
	// happened appear.
	Resets map[spec.ResetReason]uint64
	// AdminCommands, AdminFailures and AdminTimeouts count admin commands
	// submitted, completed with an error (any cause), and timed out.
	AdminCommands, AdminFailures, AdminTimeouts uint64
	// AdminOutOfSpace counts commands that found every admin queue slot
	// taken and waited for one (ena-com's out_of_space). Waiting is
	// back-pressure, not a failure: such a command is counted in
	// AdminFailures only if it then fails.
	AdminOutOfSpace                     uint64
	AENQEvents, KeepAlives, LinkChanges uint64
	// KeepAliveRxDrops, KeepAliveTxDrops and KeepAliveRxOverruns are the
	// device's cumulative counters from the last KEEP_ALIVE event (§5.3).
	KeepAliveRxDrops, KeepAliveTxDrops, KeepAliveRxOverruns uint64
	// MissedInterrupts counts Rx completions the watchdog found waiting
	// with no interrupt (each one switched its queue to polling);
	// MissedAdminInterrupts counts management-vector waits that ended
	// without the interrupt although admin or AENQ work was waiting.
	MissedInterrupts, MissedAdminInterrupts uint64
}

// QueueStats are one queue pair's ring counters.
type QueueStats struct {
	Tx rings.TxStats
	Rx rings.RxStats
}

// Stats is a snapshot of device and driver statistics.
type Stats struct {
	// Device is GET_STATS BASIC (§4.7).
	Device spec.BasicStats
	// ENI holds the allowance counters (bw_in, bw_out, pps, conntrack,
	// linklocal) when the device has capability ENI_STATS; ENIValid says so.
	ENI      spec.ENIStats
	ENIValid bool
	Driver   DriverStats
	Queues   []QueueStats
	// Metrics are the customer metrics (GET_STATS CUSTOMER_METRICS, §4.7)
	// when the device has capability CUSTOMER_METRICS; Metrics.Reported
	// says which it filled in (conntrack_allowance_available among them).
	Metrics CustomerMetrics
	// SRD holds the ENA Express counters (GET_STATS ENA_SRD) when the
	// device has capability ENA_SRD_INFO; SRDValid says so.
	SRD      spec.SRDStats
	SRDValid bool
	// Health is the device's state: running, or recovering with the
	// attempt and last error (see Device.Health).
	Health Health
}

// CustomerMetrics are the values of GET_STATS CUSTOMER_METRICS, indexed by
// metric id (spec.MetricBWInAllowanceExceeded ...
// spec.MetricConntrackAllowanceAvailable).
type CustomerMetrics struct {
	// Reported has bit n set when Values[n] came from the device.
	Reported uint64
	Values   [spec.MetricConntrackAllowanceAvailable + 1]uint64
}

// Has reports whether the device reported metric id.
func (m CustomerMetrics) Has(id int) bool { return id < len(m.Values) && m.Reported&(1<<id) != 0 }

// Stats reads the device counters with admin commands and adds the driver
// and ring counters. The driver part is returned even when the device part
// fails (for example during a reset).
func (d *Device) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	s.Driver = d.driverStats()
	s.Health = d.Health()
	for _, p := range d.activeQueues() { // as ethtool -S: the enabled channels
		tx, rx := p.ringStats()
		s.Queues = append(s.Queues, QueueStats{Tx: tx, Rx: rx})
	}
	if err := ctx.Err(); err != nil {
		return s, err
	}
	if st := d.state.Load(); st != stateRunning {
		return s, (&QueuePair{d: d}).stateErr()
	}
	p, err := d.getStats(spec.StatsBasic)
	if err != nil {
		return s, err
	}
	s.Device = spec.DecodeBasicStats(p)
	caps := d.attrs.Capabilities
	if spec.CapCustomerMetrics.In(caps) {
		// The customer metrics include the five ENI counters, so one
		// command replaces GET_STATS ENI, as in Linux's driver.
		m, err := d.customerMetrics(ctx)
		if err != nil {
			return s, err
		}
		s.Metrics = m
		if m.Reported&spec.CustomerMetricsMinSupportMask == spec.CustomerMetricsMinSupportMask {
			s.ENI = spec.ENIStats{
				BWInAllowanceExceeded:      m.Values[spec.MetricBWInAllowanceExceeded],
				BWOutAllowanceExceeded:     m.Values[spec.MetricBWOutAllowanceExceeded],
				PPSAllowanceExceeded:       m.Values[spec.MetricPPSAllowanceExceeded],
				ConntrackAllowanceExceeded: m.Values[spec.MetricConntrackAllowanceExceeded],
				LinklocalAllowanceExceeded: m.Values[spec.MetricLinklocalAllowanceExceeded],
			}
			s.ENIValid = true
		}
	}
	if !s.ENIValid && spec.CapENIStats.In(caps) {
		if err := ctx.Err(); err != nil {
			return s, err
		}
		p, err := d.getStats(spec.StatsENI)
		if err != nil {
			return s, err
		}
		s.ENI, s.ENIValid = spec.DecodeENIStats(p), true
	}
	if spec.CapENASRDInfo.In(d.attrs.Capabilities) {
		if err := ctx.Err(); err != nil {
			return s, err
		}
		p, err := d.getStats(spec.StatsENASRD)
		if err != nil {
			return s, err
		}
		s.SRD, s.SRDValid = spec.DecodeSRDStats(p), true
	}
	return s, nil
}

// customerMetrics reads GET_STATS CUSTOMER_METRICS (§4.7): once, which
// metrics the device supports (no buffer, the support mask requested), then
// on every call those metrics into the control page, one u64 per requested
// bit in bit order.
func (d *Device) customerMetrics(ctx context.Context) (CustomerMetrics, error) {
	var m CustomerMetrics
	if err := ctx.Err(); err != nil {
		return m, err
	}
	mask := d.counters.metricsMask.Load()
	if mask&metricsKnown == 0 {
		p, err := d.getStatsCmd(spec.GetStatsCmd{Type: spec.StatsCustomerMetrics, RequestedMetrics: spec.CustomerMetricsSupportMask})
		if err != nil {
			return m, err
		}
		mask = spec.DecodeCustomerMetrics(p).ReportedMetrics&spec.CustomerMetricsSupportMask | metricsKnown
		d.counters.metricsMask.Store(mask)
		if err := ctx.Err(); err != nil {
			return m, err
		}
	}
	supported := mask &^ metricsKnown
	if supported == 0 {
		return m, nil
	}
	n := spec.CustomerMetricsBufLen(supported)
	d.ctrlMu.Lock()
	defer d.ctrlMu.Unlock()
	clear(d.ctrl.Bytes[:n])
	p, err := d.getStatsCmd(spec.GetStatsCmd{Type: spec.StatsCustomerMetrics, RequestedMetrics: supported,
		CtrlBuf: spec.CtrlBuf{Length: spec.CustomerMetricsBufSize, Addr: d.ctrl.Addr}})
	if err != nil {
		d.counters.metricsMask.Store(0)
		return m, err
	}
	// The device may report fewer metrics than requested; the buffer
	// layout follows the request.
	m.Reported = spec.DecodeCustomerMetrics(p).ReportedMetrics & supported
	for id := range uint(len(m.Values)) {
		if m.Reported&(1<<id) == 0 {
			continue
		}
		slot, _ := spec.CustomerMetricSlot(supported, id)
		m.Values[id] = binary.LittleEndian.Uint64(d.ctrl.Bytes[8*slot:])
	}
	return m, nil
}

// DriverStats returns the driver's own counters without asking the device
// (no admin command), so it is safe to call while the device is sick.
func (d *Device) DriverStats() DriverStats { return d.driverStats() }

func (d *Device) driverStats() DriverStats {
	c := &d.counters
	s := DriverStats{
		Resets:                map[spec.ResetReason]uint64{},
		AdminCommands:         d.admin.submitted.Load(),
		AdminFailures:         d.admin.failed.Load(),
		AdminTimeouts:         d.admin.timeouts.Load(),
		AdminOutOfSpace:       d.admin.outOfSpace.Load(),
		AENQEvents:            c.aenqEvents.Load(),
		KeepAlives:            c.keepAlives.Load(),
		LinkChanges:           c.linkChanges.Load(),
		KeepAliveRxDrops:      c.kaRxDrops.Load(),
		KeepAliveTxDrops:      c.kaTxDrops.Load(),
		KeepAliveRxOverruns:   c.kaRxOverruns.Load(),
		MissedInterrupts:      c.missedIntr.Load(),
		MissedAdminInterrupts: c.missedAdminIntr.Load(),
	}
	for i := range c.resets {
		if n := c.resets[i].Load(); n != 0 {
			s.Resets[spec.ResetReason(i)] = n
		}
	}
	return s
}

// Offloads are the checksum and hash offloads the device offers (§4.8
// STATELESS_OFFLOAD_CONFIG), in the terms the link layer uses.
type Offloads struct {
	TxCsumIPv4          bool // IPv4 header checksum on Tx
	TxL4CsumIPv4Partial bool // TCP/UDP over IPv4, pseudo-header pre-seeded
	TxL4CsumIPv6Partial bool // TCP/UDP over IPv6, pseudo-header pre-seeded
	RxCsumIPv4          bool // IPv4 header checksum checked on Rx
	RxCsumL4            bool // TCP/UDP checksum checked on Rx (IPv4 and IPv6)
	RxHash              bool // Rx completions carry the RSS hash
}

// Offloads returns the offloads the device supports.
func (d *Device) Offloads() Offloads {
	tx, rx := d.offloads.Tx, d.offloads.RxSupported
	return Offloads{
		TxCsumIPv4:          tx&spec.OffloadTxL3CsumIPv4 != 0,
		TxL4CsumIPv4Partial: tx&spec.OffloadTxL4IPv4CsumPart != 0,
		TxL4CsumIPv6Partial: tx&spec.OffloadTxL4IPv6CsumPart != 0,
		RxCsumIPv4:          rx&spec.OffloadRxL3CsumIPv4 != 0,
		RxCsumL4:            rx&spec.OffloadRxL4IPv4Csum != 0 && rx&spec.OffloadRxL4IPv6Csum != 0,
		RxHash:              rx&spec.OffloadRxHash != 0,
	}
}

// Info describes the device and the configuration Open negotiated.
type Info struct {
	Identity          hw.Identity
	Version           spec.Version           // VERSION register
	ControllerVersion spec.ControllerVersion // CONTROLLER_VERSION register
	Readless          bool                   // registers read through §3
	DMAAddrWidth      int
	ImplID            uint32
	DeviceVersion     uint32
	SupportedFeatures uint32 // bit n = feature id n (§4.6)
	Capabilities      uint32 // §4.6 capability bits
	MAC               [6]byte
	MTU, MaxMTU       int
	// LLQ is true when Tx descriptors are pushed to BAR2 (§8); otherwise
	// LLQReason says why host placement is used.
	LLQ                  bool
	LLQReason            string
	LLQEntrySize         int
	LLQDescsBeforeHeader int
	LLQMaxPushHeader     int
	LLQBurstEntries      int
	Queues               int
	MaxQueues            int
	TxDepth, RxDepth     int
	MaxTxDepth           int
	MaxRxDepth           int
	AdminInterrupts      bool
	IOInterrupts         bool
	AENQGroups           uint32 // enabled AENQ groups (§5.2)
	RSSTableSize         int
	Offloads             Offloads
	Hints                spec.HWHints
}

// bringUpReport is the part of bringUpState that Info shows, copied at the
// end of every successful bring-up so that Info never reads fields a
// recovery is rewriting.
type bringUpReport struct {
	version      spec.Version
	ctrlVersion  spec.ControllerVersion
	dmaAddrWidth int
	aenqGroups   uint32
	rssLog       int
}

// publishInfo is the last bring-up step: it hands Info a copy of what this
// bring-up read and decided.
func (d *Device) publishInfo() error {
	d.published.Store(&bringUpReport{
		version:      d.version,
		ctrlVersion:  d.ctrlVersion,
		dmaAddrWidth: int(d.caps.DMAAddrWidth),
		aenqGroups:   d.aenqGroups,
		rssLog:       d.rssLog,
	})
	d.publishRings()
	return nil
}

// Info returns what the device reported and what was negotiated. During a
// recovery it shows the last completed bring-up.
func (d *Device) Info() Info {
	r := d.published.Load()
	in := Info{
		Identity:          d.dev.Identity(),
		Version:           r.version,
		ControllerVersion: r.ctrlVersion,
		Readless:          d.regs.readless,
		DMAAddrWidth:      r.dmaAddrWidth,
		ImplID:            d.attrs.ImplID,
		DeviceVersion:     d.attrs.DeviceVersion,
		SupportedFeatures: d.attrs.SupportedFeatures,
		Capabilities:      d.attrs.Capabilities,
		MAC:               d.attrs.MAC,
		MTU:               d.MTU(),
		MaxMTU:            d.MaxMTU(),
		LLQReason:         d.llqWhy,
		Queues:            d.Channels(),
		MaxQueues:         d.limits.queues,
		TxDepth:           d.Rings().TxDepth,
		RxDepth:           d.Rings().RxDepth,
		MaxTxDepth:        d.limits.txDepth,
		MaxRxDepth:        d.limits.rxDepth,
		AdminInterrupts:   d.adminIntr.Load(),
		IOInterrupts:      d.ioIntr,
		AENQGroups:        r.aenqGroups,
		Offloads:          d.Offloads(),
	}
	d.hmu.Lock()
	in.Hints = d.hints
	d.hmu.Unlock()
	if d.rssSupported() {
		in.RSSTableSize = 1 << r.rssLog
	}
	if d.llq != nil {
		in.LLQ = true
		in.LLQEntrySize = d.llq.layout.EntrySize()
		in.LLQDescsBeforeHeader = d.llq.layout.DescsBeforeHeader()
		in.LLQMaxPushHeader = d.llq.layout.MaxPushHeader()
		in.LLQBurstEntries = d.llq.burst
	}
	return in
}
