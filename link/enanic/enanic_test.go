package enanic

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/ena/spec"
	"github.com/enanet/enanet/link"
)

type side struct {
	sim *enasim.Device
	dev *ena.Device
	st  *link.Stack
}

// open brings up a simulated ENA on w and a stack on it.
func open(t *testing.T, w enasim.Wire, addr string, prof string) *side {
	t.Helper()
	p, err := enasim.ProfileByName(prof)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sim, err := enasim.New(enasim.Config{Profile: p, Wire: w, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := ena.Open(sim, ena.Config{Queues: 2, Logger: log})
	if err != nil {
		sim.Close()
		t.Fatal(err)
	}
	st, err := link.NewStack(New(dev), link.StackOptions{Addr: netip.MustParsePrefix(addr), Logger: log})
	if err != nil {
		dev.Close()
		sim.Close()
		t.Fatal(err)
	}
	s := &side{sim: sim, dev: dev, st: st}
	t.Cleanup(func() {
		st.Close()
		dev.Close()
		sim.Close()
	})
	return s
}

func TestTCPOverSimulatedENA(t *testing.T) {
	for _, prof := range []string{"nitro-v3", "no-llq"} {
		t.Run(prof, func(t *testing.T) {
			wa, wb := enasim.NewPair()
			a := open(t, wa, "10.1.0.1/24", prof)
			b := open(t, wb, "10.1.0.2/24", prof)
			n := 2 << 20
			got := echo(t, a.st, b.st, netip.MustParseAddrPort("10.1.0.2:7"), n, nil)
			if got != n {
				t.Fatalf("echoed %d of %d bytes", got, n)
			}
		})
	}
}

// TestResetUnderTransfer resets the device in the middle of a transfer: the
// stack must not notice beyond a few retransmissions.
func TestResetUnderTransfer(t *testing.T) {
	wa, wb := enasim.NewPair()
	a := open(t, wa, "10.1.0.1/24", "")
	b := open(t, wb, "10.1.0.2/24", "")
	n := 4 << 20
	got := echo(t, a.st, b.st, netip.MustParseAddrPort("10.1.0.2:7"), n, func() {
		if err := a.dev.Reset(spec.ResetNormal); err != nil {
			t.Errorf("reset: %v", err)
		}
	})
	if got != n {
		t.Fatalf("echoed %d of %d bytes", got, n)
	}
}

// echo sends n random bytes from a to an echo server on b and compares
// what comes back; mid, if set, runs once half of the data has been sent.
func echo(t *testing.T, a, b *link.Stack, to netip.AddrPort, n int, mid func()) int {
	t.Helper()
	ln, err := b.ListenTCP(to.Port())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := a.DialTCP(ctx, to)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	want := make([]byte, n)
	rand.Read(want)
	go func() {
		c.Write(want[:n/2])
		if mid != nil {
			mid()
		}
		c.Write(want[n/2:])
		c.(*gonet.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("after %d bytes: %v", len(got), err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echo differs (%d bytes back)", len(got))
	}
	return len(got)
}

// BenchmarkTCP measures one TCP stream between two stacks, each on a
// simulated ENA driven by the real driver, joined by a simulated cable.
func BenchmarkTCP(b *testing.B) {
	for _, mtu := range []int{1500, 9001} {
		b.Run(fmt.Sprintf("mtu%d", mtu), func(b *testing.B) {
			wa, wb := enasim.NewPair()
			x := openB(b, wa, "10.1.0.1/24", mtu)
			y := openB(b, wb, "10.1.0.2/24", mtu)
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
			c, err := x.st.DialTCP(context.Background(), netip.MustParseAddrPort("10.1.0.2:9"))
			if err != nil {
				b.Fatal(err)
			}
			chunk := make([]byte, 1<<20)
			b.SetBytes(int64(len(chunk)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			c.Close()
			b.StopTimer()
			b.ReportMetric(float64(x.st.Stack.Stats().TCP.Retransmits.Value())/float64(b.N), "retrans/op")
		})
	}
}

func openB(b *testing.B, w enasim.Wire, addr string, mtu int) *side {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sim, err := enasim.New(enasim.Config{Wire: w, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	dev, err := ena.Open(sim, ena.Config{Queues: 1, MTU: mtu, Logger: log})
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
	})
	return &side{sim: sim, dev: dev, st: st}
}
