package enanic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/link"
)

// tcpSetting is one combination of gVisor TCP loss-recovery options.
type tcpSetting struct {
	name  string
	apply func(s *link.Stack)
}

func tcpSettings() []tcpSetting {
	opt := func(sack bool, rec tcpip.TCPRecovery, cc string, minRTO time.Duration) func(*link.Stack) {
		return func(s *link.Stack) {
			o1 := tcpip.TCPSACKEnabled(sack)
			o2 := rec
			o3 := tcpip.CongestionControlOption(cc)
			s.Stack.SetTransportProtocolOption(tcp.ProtocolNumber, &o1)
			s.Stack.SetTransportProtocolOption(tcp.ProtocolNumber, &o2)
			s.Stack.SetTransportProtocolOption(tcp.ProtocolNumber, &o3)
			if minRTO > 0 {
				o4 := tcpip.TCPMinRTOOption(minRTO)
				s.Stack.SetTransportProtocolOption(tcp.ProtocolNumber, &o4)
			}
		}
	}
	return []tcpSetting{
		// NewStack's defaults: SACK, RFC 6675 recovery without RACK, Reno.
		{"as-is", func(*link.Stack) {}},
		// gVisor's own defaults: SACK with RACK loss detection and TLP.
		{"sack-rack-reno", opt(true, tcpip.TCPRACKLossDetection, "reno", 0)},
		{"sack-rack-cubic", opt(true, tcpip.TCPRACKLossDetection, "cubic", 0)},
		{"sack-norack-cubic", opt(true, 0, "cubic", 0)},
		{"nosack-reno", opt(false, 0, "reno", 0)},
		{"sack-norack-reno-minrto50ms", opt(true, 0, "reno", 50*time.Millisecond)},
		// RACK's two tuning flags; gVisor defines them but nothing reads
		// them (grep its tcp package), so they should measure as RACK.
		{"sack-rack-staticreo-nodupth-reno", opt(true, tcpip.TCPRACKLossDetection|tcpip.TCPRACKStaticReoWnd|tcpip.TCPRACKNoDupTh, "reno", 0)},
		// Buffers: the defaults are 1 MiB send and receive, moderated.
		{"as-is-buf8m", buffers(8<<20, 8<<20, true)},
		{"as-is-buf256k", buffers(256<<10, 256<<10, true)},
		{"as-is-rcvbuf8m-fixed", buffers(1<<20, 8<<20, false)},
		{"as-is-nomoderate", buffers(1<<20, 1<<20, false)},
		{"as-is-snd8m", buffers(8<<20, 1<<20, true)},
		{"as-is-rcv8m", buffers(1<<20, 8<<20, true)},
		{"as-is-buf4m", buffers(4<<20, 4<<20, true)},
		{"sack-rack-reno-buf8m", both(opt(true, tcpip.TCPRACKLossDetection, "reno", 0), buffers(8<<20, 8<<20, true))},
		{"sack-norack-cubic-buf8m", both(opt(true, 0, "cubic", 0), buffers(8<<20, 8<<20, true))},
	}
}

// both applies two settings in turn.
func both(a, b func(*link.Stack)) func(*link.Stack) {
	return func(s *link.Stack) { a(s); b(s) }
}

// buffers sets the default send and receive buffer sizes and whether
// gVisor moderates (auto-tunes) the receive buffer.
func buffers(snd, rcv int, moderate bool) func(*link.Stack) {
	return func(s *link.Stack) {
		o1 := tcpip.TCPSendBufferSizeRangeOption{Min: 4096, Default: snd, Max: max(snd, 8<<20)}
		o2 := tcpip.TCPReceiveBufferSizeRangeOption{Min: 4096, Default: rcv, Max: max(rcv, 8<<20)}
		o3 := tcpip.TCPModerateReceiveBufferOption(moderate)
		s.Stack.SetTransportProtocolOption(tcp.ProtocolNumber, &o1)
		s.Stack.SetTransportProtocolOption(tcp.ProtocolNumber, &o2)
		s.Stack.SetTransportProtocolOption(tcp.ProtocolNumber, &o3)
	}
}

// impairments are the A-to-B wire conditions measured.
var impairments = []struct {
	name string
	im   enasim.Impairment
}{
	{"clean", enasim.Impairment{}},
	{"loss-0.1%", enasim.Impairment{Loss: 0.001, Seed: 7}},
	{"reorder-1%-1ms", enasim.Impairment{Reorder: 0.01, ReorderDelay: time.Millisecond, Seed: 7}},
	{"burst-loss-50", enasim.Impairment{BurstLoss: 0.0002, BurstLen: 50, Seed: 7}},
	// About what a device reset costs the frames in flight to it.
	{"burst-loss-500", enasim.Impairment{BurstLoss: 0.0001, BurstLen: 500, Seed: 7}},
}

// BenchmarkTCPLossRecovery measures single-stream goodput from A to B
// through an impaired cable for each TCP setting, so the stack's
// loss-recovery options can be chosen by measurement:
//
//	go test -run '^$' -bench TCPLossRecovery -benchtime 4x ./link/enanic/
func BenchmarkTCPLossRecovery(b *testing.B) {
	for _, imp := range impairments {
		for _, set := range tcpSettings() {
			b.Run(imp.name+"/"+set.name, func(b *testing.B) {
				wa, wb := enasim.NewPair()
				iw := enasim.NewImpaired(wa, imp.im)
				x := openTuned(b, iw, "10.9.2.1/24")
				y := openTuned(b, wb, "10.9.2.2/24")
				set.apply(x.st)
				set.apply(y.st)
				ln, err := y.st.ListenTCP(9)
				if err != nil {
					b.Fatal(err)
				}
				defer ln.Close()
				go func() {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					io.Copy(io.Discard, c)
					c.Close()
				}()
				c, err := x.st.DialTCP(context.Background(), netip.MustParseAddrPort("10.9.2.2:9"))
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				chunk := make([]byte, 4<<20)
				b.SetBytes(int64(len(chunk)))
				b.ResetTimer()
				for range b.N {
					c.SetWriteDeadline(time.Now().Add(60 * time.Second))
					if _, err := c.Write(chunk); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				st := iw.Stats()
				b.ReportMetric(float64(x.st.Stack.Stats().TCP.Retransmits.Value())/float64(b.N), "retrans/op")
				b.ReportMetric(float64(st.Dropped)/float64(b.N), "drops/op")
			})
		}
	}
}

func openTuned(b *testing.B, w enasim.Wire, addr string) *faultSide {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sim, err := enasim.New(enasim.Config{Wire: w, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	dev, err := ena.Open(sim, ena.Config{Queues: 1, Logger: log})
	if err != nil {
		sim.Close()
		b.Fatal(err)
	}
	st, err := link.NewStack(New(dev), link.StackOptions{Addr: netip.MustParsePrefix(addr), Logger: log})
	if err != nil {
		dev.Close()
		sim.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		st.Close()
		dev.Close()
		sim.Close()
		w.Close()
	})
	return &faultSide{sim: sim, dev: dev, st: st}
}

// BenchmarkTCPImpairmentRatio measures two of the recovery ratios for each
// of tcpSettings (the stack's defaults and the alternatives), each in one
// run: three single-stream transfers run side by side for the same second
// (b.N seconds in all), over a clean wire, a wire with 0.1% random loss,
// and one that delays 1% of frames by 1 ms (reordering); each impaired
// stream's goodput is reported as a percentage of the clean one's, with the
// reordered stream's recoveries and RTOs per second. Running them at once
// makes a busy machine slow all three alike.
//
//	go test -run '^$' -bench TCPImpairmentRatio -benchtime 5x ./link/enanic/
//	go test -run '^$' -bench 'TCPImpairmentRatio/as-is$' -benchtime 8x ./link/enanic/
func BenchmarkTCPImpairmentRatio(b *testing.B) {
	for _, set := range tcpSettings() {
		b.Run(set.name, func(b *testing.B) { impairmentRatio(b, set) })
	}
}

func impairmentRatio(b *testing.B, set tcpSetting) {
	wires := []struct {
		name string
		im   enasim.Impairment
	}{
		{"clean", enasim.Impairment{}},
		{"loss", enasim.Impairment{Loss: 0.001, Seed: 11}},
		{"reorder", enasim.Impairment{Reorder: 0.01, ReorderDelay: time.Millisecond, Seed: 11}},
	}
	recv := make([]atomic.Int64, len(wires))
	senders := make([]*link.Stack, len(wires))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	for i, w := range wires {
		wa, wb := enasim.NewPair()
		iw := enasim.NewImpaired(wa, w.im)
		x := openTuned(b, iw, fmt.Sprintf("10.9.%d.1/24", 3+i))
		y := openTuned(b, wb, fmt.Sprintf("10.9.%d.2/24", 3+i))
		set.apply(x.st)
		set.apply(y.st)
		senders[i] = x.st
		ln, err := y.st.ListenTCP(9)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ln.Close() })
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 256<<10)
			for {
				n, err := c.Read(buf)
				recv[i].Add(int64(n))
				if err != nil {
					c.Close()
					return
				}
			}
		}()
		c, err := x.st.DialTCP(context.Background(), netip.AddrPortFrom(netip.MustParseAddr(fmt.Sprintf("10.9.%d.2", 3+i)), 9))
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() { // stream until stopped
			defer wg.Done()
			defer c.Close()
			chunk := make([]byte, 256<<10)
			for {
				select {
				case <-stop:
					return
				default:
				}
				c.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := c.Write(chunk); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
					var ne net.Error
					if !errors.As(err, &ne) || !ne.Timeout() {
						return
					}
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond) // past slow start
	var start [3]int64
	for i := range recv {
		start[i] = recv[i].Load()
	}
	st0 := senders[2].Stack.Stats().TCP
	rec0, rto0 := st0.SACKRecovery.Value()+st0.FastRecovery.Value(), st0.Timeouts.Value()
	b.ResetTimer()
	time.Sleep(time.Duration(b.N) * time.Second)
	b.StopTimer()
	var got [3]float64
	for i := range recv {
		got[i] = float64(recv[i].Load() - start[i])
	}
	b.ReportMetric(got[0]/1e6/float64(b.N), "clean-MB/s")
	b.ReportMetric(100*got[1]/got[0], "loss0.1%-pct-of-clean")
	b.ReportMetric(100*got[2]/got[0], "reorder1%-pct-of-clean")
	tcpStats := senders[2].Stack.Stats().TCP
	b.ReportMetric(float64(tcpStats.SACKRecovery.Value()+tcpStats.FastRecovery.Value()-rec0)/float64(b.N), "reorder-recoveries/s")
	b.ReportMetric(float64(tcpStats.Timeouts.Value()-rto0)/float64(b.N), "reorder-RTOs/s")
}
