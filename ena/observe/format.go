package observe

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// WriteTable prints a snapshot as aligned tables: the device-wide counters
// (device totals, allowances, ENA Express, driver, admin queue) with their
// per-second rates, then one row per queue and direction. rates may be nil
// (first sample): the rate column then says so.
func WriteTable(w io.Writer, s Snapshot, rates map[string]float64) error {
	fmt.Fprintf(w, "Device %s at %s\n", s.Device, s.Time.UTC().Format("2006-01-02 15:04:05 MST"))
	if s.Error != "" {
		fmt.Fprintf(w, "Device counters unavailable: %s (driver and queue counters follow)\n", s.Error)
	}
	// Names left-aligned, numbers right-aligned.
	type line struct{ name, value, rate string }
	var lines []*line // nil entries separate groups
	wn, wv, wr := len("COUNTER"), len("VALUE"), len("PER SECOND")
	var group Group
	for _, c := range s.Counters {
		if c.Queue >= 0 {
			continue
		}
		if g := GroupOf(c); g != group {
			if group != "" {
				lines = append(lines, nil)
			}
			group = g
		}
		l := &line{c.Name, FormatValue(c.Value, c.Unit), rateCell(c, rates)}
		wn, wv, wr = max(wn, len(l.name)), max(wv, len(l.value)), max(wr, len(l.rate))
		lines = append(lines, l)
	}
	fmt.Fprintf(w, "\n%-*s  %*s  %*s\n", wn, "COUNTER", wv, "VALUE", wr, "PER SECOND")
	for _, l := range lines {
		if l == nil {
			fmt.Fprintln(w)
			continue
		}
		if _, err := fmt.Fprintf(w, "%-*s  %*s  %*s\n", wn, l.name, wv, l.value, wr, l.rate); err != nil {
			return err
		}
	}
	return writeQueues(w, s, rates)
}

// writeQueues prints one row per queue and direction.
func writeQueues(w io.Writer, s Snapshot, rates map[string]float64) error {
	type row struct {
		queue           int
		dir             string
		pkts, bytes     Counter
		doorbells       uint64
		problems        []string
		havePkts, haveB bool
	}
	var rows []*row
	index := map[string]*row{}
	for _, c := range s.Counters {
		if c.Queue < 0 {
			continue
		}
		key := strconv.Itoa(c.Queue) + c.Direction
		r := index[key]
		if r == nil {
			r = &row{queue: c.Queue, dir: c.Direction}
			index[key] = r
			rows = append(rows, r)
		}
		switch c.Stat {
		case "cnt":
			r.pkts, r.havePkts = c, true
		case "bytes":
			r.bytes, r.haveB = c, true
		case "doorbells":
			r.doorbells = c.Value
		case "completions", "llq_entries", "refills", "csum_good", "l3_csum_good", "csum_unchecked":
			// Healthy activity, not shown in the problems column.
		default:
			if c.Value != 0 {
				r.problems = append(r.problems, fmt.Sprintf("%s %s", c.Stat, FormatCount(c.Value)))
			}
		}
	}
	if len(rows) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tDIR\tPACKETS\tBYTES\tPACKETS/S\tBITS/S\tDOORBELLS\tPROBLEMS")
	for _, r := range rows {
		pr, br := "-", "-"
		if v, ok := rates[r.pkts.Name]; ok && r.havePkts {
			pr = FormatCount(uint64(v+0.5)) + " pkt/s"
		}
		if v, ok := rates[r.bytes.Name]; ok && r.haveB {
			br = FormatBits(v * 8)
		}
		problems := "none"
		if len(r.problems) > 0 {
			problems = strings.Join(r.problems, ", ")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.queue, r.dir, FormatCount(r.pkts.Value),
			FormatBytes(r.bytes.Value), pr, br, FormatCount(r.doorbells), problems)
	}
	return tw.Flush()
}

func rateCell(c Counter, rates map[string]float64) string {
	if c.Gauge {
		return "gauge"
	}
	v, ok := rates[c.Name]
	if !ok {
		return "-"
	}
	if c.Unit == Bytes {
		return FormatBits(v * 8)
	}
	return FormatCount(uint64(v+0.5)) + perSecond(c.Unit)
}

func perSecond(u Unit) string {
	switch u {
	case Packets:
		return " pkt/s"
	case Commands:
		return " cmd/s"
	case Connections:
		return " conn/s"
	}
	return "/s"
}

// FormatValue prints a counter value with its unit.
func FormatValue(v uint64, u Unit) string {
	switch u {
	case Bytes:
		return FormatBytes(v)
	case Packets:
		return FormatCount(v) + " pkt"
	case Commands:
		return FormatCount(v) + " cmd"
	case Connections:
		return FormatCount(v) + " conn"
	case Percent:
		return strconv.FormatUint(v, 10) + " %"
	case Mode:
		return strconv.FormatUint(v, 10)
	}
	return FormatCount(v)
}

// FormatCount prints n with thousands separators: 1,234,567.
func FormatCount(n uint64) string {
	s := strconv.FormatUint(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// FormatBytes prints a byte count in binary units: 512 B, 1.5 KiB, 3.2 GiB.
func FormatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	v, i := float64(n), 0
	for v >= unit && i < 5 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTPE"[i-1])
}

// FormatBits prints a bit rate in decimal units: 950 bit/s, 9.41 Gbit/s.
func FormatBits(bps float64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.2f Gbit/s", bps/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.1f Mbit/s", bps/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.1f kbit/s", bps/1e3)
	}
	return fmt.Sprintf("%.0f bit/s", bps)
}
