package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"

	"github.com/enanet/enanet/internal/iperf3"
	"github.com/enanet/enanet/internal/testenv"
	"github.com/enanet/enanet/link"
)

// iperfStackDialer dials from the userspace stack (what enaperf's client
// uses on an ENA).
type iperfStackDialer struct{ st *link.Stack }

func (d iperfStackDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, err
	}
	if network == "tcp" {
		return d.st.DialTCP(ctx, ap)
	}
	fa := tcpip.FullAddress{NIC: d.st.NICID, Addr: tcpip.AddrFromSlice(ap.Addr().AsSlice()), Port: ap.Port()}
	c, err := gonet.DialUDP(d.st.Stack, nil, &fa, ipv4.ProtocolNumber)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// stockSums is what the tests read from iperf3 -J.
type stockSums struct {
	End struct {
		SumSent     struct{ Bytes uint64 } `json:"sum_sent"`
		SumReceived struct{ Bytes uint64 } `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

var iperfCases = []struct {
	name string
	args []string
}{
	{"tcp", nil},
	{"tcp-R", []string{"-R"}},
	{"udp", []string{"-u", "-b", "100M"}},
	{"udp-R", []string{"-u", "-b", "100M", "-R"}},
}

// TestKernelIperf3Client: Debian's iperf3 -c in the namespace (kernel TCP
// and UDP) against our iperf3 server on the simulated ENA over TAP.
func TestKernelIperf3Client(t *testing.T) {
	testenv.RequireTool(t, "iperf3", "apt-get install iperf3")
	p := startKernelPeer(t, peerOptions{})
	const port = 5201
	ln, err := p.Stack.ListenTCP(port)
	if err != nil {
		t.Fatal(err)
	}
	reports := make(chan *iperf3.Report, 1)
	srv := &iperf3.Server{
		Listener: ln,
		ListenUDP: func() (net.PacketConn, error) {
			c, err := gonet.DialUDP(p.Stack.Stack, &tcpip.FullAddress{NIC: p.Stack.NICID, Port: port}, nil, ipv4.ProtocolNumber)
			if err != nil {
				return nil, err
			}
			return c, nil
		},
		OnReport: func(r *iperf3.Report, err error) { reports <- r },
		Timeout:  10 * time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	for _, c := range iperfCases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"-c", p.StackAddr.String(), "-p", strconv.Itoa(port), "-t", "2", "-J"}, c.args...)
			out, err := p.Run(30*time.Second, "iperf3", args...)
			var stock stockSums
			if jerr := json.Unmarshal([]byte(out), &stock); jerr != nil || stock.Error != "" {
				t.Fatalf("iperf3 %v: %v %v %s: %s", args, err, jerr, stock.Error, out)
			}
			var ours *iperf3.Report
			select {
			case ours = <-reports:
			case <-time.After(10 * time.Second):
				t.Fatal("no report from our server")
			}
			compareIperf(t, c.name, stock, ours)
		})
	}
}

// TestKernelIperf3Server: our iperf3 client on the simulated ENA against
// Debian's iperf3 -s in the namespace.
func TestKernelIperf3Server(t *testing.T) {
	testenv.RequireTool(t, "iperf3", "apt-get install iperf3")
	p := startKernelPeer(t, peerOptions{})
	const port = 5202
	for _, c := range iperfCases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			cmd := p.Command(ctx, "iperf3", "-s", "-1", "-J", "-B", p.KernelAddr.String(), "-p", strconv.Itoa(port))
			var out lockedBuffer
			cmd.Stdout = &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waited := make(chan error, 1)
			go func() { waited <- cmd.Wait() }()
			t.Cleanup(func() {
				cancel()
				<-waited
			})
			cfg := iperf3.ClientConfig{Addr: netip.AddrPortFrom(p.KernelAddr, port).String(),
				Dialer: iperfStackDialer{p.Stack}, Duration: 2 * time.Second, Timeout: 10 * time.Second}
			for _, a := range c.args {
				switch a {
				case "-R":
					cfg.Reverse = true
				case "-u":
					cfg.UDP = true
				}
			}
			if cfg.UDP {
				cfg.Bitrate = 100e6
			}
			// A refused connection does not use up iperf3 -s -1's one
			// test, so retry until it listens.
			var ours *iperf3.Report
			var err error
			for i := 0; i < 50; i++ {
				ours, err = iperf3.Run(ctx, cfg)
				if err == nil || !(errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "refused")) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				t.Fatalf("our client: %v", err)
			}
			select {
			case <-waited:
				waited <- nil
			case <-time.After(15 * time.Second):
				t.Fatal("iperf3 -s -1 did not exit")
			}
			var stock stockSums
			if jerr := json.Unmarshal([]byte(out.String()), &stock); jerr != nil || stock.Error != "" {
				t.Fatalf("iperf3 -s output: %v %s: %s", jerr, stock.Error, out.String())
			}
			// The stock server prints before the results exchange: only its
			// own direction is filled in.
			own := stock.End.SumReceived.Bytes
			oursOwn := ours.End.SumReceived.Bytes
			if cfg.Reverse {
				own, oursOwn = stock.End.SumSent.Bytes, ours.End.SumSent.Bytes
			}
			t.Logf("%s: ours sent %.0f Mbit/s received %.0f Mbit/s; iperf3 -s measured %d B", c.name,
				ours.End.SumSent.BitsPerSecond/1e6, ours.End.SumReceived.BitsPerSecond/1e6, own)
			if own == 0 || own != oursOwn {
				t.Errorf("iperf3 -s measured %d B, our client reports %d B for that side", own, oursOwn)
			}
			if ours.End.SumSent.Bytes == 0 || ours.End.SumReceived.Bytes == 0 || ours.End.SumReceived.Bytes > ours.End.SumSent.Bytes {
				t.Errorf("inconsistent: sent %d received %d", ours.End.SumSent.Bytes, ours.End.SumReceived.Bytes)
			}
		})
	}
}

func compareIperf(t *testing.T, name string, stock stockSums, ours *iperf3.Report) {
	t.Helper()
	if ours == nil || ours.Error != "" || ours.End.SumSent == nil || ours.End.SumReceived == nil {
		t.Fatalf("%s: our report: %+v", name, ours)
	}
	s, r := ours.End.SumSent, ours.End.SumReceived
	t.Logf("%s: sent %d B (%.0f Mbit/s), received %d B (%.0f Mbit/s); iperf3: sent %d received %d", name,
		s.Bytes, s.BitsPerSecond/1e6, r.Bytes, r.BitsPerSecond/1e6, stock.End.SumSent.Bytes, stock.End.SumReceived.Bytes)
	if s.Bytes == 0 || r.Bytes == 0 || r.Bytes > s.Bytes {
		t.Errorf("%s: inconsistent: sent %d received %d", name, s.Bytes, r.Bytes)
	}
	// Each side's own count reaches the other in the results exchange.
	if stock.End.SumSent.Bytes != s.Bytes || stock.End.SumReceived.Bytes != r.Bytes {
		t.Errorf("%s: iperf3 says sent %d received %d; ours sent %d received %d", name,
			stock.End.SumSent.Bytes, stock.End.SumReceived.Bytes, s.Bytes, r.Bytes)
	}
}
