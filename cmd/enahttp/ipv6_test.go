package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/internal/netenv"
	"github.com/enanet/enanet/internal/testenv"
	"github.com/enanet/enanet/link/vpc"
)

// startDualStack starts enahttp on the simulated device with both host
// forwards, or skips the test on a host without IPv6 loopback.
func startDualStack(t *testing.T) *app {
	t.Helper()
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		testenv.Missing(t, "IPv6 loopback ([::1]): %v", err)
	} else {
		ln.Close()
	}
	a, err := start(config{Config: netenv.Config{Device: "sim"}, port: 80, listen: "127.0.0.1:0", listen6: "[::1]:0", listen6Set: true})
	require.NoError(t, err)
	t.Cleanup(a.Close)
	return a
}

// TestServeOverIPv6: the startup message, the page and the status name the
// server's IPv6 addresses (DHCPv6 and link-local), and a Go client fetches
// the page over IPv6 from the host's [::1] (forwarded through the VPC
// router to the DHCPv6 address) and from inside the VPC at both the global
// and the link-local address.
func TestServeOverIPv6(t *testing.T) {
	a := startDualStack(t)
	global := vpc.FirstLease6.String()
	ll := a.st.LinkLocal()
	require.True(t, ll.IsLinkLocalUnicast())

	banner := a.banner()
	assert.Contains(t, banner, "["+global+"]:80")
	assert.Contains(t, banner, "link-local ["+ll.String()+"]:80")
	assert.Contains(t, banner, "curl -6 'http://[::1]:")
	t.Log(banner)

	require.True(t, strings.HasPrefix(a.URL6(), "http://[::1]:"), a.URL6())
	var st Status
	require.NoError(t, json.Unmarshal(get(t, a.URL6()+"api/v1/status"), &st))
	assert.Equal(t, global+"/128", st.Network.Address6)
	assert.Equal(t, a.host.VPC.Stack.LinkLocal().String(), st.Network.Gateway6)
	assert.Equal(t, ll.String(), st.Network.LinkLocal)
	assert.True(t, st.Network.DHCP6)
	assert.Positive(t, st.Network.Lease6ValidSeconds)
	assert.Contains(t, st.Network.DNS, vpc.Resolver6Addr.String())

	html := string(get(t, a.URL6()))
	assert.Contains(t, html, "<tr><th>IPv6 address</th><td>"+global+"/128 via ")
	assert.Contains(t, html, "(DHCPv6")
	assert.Contains(t, html, "<tr><th>IPv6 link-local</th><td>"+ll.String()+"</td>")

	// From a host elsewhere in the VPC, straight at the server's
	// addresses; the link-local one needs no zone on a one-NIC stack.
	c := a.host.VPC.Stack.HTTPClient()
	defer c.CloseIdleConnections()
	for _, ip := range []netip.Addr{vpc.FirstLease6, ll} {
		u := "http://" + netip.AddrPortFrom(ip, 80).String() + "/api/v1/status"
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
		resp, err := c.Do(req)
		if assert.NoError(t, err, u) {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode, u)
			assert.Contains(t, string(b), `"address6": "`+global+`/128"`, u)
		}
		cancel()
	}
}

// TestCurlOverIPv6: stock curl -6 reaches the page through [::1].
func TestCurlOverIPv6(t *testing.T) {
	curl := testenv.RequireTool(t, "curl", "apt-get install curl")
	a := startDualStack(t)
	out, err := exec.Command(curl, "-6", "-sS", "--max-time", "20", a.URL6()+"api/v1/status").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), `"address6": "`+vpc.FirstLease6.String()+`/128"`)
}

// TestListen6Flags: --listen6 off forwards nothing, a --listen6 that
// cannot be bound is an error naming the flag, and a real device refuses
// it as it refuses --listen.
func TestListen6Flags(t *testing.T) {
	c, err := parseFlags(nil)
	require.NoError(t, err)
	assert.Equal(t, "[::1]:8080", c.listen6)
	c, err = parseFlags([]string{"--listen6", "off"})
	require.NoError(t, err)
	assert.True(t, c.listen6Set)

	a, err := start(config{Config: netenv.Config{Device: "sim"}, port: 80, listen: "127.0.0.1:0", listen6: "off", listen6Set: true})
	require.NoError(t, err)
	assert.Nil(t, a.hostLn6)
	assert.Empty(t, a.URL6())
	assert.NotContains(t, a.banner(), "curl -6")
	a.Close()

	_, err = start(config{Config: netenv.Config{Device: "sim"}, port: 80, listen: "127.0.0.1:0", listen6: "[::1]:99999", listen6Set: true})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--listen6")

	_, err = start(config{Config: netenv.Config{Device: "0000:99:1f.7", IP: "10.0.0.5/24"}, port: 80, listen6: "[::1]:0", listen6Set: true})
	require.Error(t, err)
}
