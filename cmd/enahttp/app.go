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
	"os"
	"strings"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/ena/hw"
	"github.com/enanet/enanet/internal/devopen"
	"github.com/enanet/enanet/link"
	"github.com/enanet/enanet/link/enanic"
)

// config is the command line.
type config struct {
	device, ip, gw string
	dhcp           bool
	queues         int
	llq            string
	mtu, port      int
	pcap, profile  string
	listen         string
	verbose        bool
	vfioMode       string // auto, iommu, noiommu
	iovaIsPhys     bool   // type1 with IOVA == physical (QEMU proxy rig)
	poll           bool   // no interrupts: admin polling and busy-poll Rx
	log            *slog.Logger
}

// The simulated VPC: a /20 like a default VPC subnet, the router at base+1
// as on EC2, and DHCP leases from .10.
var (
	vpcRouter    = netip.MustParsePrefix("172.31.0.1/20")
	vpcFirstDHCP = netip.MustParseAddr("172.31.0.10")
	vpcMAC       = [6]byte{0x02, 0xec, 0x2f, 0x00, 0x00, 0x01}
)

// app is a running enahttp: device, stack, HTTP server and, for the
// simulated device, the VPC and the host forwarder.
type app struct {
	cfg     config
	kind    string // "simulated ENA (nitro-v3)" or "vfio 0000:00:06.0"
	started time.Time

	hwdev  hw.Device
	closer io.Closer // the hw backend
	sim    *enasim.Device
	dev    *ena.Device
	st     *link.Stack
	pcap   *os.File

	srv        *http.Server
	serverAddr netip.AddrPort

	vpc     *link.Stack
	vpcNIC  *link.WireNIC
	dhcpSrv *link.DHCPServer
	hostLn  net.Listener
	fwd     sync.WaitGroup
	connsMu sync.Mutex
	conns   map[net.Conn]struct{}

	wg    sync.WaitGroup
	fatal chan error
}

// URL is where a user reaches the page.
func (a *app) URL() string {
	if a.hostLn != nil {
		return "http://" + a.hostLn.Addr().String() + "/"
	}
	return "http://" + a.serverAddr.String() + "/"
}

func parseLLQ(s string) (ena.LLQPolicy, error) {
	switch strings.ToLower(s) {
	case "", "default":
		return ena.LLQDefault, nil
	case "normal", "128":
		return ena.LLQNormal, nil
	case "large", "256":
		return ena.LLQLarge, nil
	case "off", "none", "host":
		return ena.LLQOff, nil
	}
	return 0, fmt.Errorf("--llq %q: want default, normal, large or off", s)
}

// start brings everything up; on error it tears down what it built.
func start(c config) (a *app, err error) {
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	llq, err := parseLLQ(c.llq)
	if err != nil {
		return nil, err
	}
	if c.port <= 0 || c.port > 65535 {
		return nil, fmt.Errorf("--port %d out of range", c.port)
	}
	a = &app{cfg: c, started: time.Now(), conns: map[net.Conn]struct{}{}, fatal: make(chan error, 1)}
	defer func() {
		if err != nil {
			a.Close()
			a = nil
		}
	}()

	sim := devopen.IsSim(c.device)
	var wire enasim.Wire
	if sim {
		var far enasim.Wire
		wire, far = enasim.NewPair()
		if err := a.startVPC(far); err != nil {
			wire.Close()
			return a, err
		}
	}
	opened, err := devopen.Open(devopen.Options{
		Device: c.device, Profile: c.profile, Wire: wire, VFIOMode: c.vfioMode,
		IOVAIsPhys: c.iovaIsPhys, NoInterrupts: c.poll, Logger: c.log,
	})
	if err != nil {
		if wire != nil {
			wire.Close()
		}
		return a, err
	}
	a.sim, a.hwdev, a.closer = opened.Sim, opened, opened
	a.kind = opened.Kind

	a.dev, err = ena.Open(a.hwdev, ena.Config{Queues: c.queues, LLQ: llq, MTU: c.mtu, Logger: c.log,
		PollMode: c.poll, AdminPolling: c.poll})
	if err != nil {
		return a, err
	}

	opts := link.StackOptions{Logger: c.log}
	switch {
	case c.ip != "":
		if c.dhcp {
			return a, errors.New("--ip and --dhcp exclude each other")
		}
		if opts.Addr, err = netip.ParsePrefix(c.ip); err != nil {
			return a, fmt.Errorf("--ip: %w", err)
		}
		if c.gw != "" {
			if opts.Gateway, err = netip.ParseAddr(c.gw); err != nil {
				return a, fmt.Errorf("--gw: %w", err)
			}
		}
	case !sim && !c.dhcp:
		return a, errors.New("a real device needs --ip or --dhcp")
	default:
		opts.DHCP = true
		opts.DHCPTimeout = 20 * time.Second
	}
	if c.pcap != "" {
		if a.pcap, err = os.Create(c.pcap); err != nil {
			return a, fmt.Errorf("--pcap: %w", err)
		}
		opts.Endpoint.Pcap = a.pcap
	}
	opts.Endpoint.OnFatal = func(err error) {
		// The endpoint removes the NIC; main exits with the cause.
		select {
		case a.fatal <- fmt.Errorf("device failed: %w", err):
		default:
		}
	}
	if a.st, err = link.NewStack(enanic.New(a.dev), opts); err != nil {
		return a, err
	}

	addr, _ := a.st.Addr()
	a.serverAddr = netip.AddrPortFrom(addr.Addr(), uint16(c.port))
	ln, err := a.st.ListenTCP(uint16(c.port))
	if err != nil {
		return a, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.handleHTML)
	mux.HandleFunc("GET /api/v1/status", a.handleJSON)
	mux.HandleFunc("GET /bytes", handleBytes)
	mux.HandleFunc("POST /sink", handleSink)
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.srv.Serve(ln) // returns when Close shuts the server down
	}()

	if sim {
		if err := a.startForwarder(); err != nil {
			return a, err
		}
	}
	return a, nil
}

// startVPC puts a DHCP server and router on the far end of the wire: a
// second userspace stack on a software NIC that behaves like the VPC side.
func (a *app) startVPC(w enasim.Wire) error {
	a.vpcNIC = link.NewWireNIC(w, link.WireNICConfig{MAC: vpcMAC, MaxMTU: 9001, MTU: 9001,
		Offloads: link.Offloads{TxCsumIPv4: true, TxL4CsumIPv4Partial: true, TxL4CsumIPv6Partial: true, RxCsumIPv4: true, RxCsumL4: true}})
	var err error
	a.vpc, err = link.NewStack(a.vpcNIC, link.StackOptions{Addr: vpcRouter, NICName: "vpc0", Logger: a.cfg.log})
	if err != nil {
		return fmt.Errorf("simulated VPC: %w", err)
	}
	a.dhcpSrv, err = a.vpc.ServeDHCP(link.DHCPServerConfig{First: vpcFirstDHCP, Count: 100, Router: vpcRouter.Addr()})
	if err != nil {
		return fmt.Errorf("simulated VPC: %w", err)
	}
	return nil
}

// startForwarder listens on the host and splices each connection through
// the VPC stack to the server on the simulated ENA.
func (a *app) startForwarder() error {
	ln, err := net.Listen("tcp", a.cfg.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	a.hostLn = ln
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // listener closed
			}
			a.fwd.Add(1)
			go a.forward(c)
		}
	}()
	return nil
}

func (a *app) track(c net.Conn, add bool) {
	a.connsMu.Lock()
	defer a.connsMu.Unlock()
	if add {
		a.conns[c] = struct{}{}
	} else {
		delete(a.conns, c)
	}
}

// forward copies both ways between a host connection and one through the
// VPC, closing write halves so each side sees the other's EOF.
func (a *app) forward(hc net.Conn) {
	defer a.fwd.Done()
	defer hc.Close()
	a.track(hc, true)
	defer a.track(hc, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	vc, err := a.vpc.DialTCP(ctx, a.serverAddr)
	cancel()
	if err != nil {
		a.cfg.log.Warn("enahttp: forwarding", "err", err)
		return
	}
	defer vc.Close()
	a.track(vc, true)
	defer a.track(vc, false)
	done := make(chan struct{})
	go func() {
		io.Copy(vc, hc)
		vc.(*gonet.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(hc, vc)
	if tc, ok := hc.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	<-done
}

// Close stops everything in reverse order. Safe on a partly started app.
func (a *app) Close() {
	if a.hostLn != nil {
		a.hostLn.Close()
	}
	a.connsMu.Lock()
	for c := range a.conns {
		c.Close()
	}
	a.connsMu.Unlock()
	a.fwd.Wait()
	if a.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		a.srv.Shutdown(ctx)
		cancel()
		a.srv.Close()
	}
	a.wg.Wait()
	if a.st != nil {
		a.st.Close()
	}
	if a.dev != nil {
		a.dev.Close()
	}
	if a.closer != nil {
		a.closer.Close()
	}
	if a.dhcpSrv != nil {
		a.dhcpSrv.Close()
	}
	if a.vpc != nil {
		a.vpc.Close()
	}
	if a.vpcNIC != nil {
		a.vpcNIC.Close()
	}
	if a.pcap != nil {
		a.pcap.Close()
	}
}
