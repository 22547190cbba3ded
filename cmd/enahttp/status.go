package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/enanet/enanet/ena/observe"
	"github.com/enanet/enanet/ena/spec"
	"github.com/enanet/enanet/link"
	"github.com/enanet/enanet/rings"
)

// Status is the document served at /api/v1/status. Field names are part of
// the API: add fields, do not rename or remove them.
type Status struct {
	Version        int               `json:"version"` // 1
	Time           time.Time         `json:"time"`
	UptimeS        float64           `json:"uptime_s"`
	Device         DeviceInfo        `json:"device"`
	Features       Features          `json:"features"`
	Link           LinkInfo          `json:"link"`
	Network        Network           `json:"network"`
	Queues         []QueueCounters   `json:"queues"`
	DeviceCounters DeviceCounters    `json:"device_counters"`
	ENI            ENICounters       `json:"eni"`
	Resets         map[string]uint64 `json:"resets"` // by reset reason (§2.3)
	Driver         DriverCounters    `json:"driver"`
	Endpoint       link.Stats        `json:"endpoint"`
	// CountersTime is when the queue, device, ENI and driver counters
	// were read: requests share one snapshot for up to snapshotMaxAge.
	CountersTime time.Time `json:"counters_time"`
	// Counters are all counters under their ethtool -S names
	// (package ena/observe), conntrack_allowance_available included.
	Counters map[string]uint64 `json:"counters"`
	// Error says the device's own counters (device_counters, eni, and
	// their names in counters) could not be read, e.g. during a reset:
	// device_counters and eni then hold zeros, and counters leaves
	// those names out.
	Error string `json:"error,omitempty"`
}

// DeviceInfo identifies the device.
type DeviceInfo struct {
	Kind              string `json:"kind"`      // "simulated ENA, profile nitro-v3" or "vfio <pci address>"
	Address           string `json:"address"`   // PCI address or simulated name
	Vendor            string `json:"vendor"`    // hex
	DeviceID          string `json:"device_id"` // hex
	Revision          int    `json:"revision"`
	MAC               string `json:"mac"`
	Version           string `json:"version"` // VERSION register
	ControllerVersion string `json:"controller_version"`
	Readless          bool   `json:"readless"`
}

// Features are what bring-up negotiated.
type Features struct {
	LLQ             bool          `json:"llq"`
	LLQMode         string        `json:"llq_mode"` // "128 B entries, 96 B header push" or why host placement is used
	Queues          int           `json:"queues"`
	MaxQueues       int           `json:"max_queues"`
	TxDepth         int           `json:"tx_depth"`
	RxDepth         int           `json:"rx_depth"`
	MTU             int           `json:"mtu"`
	MaxMTU          int           `json:"max_mtu"`
	IOInterrupts    bool          `json:"io_interrupts"`
	AdminInterrupts bool          `json:"admin_interrupts"`
	RSSTableSize    int           `json:"rss_table_size"`
	Offloads        link.Offloads `json:"offloads"`
	GSO             bool          `json:"gso"`
	GRO             bool          `json:"gro"`
	TxCsumOffload   bool          `json:"tx_csum_offload"`
	RxCsumOffload   bool          `json:"rx_csum_offload"`
}

// LinkInfo is the link state.
type LinkInfo struct {
	Up      bool   `json:"up"`
	Changes uint64 `json:"changes"`
}

// Network is the stack's addressing, IPv4 and IPv6.
type Network struct {
	Address      string `json:"address"`
	Gateway      string `json:"gateway"`
	DHCP         bool   `json:"dhcp"`
	LeaseServer  string `json:"lease_server,omitempty"`
	LeaseSeconds int    `json:"lease_seconds,omitempty"`
	// Address6 is the global IPv6 address with its prefix (a DHCPv6
	// /128, or --ip6), Gateway6 the IPv6 default router (advertised or
	// --gw6), LinkLocal the fe80:: address from the MAC; empty when the
	// stack has none.
	Address6  string `json:"address6,omitempty"`
	Gateway6  string `json:"gateway6,omitempty"`
	LinkLocal string `json:"link_local,omitempty"`
	DHCP6     bool   `json:"dhcp6"`
	// Lease6Server is the DHCPv6 server's address; Lease6ValidSeconds
	// the valid lifetime it gave the address.
	Lease6Server       string `json:"lease6_server,omitempty"`
	Lease6ValidSeconds int    `json:"lease6_valid_seconds,omitempty"`
	// DNS are the servers Resolver queries through the stack.
	DNS []string `json:"dns,omitempty"`
}

// QueueCounters are one queue pair's ring counters.
type QueueCounters struct {
	Queue int           `json:"queue"`
	Tx    rings.TxStats `json:"tx"`
	Rx    rings.RxStats `json:"rx"`
}

// DeviceCounters are GET_STATS BASIC (§4.7).
type DeviceCounters struct {
	TxBytes    uint64 `json:"tx_bytes"`
	TxPkts     uint64 `json:"tx_pkts"`
	RxBytes    uint64 `json:"rx_bytes"`
	RxPkts     uint64 `json:"rx_pkts"`
	RxDrops    uint64 `json:"rx_drops"`
	TxDrops    uint64 `json:"tx_drops"`
	RxOverruns uint64 `json:"rx_overruns"`
}

// ENICounters are the ENI allowance counters (GET_STATS ENI): packets the
// VPC dropped or queued because an instance limit was exceeded.
type ENICounters struct {
	Valid                      bool   `json:"valid"`
	BWInAllowanceExceeded      uint64 `json:"bw_in_allowance_exceeded"`
	BWOutAllowanceExceeded     uint64 `json:"bw_out_allowance_exceeded"`
	PPSAllowanceExceeded       uint64 `json:"pps_allowance_exceeded"`
	ConntrackAllowanceExceeded uint64 `json:"conntrack_allowance_exceeded"`
	LinklocalAllowanceExceeded uint64 `json:"linklocal_allowance_exceeded"`
	// ConntrackAllowanceAvailable is how many more connections the ENI
	// can track (GET_STATS CUSTOMER_METRICS); absent when not reported.
	ConntrackAllowanceAvailable *uint64 `json:"conntrack_allowance_available,omitempty"`
}

// DriverCounters are the driver's own event counts.
type DriverCounters struct {
	AdminCommands uint64 `json:"admin_commands"`
	AdminFailures uint64 `json:"admin_failures"`
	AdminTimeouts uint64 `json:"admin_timeouts"`
	// AdminOutOfSpace counts admin commands that waited for a free slot
	// in the admin queue: back-pressure, not failures.
	AdminOutOfSpace uint64 `json:"admin_out_of_space"`
	AENQEvents      uint64 `json:"aenq_events"`
	KeepAlives      uint64 `json:"keep_alives"`
	LinkChanges     uint64 `json:"link_changes"`
}

func (a *app) status(ctx context.Context) Status {
	in := a.dev.Info()
	st := Status{Version: 1, Time: time.Now(), UptimeS: time.Since(a.started).Seconds()}
	st.Device = DeviceInfo{
		Kind:              a.kind,
		Address:           in.Identity.Address,
		Vendor:            fmt.Sprintf("%04x", in.Identity.Vendor),
		DeviceID:          fmt.Sprintf("%04x", in.Identity.Device),
		Revision:          int(in.Identity.Revision),
		MAC:               fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", in.MAC[0], in.MAC[1], in.MAC[2], in.MAC[3], in.MAC[4], in.MAC[5]),
		Version:           in.Version.String(),
		ControllerVersion: in.ControllerVersion.String(),
		Readless:          in.Readless,
	}
	eps := a.st.Endpoint.Stats()
	mode := "host placement: " + in.LLQReason
	if in.LLQ {
		mode = fmt.Sprintf("%d B entries, %d descriptors before header, %d B header push, burst %d",
			in.LLQEntrySize, in.LLQDescsBeforeHeader, in.LLQMaxPushHeader, in.LLQBurstEntries)
	}
	st.Features = Features{
		LLQ: in.LLQ, LLQMode: mode, Queues: in.Queues, MaxQueues: in.MaxQueues,
		TxDepth: in.TxDepth, RxDepth: in.RxDepth, MTU: in.MTU, MaxMTU: in.MaxMTU,
		IOInterrupts: in.IOInterrupts, AdminInterrupts: in.AdminInterrupts, RSSTableSize: in.RSSTableSize,
		Offloads: enanicOffloads(a), GSO: eps.GSO, GRO: eps.GRO,
		TxCsumOffload: eps.TxCsumOffload, RxCsumOffload: eps.RxCsumOffload,
	}
	st.Link = LinkInfo{Up: a.dev.LinkUp(), Changes: eps.LinkChanges}
	st.Network = a.network()
	ds, at, err := a.stats.get(ctx)
	st.CountersTime = at
	if err != nil {
		st.Error = err.Error()
	}
	for i, q := range ds.Queues {
		st.Queues = append(st.Queues, QueueCounters{Queue: i, Tx: q.Tx, Rx: q.Rx})
	}
	d := ds.Device
	st.DeviceCounters = DeviceCounters{d.TxBytes, d.TxPkts, d.RxBytes, d.RxPkts, d.RxDrops, d.TxDrops, d.RxOverruns}
	e := ds.ENI
	st.ENI = ENICounters{Valid: ds.ENIValid, BWInAllowanceExceeded: e.BWInAllowanceExceeded,
		BWOutAllowanceExceeded: e.BWOutAllowanceExceeded, PPSAllowanceExceeded: e.PPSAllowanceExceeded,
		ConntrackAllowanceExceeded: e.ConntrackAllowanceExceeded, LinklocalAllowanceExceeded: e.LinklocalAllowanceExceeded}
	if ds.Metrics.Has(spec.MetricConntrackAllowanceAvailable) {
		v := ds.Metrics.Values[spec.MetricConntrackAllowanceAvailable]
		st.ENI.ConntrackAllowanceAvailable = &v
	}
	st.Resets = map[string]uint64{}
	for r, n := range ds.Driver.Resets {
		st.Resets[r.String()] = n
	}
	dr := ds.Driver
	st.Driver = DriverCounters{AdminCommands: dr.AdminCommands, AdminFailures: dr.AdminFailures,
		AdminTimeouts: dr.AdminTimeouts, AdminOutOfSpace: dr.AdminOutOfSpace, AENQEvents: dr.AENQEvents,
		KeepAlives: dr.KeepAlives, LinkChanges: dr.LinkChanges}
	st.Endpoint = eps
	st.Counters = map[string]uint64{}
	for _, c := range observe.Counters(&ds) {
		switch observe.GroupOf(c) {
		case observe.GroupDevice, observe.GroupENI, observe.GroupSRD:
			if err != nil {
				continue // the device's own counters were not read: absent, not 0
			}
		}
		st.Counters[c.Name] = c.Value
	}
	return st
}

// network is the stack's addressing, IPv4 and IPv6.
func (a *app) network() Network {
	var n Network
	addr, gw := a.st.Addr()
	if addr.IsValid() { // else IPv6 only
		n.Address = addr.String()
	}
	if gw.IsValid() {
		n.Gateway = gw.String()
	}
	if l := a.st.Lease(); l != nil {
		n.DHCP = true
		n.LeaseServer = l.Server.String()
		n.LeaseSeconds = int(l.Duration / time.Second)
	}
	a.network6(&n)
	return n
}

// network6 fills in the IPv6 part of the addressing.
func (a *app) network6(n *Network) {
	if addr6, gw6 := a.st.Addr6(); addr6.IsValid() {
		n.Address6 = addr6.String()
		if gw6.IsValid() {
			n.Gateway6 = gw6.String()
		}
	}
	if ll := a.st.LinkLocal(); ll.IsValid() {
		n.LinkLocal = ll.String()
	}
	if l := a.st.Lease6(); l != nil {
		n.DHCP6 = true
		if l.Server.IsValid() {
			n.Lease6Server = l.Server.String()
		}
		n.Lease6ValidSeconds = int(l.Valid / time.Second)
	}
	for _, d := range a.st.DNSServers() {
		n.DNS = append(n.DNS, d.String())
	}
}

func enanicOffloads(a *app) link.Offloads {
	return a.st.Endpoint.NIC().Offloads()
}

func (a *app) handleJSON(w http.ResponseWriter, r *http.Request) {
	writeBuffered(w, "application/json", func(b *bytes.Buffer) error {
		enc := json.NewEncoder(b)
		enc.SetIndent("", "  ")
		return enc.Encode(a.status(r.Context()))
	})
}

func (a *app) handleHTML(w http.ResponseWriter, r *http.Request) {
	err := writeBuffered(w, "text/html; charset=utf-8", func(b *bytes.Buffer) error {
		return page.Execute(b, a.status(r.Context()))
	})
	if err != nil {
		a.cfg.log.Warn("enahttp: rendering the page", "err", err)
	}
}

// writeBuffered renders a whole response before sending it, so it goes out
// with a Content-Length: net/http sets one by itself only for bodies under
// 2 KB, and without it an HTTP/1.0 keep-alive client (ab -k) cannot reuse
// the connection. A rendering error answers 500 instead of half a page.
func writeBuffered(w http.ResponseWriter, contentType string, render func(*bytes.Buffer) error) error {
	var b bytes.Buffer
	if err := render(&b); err != nil {
		http.Error(w, "enahttp: rendering the response failed; the log has the cause", http.StatusInternalServerError)
		return err
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	_, err := w.Write(b.Bytes())
	return err
}

// pageFuncs turn values into words on the page.
var pageFuncs = template.FuncMap{
	// yesno shows a capability.
	"yesno": func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	},
	// count groups a counter's digits by thousands (203,897,960): long
	// columns of raw digits do not read.
	"count": observe.FormatCount,
	// interrupts shows how a queue is served.
	"interrupts": func(b bool) string {
		if b {
			return "MSI-X interrupts"
		}
		return "polled"
	},
}

var page = template.Must(template.New("page").Funcs(pageFuncs).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>enanet: {{.Device.Kind}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3} .num{text-align:right;font-variant-numeric:tabular-nums}
.up{color:#080;font-weight:bold} .down{color:#b00;font-weight:bold}
</style></head><body>
<h1>Served by gVisor netstack on an ENA</h1>
<p>This page came through a userspace TCP/IP stack running on {{.Device.Kind}}.
Machine-readable: <a href="/api/v1/status">/api/v1/status</a>.</p>
{{with .Error}}<p class="down">Device counters unavailable: {{.}}</p>{{end}}

<h2>Device</h2>
<table>
<tr><th>Device address</th><td>{{.Device.Address}}</td></tr>
<tr><th>PCI id</th><td>{{.Device.Vendor}}:{{.Device.DeviceID}} rev {{.Device.Revision}}</td></tr>
<tr><th>MAC</th><td>{{.Device.MAC}}</td></tr>
<tr><th>Version</th><td>{{.Device.Version}} (controller {{.Device.ControllerVersion}}){{if .Device.Readless}}, readless registers{{end}}</td></tr>
<tr><th>Link</th><td>{{if .Link.Up}}<span class="up">up</span>{{else}}<span class="down">down</span>{{end}}{{with .Link.Changes}} ({{.}} up/down changes since start){{else}} (no up/down change since start){{end}}</td></tr>
<tr><th>IP address</th><td>{{or .Network.Address "none"}}{{with .Network.Address}} via {{or $.Network.Gateway "-"}}{{end}}{{if .Network.DHCP}} (DHCP from {{.Network.LeaseServer}}, {{.Network.LeaseSeconds}} s lease){{end}}</td></tr>
<tr><th>IPv6 address</th><td>{{or .Network.Address6 "none"}}{{with .Network.Address6}} via {{or $.Network.Gateway6 "-"}}{{end}}{{if .Network.DHCP6}} (DHCPv6{{with .Network.Lease6Server}} from {{.}}{{end}}, valid {{.Network.Lease6ValidSeconds}} s){{end}}</td></tr>
<tr><th>IPv6 link-local</th><td>{{or .Network.LinkLocal "none (IPv6 off)"}}</td></tr>
<tr><th>DNS servers</th><td>{{range $i, $d := .Network.DNS}}{{if $i}}, {{end}}{{$d}}{{else}}none{{end}}</td></tr>
<tr><th>Uptime</th><td>{{printf "%.0f" .UptimeS}} s</td></tr>
</table>

<h2>Negotiated features</h2>
<table>
<tr><th>LLQ</th><td>{{if .Features.LLQ}}on: {{end}}{{.Features.LLQMode}}</td></tr>
<tr><th>Queues</th><td>{{.Features.Queues}} of {{.Features.MaxQueues}}, Tx depth {{.Features.TxDepth}}, Rx depth {{.Features.RxDepth}}, RSS table {{.Features.RSSTableSize}}</td></tr>
<tr><th>MTU</th><td>{{.Features.MTU}} (device max_mtu {{.Features.MaxMTU}}; an EC2 VPC carries up to 9001)</td></tr>
<tr><th>Interrupts</th><td>I/O queues {{interrupts .Features.IOInterrupts}}, admin queue {{interrupts .Features.AdminInterrupts}}</td></tr>
<tr><th>Device offloads</th><td>{{with .Features.Offloads}}Tx IPv4 checksum {{yesno .TxCsumIPv4}}; Tx TCP/UDP checksum (partial) IPv4 {{yesno .TxL4CsumIPv4Partial}}, IPv6 {{yesno .TxL4CsumIPv6Partial}}; Rx IPv4 checksum {{yesno .RxCsumIPv4}}; Rx TCP/UDP checksum {{yesno .RxCsumL4}}; Rx hash {{yesno .RxHash}}{{end}}</td></tr>
<tr><th>Stack</th><td>GSO {{yesno .Features.GSO}}, GRO {{yesno .Features.GRO}}, Tx checksum offload {{yesno .Features.TxCsumOffload}}, Rx checksum offload {{yesno .Features.RxCsumOffload}}</td></tr>
</table>

<h2>Queues</h2>
<table>
<tr><th>Queue</th><th>Tx pkts</th><th>Tx bytes</th><th>doorbells</th><th>no space</th><th>missed cmpl</th><th>Rx pkts</th><th>Rx bytes</th><th>L4 csum good/bad/unchecked</th><th>refills</th></tr>
{{range .Queues}}<tr><td>{{.Queue}}</td><td class="num">{{count .Tx.Packets}}</td><td class="num">{{count .Tx.Bytes}}</td><td class="num">{{count .Tx.Doorbells}}</td><td class="num">{{.Tx.NoSpace}}</td><td class="num">{{.Tx.MissedCompletion}}</td>
<td class="num">{{count .Rx.Packets}}</td><td class="num">{{count .Rx.Bytes}}</td><td class="num">{{count .Rx.L4CsumGood}}/{{.Rx.L4CsumBad}}/{{.Rx.L4CsumUnchecked}}</td><td class="num">{{count .Rx.Refills}}</td></tr>
{{end}}</table>

<h2>Device counters</h2>
{{if .Error}}<p>Unavailable while the device cannot answer ({{.Error}}).</p>{{else}}{{if .Resets}}<p>The device restarts these at each reset (the queue counters above keep counting).</p>{{end}}
<table>
{{with .DeviceCounters}}<tr><th>Tx</th><td class="num">{{count .TxPkts}} pkts, {{count .TxBytes}} bytes, {{.TxDrops}} drops</td></tr>
<tr><th>Rx</th><td class="num">{{count .RxPkts}} pkts, {{count .RxBytes}} bytes, {{.RxDrops}} drops, {{.RxOverruns}} overruns</td></tr>{{end}}
</table>{{end}}

<h2>ENI allowances exceeded</h2>
{{if .Error}}<p>Unavailable while the device cannot answer.</p>{{else}}{{with .ENI}}{{if .Valid}}<table>
<tr><th>bw_in</th><td class="num">{{.BWInAllowanceExceeded}}</td></tr>
<tr><th>bw_out</th><td class="num">{{.BWOutAllowanceExceeded}}</td></tr>
<tr><th>pps</th><td class="num">{{.PPSAllowanceExceeded}}</td></tr>
<tr><th>conntrack</th><td class="num">{{.ConntrackAllowanceExceeded}}</td></tr>
<tr><th>linklocal</th><td class="num">{{.LinklocalAllowanceExceeded}}</td></tr>
{{with .ConntrackAllowanceAvailable}}<tr><th>conntrack allowance available</th><td class="num">{{count .}} connections</td></tr>{{end}}
</table>{{else}}<p>The device does not report ENI statistics.</p>{{end}}{{end}}{{end}}

<h2>Resets and driver events</h2>
<table>
{{range $k, $v := .Resets}}<tr><th>reset {{$k}}</th><td class="num">{{$v}}</td></tr>{{else}}<tr><td>no resets</td></tr>{{end}}
{{with .Driver}}<tr><th>admin commands</th><td class="num">{{.AdminCommands}} ({{.AdminFailures}} failed, {{.AdminTimeouts}} timed out, {{.AdminOutOfSpace}} waited for a free slot)</td></tr>
<tr><th>AENQ events</th><td class="num">{{.AENQEvents}} ({{.KeepAlives}} keep-alives, {{.LinkChanges}} link-state notifications)</td></tr>{{end}}
</table>
</body></html>
`))
