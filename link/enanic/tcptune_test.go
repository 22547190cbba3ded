package enanic

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
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
		{"as-is", func(*link.Stack) {}},
		{"sack-rack-reno", opt(true, tcpip.TCPRACKLossDetection, "reno", 0)},
		{"sack-rack-cubic", opt(true, tcpip.TCPRACKLossDetection, "cubic", 0)},
		{"sack-norack-reno", opt(true, 0, "reno", 0)},
		{"sack-norack-cubic", opt(true, 0, "cubic", 0)},
		{"nosack-reno", opt(false, 0, "reno", 0)},
		{"sack-rack-cubic-minrto50ms", opt(true, tcpip.TCPRACKLossDetection, "cubic", 50*time.Millisecond)},
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
