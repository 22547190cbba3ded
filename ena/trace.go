package ena

import (
	"fmt"
	"io"
	"sync"

	"github.com/enanet/enanet/ena/spec"
)

// tracer writes the register-level debug trace (Config.Trace): one line per
// register access and per admin command, in the order they happen, so a
// bring-up can be compared step by step with §6. A nil tracer is silent.
//
// Line formats:
//
//	reg W 0x054 DEV_CTL 0x00000001
//	reg R 0x058 DEV_STS 0x00000001
//	admin 3 GET_FEATURE DEVICE_ATTRIBUTES
//	admin 3 done SUCCESS
type tracer struct {
	mu sync.Mutex
	w  io.Writer
}

func newTracer(w io.Writer) *tracer {
	if w == nil {
		return nil
	}
	return &tracer{w: w}
}

func (t *tracer) printf(format string, args ...any) {
	if t == nil {
		return
	}
	t.mu.Lock()
	fmt.Fprintf(t.w, format, args...)
	t.mu.Unlock()
}

// reg traces one register access; dir is 'R' or 'W'.
func (t *tracer) reg(dir byte, off, val uint32) {
	if t == nil {
		return
	}
	t.printf("reg %c 0x%03x %s 0x%08x\n", dir, off, spec.RegName(off), val)
}
