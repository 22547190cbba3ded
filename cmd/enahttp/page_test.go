package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena/observe"
	"github.com/enanet/enanet/internal/netenv"
)

// TestPageReadsWell: one row per label, link wording that cannot
// contradict the driver row, words instead of Go's true/false, and no Go
// struct formatting.
func TestPageReadsWell(t *testing.T) {
	a, err := start(config{Config: netenv.Config{Device: "sim"}, port: 80, listen: "127.0.0.1:0"})
	require.NoError(t, err)
	defer a.Close()
	html := string(get(t, a.URL()))

	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`<tr><th>([^<]+)</th><td`).FindAllStringSubmatch(html, -1) {
		assert.False(t, seen[m[1]], "two rows named %q", m[1])
		seen[m[1]] = true
	}
	assert.True(t, seen["IP address"] && seen["Device address"], "address rows: %v", seen)
	assert.Contains(t, html, "(no up/down change since start)")
	assert.Contains(t, html, "link-state notifications")
	assert.NotRegexp(t, `\b(true|false)\b`, html)
	assert.NotContains(t, html, "Major:")
}

// TestResponsesHaveContentLength: the page and the JSON (both over 2 KB)
// carry a Content-Length, so an HTTP/1.0 keep-alive client (ab -k) reuses
// its connection: two requests on one connection.
func TestResponsesHaveContentLength(t *testing.T) {
	a, err := start(config{Config: netenv.Config{Device: "sim"}, port: 80, listen: "127.0.0.1:0"})
	require.NoError(t, err)
	defer a.Close()
	c, err := net.Dial("tcp", a.hostLn.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	for _, path := range []string{"/", "/api/v1/status", "/"} {
		_, err := io.WriteString(c, "GET "+path+" HTTP/1.0\r\nHost: x\r\nConnection: Keep-Alive\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err, "GET %s on a kept-alive HTTP/1.0 connection", path)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Greater(t, len(body), 2048, "GET %s is small enough to get a length anyway", path)
		require.Equal(t, strconv.Itoa(len(body)), resp.Header.Get("Content-Length"), "GET %s", path)
		require.False(t, resp.Close, "GET %s: the server closes the connection", path)
	}
}

// TestSinkOverLimit: a body over the limit answers 413, whether the
// request declares its length or streams it chunked.
func TestSinkOverLimit(t *testing.T) {
	srv := httptest.NewServer(sinkHandler(1000))
	defer srv.Close()
	resp, err := http.Post(srv.URL, "application/octet-stream", strings.NewReader(strings.Repeat("x", 1000)))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "a body at the limit")

	resp, err = http.Post(srv.URL, "application/octet-stream", strings.NewReader(strings.Repeat("x", 1001)))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "a declared body over the limit")

	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte(strings.Repeat("x", 5000)))
		pw.Close()
	}()
	resp, err = http.Post(srv.URL, "application/octet-stream", pr) // unknown length: chunked
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "a chunked body over the limit")
}

// TestSinkDeclaredOverGiB: through the simulated ENA, a request declaring
// more than 1 GiB is refused at once with 413, without sending the body.
func TestSinkDeclaredOverGiB(t *testing.T) {
	a, err := start(config{Config: netenv.Config{Device: "sim"}, port: 80, listen: "127.0.0.1:0"})
	require.NoError(t, err)
	defer a.Close()
	c, err := net.Dial("tcp", a.hostLn.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	_, err = io.WriteString(c, "POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(maxBulk+1)+"\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
}

func TestGroupThousands(t *testing.T) {
	for n, want := range map[uint64]string{0: "0", 999: "999", 1000: "1,000", 203897960: "203,897,960", 18446744073709551615: "18,446,744,073,709,551,615"} {
		require.Equal(t, want, observe.FormatCount(n))
	}
}

// TestPageWhileDeviceCannotAnswer: during a reset the device's counters
// were not read, so the page says so instead of showing zeros or "does
// not report ENI statistics".
func TestPageWhileDeviceCannotAnswer(t *testing.T) {
	var b strings.Builder
	require.NoError(t, page.Execute(&b, Status{Error: "ena: device is resetting", Resets: map[string]uint64{"USER_TRIGGER": 1}}))
	html := b.String()
	assert.Contains(t, html, "Unavailable while the device cannot answer (ena: device is resetting)")
	assert.NotContains(t, html, "0 pkts")
	assert.NotContains(t, html, "does not report ENI statistics")

	avail := uint64(500000)
	b.Reset()
	require.NoError(t, page.Execute(&b, Status{ENI: ENICounters{Valid: true, ConntrackAllowanceAvailable: &avail}}))
	assert.Contains(t, b.String(), "500,000 connections")
}
