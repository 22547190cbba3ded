package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena/control"
)

// TestOperateWhileServing reads stats, info, resets the device through its
// control socket, and scrapes /metrics, while enahttp serves traffic on the
// simulated ENA.
func TestOperateWhileServing(t *testing.T) {
	t.Setenv(control.DirEnv, t.TempDir())
	a, err := start(config{port: 80, listen: "127.0.0.1:0"})
	require.NoError(t, err)
	defer a.Close()
	require.NotNil(t, a.host.Control, "enahttp serves a control socket")

	// Traffic: clients fetching 256 KiB bodies until the test ends.
	stop := make(chan struct{})
	var ok, failedReqs atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(a.URL() + "bytes?n=262144")
				if err != nil {
					failedReqs.Add(1)
					continue
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if n == 262144 {
					ok.Add(1)
				} else {
					failedReqs.Add(1)
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	require.Eventually(t, func() bool { return ok.Load() > 5 }, 20*time.Second, 10*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := control.Dial(ctx, a.host.Control.Path())
	require.NoError(t, err)
	defer c.Close()
	s1, err := c.Stats(ctx)
	require.NoError(t, err)
	time.Sleep(200 * time.Millisecond)
	s2, err := c.Stats(ctx)
	require.NoError(t, err)
	require.Greater(t, s2.Values()["rx_pkts"], s1.Values()["rx_pkts"], "counters move under traffic")
	in, network, err := c.InfoNetwork(ctx)
	require.NoError(t, err)
	require.True(t, in.LinkUp)
	// enactl info shows the addresses the page shows.
	require.NotNil(t, network, "enahttp reports its stack's addresses to the control socket")
	page := a.network()
	require.Equal(t, page.Address, network.Address)
	require.Equal(t, page.Gateway, network.Gateway)
	require.Equal(t, page.LinkLocal, network.LinkLocal)
	require.Equal(t, page.Address6, network.Address6)
	require.Equal(t, page.DNS, network.DNS)
	require.NotEmpty(t, network.Address)
	require.NotEmpty(t, network.LinkLocal)

	before := ok.Load()
	_, err = c.Reset(ctx)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return ok.Load() > before+5 }, 20*time.Second, 10*time.Millisecond, "traffic resumes after the reset")
	s3, err := c.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(1), s3.Values()["reset_user_trigger"])

	// Prometheus scrape through the simulated ENA, parsed by the library.
	resp, err := http.Get(a.URL() + "metrics")
	require.NoError(t, err)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	f := fams["enanet_queue_packets_total"]
	require.NotNil(t, f)
	var rx float64
	for _, m := range f.Metric {
		for _, l := range m.Label {
			if l.GetName() == "direction" && l.GetValue() == "rx" {
				rx += m.Counter.GetValue()
			}
		}
	}
	require.Positive(t, rx)
	require.Equal(t, dto.MetricType_GAUGE, fams["enanet_conntrack_allowance_available"].GetType())
	require.Contains(t, fams, "go_goroutines")

	// /api/v1/status: snake_case keys throughout, ethtool-named counters.
	resp, err = http.Get(a.URL() + "api/v1/status")
	require.NoError(t, err)
	var doc any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&doc))
	resp.Body.Close()
	snake := regexp.MustCompile(`^[a-z0-9_]+$|^queue_\d+_(tx|rx)_[a-z0-9_]+$|^[A-Z_]+$`)
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if path != "/resets" { // reset reasons keep their protocol names
					require.Regexp(t, `^[a-z0-9_]+$`, k, "key %s%s", path, "/"+k)
				} else {
					require.Regexp(t, snake, k)
				}
				walk(x, path+"/"+k)
			}
		case []any:
			for _, x := range v {
				walk(x, path+"[]")
			}
		}
	}
	walk(doc, "")
	eni := doc.(map[string]any)["eni"].(map[string]any)
	require.EqualValues(t, 500000, eni["conntrack_allowance_available"])
	html := string(get(t, a.URL()))
	require.Contains(t, html, "<tr><th>conntrack allowance available</th><td class=\"num\">500,000 connections</td></tr>")
	counters := doc.(map[string]any)["counters"].(map[string]any)
	require.Contains(t, counters, "conntrack_allowance_available")
	require.Contains(t, counters, "queue_0_rx_cnt")
	t.Logf("%d requests answered, %d failed (around the reset)", ok.Load(), failedReqs.Load())
}
