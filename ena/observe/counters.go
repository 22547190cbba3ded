// Package observe turns a running device's statistics and attributes into
// what operators read: counters under the names Linux's ena driver gives
// them in `ethtool -S` (queue_0_tx_cnt, bw_in_allowance_exceeded,
// conntrack_allowance_available, ena_admin_q_submitted_cmd ...), per-second
// rates between two snapshots, snake_case JSON, and aligned text tables
// with units.
//
// enactl, enahttp, the control socket (package ena/control) and the
// Prometheus collector (package ena/metrics) all name counters through
// this package, so a counter has one name everywhere.
package observe

import (
	"fmt"
	"strings"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/spec"
)

// Unit says what a counter counts, for tables and rates.
type Unit string

// Units.
const (
	Packets     Unit = "packets"
	Bytes       Unit = "bytes"
	Events      Unit = "events"
	Commands    Unit = "commands"
	Connections Unit = "connections"
	Percent     Unit = "percent"
	Mode        Unit = "mode"
)

// Counter is one named value of a snapshot.
type Counter struct {
	// Name is the ethtool -S name, e.g. "queue_0_tx_cnt" or
	// "bw_in_allowance_exceeded".
	Name string `json:"name"`
	// Queue is the queue pair for per-queue counters, else -1.
	Queue int `json:"queue"`
	// Direction is "tx" or "rx" where the counter has one, else "".
	Direction string `json:"direction,omitempty"`
	// Stat is the name without queue and direction prefix ("cnt").
	Stat  string `json:"stat"`
	Value uint64 `json:"value"`
	Unit  Unit   `json:"unit"`
	// Gauge is true for a level (conntrack_allowance_available, link_up)
	// rather than a count that only grows.
	Gauge bool `json:"gauge,omitempty"`
	// Linux is true when Linux's ena driver reports a counter of this name;
	// false marks one only enanet has.
	Linux bool `json:"linux"`
}

// Group is the part of the device a counter belongs to, in table order.
type Group string

// Groups.
const (
	GroupDevice Group = "device"  // GET_STATS BASIC
	GroupENI    Group = "eni"     // allowances: GET_STATS ENI or CUSTOMER_METRICS
	GroupSRD    Group = "ena_srd" // ENA Express: GET_STATS ENA_SRD
	GroupDriver Group = "driver"  // the driver's own counts
	GroupAdmin  Group = "admin_q" // admin queue
	GroupQueue  Group = "queue"   // per queue pair
)

// deviceDesc describes a device-wide counter.
type deviceDesc struct {
	name, help string
	group      Group
	dir        string
	unit       Unit
	gauge      bool
	linux      bool
	get        func(*ena.Stats) (uint64, bool)
}

// queueDesc describes a per-queue counter; its name is
// queue_<n>_<dir>_<stat>, as Linux prints it.
type queueDesc struct {
	stat, help string
	dir        string
	unit       Unit
	linux      bool
	get        func(*ena.QueueStats) uint64
}

func basic(f func(*spec.BasicStats) uint64) func(*ena.Stats) (uint64, bool) {
	return func(s *ena.Stats) (uint64, bool) { return f(&s.Device), true }
}

func eni(f func(*spec.ENIStats) uint64) func(*ena.Stats) (uint64, bool) {
	return func(s *ena.Stats) (uint64, bool) { return f(&s.ENI), s.ENIValid }
}

func metric(id int) func(*ena.Stats) (uint64, bool) {
	return func(s *ena.Stats) (uint64, bool) { return s.Metrics.Values[id], s.Metrics.Has(id) }
}

func srd(f func(*spec.SRDStats) uint64) func(*ena.Stats) (uint64, bool) {
	return func(s *ena.Stats) (uint64, bool) { return f(&s.SRD), s.SRDValid }
}

func drv(f func(*ena.DriverStats) uint64) func(*ena.Stats) (uint64, bool) {
	return func(s *ena.Stats) (uint64, bool) { return f(&s.Driver), true }
}

// deviceCounters in output order. The device totals carry the field names
// of GET_STATS BASIC (ena_admin_basic_stats); Linux shows them through
// `ip -s link` rather than ethtool -S, so they are not marked linux.
var deviceCounters = []deviceDesc{
	{"tx_pkts", "packets the device transmitted", GroupDevice, "tx", Packets, false, false, basic(func(b *spec.BasicStats) uint64 { return b.TxPkts })},
	{"tx_bytes", "bytes the device transmitted", GroupDevice, "tx", Bytes, false, false, basic(func(b *spec.BasicStats) uint64 { return b.TxBytes })},
	{"tx_drops", "packets the device dropped on transmit", GroupDevice, "tx", Packets, false, false, basic(func(b *spec.BasicStats) uint64 { return b.TxDrops })},
	{"rx_pkts", "packets the device received", GroupDevice, "rx", Packets, false, false, basic(func(b *spec.BasicStats) uint64 { return b.RxPkts })},
	{"rx_bytes", "bytes the device received", GroupDevice, "rx", Bytes, false, false, basic(func(b *spec.BasicStats) uint64 { return b.RxBytes })},
	{"rx_drops", "packets the device dropped on receive", GroupDevice, "rx", Packets, false, false, basic(func(b *spec.BasicStats) uint64 { return b.RxDrops })},
	{"rx_overruns", "packets dropped because no Rx buffer was posted", GroupDevice, "rx", Packets, false, false, basic(func(b *spec.BasicStats) uint64 { return b.RxOverruns })},

	{"bw_in_allowance_exceeded", "packets queued or dropped because inbound bandwidth exceeded the instance's allowance", GroupENI, "rx", Packets, false, true,
		eni(func(e *spec.ENIStats) uint64 { return e.BWInAllowanceExceeded })},
	{"bw_out_allowance_exceeded", "packets queued or dropped because outbound bandwidth exceeded the instance's allowance", GroupENI, "tx", Packets, false, true,
		eni(func(e *spec.ENIStats) uint64 { return e.BWOutAllowanceExceeded })},
	{"pps_allowance_exceeded", "packets queued or dropped because the packet rate exceeded the instance's allowance", GroupENI, "", Packets, false, true,
		eni(func(e *spec.ENIStats) uint64 { return e.PPSAllowanceExceeded })},
	{"conntrack_allowance_exceeded", "packets dropped because connection tracking exceeded the instance's allowance", GroupENI, "", Packets, false, true,
		eni(func(e *spec.ENIStats) uint64 { return e.ConntrackAllowanceExceeded })},
	{"linklocal_allowance_exceeded", "packets dropped because traffic to link-local services (DNS, metadata, NTP) exceeded its rate", GroupENI, "", Packets, false, true,
		eni(func(e *spec.ENIStats) uint64 { return e.LinklocalAllowanceExceeded })},
	{"conntrack_allowance_available", "tracked connections the instance can still open before reaching its allowance", GroupENI, "", Connections, true, true,
		metric(spec.MetricConntrackAllowanceAvailable)},

	{"ena_srd_mode", "ENA Express: 0 off, 1 on for TCP, 2 on for UDP only, 3 on for TCP and UDP", GroupSRD, "", Mode, true, true,
		srd(func(s *spec.SRDStats) uint64 { return s.Flags & (spec.SRDEnabled | spec.SRDUDPEnabled) })},
	{"ena_srd_tx_pkts", "packets transmitted over ENA Express (SRD)", GroupSRD, "tx", Packets, false, true, srd(func(s *spec.SRDStats) uint64 { return s.TxPkts })},
	{"ena_srd_eligible_tx_pkts", "packets transmitted that were eligible for SRD", GroupSRD, "tx", Packets, false, true, srd(func(s *spec.SRDStats) uint64 { return s.EligibleTxPkts })},
	{"ena_srd_rx_pkts", "packets received over ENA Express (SRD)", GroupSRD, "rx", Packets, false, true, srd(func(s *spec.SRDStats) uint64 { return s.RxPkts })},
	{"ena_srd_resource_utilization", "share of the ENA Express resources in use", GroupSRD, "", Percent, true, true, srd(func(s *spec.SRDStats) uint64 { return s.ResourceUtilization })},

	{"resets", "device resets by the driver (watchdog, errors, requests); by reason in reset_<REASON>", GroupDriver, "", Events, false, false,
		drv(func(d *ena.DriverStats) uint64 {
			var n uint64
			for _, v := range d.Resets {
				n += v
			}
			return n
		})},
	{"keep_alives", "keep-alive events from the device", GroupDriver, "", Events, false, false, drv(func(d *ena.DriverStats) uint64 { return d.KeepAlives })},
	{"aenq_events", "asynchronous events from the device", GroupDriver, "", Events, false, false, drv(func(d *ena.DriverStats) uint64 { return d.AENQEvents })},
	{"link_changes", "link state notifications from the device (LINK_CHANGE), including the link-up after each reset", GroupDriver, "", Events, false, false, drv(func(d *ena.DriverStats) uint64 { return d.LinkChanges })},

	{"ena_admin_q_submitted_cmd", "admin commands submitted", GroupAdmin, "", Commands, false, true, drv(func(d *ena.DriverStats) uint64 { return d.AdminCommands })},
	{"ena_admin_q_no_completion", "admin commands the device did not complete in time", GroupAdmin, "", Commands, false, true, drv(func(d *ena.DriverStats) uint64 { return d.AdminTimeouts })},
	{"ena_admin_q_out_of_space", "admin commands that waited for a free admin queue slot (back-pressure, not a failure)", GroupAdmin, "", Commands, false, true, drv(func(d *ena.DriverStats) uint64 { return d.AdminOutOfSpace })},
	{"ena_admin_q_failed_cmd", "admin commands that failed (device status, timeout or abort)", GroupAdmin, "", Commands, false, false, drv(func(d *ena.DriverStats) uint64 { return d.AdminFailures })},
}

// queueCounters in output order, Tx then Rx as Linux lists them.
var queueCounters = []queueDesc{
	{"cnt", "packets", "tx", Packets, true, func(q *ena.QueueStats) uint64 { return q.Tx.Packets }},
	{"bytes", "bytes", "tx", Bytes, true, func(q *ena.QueueStats) uint64 { return q.Tx.Bytes }},
	{"doorbells", "doorbell writes", "tx", Events, true, func(q *ena.QueueStats) uint64 { return q.Tx.Doorbells }},
	{"queue_stop", "sends refused because the ring was full", "tx", Events, true, func(q *ena.QueueStats) uint64 { return q.Tx.NoSpace }},
	{"linearize", "packets copied into fewer buffers to meet the descriptor limit", "tx", Packets, true, func(q *ena.QueueStats) uint64 { return q.Tx.Linearized }},
	{"bad_req_id", "completions with an invalid req_id (each resets the device)", "tx", Events, true, func(q *ena.QueueStats) uint64 { return q.Tx.BadReqID }},
	{"missed_tx", "packets whose completion the watchdog found overdue", "tx", Packets, true, func(q *ena.QueueStats) uint64 { return q.Tx.MissedCompletion }},
	{"completions", "Tx completions processed", "tx", Events, false, func(q *ena.QueueStats) uint64 { return q.Tx.Completions }},
	{"llq_entries", "LLQ entries pushed to the device", "tx", Events, false, func(q *ena.QueueStats) uint64 { return q.Tx.LLQEntries }},
	{"malformed_cdesc", "malformed completion descriptors", "tx", Events, false, func(q *ena.QueueStats) uint64 { return q.Tx.MalformedCdesc }},
	{"dropped", "in-flight packets discarded by a queue reset", "tx", Packets, false, func(q *ena.QueueStats) uint64 { return q.Tx.Dropped }},

	{"cnt", "packets", "rx", Packets, true, func(q *ena.QueueStats) uint64 { return q.Rx.Packets }},
	{"bytes", "bytes", "rx", Bytes, true, func(q *ena.QueueStats) uint64 { return q.Rx.Bytes }},
	{"csum_good", "packets whose L4 checksum the device verified", "rx", Packets, true, func(q *ena.QueueStats) uint64 { return q.Rx.L4CsumGood }},
	{"csum_bad", "packets with a bad L3 or L4 checksum", "rx", Packets, true, func(q *ena.QueueStats) uint64 { return q.Rx.L3CsumBad + q.Rx.L4CsumBad }},
	{"csum_unchecked", "packets whose L4 checksum the device did not check", "rx", Packets, true, func(q *ena.QueueStats) uint64 { return q.Rx.L4CsumUnchecked }},
	{"refil_partial", "refills that could not fill the ring (Linux's spelling)", "rx", Events, true, func(q *ena.QueueStats) uint64 { return q.Rx.RefillPartial }},
	{"empty_rx_ring", "polls that found no Rx buffer posted", "rx", Events, true, func(q *ena.QueueStats) uint64 { return q.Rx.NoBuffer }},
	{"bad_desc_num", "packets with too many descriptors", "rx", Packets, true, func(q *ena.QueueStats) uint64 { return q.Rx.TooManyDescs }},
	{"bad_req_id", "completions with an invalid req_id (each resets the device)", "rx", Events, true, func(q *ena.QueueStats) uint64 { return q.Rx.BadReqID }},
	{"doorbells", "Rx doorbell writes", "rx", Events, false, func(q *ena.QueueStats) uint64 { return q.Rx.Doorbells }},
	{"refills", "Rx buffers posted", "rx", Events, false, func(q *ena.QueueStats) uint64 { return q.Rx.Refills }},
	{"l3_csum_good", "packets whose IPv4 header checksum the device verified", "rx", Packets, false, func(q *ena.QueueStats) uint64 { return q.Rx.L3CsumGood }},
	{"malformed_cdesc", "malformed completion descriptors", "rx", Events, false, func(q *ena.QueueStats) uint64 { return q.Rx.MalformedCdesc }},
}

// QueueName is the ethtool name of a per-queue counter.
func QueueName(queue int, dir, stat string) string {
	return fmt.Sprintf("queue_%d_%s_%s", queue, dir, stat)
}

// Counters names every counter of st, device-wide first, then per queue.
// Counters the device does not offer (no ENI statistics, no ENA Express)
// are left out rather than shown as zero.
func Counters(st *ena.Stats) []Counter { return counters(st, true) }

// fromDevice reports whether a counter's value comes from the device (an
// admin command) rather than from the driver.
func (d *deviceDesc) fromDevice() bool {
	return d.group == GroupDevice || d.group == GroupENI || d.group == GroupSRD
}

// counters is Counters; without device, the counters the device reports
// are left out (the device could not be asked, e.g. during a reset: its
// fields in st are zero, not its values).
func counters(st *ena.Stats, device bool) []Counter {
	out := make([]Counter, 0, len(deviceCounters)+len(st.Driver.Resets)+len(st.Queues)*len(queueCounters))
	for _, d := range deviceCounters {
		if !device && d.fromDevice() {
			continue
		}
		v, ok := d.get(st)
		if !ok {
			continue
		}
		out = append(out, Counter{Name: d.name, Queue: -1, Direction: d.dir, Stat: d.name, Value: v, Unit: d.unit, Gauge: d.gauge, Linux: d.linux})
	}
	for r := range spec.ResetReason(32) {
		if n, ok := st.Driver.Resets[r]; ok {
			name := "reset_" + strings.ToLower(r.String())
			out = append(out, Counter{Name: name, Queue: -1, Stat: name, Value: n, Unit: Events})
		}
	}
	for i := range st.Queues {
		q := &st.Queues[i]
		for _, d := range queueCounters {
			out = append(out, Counter{Name: QueueName(i, d.dir, d.stat), Queue: i, Direction: d.dir, Stat: d.stat,
				Value: d.get(q), Unit: d.unit, Linux: d.linux})
		}
	}
	return out
}

// Help returns a one-line description of the counter named name, "" if
// the name is not one of ours.
func Help(c Counter) string {
	if c.Queue >= 0 {
		for _, d := range queueCounters {
			if d.dir == c.Direction && d.stat == c.Stat {
				return d.help
			}
		}
		return ""
	}
	for _, d := range deviceCounters {
		if d.name == c.Name {
			return d.help
		}
	}
	if strings.HasPrefix(c.Name, "reset_") {
		return "device resets with reason " + strings.ToUpper(strings.TrimPrefix(c.Name, "reset_"))
	}
	return ""
}

// GroupOf returns the group of a device-wide counter (GroupQueue for
// per-queue ones).
func GroupOf(c Counter) Group {
	if c.Queue >= 0 {
		return GroupQueue
	}
	for _, d := range deviceCounters {
		if d.name == c.Name {
			return d.group
		}
	}
	return GroupDriver
}
