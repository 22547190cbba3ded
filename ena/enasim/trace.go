package enasim

import (
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/enanet/enanet/ena/spec"
)

// tracer writes the model's trace: one line per register read and write
// (with DEV_STS after every write, the "poll after every write"
// instrumentation that found the OpenBSD port's late-AENQ bug, §11), every
// admin command decoded with its raw bytes, every completion and every AENQ
// event. Lines look like
//
//	sim0 +0.000412s W 0x054 DEV_CTL      <- 0x00000001 | DEV_STS=0x08  reset started (NORMAL): ...
//	sim0 +0.000950s AQ[0]  cmd 0 SET_FEATURE HOST_ATTR_CONFIG {...}
//
// Methods are called with Model.mu held; the tracer has its own lock only
// so the writer never sees interleaved lines from two models sharing it.
type tracer struct {
	mu    sync.Mutex
	w     io.Writer
	name  string
	start time.Time
	sb    strings.Builder
}

func newTracer(w io.Writer, name string, start time.Time) *tracer {
	return &tracer{w: w, name: name, start: start}
}

func (t *tracer) printf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sb.Reset()
	fmt.Fprintf(&t.sb, "%s +%.6fs ", t.name, time.Since(t.start).Seconds())
	fmt.Fprintf(&t.sb, format, args...)
	if !strings.HasSuffix(t.sb.String(), "\n") {
		t.sb.WriteByte('\n')
	}
	_, _ = io.WriteString(t.w, t.sb.String())
}

// regName names core registers via spec and per-queue registers generically.
func regName(off uint32) string {
	if off >= ioRegBase {
		return "IO_REG"
	}
	return spec.RegName(off)
}

func (t *tracer) regRead(off, v uint32) {
	t.printf("R 0x%03x %-13s = 0x%08x", off, regName(off), v)
}

func (t *tracer) regWrite(off, v, devSts uint32, handled bool, note string) {
	if !handled {
		note = "no I/O register here (or device FATAL/resetting): ignored"
	}
	if note != "" {
		note = "  " + note
	}
	t.printf("W 0x%03x %-13s <- 0x%08x | DEV_STS=0x%02x%s", off, regName(off), v, devSts, note)
}

func (t *tracer) memWrite(off uint32, b []byte) {
	t.printf("M BAR2+0x%05x %d bytes: %s", off, len(b), hex.EncodeToString(b))
}

// hexRows formats an entry as indented 16-byte rows.
func hexRows(b []byte) string {
	var sb strings.Builder
	for i := 0; i < len(b); i += 16 {
		end := min(i+16, len(b))
		fmt.Fprintf(&sb, "\n      %02x: % x", i, b[i:end])
	}
	return sb.String()
}

func (t *tracer) adminCommand(slot uint16, e []byte, c completion, detail string) {
	t.printf("AQ[%d] cmd %d %s %s -> %s%s", slot, c.cmdID, c.op, detail, c.status, hexRows(e))
}

func (t *tracer) adminCompletion(slot uint16, c *completion, phase bool) {
	t.printf("ACQ[%d] cmd %d %s status %s ext %d phase %d", slot, c.cmdID, c.op, c.status, c.ext, b2i(phase))
}
