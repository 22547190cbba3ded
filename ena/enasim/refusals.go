package enasim

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// The model keeps score of every refusal: each time it refuses what a
// driver did (an admin command answered with an error status, a queue
// command that breaks a rule, a register write it ignores, a fault that
// puts it in FATAL_ERROR), it counts the rule by name and keeps the last
// few with their details. A driver that real hardware accepts (Linux's
// ena.ko, DPDK's ENA PMD) should never be refused; a refusal of one means
// the model is wrong until shown otherwise.

// maxRefusalLog is how many recent refusals the model keeps.
const maxRefusalLog = 16

// Refusal is one refusal: the rule (a stable name: the message with its
// values left out) and the details of this instance.
type Refusal struct {
	Rule   string
	Detail string
	// At is the time since the model started.
	At time.Duration
}

// RefusalReport is the model's score: how many refusals, per rule, and the
// most recent ones (oldest first).
type RefusalReport struct {
	Total  uint64
	ByRule map[string]uint64
	Last   []Refusal
}

// String lists the rules by count, for test failures.
func (r RefusalReport) String() string {
	if r.Total == 0 {
		return "no refusals"
	}
	rules := make([]string, 0, len(r.ByRule))
	for k := range r.ByRule {
		rules = append(rules, k)
	}
	sort.Slice(rules, func(i, j int) bool { return r.ByRule[rules[i]] > r.ByRule[rules[j]] })
	var sb strings.Builder
	for _, k := range rules {
		sb.WriteString("\n  ")
		sb.WriteString(k)
		sb.WriteString(" x")
		sb.WriteString(itoa(r.ByRule[k]))
	}
	sb.WriteString("\nlast:")
	for _, l := range r.Last {
		sb.WriteString("\n  ")
		sb.WriteString(l.Detail)
	}
	return itoa(r.Total) + " refusals:" + sb.String()
}

func itoa(v uint64) string {
	if v == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}

// refusalScore is the Model's tally; guarded by Model.mu. It survives
// device resets (DEV_CTL): it is the model's record, not device state.
type refusalScore struct {
	total  uint64
	byRule map[string]uint64
	last   [maxRefusalLog]refusalRecord // ring; next is the oldest
	next   int
	// inCommand is set while an admin command runs and cleared once a
	// refusal is noted, so the command's error status is not counted twice.
	inCommand, noted bool
}

// refusalRecord is one entry of the ring. A register refusal keeps the
// offset and value and is formatted only when read, so a driver hammering
// a missing doorbell costs no allocation.
type refusalRecord struct {
	rule, detail string
	reg          bool
	off, val     uint32
	at           time.Duration
}

func (r *refusalRecord) refusal() Refusal {
	d := r.detail
	if r.reg {
		d = fmt.Sprintf("W 0x%03x <- 0x%08x", r.off, r.val)
	}
	return Refusal{Rule: r.rule, Detail: d, At: r.at}
}

// noteRefusal counts one refusal of rule; mu held.
func (m *Model) noteRefusal(rule, detail string) {
	m.record(refusalRecord{rule: rule, detail: detail})
}

// noteRegRefusal counts a refused register write without formatting it.
func (m *Model) noteRegRefusal(rule string, off, val uint32) {
	m.record(refusalRecord{rule: rule, reg: true, off: off, val: val})
}

func (m *Model) record(r refusalRecord) {
	s := &m.score
	if s.byRule == nil {
		s.byRule = map[string]uint64{}
	}
	s.total++
	s.byRule[r.rule]++
	r.at = time.Since(m.start)
	s.last[s.next] = r
	s.next = (s.next + 1) % maxRefusalLog
	if s.inCommand {
		s.noted = true
	}
	if m.tr != nil {
		m.tr.printf("REFUSED [%s] %s", r.rule, r.refusal().Detail)
	}
}

// Refusals returns the model's score since it was created.
func (m *Model) Refusals() RefusalReport {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := RefusalReport{Total: m.score.total, ByRule: map[string]uint64{}}
	for i := range maxRefusalLog {
		if rec := &m.score.last[(m.score.next+i)%maxRefusalLog]; rec.rule != "" {
			r.Last = append(r.Last, rec.refusal())
		}
	}
	for k, v := range m.score.byRule {
		r.ByRule[k] = v
	}
	return r
}

// Merge adds o to r (a transport that replaces its Model on a PCI reset
// keeps one score across them).
func (r *RefusalReport) Merge(o RefusalReport) {
	r.Total += o.Total
	if r.ByRule == nil {
		r.ByRule = map[string]uint64{}
	}
	for k, v := range o.ByRule {
		r.ByRule[k] += v
	}
	r.Last = append(r.Last, o.Last...)
	if len(r.Last) > maxRefusalLog {
		r.Last = r.Last[len(r.Last)-maxRefusalLog:]
	}
}
