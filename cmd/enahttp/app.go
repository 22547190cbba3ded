package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/internal/devopen"
	"github.com/enanet/enanet/internal/netenv"
	"github.com/enanet/enanet/link"
	"github.com/enanet/enanet/link/vpc"
)

// config is the command line.
type config struct {
	netenv.Config
	port   int
	listen string
	// listenSet: --listen was given (it applies to the simulated device
	// only, so a real device refuses it rather than ignoring it).
	listenSet bool
	verbose   bool
	log       *slog.Logger
}

// app is a running enahttp: device, stack, HTTP server and, for the
// simulated device, the host forwarder into the simulated VPC.
type app struct {
	cfg     config
	kind    string // "simulated ENA, profile nitro-v3" or "vfio 0000:00:06.0 (...)"
	started time.Time

	host *netenv.Host
	dev  *ena.Device
	st   *link.Stack

	srv        *http.Server
	serverAddr netip.AddrPort

	fwd    *vpc.Forwarder
	hostLn net.Listener

	stats *statsCache // one shared counters snapshot for all requests

	wg    sync.WaitGroup
	fatal <-chan error
}

// URL is where a user reaches the page.
func (a *app) URL() string {
	if a.hostLn != nil {
		return "http://" + a.hostLn.Addr().String() + "/"
	}
	return "http://" + a.serverAddr.String() + "/"
}

// start brings everything up; on error it tears down what it built.
func start(c config) (a *app, err error) {
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c.Logger = c.log
	if c.port <= 0 || c.port > 65535 {
		return nil, fmt.Errorf("--port %d: want 1 to 65535", c.port)
	}
	if err := devopen.Check(c.Device, ""); err != nil {
		return nil, err // a mistyped --device is the first thing to say
	}
	if c.listenSet && !devopen.IsSim(c.Device) {
		return nil, fmt.Errorf("--listen applies to the simulated device only: with --device %s the server is at its own address, --ip or the DHCP lease", c.Device)
	}
	a = &app{cfg: c, started: time.Now(), fwd: vpc.NewForwarder(c.log)}
	defer func() {
		if err != nil {
			a.Close()
			a = nil
		}
	}()
	if a.host, err = netenv.Open(c.Config); err != nil {
		return a, err
	}
	a.kind, a.dev, a.st, a.fatal = a.host.Kind, a.host.Dev, a.host.Stack, a.host.Fatal()
	a.stats = newStatsCache(a.dev.Stats, snapshotMaxAge)

	a.serverAddr = a.host.Addr(uint16(c.port))
	ln, err := a.st.Listen("tcp", fmt.Sprintf(":%d", c.port)) // IPv4 and IPv6
	if err != nil {
		return a, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.handleHTML)
	mux.HandleFunc("GET /api/v1/status", a.handleJSON)
	mux.Handle("GET /metrics", a.metricsHandler())
	mux.HandleFunc("GET /bytes", handleBytes)
	mux.HandleFunc("POST /sink", sinkHandler(maxBulk))
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.srv.Serve(ln) // returns when Close shuts the server down
	}()

	if a.host.Simulated() {
		// The host port is spliced through the VPC router's stack to the
		// server, so every request crosses the simulated ENA.
		if a.hostLn, err = net.Listen("tcp", c.listen); err != nil {
			return a, fmt.Errorf("--listen: %w", err)
		}
		a.fwd.TCP(a.hostLn, vpc.Dialer{Stack: a.host.VPC.Stack}.TCPTo(a.serverAddr))
	}
	return a, nil
}

// Close stops everything in reverse order. Safe on a partly started app.
func (a *app) Close() {
	a.fwd.Close()
	if a.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		a.srv.Shutdown(ctx)
		cancel()
		a.srv.Close()
	}
	a.wg.Wait()
	if a.host != nil {
		a.host.Close()
	}
}
