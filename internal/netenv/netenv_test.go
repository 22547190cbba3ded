package netenv

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
	if n := h.Dev.Channels(); n != 1 {
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

// TestOpenStaticOtherSubnet: a static address outside the default VPC's
// subnet gets a simulated VPC for its own subnet, so the host reaches it
// through the router.
func TestOpenStaticOtherSubnet(t *testing.T) {
	for _, tc := range []struct{ ip, gw, router string }{
		{"10.0.1.5/24", "10.0.1.1", "10.0.1.1/24"},
		{"192.168.7.20/28", "", "192.168.7.17/28"},
	} {
		h, err := Open(Config{IP: tc.ip, Gateway: tc.gw})
		require.NoError(t, err, tc.ip)
		assert.Equal(t, tc.router, h.VPC.Subnet().String(), tc.ip)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ln, err := h.Stack.ListenTCP(80)
		require.NoError(t, err)
		go func() {
			if c, err := ln.Accept(); err == nil {
				c.Close()
			}
		}()
		c, err := h.VPC.Stack.DialTCP(ctx, h.Addr(80))
		if assert.NoError(t, err, "router to %s", tc.ip) {
			c.Close()
		}
		cancel()
		ln.Close()
		h.Close()
	}
}

// TestOpenStaticSubnetErrors: subnets the simulated VPC cannot serve are
// refused at start with a message naming the rule, not later with an
// unreachable network.
func TestOpenStaticSubnetErrors(t *testing.T) {
	for _, tc := range []struct{ ip, gw, want string }{
		{"10.0.1.5/24", "10.0.2.1", "outside --ip"},
		{"10.0.0.5/8", "", "from /16 to /28"},
		{"10.0.1.1/24", "", "router's address"},
		{"10.0.1.5/24", "10.0.1.5", "same address"},
	} {
		h, err := Open(Config{IP: tc.ip, Gateway: tc.gw})
		if h != nil {
			h.Close()
		}
		if assert.Error(t, err, "%s via %s", tc.ip, tc.gw) {
			assert.Contains(t, err.Error(), tc.want)
			t.Logf("--ip %s --gw %q: %v", tc.ip, tc.gw, err)
		}
	}
}

// TestOpenErrorMessages: bad flags get a message that names the flag and
// the fix, never a Go parse function, and the first mistake is the one
// reported.
func TestOpenErrorMessages(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{IP: "10.0.1.5"}, "--ip 10.0.1.5: add the subnet's prefix length, e.g. --ip 10.0.1.5/24"},
		{Config{IP: "ten"}, `--ip "ten": want an address with its prefix length`},
		{Config{IP: "10.0.1.5/24", Gateway: "gw"}, `--gw "gw": want an IP address`},
		{Config{Gateway: "10.0.1.1"}, "--gw needs --ip"},
		{Config{Device: "0000:99:1f.7"}, "--device 0000:99:1f.7: no such PCI device"},
		{Config{Device: "0000:99:1f.7", DHCP: true}, "--device 0000:99:1f.7: no such PCI device"},
		{Config{VFIOMode: "bogus"}, `--vfio-mode "bogus"`},
		{Config{MTU: 100}, "--mtu 100: want 0 (1500) or 576"},
	} {
		h, err := Open(tc.c)
		if h != nil {
			h.Close()
		}
		if assert.Error(t, err, "%+v", tc.c) {
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "netip.")
		}
	}
}

// TestJumboMTUOnSimulatedVPC: the ENA's own maximum (9216) is accepted;
// the simulated VPC, like an EC2 VPC, carries 9001.
func TestJumboMTUOnSimulatedVPC(t *testing.T) {
	h, err := Open(Config{MTU: 9216})
	require.NoError(t, err)
	defer h.Close()
	assert.Equal(t, 9001, h.VPC.NIC.MTU())
}

func TestFlagError(t *testing.T) {
	var c Config
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	AddFlags(fs, &c)
	err := FlagError(fs, fs.Parse([]string{"--mtu", "abc"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `--mtu "abc": want a whole number. --mtu: L3 MTU`)
	err = FlagError(fs, fs.Parse([]string{"--poll=maybe"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `--poll "maybe": want true or false`)
}

// TestHelpNamesWhatTheParserTakes: --profile's help names the +express
// suffix the profile parser accepts, --vfio-mode enactl's spelling.
func TestHelpNamesWhatTheParserTakes(t *testing.T) {
	var c Config
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	AddFlags(fs, &c)
	assert.Contains(t, fs.Lookup("profile").Usage, "+express")
	assert.Contains(t, fs.Lookup("vfio-mode").Usage, "--mode")
}
