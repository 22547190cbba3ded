package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
	// listen6 is the host IPv6 address forwarded to the server's IPv6
	// address; "" or "off" forwards none.
	listen6 string
	// listenSet, listen6Set: --listen, --listen6 was given (they apply to
	// the simulated device only, so a real device refuses them rather than
	// ignoring them; a --listen6 the host cannot bind is an error only
	// when asked for).
	listenSet, listen6Set bool
	verbose               bool
	log                   *slog.Logger
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

	fwd     *vpc.Forwarder
	hostLn  net.Listener
	hostLn6 net.Listener // nil: no IPv6 forward (off, or the host has no IPv6)

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

// URL6 is where a user reaches the page over IPv6: the host's forwarded
// IPv6 address with the simulated device, else the server's global IPv6
// address; "" when there is neither.
func (a *app) URL6() string {
	if a.hostLn6 != nil {
		return "http://" + a.hostLn6.Addr().String() + "/"
	}
	if a.hostLn != nil {
		return ""
	}
	if addr6, _ := a.st.Addr6(); addr6.IsValid() {
		return "http://" + netip.AddrPortFrom(addr6.Addr(), uint16(a.cfg.port)).String() + "/"
	}
	return ""
}

// serverAddrs are the addresses the server answers on, IPv4 first: the
// IPv4 address, the global IPv6 address (DHCPv6 or static) and the IPv6
// link-local one, whichever the stack has.
func (a *app) serverAddrs() []string {
	port := uint16(a.cfg.port)
	var out []string
	if addr, _ := a.st.Addr(); addr.IsValid() {
		out = append(out, netip.AddrPortFrom(addr.Addr(), port).String())
	}
	if addr6, _ := a.st.Addr6(); addr6.IsValid() {
		out = append(out, netip.AddrPortFrom(addr6.Addr(), port).String())
	}
	if ll := a.st.LinkLocal(); ll.IsValid() {
		out = append(out, "link-local "+netip.AddrPortFrom(ll, port).String())
	}
	return out
}

// banner is the startup message: where the server is and how to reach it.
func (a *app) banner() string {
	var b strings.Builder
	fmt.Fprintf(&b, "enahttp: serving on %s (%s); try:\n", strings.Join(a.serverAddrs(), ", "), a.kind)
	fmt.Fprintf(&b, "  curl %s\n", a.URL())
	if u := a.URL6(); u != "" {
		fmt.Fprintf(&b, "  curl -6 '%s'\n", u) // quoted: a shell may glob the brackets
	}
	fmt.Fprintf(&b, "  curl %sapi/v1/status\n", a.URL())
	return b.String()
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
	if c.listen6Set && !devopen.IsSim(c.Device) {
		return nil, fmt.Errorf("--listen6 applies to the simulated device only: with --device %s the server is at its own IPv6 address, --ip6 or the DHCPv6 lease", c.Device)
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
			return a, listenError("--listen", c.listen, "127.0.0.1:8081", err)
		}
		a.fwd.TCP(a.hostLn, vpc.Dialer{Stack: a.host.VPC.Stack}.TCPTo(a.serverAddr))
		if err := a.forward6(); err != nil {
			return a, err
		}
	}
	return a, nil
}

// forward6 forwards --listen6 on the host to the server's IPv6 address
// through the VPC router, when the VPC offers IPv6. A host that cannot
// bind the default [::1] (IPv6 off) loses only this forward.
func (a *app) forward6() error {
	l6 := a.cfg.listen6
	if l6 == "" || l6 == "off" || !a.host.VPC.Router6().IsValid() {
		if a.cfg.listen6Set && l6 != "" && l6 != "off" {
			return fmt.Errorf("--listen6 %s: the simulated VPC has no IPv6 (--ip6 or DHCPv6 gives the server an IPv6 address)", l6)
		}
		return nil
	}
	ln, err := net.Listen("tcp", l6)
	if err != nil {
		if a.cfg.listen6Set {
			return listenError("--listen6", l6, "[::1]:8081", err)
		}
		a.cfg.log.Warn("enahttp: no IPv6 forward from the host (--listen6 off silences this)", "listen6", l6, "err", err)
		return nil
	}
	a.hostLn6 = ln
	a.fwd.TCP(ln, vpc.Dialer{Stack: a.host.VPC.Stack}.TCPTo6(a.st, uint16(a.cfg.port)))
	return nil
}

// listenError says why the host could not listen on addr for flag, and
// what to give instead (example is a valid value).
func listenError(flag, addr, example string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s %s: the address is in use (another enahttp?): stop that process or choose a free port, e.g. %s %s", flag, addr, flag, example)
	}
	if errors.Is(err, syscall.EADDRNOTAVAIL) {
		return fmt.Errorf("%s %s: the host has no such address: give one of its own (127.0.0.1, ::1, or an interface's), e.g. %s %s", flag, addr, flag, example)
	}
	_, port, serr := net.SplitHostPort(addr)
	if serr != nil {
		return fmt.Errorf("%s %q: want HOST:PORT, e.g. %s %s", flag, addr, flag, example)
	}
	if p, perr := strconv.ParseUint(port, 10, 16); perr != nil || p == 0 && port != "0" {
		return fmt.Errorf("%s %s: port %q: want 1 to 65535 (0 picks a free one), e.g. %s %s", flag, addr, port, flag, example)
	}
	return fmt.Errorf("%s %s: %w", flag, addr, err)
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
