package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/internal/netenv"
	"github.com/enanet/enanet/internal/testenv"
)

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return b
}

// TestServeThroughSimulatedENA starts enahttp as a user would (simulated
// device, DHCP from the simulated VPC, host forwarder) on a random host
// port and fetches both pages through it.
func TestServeThroughSimulatedENA(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    config
	}{
		{"default", config{}},
		{"static-no-llq", config{Config: netenv.Config{IP: "172.31.0.99/20", Gateway: "172.31.0.1", Profile: "no-llq", Queues: 1, LLQ: "off"}}},
		{"jumbo-large-llq", config{Config: netenv.Config{Profile: "nitro-v4", LLQ: "large", MTU: 9001}}},
		// The README's static example, outside the default VPC's subnet:
		// the simulated VPC follows it.
		{"static-other-subnet", config{Config: netenv.Config{IP: "10.0.1.5/24", Gateway: "10.0.1.1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			c.Device, c.port, c.listen = "sim", 80, "127.0.0.1:0"
			a, err := start(c)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			html := string(get(t, a.URL()))
			if !strings.Contains(html, "Served by gVisor netstack on an ENA") || !strings.Contains(html, "Negotiated features") {
				t.Fatalf("unexpected page:\n%s", html)
			}
			var st Status
			if err := json.Unmarshal(get(t, a.URL()+"api/v1/status"), &st); err != nil {
				t.Fatal(err)
			}
			if st.Version != 1 || !st.Link.Up || st.Network.Address == "" || st.Device.DeviceID == "" || len(st.Queues) == 0 {
				t.Fatalf("status %+v", st)
			}
			if c.IP != "" && st.Network.Address != c.IP {
				t.Errorf("address %s, want %s", st.Network.Address, c.IP)
			}
			if c.IP == "" && (!st.Network.DHCP || st.Network.Gateway != "172.31.0.1") {
				t.Errorf("DHCP not used: %+v", st.Network)
			}
			if c.LLQ == "off" && st.Features.LLQ {
				t.Error("LLQ on with --llq off")
			}
			if c.MTU != 0 && st.Features.MTU != c.MTU {
				t.Errorf("MTU %d, want %d", st.Features.MTU, c.MTU)
			}
			var rx uint64
			for _, q := range st.Queues {
				rx += q.Rx.Packets
			}
			if rx == 0 {
				t.Error("no packet counted on the Rx rings")
			}
			// Many requests at once, each on its own connection.
			var wg sync.WaitGroup
			errs := make(chan error, 32)
			for i := 0; i < 32; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					tr := &http.Transport{DisableKeepAlives: true}
					defer tr.CloseIdleConnections()
					resp, err := (&http.Client{Transport: tr}).Get(a.URL() + "api/v1/status")
					if err != nil {
						errs <- err
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

func TestBadFlags(t *testing.T) {
	for _, c := range []config{
		{Config: netenv.Config{Device: "sim", LLQ: "huge"}, port: 80},
		{Config: netenv.Config{Device: "sim"}, port: 0},
		{Config: netenv.Config{Device: "sim", IP: "1.2.3.4/24", DHCP: true}, port: 80, listen: "127.0.0.1:0"},
		{Config: netenv.Config{Device: "sim", Profile: "nitro-v99"}, port: 80},
		{Config: netenv.Config{Device: "0000:99:00.0", IP: "10.0.0.5/24"}, port: 80},
		{Config: netenv.Config{Device: "0000:99:00.0", IP: "10.0.0.5/24"}, port: 80, listen: "127.0.0.1:0", listenSet: true},
	} {
		if a, err := start(c); err == nil {
			a.Close()
			t.Errorf("%+v: accepted", c)
		} else {
			t.Logf("%+v: %v", c, err)
		}
	}
}

// TestBulkThroughSimulatedENA moves 8 MiB each way through the forwarder,
// the simulated VPC and the simulated ENA, and checks every byte.
func TestBulkThroughSimulatedENA(t *testing.T) {
	a, err := start(config{Config: netenv.Config{Device: "sim"}, port: 80, listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	const n = 8 << 20
	body := get(t, a.URL()+"bytes?n="+strconv.Itoa(n))
	if len(body) != n {
		t.Fatalf("GET /bytes returned %d bytes, want %d", len(body), n)
	}
	for i, b := range body {
		if b != Pattern(int64(i)) {
			t.Fatalf("GET /bytes: byte %d is %#x, want %#x", i, b, Pattern(int64(i)))
		}
	}
	up := make([]byte, n)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range up {
		up[i] = byte(rng.Uint32())
	}
	resp, err := http.Post(a.URL()+"sink", "application/octet-stream", bytes.NewReader(up))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res SinkResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(up)
	if res.Bytes != n || res.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("POST /sink: server saw %d bytes sha256 %s, sent %d bytes sha256 %x", res.Bytes, res.SHA256, n, sum)
	}
	if resp, err := http.Get(a.URL() + "bytes?n=-1"); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("GET /bytes?n=-1: %v %v, want 400", resp.Status, err)
	}
}

func TestParseFlags(t *testing.T) {
	c, err := parseFlags([]string{"--ip", "10.0.1.5/24", "--gw", "10.0.1.1", "--port", "8081"})
	require.NoError(t, err)
	assert.Equal(t, "10.0.1.5/24", c.IP)
	assert.Equal(t, 8081, c.port)
	for args, want := range map[string]string{
		"--mtu abc":  `--mtu "abc": want a whole number`,
		"--port x":   `--port "x": want a whole number`,
		"--nope":     "unknown flag --nope (run enahttp --help for the flags)",
		"stray":      `unexpected argument "stray"`,
		"-v=perhaps": `--verbose "perhaps": want true or false`,
	} {
		_, err := parseFlags(strings.Fields(args))
		if assert.Error(t, err, args) {
			assert.Contains(t, err.Error(), want, args)
			assert.NotContains(t, err.Error(), "strconv", args)
		}
	}
}

// TestListenOnlyWithSimulator: --listen is refused with a real device
// rather than ignored, after a missing device is reported first.
func TestListenOnlyWithSimulator(t *testing.T) {
	_, err := start(config{Config: netenv.Config{Device: "0000:99:1f.7", IP: "10.0.0.5/24"}, port: 80, listen: "127.0.0.1:0", listenSet: true})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no such PCI device")

	dev, err := os.ReadDir("/sys/bus/pci/devices")
	if err != nil || len(dev) == 0 {
		testenv.Missing(t, "a PCI function in /sys/bus/pci/devices to stand for a real device")
	}
	_, err = start(config{Config: netenv.Config{Device: dev[0].Name(), IP: "10.0.0.5/24"}, port: 80, listen: "127.0.0.1:0", listenSet: true})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--listen applies to the simulated device only")
}

// TestListenErrorsNameTheFix: a --listen the host cannot bind says what
// to give instead, not only package net's error.
func TestListenErrorsNameTheFix(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	for _, tc := range []struct{ listen, want string }{
		{"bogus", `--listen "bogus": want HOST:PORT, e.g. --listen 127.0.0.1:8081`},
		{busy.Addr().String(), "the address is in use (another enahttp?): stop that process or choose a free port"},
		{"127.0.0.1:99999", `port "99999": want 1 to 65535`},
		{"192.0.2.77:8080", "the host has no such address"},
	} {
		ln, err := net.Listen("tcp", tc.listen)
		if err == nil {
			ln.Close()
			t.Fatalf("--listen %s: the host accepted it", tc.listen)
		}
		require.Contains(t, listenError("--listen", tc.listen, "127.0.0.1:8081", err).Error(), tc.want, tc.listen)
	}
	// start reports it (the full path, once).
	_, err = start(config{Config: netenv.Config{Device: "sim"}, port: 80, listen: "bogus", listenSet: true, listen6: "off"})
	require.ErrorContains(t, err, `--listen "bogus": want HOST:PORT`)
}
