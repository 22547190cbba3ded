package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/link"
	"github.com/enanet/enanet/link/enanic"
)

// Interrupt moderation and Rx buffer size, side by side on the (b) pair
// (two enasim devices, the ena driver in interrupt mode, GSO+GRO).
//
// Moderation rows: off (no delays), static (Rx delay 64 µs, one of net_dim's
// profile delays) and adaptive (net_dim-style, moderation.go in ena). Each
// row reports goodput, the I/O interrupts both devices delivered per second
// (read from the device models, not from the driver), and the process CPU
// time (user+system, getrusage) per Gbit of goodput.
//
// Rx buffer rows: MTU 9001, 2 KiB buffers (a frame spans five) against
// 9 KiB (one buffer per frame).

// ModerationRow is one moderation setting's result.
type ModerationRow struct {
	Mode        string  `json:"mode"`
	Gbps        float64 `json:"gbps"`
	IntrPerSec  float64 `json:"interrupts_per_sec"`
	CPUPerGbit  float64 `json:"cpu_sec_per_gbit"` // CPU seconds per Gbit of goodput
	IntrPerMbit float64 `json:"interrupts_per_mbit"`
	// RxDelayUsec is the Rx delay (µs) each busy vector of the receiving
	// and the sending device had at the end of the window, read from the
	// device models: what adaptive mode settled on.
	RxDelayUsec [2][]int `json:"rx_delay_usec"`
}

// RxBufRow is one Rx buffer size's result at MTU 9001.
type RxBufRow struct {
	RxBuf int     `json:"rx_buf"`
	Gbps  float64 `json:"gbps"`
}

// modSide is one stack on one simulated device with its driver config.
type modSide struct {
	sim *enasim.Device
	dev *ena.Device
	st  *link.Stack
}

func (s *modSide) close() {
	if s.st != nil {
		s.st.Close()
	}
	if s.dev != nil {
		s.dev.Close()
	}
	if s.sim != nil {
		s.sim.Close()
	}
}

func openModSide(w enasim.Wire, addr string, cfg ena.Config) (*modSide, error) {
	s := &modSide{}
	var err error
	if s.sim, err = enasim.New(enasim.Config{Wire: w, Logger: quiet}); err != nil {
		return nil, fmt.Errorf("bench: creating the enasim device: %w", err)
	}
	cfg.Logger = quiet
	if s.dev, err = ena.Open(s.sim, cfg); err != nil {
		s.close()
		return nil, fmt.Errorf("bench: opening the driver on enasim: %w", err)
	}
	s.st, err = link.NewStack(enanic.New(s.dev), link.StackOptions{
		Addr: netip.MustParsePrefix(addr), Endpoint: link.Options{Logger: quiet}, Logger: quiet})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("bench: building the stack on the driver: %w", err)
	}
	return s, nil
}

// modPair is a (b) pair whose devices the measurement can reach.
type modPair struct {
	srv, cli *modSide
	stackPair
}

func newModPair(cfg ena.Config) (*modPair, error) {
	wa, wb := enasim.NewPair()
	srv, err := openModSide(wa, "10.99.0.1/24", cfg)
	if err != nil {
		wa.Close()
		wb.Close()
		return nil, err
	}
	cli, err := openModSide(wb, "10.99.0.2/24", cfg)
	if err != nil {
		srv.close()
		wb.Close()
		return nil, err
	}
	p := &modPair{srv: srv, cli: cli}
	p.stackPair = stackPair{srv: srv.st.Stack, cli: cli.st.Stack, closeFn: func() error {
		cli.close()
		srv.close()
		return nil
	}}
	return p, nil
}

// rxDelays lists each device's Rx delays (µs) on the vectors that
// delivered interrupts, server (receiver) first.
func (p *modPair) rxDelays() [2][]int {
	var out [2][]int
	for i, s := range []*modSide{p.srv, p.cli} {
		st := s.sim.State()
		res := int(max(st.IntrDelayResolution, 1))
		for v := 1; v < len(st.Vectors)+1; v++ {
			if vs, ok := st.Vectors[v]; ok && vs.Delivered > 0 {
				out[i] = append(out[i], int(vs.RxDelay)*res)
			}
		}
	}
	return out
}

// interrupts sums the I/O interrupts both devices delivered (vectors 1..).
func (p *modPair) interrupts() uint64 {
	var n uint64
	for _, s := range []*modSide{p.srv, p.cli} {
		for v, vs := range s.sim.State().Vectors {
			if v >= 1 {
				n += vs.Delivered
			}
		}
	}
	return n
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ModerationOptions bound the moderation and Rx buffer runs.
type ModerationOptions struct {
	Warmup, Duration time.Duration
	// Rounds repeats the moderation rows, each round starting with the
	// next setting, and reports their means, so that a load change on the
	// shared machine does not always fall on the same row; 0 means 1.
	Rounds int
}

// MeasureModeration runs one goodput window per moderation setting and
// round on a fresh pair each and samples interrupts and CPU over the
// counted window; rows are the means over the rounds.
func MeasureModeration(ctx context.Context, o ModerationOptions) ([]ModerationRow, error) {
	modes := []struct {
		name string
		c    ena.Coalesce
	}{
		{"off", ena.Coalesce{}},
		{"static rx 64µs", ena.Coalesce{RxDelay: 64 * time.Microsecond}},
		{"adaptive", ena.Coalesce{Adaptive: true}},
	}
	rounds := max(o.Rounds, 1)
	sums := make([]ModerationRow, len(modes))
	for r := range rounds {
		for k := range modes {
			i := (k + r) % len(modes)
			row, err := measureModerationRow(ctx, o, modes[i].name, modes[i].c, uint16(5301+r*len(modes)+i))
			if err != nil {
				return nil, err
			}
			s := &sums[i]
			s.Mode, s.RxDelayUsec = row.Mode, row.RxDelayUsec
			s.Gbps += row.Gbps / float64(rounds)
			s.IntrPerSec += row.IntrPerSec / float64(rounds)
			s.CPUPerGbit += row.CPUPerGbit / float64(rounds)
			s.IntrPerMbit += row.IntrPerMbit / float64(rounds)
		}
	}
	return sums, nil
}

// measureModerationRow is one window with moderation c on a fresh pair.
func measureModerationRow(ctx context.Context, o ModerationOptions, name string, c ena.Coalesce, port uint16) (ModerationRow, error) {
	p, err := newModPair(ena.Config{})
	if err != nil {
		return ModerationRow{}, err
	}
	for _, s := range []*modSide{p.srv, p.cli} {
		if err := s.dev.SetCoalesce(c); err != nil {
			p.Close()
			return ModerationRow{}, fmt.Errorf("bench: moderation %s: %w", name, err)
		}
	}
	type snap struct {
		intr uint64
		cpu  time.Duration
		at   time.Time
	}
	snaps := make(chan snap, 2)
	go func() {
		time.Sleep(o.Warmup)
		snaps <- snap{p.interrupts(), cpuTime(), time.Now()}
		time.Sleep(o.Duration)
		snaps <- snap{p.interrupts(), cpuTime(), time.Now()}
	}()
	bps, err := Goodput(ctx, p, port, GoodputOptions{Warmup: o.Warmup, Duration: o.Duration})
	a, b := <-snaps, <-snaps
	delays := p.rxDelays()
	p.Close()
	if err != nil {
		return ModerationRow{}, fmt.Errorf("bench: moderation %s: %w", name, err)
	}
	secs := b.at.Sub(a.at).Seconds()
	gbps := bps / 1e9
	row := ModerationRow{Mode: name, Gbps: gbps, IntrPerSec: float64(b.intr-a.intr) / secs, RxDelayUsec: delays}
	if gbps > 0 {
		row.CPUPerGbit = (b.cpu - a.cpu).Seconds() / (gbps * secs)
		row.IntrPerMbit = row.IntrPerSec / (gbps * 1000)
	}
	return row, nil
}

// MeasureRxBuf runs goodput at MTU 9001 with 2 KiB and with 9 KiB Rx
// buffers.
func MeasureRxBuf(ctx context.Context, o ModerationOptions) ([]RxBufRow, error) {
	var rows []RxBufRow
	for i, size := range []int{ena.RxBuf2K, ena.RxBuf9K} {
		p, err := newModPair(ena.Config{MTU: 9001, RxBufSize: size})
		if err != nil {
			return rows, err
		}
		bps, err := Goodput(ctx, p, uint16(5401+i), GoodputOptions{Warmup: o.Warmup, Duration: o.Duration})
		p.Close()
		if err != nil {
			return rows, fmt.Errorf("bench: Rx buffers %d: %w", size, err)
		}
		rows = append(rows, RxBufRow{RxBuf: size, Gbps: bps / 1e9})
	}
	return rows, nil
}

// WriteModerationReport writes both tables as Markdown.
func WriteModerationReport(w io.Writer, mod []ModerationRow, rx []RxBufRow) error {
	var b strings.Builder
	b.WriteString("| moderation | goodput Gbit/s | I/O interrupts/s (both devices) | interrupts per Mbit | CPU s per Gbit | Rx delay µs at end (receiver / sender) |\n|---|---:|---:|---:|---:|---|\n")
	for _, r := range mod {
		fmt.Fprintf(&b, "| %s | %.2f | %.0f | %.2f | %.3f | %v / %v |\n", r.Mode, r.Gbps, r.IntrPerSec, r.IntrPerMbit, r.CPUPerGbit, r.RxDelayUsec[0], r.RxDelayUsec[1])
	}
	b.WriteString("\n| MTU 9001, Rx buffer | goodput Gbit/s |\n|---|---:|\n")
	for _, r := range rx {
		fmt.Fprintf(&b, "| %d B | %.2f |\n", r.RxBuf, r.Gbps)
	}
	_, err := io.WriteString(w, b.String())
	return errors.Join(err)
}
