package netenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/link/vpc"
)

// TestOpenSimulated: the default command line gives a simulated ENA whose
// stack took its address from the VPC by DHCP, with a capture written.
func TestOpenSimulated(t *testing.T) {
	var c Config
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	AddFlags(fs, &c)
	pcap := filepath.Join(t.TempDir(), "x.pcap")
	if err := fs.Parse([]string{"--queues", "1", "--llq", "large", "--pcap", pcap}); err != nil {
		t.Fatal(err)
	}
	h, err := Open(c)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Simulated() || h.Opened.Sim == nil || !strings.Contains(h.Kind, "simulated") {
		t.Errorf("not simulated: %q", h.Kind)
	}
	addr, gw := h.Stack.Addr()
	if addr.Addr() != vpc.FirstLease || gw != h.VPC.Router() || h.Addr(80).Addr() != vpc.FirstLease {
		t.Errorf("address %v via %v", addr, gw)
	}
	if h.Stack.Lease() == nil {
		t.Error("no DHCP lease")
	}
	if n := h.Dev.NumQueues(); n != 1 {
		t.Errorf("%d queues, want 1", n)
	}
	h.Close()
	if st, err := os.Stat(pcap); err != nil || st.Size() <= 24 {
		t.Errorf("capture: %v, %v", st, err)
	}
}

func TestOpenStatic(t *testing.T) {
	h, err := Open(Config{IP: "172.31.0.99/20", Gateway: "172.31.0.1", Profile: "no-llq", MTU: 9001})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if addr, _ := h.Stack.Addr(); addr.String() != "172.31.0.99/20" || h.Stack.Lease() != nil {
		t.Errorf("address %v, lease %v", addr, h.Stack.Lease())
	}
	if mtu := h.VPC.NIC.MTU(); mtu != 9001 {
		t.Errorf("VPC MTU %d, want the ENA's 9001", mtu)
	}
}

func TestOpenErrors(t *testing.T) {
	for _, c := range []Config{
		{LLQ: "huge"},
		{IP: "1.2.3.4/24", DHCP: true},
		{IP: "nonsense"},
		{IP: "1.2.3.4/24", Gateway: "nonsense"},
		{Profile: "nitro-v99"},
		{Device: "0000:99:00.0"},
		{Device: "0000:99:00.0", IP: "10.0.0.5/24"},
		{Pcap: filepath.Join(t.TempDir(), "no", "such", "dir.pcap")},
	} {
		if h, err := Open(c); err == nil {
			h.Close()
			t.Errorf("%+v: accepted", c)
		} else {
			t.Logf("%+v: %v", c, err)
		}
	}
}

func TestParseLLQ(t *testing.T) {
	for s, want := range map[string]ena.LLQPolicy{"": ena.LLQDefault, "Normal": ena.LLQNormal, "256": ena.LLQLarge, "off": ena.LLQOff} {
		if got, err := ParseLLQ(s); err != nil || got != want {
			t.Errorf("ParseLLQ(%q) = %v, %v", s, got, err)
		}
	}
}
