package main

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/metrics"
)

// cachedStats lets scrapes share the status page's counters snapshot.
type cachedStats struct{ c *statsCache }

func (s cachedStats) Stats(ctx context.Context) (ena.Stats, error) {
	st, _, err := s.c.get(ctx)
	return st, err
}

// metricsHandler serves /metrics: the device's counters (package
// ena/metrics, enanet_* names) and the Go runtime's.
func (a *app) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(cachedStats{a.stats}, a.dev.Info().Identity.Address))
	reg.MustRegister(collectors.NewGoCollector())
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: nil, ErrorHandling: promhttp.ContinueOnError})
}
