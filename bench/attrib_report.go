package bench

import (
	"bytes"
	"fmt"
)

// attrRow is one (b) cell with its attribution, in table order.
type attrRow struct {
	ID  string
	Key GoodputKey
	A   Attribution
}

// attrRows lists every attributed (b) cell of the run.
func (r *Results) attrRows() []attrRow {
	var out []attrRow
	for _, l := range r.Links {
		if l.Attr == nil {
			continue
		}
		for _, mtu := range r.Config.MTUs {
			for _, s := range r.Config.Streams {
				k := GoodputKey{mtu, s}
				if a, ok := l.Attr[k]; ok {
					out = append(out, attrRow{l.Link.ID, k, a})
				}
			}
		}
	}
	return out
}

// enanetNs is enanet's own CPU per wire frame and per KiB of application
// data, in ns.
func (a Attribution) enanetNs() (perPkt, perKiB float64) {
	if a.Packets > 0 {
		perPkt = a.CPU[CatENANet] * 1e9 / a.Packets
	}
	if a.Bytes > 0 {
		perKiB = a.CPU[CatENANet] * 1e9 / (a.Bytes / 1024)
	}
	return perPkt, perKiB
}

// AttributionMarkdown renders where (b)'s CPU went: per GB, per million
// frames, and the headline (enanet's own ns per frame and per KiB).
func (r *Results) AttributionMarkdown() string {
	rows := r.attrRows()
	if len(rows) == 0 {
		return ""
	}
	var b bytes.Buffer
	b.WriteString("\n### Where (b)'s CPU goes\n\n")
	b.WriteString("CPU time of the whole process during the counted goodput windows of each (b) cell " +
		"(user+system, from getrusage), split by the CPU profile's samples (100 Hz): `enasim` is the device model " +
		"(what the NIC does in silicon), `enanet` is link + ena + rings (what a user on real hardware pays), " +
		"`gVisor` the netstack, `runtime/GC` Go's scheduler, allocator and collector. A sample belongs to the " +
		"innermost enanet or enasim frame on its stack (copies, checksums and buffer helpers count as their " +
		"caller's), unless enanet handed the packet to gVisor's stack; the runtime's own functions count as runtime " +
		"whoever called them. Frames are the frames both devices put on the wire (both directions, ACKs included).\n\n")
	head := "| row | MTU | streams | samples |"
	sep := "|---|---:|---:|---:|"
	for c := Category(0); c < numCats; c++ {
		head += " " + c.String() + " |"
		sep += "---:|"
	}
	head += " total |\n"
	sep += "---:|\n"
	var notes []string
	for _, unit := range []struct {
		title string
		f     func(Attribution, Category) float64
		fmt   string
	}{
		{"CPU seconds per GB of application data", func(a Attribution, c Category) float64 { return a.PerGB(c) }, "%.2f"},
		{"CPU seconds per million wire frames", func(a Attribution, c Category) float64 { return a.PerMpkt(c) }, "%.2f"},
		{"share of the process's CPU", func(a Attribution, c Category) float64 { return 100 * a.Share(c) }, "%.0f %%"},
	} {
		fmt.Fprintf(&b, "%s:\n\n%s%s", unit.title, head, sep)
		for _, row := range rows {
			fmt.Fprintf(&b, "| `%s` | %d | %d |", row.ID, row.Key.MTU, row.Key.Streams)
			if row.A.Err != "" && row.A.Samples == 0 {
				b.WriteString(" — |")
				for range numCats + 1 {
					b.WriteString(" — |")
				}
				b.WriteString("\n")
				continue
			}
			fmt.Fprintf(&b, " %d |", row.A.Samples)
			total := 0.0
			for c := Category(0); c < numCats; c++ {
				v := unit.f(row.A, c)
				total += v
				fmt.Fprintf(&b, " "+unit.fmt+" |", v)
			}
			fmt.Fprintf(&b, " "+unit.fmt+" |\n", total)
		}
		b.WriteString("\n")
	}
	for _, row := range rows {
		if row.A.Err != "" {
			notes = append(notes, fmt.Sprintf("`%s` MTU %d ×%d: %s", row.ID, row.Key.MTU, row.Key.Streams, row.A.Err))
		}
	}
	b.WriteString("**enanet's own CPU** (link + ena + rings), the cost a user on real hardware pays:\n\n" +
		"| row | MTU | streams | ns per wire frame | ns per KiB of data | share of CPU |\n|---|---:|---:|---:|---:|---:|\n")
	for _, row := range rows {
		if row.A.Samples == 0 {
			continue
		}
		pp, pk := row.A.enanetNs()
		fmt.Fprintf(&b, "| `%s` | %d | %d | %.0f | %.0f | %.0f %% |\n", row.ID, row.Key.MTU, row.Key.Streams, pp, pk, 100*row.A.Share(CatENANet))
	}
	for _, n := range notes {
		fmt.Fprintf(&b, "\n- %s", oneLine(n))
	}
	if len(notes) > 0 {
		b.WriteString("\n")
	}
	return b.String()
}

// attributionTargets checks the target on enanet's own share.
func (r *Results) attributionTargets() []Target {
	l := r.Find("b-gso")
	if l == nil {
		return nil
	}
	t := Target{What: "enanet's own share of CPU in b-gso, MTU 1500 ×1", Want: "<= 10 %"}
	a, ok := l.Attr[GoodputKey{1500, 1}]
	switch {
	case !ok:
		t.Got = "not measured: not selected"
	case a.Samples == 0:
		t.Got = a.Err
	default:
		t.Got = fmt.Sprintf("%.1f %% (%d samples)", 100*a.Share(CatENANet), a.Samples)
		t.Met = a.Share(CatENANet) <= 0.10
	}
	return []Target{t}
}
