package metrics_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/ena/metrics"
)

// scrape serves reg over HTTP, fetches /metrics and parses it with the
// Prometheus text parser, as a Prometheus server would.
func scrape(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	f, ok := fams[name]
	require.True(t, ok, "no metric family %s", name)
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if got[k] != v {
				continue next
			}
		}
		if m.Counter != nil {
			return m.Counter.GetValue()
		}
		return m.Gauge.GetValue()
	}
	t.Fatalf("%s has no series with labels %v", name, labels)
	return 0
}

func TestScrape(t *testing.T) {
	prof := enasim.ProfileNitroV4
	prof.ENAExpress = true
	wire := enasim.NewLoopback()
	sim, err := enasim.New(enasim.Config{Profile: prof, Wire: wire})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sim.Close(); _ = wire.Close() })
	d, err := ena.Open(sim, ena.Config{Queues: 2, TxDepth: 256, RxDepth: 256, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })

	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(d, "sim0"))
	fams := scrape(t, reg)
	require.Equal(t, 1.0, value(t, fams, "enanet_device_stats_up", map[string]string{"device": "sim0"}))
	require.Equal(t, dto.MetricType_COUNTER, fams["enanet_queue_packets_total"].GetType())
	value(t, fams, "enanet_queue_packets_total", map[string]string{"queue": "1", "direction": "rx"})
	value(t, fams, "enanet_queue_bytes_total", map[string]string{"queue": "0", "direction": "tx"})
	value(t, fams, "enanet_device_packets_total", map[string]string{"direction": "tx"})
	value(t, fams, "enanet_bw_in_allowance_exceeded_total", nil)
	require.Equal(t, dto.MetricType_GAUGE, fams["enanet_conntrack_allowance_available"].GetType())
	require.Equal(t, float64(prof.ConntrackAllowance), value(t, fams, "enanet_conntrack_allowance_available", nil))
	require.Equal(t, 3.0, value(t, fams, "enanet_srd_mode", nil))
	require.Positive(t, value(t, fams, "enanet_admin_q_submitted_cmd_total", nil))

	// A closed device still scrapes: the driver's counters, stats_up 0.
	require.NoError(t, d.Close())
	fams = scrape(t, reg)
	require.Equal(t, 0.0, value(t, fams, "enanet_device_stats_up", nil))
}
