package qemurig

import (
	"bufio"
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// traceCapture keeps the model's trace up to a byte limit (a guest with
// traffic traces every doorbell; the bring-up is at the start), and the
// reason of every device reset however late it comes.
type traceCapture struct {
	mu     sync.Mutex
	b      strings.Builder
	limit  int
	resets []string
}

var traceResetStarted = regexp.MustCompile(`reset started \((\S+)\)`)

// Resets returns the reason of every DEV_CTL reset, in order.
func (c *traceCapture) Resets() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.resets...)
}

func newTraceCapture(limit int) *traceCapture { return &traceCapture{limit: limit} }

func (c *traceCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := traceResetStarted.FindSubmatch(p); m != nil {
		c.resets = append(c.resets, string(m[1]))
	}
	if c.b.Len() < c.limit {
		c.b.Write(p)
	}
	return len(p), nil
}

func (c *traceCapture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.String()
}

// Trace lines (enasim/trace.go), after the "sim0 +0.000123s " prefix.
var (
	traceRegWrite = regexp.MustCompile(`^W 0x([0-9a-f]+) (\S+)\s+<- 0x([0-9a-f]+) \| DEV_STS=0x[0-9a-f]+\s*(.*)$`)
	traceRegRead  = regexp.MustCompile(`^R 0x([0-9a-f]+) (\S+)\s+= 0x([0-9a-f]+)`)
	traceAdmin    = regexp.MustCompile(`^AQ\[\d+\] cmd \d+ (\S+) (.*) -> (\S+)$`)
	traceReadless = regexp.MustCompile(`readless (\S+) = 0x[0-9a-f]+`)
	traceAddrs    = regexp.MustCompile(`((?i)[A-Za-z]*(addr|address|base)[A-Za-z]*):(0x)?[0-9a-f]+`)
	traceAENQ     = regexp.MustCompile(`^AENQ\[\d+\] (\S+) syndrome (\d+)`)
)

var (
	traceHeader   = regexp.MustCompile(`Header:\{[^}]*\} ?`)
	traceNoCtrl   = regexp.MustCompile(`CtrlBuf:\{Length:0 Addr:\*\} ?`)
	traceSelect   = regexp.MustCompile(`Select:0 ?`)
	traceFeature  = regexp.MustCompile(`FeatureID:\S+ ?`)
	traceZeroTail = regexp.MustCompile(`( 0)+\]`)
	traceHostAttr = regexp.MustCompile(`Payload:\[(\d+ ){16}`)
)

// conciseCommand is a decoded admin command without what every command
// has (the header, an unused control buffer, select 0, the feature id
// already named) and with addresses and trailing zero payload bytes left
// out.
func conciseCommand(detail string) string {
	d := traceAddrs.ReplaceAllString(detail, "$1:*")
	if strings.Contains(d, "FeatureID:HOST_ATTR_CONFIG") {
		// Payload bytes 0-15 are the host-info and debug-area addresses.
		d = traceHostAttr.ReplaceAllString(d, "Payload:[os_info_addr:* debug_area_addr:* ")
	}
	d = traceHeader.ReplaceAllString(d, "")
	d = traceNoCtrl.ReplaceAllString(d, "")
	d = traceSelect.ReplaceAllString(d, "")
	d = traceFeature.ReplaceAllString(d, "")
	d = traceZeroTail.ReplaceAllString(d, " …]")
	return strings.TrimSpace(strings.ReplaceAll(d, "{}", ""))
}

// bringUpSteps turns a model trace into the driver's bring-up, one step a
// line, with what changes from run to run (DMA addresses, poll counts,
// command ids, timestamps) left out: register reads (readless or plain),
// register writes with their values (base-address registers without),
// admin commands with their decoded fields and status, and AENQ events.
// It stops at the first write to a per-queue register (the first I/O
// doorbell or unmask), where the data path begins.
func bringUpSteps(trace string) []string {
	var steps []string
	add := func(s string) {
		if n := len(steps); n > 0 && (steps[n-1] == s || steps[n-1] == s+" (repeated)") {
			steps[n-1] = s + " (repeated)"
			return
		}
		steps = append(steps, s)
	}
	sc := bufio.NewScanner(strings.NewReader(trace))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.SplitN(line, " ", 3)
		if len(f) < 3 || !strings.HasPrefix(f[1], "+") {
			continue // hex rows of an admin entry
		}
		body := f[2]
		if m := traceRegWrite.FindStringSubmatch(body); m != nil {
			name, val, note := m[2], m[3], m[4]
			switch {
			case name == "IO_REG":
				return steps
			case name == "MMIO_REG_READ":
				if r := traceReadless.FindStringSubmatch(note); r != nil {
					add("R " + r[1] + " (readless)")
				} else {
					add("W MMIO_REG_READ (no answer: " + note + ")")
				}
			case strings.Contains(name, "BASE") || name == "MMIO_RESP_LO" || name == "MMIO_RESP_HI":
				add("W " + name + " <- (address)")
			case name == "AQ_DB" || name == "AENQ_HEAD_DB":
				add("W " + name)
			default:
				add("W " + name + " <- 0x" + val)
			}
			continue
		}
		if m := traceRegRead.FindStringSubmatch(body); m != nil {
			add("R " + m[2])
			continue
		}
		if m := traceAdmin.FindStringSubmatch(body); m != nil {
			add(fmt.Sprintf("AQ %s %s -> %s", m[1], conciseCommand(m[2]), m[3]))
			continue
		}
		if m := traceAENQ.FindStringSubmatch(body); m != nil && m[1] != "KEEP_ALIVE" {
			add("AENQ " + m[1] + " syndrome " + m[2])
		}
	}
	return steps
}

// stepKey is what two drivers' steps are aligned on: the register and
// direction, or the admin opcode and feature; values may then differ.
func stepKey(s string) string {
	f := strings.Fields(strings.TrimSuffix(s, " (repeated)"))
	switch {
	case len(f) >= 3 && f[0] == "AQ" && (f[1] == "GET_FEATURE" || f[1] == "SET_FEATURE" || f[1] == "GET_STATS"):
		return strings.Join(f[:3], " ")
	case len(f) >= 2:
		return f[0] + " " + f[1]
	}
	return s
}

// diffSteps aligns a and b on stepKey (longest common subsequence) and
// returns rows of (a step, b step); "" marks a step only one side has.
func diffSteps(a, b []string) [][2]string {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if stepKey(a[i]) == stepKey(b[j]) {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var rows [][2]string
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && stepKey(a[i]) == stepKey(b[j]):
			rows = append(rows, [2]string{a[i], b[j]})
			i, j = i+1, j+1
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			rows = append(rows, [2]string{"", b[j]})
			j++
		default:
			rows = append(rows, [2]string{a[i], ""})
			i++
		}
	}
	return rows
}

// diffTable renders diffSteps as a Markdown table with a verdict column:
// "=" same step, "values" same step with other values, "order/only" a
// step one side does (at this point) and the other does not.
func diffTable(aName, bName string, a, b []string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "| # | %s | %s | |\n|---|---|---|---|\n", aName, bName)
	for i, r := range diffSteps(a, b) {
		verdict := "="
		switch {
		case r[0] == "" || r[1] == "":
			verdict = "only one"
		case r[0] != r[1]:
			verdict = "values"
		}
		fmt.Fprintf(&sb, "| %d | %s | %s | %s |\n", i+1, mdCell(r[0]), mdCell(r[1]), verdict)
	}
	return sb.String()
}

func mdCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// bringUps are the bring-up steps the tests of this run recorded, by
// driver, so the last peer test can print the differential table.
var bringUps = struct {
	sync.Mutex
	m map[string][]string
}{m: map[string][]string{}}

func recordBringUp(driver string, steps []string) {
	bringUps.Lock()
	bringUps.m[driver] = steps
	bringUps.Unlock()
}

func recordedBringUp(driver string) []string {
	bringUps.Lock()
	defer bringUps.Unlock()
	return bringUps.m[driver]
}
