// Package metrics exports a running ENA's counters to Prometheus: a
// prometheus.Collector any service registers next to its own metrics.
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(metrics.NewCollector(dev, "eth1"))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Every metric is named enanet_…; per-queue counters carry the labels
// queue and direction (tx, rx), device totals direction, resets reason,
// and all of them device. The names follow the ethtool -S names of
// package ena/observe: queue_0_tx_cnt is
// enanet_queue_packets_total{queue="0",direction="tx"},
// bw_in_allowance_exceeded is enanet_bw_in_allowance_exceeded_total,
// conntrack_allowance_available the gauge
// enanet_conntrack_allowance_available. The README lists them all.
package metrics

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/enanet/enanet/ena/observe"
)

// ScrapeTimeout bounds the statistics read of one scrape.
const ScrapeTimeout = 5 * time.Second

// Collector reads the device's statistics on every scrape. It is an
// unchecked collector (Describe sends nothing) because the set of metrics
// depends on what the device offers (ENI statistics, ENA Express).
type Collector struct {
	src    observe.Source
	device string

	mu    sync.Mutex
	descs map[string]*prometheus.Desc
}

// NewCollector collects from src (an *ena.Device, or a cache in front of
// it) and labels every metric device=device.
func NewCollector(src observe.Source, device string) *Collector {
	return &Collector{src: src, device: device, descs: map[string]*prometheus.Desc{}}
}

// Describe sends nothing: see Collector.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect reads the statistics and sends one metric per counter, plus
// enanet_device_stats_up (1 when the device answered GET_STATS, 0 when
// only the driver's counters could be read, e.g. during a reset).
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	s := observe.Take(ctx, c.src, c.device)
	up := 1.0
	if s.Error != "" {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(c.desc("enanet_device_stats_up",
		"1 when the last scrape read the device's own counters, 0 when it could not (the driver's counters are still exported)", nil),
		prometheus.GaugeValue, up, c.device)
	for _, ct := range s.Counters {
		name, labels, values := Name(ct)
		typ := prometheus.CounterValue
		if ct.Gauge {
			typ = prometheus.GaugeValue
		}
		help := observe.Help(ct)
		if ct.Queue >= 0 {
			help = queueHelp(ct)
		}
		ch <- prometheus.MustNewConstMetric(c.desc(name, help, labels), typ, float64(ct.Value), append([]string{c.device}, values...)...)
	}
}

// desc returns the cached descriptor of a metric name.
func (c *Collector) desc(name, help string, labels []string) *prometheus.Desc {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.descs[name]
	if !ok {
		d = prometheus.NewDesc(name, help, append([]string{"device"}, labels...), nil)
		c.descs[name] = d
	}
	return d
}

// queueStat maps a per-queue stat to its metric name part.
var queueStat = map[string]string{"cnt": "packets"}

// Name returns the Prometheus name of a counter and its labels (besides
// device) with their values.
func Name(c observe.Counter) (name string, labels, values []string) {
	suffix := "_total"
	if c.Gauge {
		suffix = ""
	}
	switch {
	case c.Queue >= 0:
		stat := c.Stat
		if s, ok := queueStat[stat]; ok {
			stat = s
		}
		return "enanet_queue_" + stat + suffix, []string{"queue", "direction"}, []string{strconv.Itoa(c.Queue), c.Direction}
	case observe.GroupOf(c) == observe.GroupDevice:
		// tx_pkts -> enanet_device_packets_total{direction="tx"}.
		stat := strings.TrimPrefix(strings.TrimPrefix(c.Name, "tx_"), "rx_")
		switch stat {
		case "pkts":
			stat = "packets"
		case "overruns":
			stat = "rx_overruns"
			return "enanet_device_" + stat + suffix, nil, nil
		}
		return "enanet_device_" + stat + suffix, []string{"direction"}, []string{c.Direction}
	case strings.HasPrefix(c.Name, "reset_"):
		return "enanet_resets_by_reason_total", []string{"reason"}, []string{strings.ToUpper(strings.TrimPrefix(c.Name, "reset_"))}
	}
	return "enanet_" + strings.TrimPrefix(c.Name, "ena_") + suffix, nil, nil
}

// queueHelp is one help text per per-queue metric name (Tx and Rx share
// the name).
func queueHelp(c observe.Counter) string {
	switch c.Stat {
	case "cnt":
		return "packets per queue and direction (ethtool queue_N_tx_cnt, queue_N_rx_cnt)"
	case "bytes":
		return "bytes per queue and direction (ethtool queue_N_tx_bytes, queue_N_rx_bytes)"
	case "doorbells":
		return "doorbell writes per queue and direction"
	case "bad_req_id":
		return "completions with an invalid req_id per queue and direction (each resets the device)"
	case "malformed_cdesc":
		return "malformed completion descriptors per queue and direction"
	}
	return observe.Help(c) + " (ethtool queue_N_" + c.Direction + "_" + c.Stat + ")"
}
