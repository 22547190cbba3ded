package bench

import (
	"bytes"
	"fmt"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

// Category is where a CPU sample's time goes.
type Category int

// The attribution categories, in table order.
const (
	CatSim     Category = iota // the device model (ena/enasim): the NIC's work, in software
	CatENANet                  // enanet's own code: link, ena, rings, internal
	CatGVisor                  // gVisor's netstack (TCP/IP, GRO, qdisc, gonet)
	CatRuntime                 // Go runtime: scheduler, GC, allocation, parking
	CatOther                   // everything else (the bench's application, profiler)
	numCats
)

var catNames = [numCats]string{"enasim", "enanet", "gVisor", "runtime/GC", "other"}

func (c Category) String() string { return catNames[c] }

// SimLabel is the pprof label the device model's goroutines carry
// ("enanet" = "enasim"); attribution also counts unlabelled model work by
// its stack, since most of it runs synchronously inside a doorbell write.
const SimLabelKey, SimLabelValue = "enanet", "enasim"

// Attribution is CPU time of one set of runs split by category, with the
// traffic it carried.
type Attribution struct {
	CPU     [numCats]float64 // CPU seconds (process CPU time split by profile samples)
	Samples int64            // profile samples behind the split
	Bytes   float64          // application bytes delivered
	Packets float64          // wire frames (both directions)
	Err     string           // non-empty: not measured, and why
}

// Total CPU seconds.
func (a Attribution) Total() float64 {
	var t float64
	for _, c := range a.CPU {
		t += c
	}
	return t
}

// PerGB is CPU seconds per GB (1e9 bytes) of application data for c.
func (a Attribution) PerGB(c Category) float64 {
	if a.Bytes == 0 {
		return 0
	}
	return a.CPU[c] / (a.Bytes / 1e9)
}

// PerMpkt is CPU seconds per million wire frames for c.
func (a Attribution) PerMpkt(c Category) float64 {
	if a.Packets == 0 {
		return 0
	}
	return a.CPU[c] / (a.Packets / 1e6)
}

// Share of all CPU that c took.
func (a Attribution) Share(c Category) float64 {
	if t := a.Total(); t > 0 {
		return a.CPU[c] / t
	}
	return 0
}

// add merges b into a.
func (a *Attribution) add(b Attribution) {
	for i := range a.CPU {
		a.CPU[i] += b.CPU[i]
	}
	a.Samples += b.Samples
	a.Bytes += b.Bytes
	a.Packets += b.Packets
}

// packetCounter is a Pair that can count the frames on its wire.
type packetCounter interface {
	WirePackets() uint64
}

// profiler records one CPU profile of the whole process over a window.
type profiler struct {
	buf      bytes.Buffer
	cpu0     time.Duration
	pkts0    uint64
	p        Pair
	started  bool
	startErr error
}

// startProfile starts the process CPU profile; it fails when one is
// already running (enabench -cpuprofile).
func startProfile(p Pair) *profiler {
	pr := &profiler{p: p}
	if err := pprof.StartCPUProfile(&pr.buf); err != nil {
		pr.startErr = err
		return pr
	}
	pr.started = true
	pr.cpu0 = processCPU()
	if pc, ok := p.(packetCounter); ok {
		pr.pkts0 = pc.WirePackets()
	}
	return pr
}

// stop ends the profile and splits the process CPU time of the window by
// the samples' categories.
func (pr *profiler) stop(bytes int64) Attribution {
	if !pr.started {
		return Attribution{Err: fmt.Sprintf("not measured: another CPU profile is running (Go has one profiler per process; drop -cpuprofile): %v", pr.startErr)}
	}
	cpu := processCPU() - pr.cpu0
	var pkts uint64
	if pc, ok := pr.p.(packetCounter); ok {
		pkts = pc.WirePackets() - pr.pkts0
	}
	pprof.StopCPUProfile()
	samples, err := decodeProfile(pr.buf.Bytes())
	if err != nil {
		return Attribution{Err: "not measured: " + err.Error()}
	}
	a := Attribution{Bytes: float64(bytes), Packets: float64(pkts)}
	var counts [numCats]int64
	for _, s := range samples {
		counts[classify(s)] += s.Count
		a.Samples += s.Count
	}
	if a.Samples == 0 {
		return Attribution{Err: "not measured: no CPU profile samples"}
	}
	for i, n := range counts {
		a.CPU[i] = cpu.Seconds() * float64(n) / float64(a.Samples)
	}
	return a
}

// processCPU is the process's user+system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// frame kinds used by classify.
type frameKind int

const (
	kTransparent frameKind = iota // counts as its caller's: stdlib helpers, memmove, hashing
	kSim
	kENANet
	kGVisorHelper // gVisor buffer and header helpers: the caller's work when enanet calls them
	kGVisor
	kRuntime
	kOther
)

const modPrefix = "github.com/enanet/enanet/"

// transparentRuntime are runtime functions that do the caller's work
// (copies, clears, compares, map lookups, clocks), not the runtime's own.
var transparentRuntime = []string{
	"runtime.memmove", "runtime.memclrNoHeapPointers", "runtime.memequal", "runtime.memeqbody",
	"runtime.cmpbody", "runtime.duffcopy", "runtime.duffzero", "runtime.nanotime", "runtime.walltime",
	"runtime.vdsoCall", "runtime.mapaccess", "runtime.mapassign", "runtime.mapdelete", "runtime.aeshash",
	"runtime.memhash", "runtime.strhash", "runtime.typedmemmove", "runtime.efaceeq", "runtime.ifaceeq",
	"runtime.typeAssert", "runtime.assertE2I", "runtime.getitab", "runtime.procyield", "runtime.add", "runtime.procPin", "runtime.procUnpin",
	"runtime.race", // -race instrumentation does the caller's work
	"internal/runtime/maps.", "internal/bytealg.", "runtime.time_now", "runtime.nanotime1",
}

func kindOf(fn string) frameKind {
	switch {
	case strings.HasPrefix(fn, modPrefix+"ena/enasim."):
		return kSim
	case strings.HasPrefix(fn, modPrefix+"ena/spec."):
		return kTransparent // wire encoding shared by driver and model: the caller's work
	case strings.HasPrefix(fn, modPrefix+"link/vpc."), strings.HasPrefix(fn, modPrefix+"bench"),
		strings.HasPrefix(fn, modPrefix+"cmd/"):
		return kOther
	case strings.HasPrefix(fn, modPrefix):
		return kENANet
	case strings.HasPrefix(fn, "gvisor.dev/gvisor/pkg/buffer."), strings.HasPrefix(fn, "gvisor.dev/gvisor/pkg/tcpip/checksum."),
		strings.HasPrefix(fn, "gvisor.dev/gvisor/pkg/tcpip/header."), strings.HasPrefix(fn, "gvisor.dev/gvisor/pkg/sync."),
		strings.HasPrefix(fn, "gvisor.dev/gvisor/pkg/atomicbitops."), strings.HasPrefix(fn, "gvisor.dev/gvisor/pkg/refs."),
		strings.HasPrefix(fn, "gvisor.dev/gvisor/pkg/bits."),
		strings.HasPrefix(fn, "gvisor.dev/gvisor/pkg/tcpip/stack.(*PacketBuffer)"),
		strings.HasPrefix(fn, "gvisor.dev/gvisor/pkg/tcpip/stack.PacketBuffer"),
		strings.HasPrefix(fn, "gvisor.dev/gvisor/pkg/tcpip/stack.PacketHeader"),
		strings.HasPrefix(fn, "gvisor.dev/gvisor/pkg/tcpip/stack.PacketData"),
		strings.HasPrefix(fn, "gvisor.dev/gvisor/pkg/tcpip/stack.NewPacketBuffer"),
		strings.HasPrefix(fn, "gvisor.dev/gvisor/pkg/tcpip/stack.(*packetBufferRefs)"):
		return kGVisorHelper
	case strings.HasPrefix(fn, "gvisor.dev/gvisor/"):
		return kGVisor
	case strings.HasPrefix(fn, "runtime.") || strings.HasPrefix(fn, "internal/runtime/") || strings.HasPrefix(fn, "internal/bytealg."):
		for _, p := range transparentRuntime {
			if strings.HasPrefix(fn, p) {
				return kTransparent
			}
		}
		return kRuntime
	case strings.HasPrefix(fn, "runtime/pprof."), strings.HasPrefix(fn, "main."):
		return kOther
	}
	if i := strings.IndexByte(fn, '/'); i >= 0 && strings.Contains(fn[:i], ".") {
		return kOther // a module outside the standard library
	}
	return kTransparent // the standard library
}

// classify attributes one sample:
//   - the Go runtime's own work (scheduling, GC, allocation) is runtime/GC,
//     whoever called it;
//   - otherwise the innermost enanet or enasim frame decides: everything the
//     model calls (checksums, copies) is the model's; what enanet calls is
//     enanet's, except when it calls into gVisor's stack (Rx delivery),
//     whose work is gVisor's; gVisor's buffer and header helpers and the
//     standard library count as their caller's;
//   - samples with neither count as gVisor if it is on the stack, else as
//     the model when the goroutine carries the model's label, else other.
func classify(s profSample) Category {
	inner := kTransparent // innermost non-transparent frame
	innerIdx := -1
	for i, fn := range s.Stack {
		if k := kindOf(fn); k != kTransparent {
			inner, innerIdx = k, i
			break
		}
	}
	if inner == kRuntime {
		return CatRuntime
	}
	gvisorBelow := false // a gVisor stack frame between the leaf and the owner
	for i := max(innerIdx, 0); i < len(s.Stack); i++ {
		switch kindOf(s.Stack[i]) {
		case kSim:
			return CatSim
		case kENANet:
			if gvisorBelow {
				return CatGVisor
			}
			return CatENANet
		case kGVisor:
			gvisorBelow = true
		}
	}
	switch {
	case gvisorBelow || inner == kGVisorHelper:
		return CatGVisor
	case s.Labels[SimLabelKey] == SimLabelValue:
		return CatSim
	case innerIdx < 0 && len(s.Stack) > 0 && strings.HasPrefix(s.Stack[len(s.Stack)-1], "runtime."):
		return CatRuntime
	}
	return CatOther
}

// summary is one line: each category's share and CPU per packet.
func (a Attribution) summary() string {
	var b strings.Builder
	for c := Category(0); c < numCats; c++ {
		fmt.Fprintf(&b, "%s %.0f%% (%.0f ns/pkt) ", c, 100*a.Share(c), 1e9*a.CPU[c]/max(a.Packets, 1))
	}
	return strings.TrimSpace(b.String())
}
