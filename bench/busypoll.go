package bench

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/enanet/enanet/link"
	"github.com/enanet/enanet/rings"
)

// busyPollNIC is a link.NIC whose queues busy-poll before they sleep: after
// a Poll found nothing, WaitRx yields the processor (runtime.Gosched) and
// returns, so link's Rx goroutine polls again, until Spin has passed
// without a frame; only then does it wait as the driver does (for the
// interrupt). This is Linux's busy polling (net.core.busy_poll, a spin
// budget in µs before sleeping) and what DPDK's poll-mode drivers do
// without the budget: a spinning core traded for no interrupt and no
// wake-up latency while traffic flows.
type busyPollNIC struct {
	link.NIC
	Spin time.Duration
}

func (n busyPollNIC) Queue(i int) link.Queue {
	return &busyPollQueue{Queue: n.NIC.Queue(i), spin: n.Spin}
}

// busyPollQueue is one queue of a busyPollNIC. Poll and WaitRx are called
// by the queue's Rx goroutine only (link.Queue), so the fields need no lock.
type busyPollQueue struct {
	link.Queue
	spin    time.Duration
	idleFor time.Time // when polls started finding nothing; zero while frames arrive
}

func (q *busyPollQueue) Poll(budget int, fn func(*rings.RxPacket)) (int, error) {
	n, err := q.Queue.Poll(budget, fn)
	if n > 0 {
		q.idleFor = time.Time{}
	}
	return n, err
}

// WaitRx returns at once after letting other goroutines run while the
// queue has been idle for less than the spin budget; then it waits for
// the driver's interrupt.
func (q *busyPollQueue) WaitRx(ctx context.Context) error {
	now := time.Now()
	if q.idleFor.IsZero() {
		q.idleFor = now
	}
	if now.Sub(q.idleFor) < q.spin {
		runtime.Gosched()
		return ctx.Err()
	}
	q.idleFor = time.Time{}
	return q.Queue.WaitRx(ctx)
}

// busyPollSpin is the spin budget of the busy-poll row: Linux's commonly
// recommended net.core.busy_poll value.
const busyPollSpin = 50 * time.Microsecond

// BusyPollRTT is the busy-poll RTT comparison: (b) with busy-polled Rx
// queues against (a) at the same stack settings, measured alternately in
// one run.
type BusyPollRTT struct {
	AP50, AP99 Cell // (a) channel endpoint
	BP50, BP99 Cell // (b) enasim pair, busy-poll
	Err        string
}

// BusyPollLink is the (b) busy-poll row's description.
var BusyPollLink = Link{ID: "busypoll", Group: "b",
	Label: "(b) enasim pair, one queue per side, Rx busy-polled (runtime.Gosched) for 50 µs before waiting for the interrupt; no GSO/GRO"}

// BusyPollWarmup is how long enabench's busy-poll row ping-pongs 64 KiB
// messages on each pair before measuring: at about 45 frames each way per
// exchange that is many laps of every ring.
const BusyPollWarmup = 300 * time.Millisecond

// MeasureBusyPollRTT runs the 64-byte ping-pong runs times over (a) and
// over (b) in busy-poll mode, alternating, at MTU 1500 without GSO/GRO (one
// 64-byte segment each way). Both pairs are built first and warmed by a
// ping-pong of 64 KiB messages (frames both ways): a fresh (b) pair's first
// lap through its Rx rings touches its DMA buffers for the first time, and
// those page faults (thousands per pair, tens of µs of RTT while they last)
// are the model's memory, not what a driver on pinned VFIO memory pays.
// While (a) runs, (b)'s Rx goroutines have spun out their budget and wait
// for interrupts, so they do not take CPU from it. The cells hold the medians of each run's p50 and p99.
//
// warmup is how long each pair's warm-up ping-pong lasts (BusyPollWarmup in
// enabench); 0 skips it, for smoke tests: under the race detector a
// ping-pong of 64 KiB messages can stall for seconds on either pair.
func MeasureBusyPollRTT(ctx context.Context, runs int, d, warmup time.Duration, port *uint16) BusyPollRTT {
	ss, err := enaStackSettings(ENASettings{MTU: 1500})
	if err != nil {
		return BusyPollRTT{Err: "not measured: reading (b)'s stack settings: " + err.Error()}
	}
	a, err := NewChannelPair(ss)
	if err != nil {
		return BusyPollRTT{Err: "not measured: (a): " + err.Error()}
	}
	defer a.Close()
	b, err := NewENAPair(ENASettings{MTU: 1500, BusyPoll: true})
	if err != nil {
		return BusyPollRTT{Err: "not measured: (b) busy-poll: " + err.Error()}
	}
	defer b.Close()
	for _, p := range []Pair{a, b} {
		if warmup <= 0 {
			break
		}
		*port++
		if _, err := RTT(ctx, p, *port, 64<<10, warmup); err != nil {
			return BusyPollRTT{Err: "not measured: warming up: " + err.Error()}
		}
	}
	var a50, a99, b50, b99 []float64
	one := func(p Pair, p50, p99 *[]float64) error {
		*port++
		rt, err := RTT(ctx, p, *port, 64, d)
		if err != nil {
			return err
		}
		*p50, *p99 = append(*p50, rt.P50.Seconds()), append(*p99, rt.P99.Seconds())
		return nil
	}
	var r BusyPollRTT
	for run := 0; run < runs && ctx.Err() == nil; run++ {
		if err := one(a, &a50, &a99); err != nil {
			r.Err = "not measured: (a): " + err.Error()
			break
		}
		if err := one(b, &b50, &b99); err != nil {
			r.Err = "not measured: (b) busy-poll: " + err.Error()
			break
		}
	}
	if r.Err == "" && len(b50) == 0 {
		r.Err = "not measured: interrupted"
	}
	if r.Err != "" {
		return r
	}
	cell := func(s []float64) Cell { return Cell{Value: median(append([]float64(nil), s...)), Samples: s} }
	r.AP50, r.AP99, r.BP50, r.BP99 = cell(a50), cell(a99), cell(b50), cell(b99)
	return r
}

// Ratio is (b)'s RTT over (a)'s at p50 and p99; 0 when not measured.
func (r BusyPollRTT) Ratio() (p50, p99 float64) {
	return div(r.BP50, r.AP50), div(r.BP99, r.AP99)
}

// Markdown renders the busy-poll section.
func (r *BusyPollRTT) Markdown(runs int, d time.Duration) string {
	s := "\n### Busy-poll round-trip time\n\n"
	if r == nil {
		return s + "not measured: not selected\n"
	}
	if r.Err != "" {
		return s + oneLine(r.Err) + "\n"
	}
	s += fmt.Sprintf("64-byte TCP ping-pong at MTU 1500 without GSO/GRO, %d runs of %v per row, (a) and (b) alternating on two pairs warmed by a ping-pong of 64 KiB messages; median of the runs' p50 and p99, µs. "+
		"(b) busy-polls: one queue per side, and link's Rx goroutine yields and polls again instead of waiting for the interrupt until it has found nothing for %v (`busyPollNIC` in `bench/busypoll.go`, Linux's `busy_poll` budget); "+
		"(a) is gVisor's channel endpoint with its copier goroutines, as in the table above.\n\n", runs, d, busyPollSpin)
	s += "| row | link | RTT p50 | RTT p99 |\n|---|---|---:|---:|\n"
	s += fmt.Sprintf("| `a-nogso` | (a) channel endpoint, stack as (b) | %s | %s |\n", micros(r.AP50), micros(r.AP99))
	s += fmt.Sprintf("| `busypoll` | %s | %s | %s |\n", BusyPollLink.Label, micros(r.BP50), micros(r.BP99))
	p50, p99 := r.Ratio()
	s += fmt.Sprintf("\n(busypoll)/(a-nogso): p50 %.2f, p99 %.2f (target p50 <= 1.20).\n", p50, p99)
	return s
}

// busyPollTarget checks the busy-poll RTT target.
func (r *Results) busyPollTarget() []Target {
	if r.BusyPoll == nil {
		return nil
	}
	t := Target{What: "RTT p50 (b) busy-poll / (a)", Want: "<= 1.20"}
	if r.BusyPoll.Err != "" {
		t.Got = r.BusyPoll.Err
	} else {
		p50, _ := r.BusyPoll.Ratio()
		t.Got, t.Met = fmt.Sprintf("%.2f", p50), p50 > 0 && p50 <= 1.2
	}
	return []Target{t}
}
