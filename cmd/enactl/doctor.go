package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/ena/observe"
	"github.com/enanet/enanet/internal/devopen"
	"github.com/enanet/enanet/internal/iperf3"
	"github.com/enanet/enanet/link"
	"github.com/enanet/enanet/link/enanic"
	"github.com/enanet/enanet/link/vpc"
	"github.com/enanet/enanet/vfio/pci"
)

const doctorHelp = `
Qualifies this machine and one device for enanet, step by step, and prints
a pass/fail table with the fix for each failure:

  vfio        the device is bound to vfio-pci; IOMMU (type1) or VFIO
              no-IOMMU mode is available
  hugepages   2 MiB hugepages are reserved for DMA memory
  bar2_wc     the LLQ BAR is mapped write-combining, and a timed burst of
              stores to it runs at write-combining speed, not uncached
  bring_up    the driver brings the device up (the register trace is saved)
  link        the device reports link up
  dhcp        DHCP gives an address, a router and a resolver
  ping        the VPC router (the gateway) answers ICMP echo
  metadata    HTTP GET of the instance metadata service (169.254.169.254)
              through the userspace stack, with an IMDSv2 token
  dns         the VPC resolver resolves this instance's private DNS name
  throughput  a short TCP test (iperf3 protocol) through the device

It writes a report for bug reports: JSON with every result, the host and
device details and the final counters, and the register trace of the
bring-up beside it (FILE.trace.txt).

With --device sim the simulated device and VPC answer everything (DHCP,
ping, DNS, metadata, an iperf3 server), so the command runs anywhere; the
machine checks (vfio, hugepages, bar2_wc) are skipped. On EC2 give
--peer HOST:5201 (a stock iperf3 -s on another instance in the subnet) for
the throughput check. The device must not be in use by another process.`

// Check results.
const (
	statusPass = "pass"
	statusFail = "fail"
	statusSkip = "skip"
)

// doctorCheck is one row of the doctor's table and report.
type doctorCheck struct {
	Name       string  `json:"name"`
	Status     string  `json:"status"`
	Detail     string  `json:"detail"`
	Fix        string  `json:"fix,omitempty"`
	DurationMs float64 `json:"duration_ms"`
}

// doctorReport is the JSON report.
type doctorReport struct {
	ReportVersion int               `json:"report_version"`
	Tool          string            `json:"tool"`
	Time          time.Time         `json:"time"`
	Device        string            `json:"device"`
	Kind          string            `json:"kind,omitempty"`
	Passed        bool              `json:"passed"`
	Host          doctorHost        `json:"host"`
	Checks        []doctorCheck     `json:"checks"`
	Info          *observe.Info     `json:"info,omitempty"`
	Stats         *observe.Snapshot `json:"stats,omitempty"`
	TraceFile     string            `json:"trace_file"`
}

type doctorHost struct {
	Hostname  string `json:"hostname"`
	Kernel    string `json:"kernel"`
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
	UID       int    `json:"uid"`
}

// doctor is one run's state.
type doctor struct {
	e       *env
	device  string
	sim     bool
	profile string
	mode    string
	sysfs   pci.Sysfs
	proc    string
	peer    string
	dur     time.Duration
	dhcpTO  time.Duration
	log     *slog.Logger
	trace   *traceBuffer

	checks  []doctorCheck
	opened  *devopen.Opened
	dev     *ena.Device
	st      *link.Stack
	vpc     *vpc.VPC
	host    string // metadata local-hostname
	localIP netip.Addr
}

// cmdDoctor implements `enactl doctor`.
func cmdDoctor(e *env, args []string) int {
	fs := flagSet("doctor", "enactl doctor --device ADDRESS|sim [--report FILE] [--peer HOST:PORT]", doctorHelp)
	device := fs.String("device", "", "device to qualify: a PCI address bound to vfio-pci, or sim")
	profile := fs.String("profile", "", "enasim instance profile with --device sim: nitro-v3 (default), nitro-v4, no-llq; add +express for ENA Express")
	mode := fs.String("mode", "auto", "VFIO IOMMU mode: auto, iommu or noiommu (also --vfio-mode, as enahttp and enaperf spell it)")
	report := fs.String("report", "", "report file (default enanet-doctor-DEVICE-TIME.json in the current directory)")
	peer := fs.String("peer", "", "iperf3 server HOST:PORT for the throughput check (default: the simulated VPC's with sim, none on hardware)")
	dur := fs.Duration("duration", 2*time.Second, "throughput test length (1s..60s)")
	dhcpTO := fs.Duration("dhcp-timeout", 20*time.Second, "how long to wait for a DHCP lease")
	proc := fs.String("proc", "/proc", "proc root (tests point this at a fixture tree)")
	_ = fs.MarkHidden("proc")
	if ok, code := parse(e, fs, args); !ok {
		return code
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(e.stderr, "enactl doctor: unexpected argument %q (use --device)\n", fs.Arg(0))
		return exitUsage
	}
	if err := checkDevice(*device); err != nil {
		fmt.Fprintf(e.stderr, "enactl doctor: %v\n", err)
		return exitUsage
	}
	if *dur < time.Second || *dur > time.Minute {
		fmt.Fprintf(e.stderr, "enactl doctor: --duration %s: want 1s..60s\n", *dur)
		return exitUsage
	}
	if *dhcpTO < time.Second {
		fmt.Fprintf(e.stderr, "enactl doctor: --dhcp-timeout %s: want at least 1s\n", *dhcpTO)
		return exitUsage
	}
	if *peer != "" {
		if _, err := netip.ParseAddrPort(*peer); err != nil {
			fmt.Fprintf(e.stderr, "enactl doctor: --peer %q: want an IPv4 address and port, e.g. 172.31.5.9:5201\n", *peer)
			return exitUsage
		}
	}
	if *peer != "" && *device == devopen.Sim {
		fmt.Fprintln(e.stderr, "enactl doctor: --peer applies to a real device: with sim the simulated VPC runs the iperf3 server")
		return exitUsage
	}
	if *profile != "" && *device != devopen.Sim {
		fmt.Fprintln(e.stderr, "enactl doctor: --profile applies to --device sim only")
		return exitUsage
	}
	dev := *device
	if dev != devopen.Sim {
		dev, _ = pci.NormalizeAddress(dev)
	}
	path := *report
	if path == "" {
		path = fmt.Sprintf("enanet-doctor-%s-%s.json", strings.ReplaceAll(dev, ":", "_"), time.Now().UTC().Format("20060102-150405"))
	}
	d := &doctor{e: e, device: dev, sim: dev == devopen.Sim, profile: *profile, mode: *mode, sysfs: fs.sysfs(),
		proc: *proc, peer: *peer, dur: *dur, dhcpTO: *dhcpTO, log: slog.New(slog.DiscardHandler), trace: &traceBuffer{max: 8 << 20}}
	ctx, cancel := interruptible()
	defer cancel()
	fmt.Fprintf(e.stdout, "enactl doctor: qualifying %s (report: %s)\n\n", dev, path)
	rep := d.run(ctx)
	rep.TraceFile = strings.TrimSuffix(path, ".json") + ".trace.txt"
	d.printTable(rep)
	if err := writeReport(path, rep.TraceFile, rep, d.trace.Bytes()); err != nil {
		return fail(e, "doctor", err)
	}
	fmt.Fprintf(e.stdout, "\nReport written to %s, register trace to %s.\n", path, rep.TraceFile)
	if !rep.Passed {
		return exitFailure
	}
	return exitOK
}

// run performs every check in order; a check whose prerequisite failed is
// skipped with the reason.
func (d *doctor) run(ctx context.Context) doctorReport {
	defer d.close()
	rep := doctorReport{ReportVersion: 1, Tool: "enactl doctor", Time: time.Now().UTC(), Device: d.device, Host: hostFacts()}
	d.step("vfio", d.checkVFIO)
	d.step("hugepages", d.checkHugepages)
	opened := d.step("open", d.open) // folded into bring_up below when it fails
	d.step("bar2_wc", func() doctorCheck {
		if !opened {
			return skip("the device could not be opened")
		}
		return d.checkWC()
	})
	up := opened && d.step("bring_up", d.bringUp)
	if !opened {
		d.record("bring_up", skip("the device could not be opened (see open)"), 0)
	}
	linkUp := up && d.step("link", d.checkLink)
	if !up {
		d.record("link", skip("needs bring_up"), 0)
	}
	leased := linkUp && d.step("dhcp", func() doctorCheck { return d.checkDHCP(ctx) })
	if !linkUp {
		d.record("dhcp", skip("needs link"), 0)
	}
	for _, c := range []struct {
		name string
		f    func(context.Context) doctorCheck
	}{{"ping", d.checkPing}, {"metadata", d.checkMetadata}, {"dns", d.checkDNS}, {"throughput", d.checkThroughput}} {
		if !leased {
			d.record(c.name, skip("needs an address (dhcp)"), 0)
			continue
		}
		if ctx.Err() != nil {
			d.record(c.name, skip("interrupted"), 0)
			continue
		}
		d.step(c.name, func() doctorCheck { return c.f(ctx) })
	}
	// The "open" step only matters when it failed.
	var checks []doctorCheck
	for _, c := range d.checks {
		if c.Name != "open" || c.Status == statusFail {
			checks = append(checks, c)
		}
	}
	rep.Checks = checks
	rep.Passed = true
	for _, c := range checks {
		if c.Status == statusFail {
			rep.Passed = false
		}
	}
	if d.opened != nil {
		rep.Kind = d.opened.Kind
	}
	if d.dev != nil {
		in := observe.MakeInfo(rep.Kind, d.dev.Info(), d.dev.LinkUp())
		rep.Info = &in
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s := observe.Take(sctx, d.dev, in.Address)
		cancel()
		rep.Stats = &s
	}
	return rep
}

// step runs one check, records it and reports whether it passed (or was
// skipped, which does not stop later checks).
func (d *doctor) step(name string, f func() doctorCheck) bool {
	start := time.Now()
	c := f()
	d.record(name, c, time.Since(start))
	return c.Status != statusFail
}

func (d *doctor) record(name string, c doctorCheck, took time.Duration) {
	c.Name = name
	c.DurationMs = float64(took.Microseconds()) / 1000
	d.checks = append(d.checks, c)
}

func pass(format string, a ...any) doctorCheck {
	return doctorCheck{Status: statusPass, Detail: fmt.Sprintf(format, a...)}
}

func skip(format string, a ...any) doctorCheck {
	return doctorCheck{Status: statusSkip, Detail: fmt.Sprintf(format, a...)}
}

func failed(fix string, format string, a ...any) doctorCheck {
	return doctorCheck{Status: statusFail, Detail: fmt.Sprintf(format, a...), Fix: fix}
}

func (d *doctor) checkVFIO() doctorCheck {
	if d.sim {
		return skip("the simulated device needs no VFIO")
	}
	info, err := d.sysfs.Lookup(d.device)
	if err != nil {
		return failed("run `enactl list` to find the ENA's address", "%v", err)
	}
	if info.Driver != "vfio-pci" {
		drv := info.Driver
		if drv == "" {
			drv = "no driver"
		}
		return failed(fmt.Sprintf("sudo enactl setup && sudo enactl bind %s", d.device), "%s is bound to %s, not vfio-pci", d.device, drv)
	}
	if d.sysfs.IOMMUPresent() {
		return pass("bound to vfio-pci; IOMMU present (type1 mode)")
	}
	if on, _ := d.sysfs.NoIOMMUMode(); on {
		return pass("bound to vfio-pci; no IOMMU, VFIO no-IOMMU mode on")
	}
	return failed("sudo enactl setup (enables VFIO no-IOMMU mode), or on .metal boot with intel_iommu=on iommu=pt",
		"no IOMMU and VFIO no-IOMMU mode is off: VFIO cannot give the device DMA")
}

func (d *doctor) checkHugepages() doctorCheck {
	if d.sim {
		return skip("the simulated device allocates DMA memory from the Go process")
	}
	n, err := readInt(filepath.Join(d.proc, "sys/vm/nr_hugepages"))
	if err != nil {
		return failed("check that /proc is mounted", "reading vm.nr_hugepages: %v", err)
	}
	if n < 64 {
		return failed("sudo enactl setup --hugepages 64 (or boot with hugepagesz=2M hugepages=64)",
			"%d hugepages of 2 MiB reserved, want at least 64 (128 MiB) for rings and buffers", n)
	}
	return pass("%d hugepages of 2 MiB reserved (%d MiB)", n, 2*n)
}

// open opens the device (and for sim the VPC at the far end of its wire).
func (d *doctor) open() doctorCheck {
	o := devopen.Options{Device: d.device, Profile: d.profile, VFIOMode: d.mode, SysfsRoot: d.sysfs.Root, Logger: d.log}
	if d.sim {
		near, far := enasim.NewPair()
		v, err := vpc.New(far, vpc.Config{Logger: d.log})
		if err != nil {
			near.Close()
			return failed("report this as a bug", "simulated VPC: %v", err)
		}
		d.vpc, o.Wire = v, near
	}
	opened, err := devopen.Open(o)
	if err != nil {
		fix := "check `enactl list`: the device must be bound to vfio-pci and not in use by another process"
		if errors.Is(err, os.ErrPermission) {
			fix = "run as root: VFIO devices are root's unless you chown /dev/vfio/N"
		}
		return failed(fix, "%v", err)
	}
	d.opened = opened
	return pass("%s", opened.Kind)
}

// checkWC times a burst of stores to BAR2: write-combined stores reach
// gigabytes per second, uncached ones tens of megabytes.
func (d *doctor) checkWC() doctorCheck {
	if d.sim {
		return skip("the simulated device has no BAR2 mapping to time")
	}
	v := d.opened.VFIO
	bar := v.LLQ()
	if bar == nil {
		return skip("the device has no LLQ BAR (no LLQ: Tx descriptors stay in host memory)")
	}
	const block = 64 << 10
	buf := make([]byte, block)
	n := min(int(bar.Size()), 1<<20) / block
	if n == 0 {
		return failed("report this as a bug", "BAR2 is only %d bytes", bar.Size())
	}
	start := time.Now()
	total := 0
	for time.Since(start) < 50*time.Millisecond || total < 4<<20 {
		for i := range n {
			bar.WriteBlock(uint32(i*block), buf)
		}
		bar.Flush()
		total += n * block
	}
	rate := float64(total) / time.Since(start).Seconds()
	detail := fmt.Sprintf("mapping %s; %s of stores at %s/s", map[bool]string{true: "write-combining", false: "uncached"}[v.WriteCombined()],
		observe.FormatBytes(uint64(total)), observe.FormatBytes(uint64(rate)))
	const wcMin = 500e6 // uncached stores stay far below this
	switch {
	case !v.WriteCombined():
		return failed("use a kernel whose vfio-pci offers resource2_wc (x86 PAT) or AWS's WC-patched vfio-pci; without it LLQ Tx is slow",
			"%s: LLQ BAR not mapped write-combining", detail)
	case rate < wcMin:
		return failed("the mapping claims write-combining but stores run at uncached speed: check PAT (dmesg | grep -i pat) and that nopat is not on the kernel command line",
			"%s, below %s/s: not write-combining", detail, observe.FormatBytes(wcMin))
	}
	return pass("%s", detail)
}

func (d *doctor) bringUp() doctorCheck {
	d.trace.on.Store(true)
	dev, err := ena.Open(d.opened, ena.Config{Trace: d.trace, Logger: d.log})
	d.trace.on.Store(false)
	if err != nil {
		return failed("compare the register trace in the report with `enactl trace --device "+d.device+"`; look for the failing admin command and check dmesg for VFIO errors",
			"%v", err)
	}
	d.dev = dev
	in := dev.Info()
	llq := "host-memory Tx"
	if in.LLQ {
		llq = fmt.Sprintf("LLQ %d B entries", in.LLQEntrySize)
	}
	return pass("%d queue pairs, %s, MTU %d (max %d)", in.Queues, llq, in.MTU, in.MaxMTU)
}

func (d *doctor) checkLink() doctorCheck {
	deadline := time.Now().Add(5 * time.Second)
	for !d.dev.LinkUp() {
		if time.Now().After(deadline) {
			return failed("check in the EC2 console that the network interface is attached to this instance and in state in-use",
				"the device reports link down after 5 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return pass("up")
}

func (d *doctor) checkDHCP(ctx context.Context) doctorCheck {
	st, err := link.NewStack(enanic.New(d.dev), link.StackOptions{DHCP: true, DHCPTimeout: d.dhcpTO, Logger: d.log})
	if err != nil {
		return failed("check that the network interface has a private IPv4 address and that no other process owns the device; for a static address use enahttp --ip",
			"%v", err)
	}
	d.st = st
	l := st.Lease()
	addr, gw := st.Addr()
	d.localIP = addr.Addr()
	if !gw.IsValid() {
		return failed("the DHCP server sent no router: check the subnet's route table", "address %s but no router", addr)
	}
	dns := "no resolver"
	if l != nil && len(l.DNS) > 0 {
		dns = "resolver " + l.DNS[0].String()
	}
	return pass("%s via %s, %s", addr, gw, dns)
}

func (d *doctor) checkPing(ctx context.Context) doctorCheck {
	_, gw := d.st.Addr()
	var rtts []time.Duration
	var lastErr error
	for seq := range 3 {
		rtt, err := ping(ctx, d.st, gw, uint16(seq+1), 2*time.Second)
		if err != nil {
			lastErr = err
			continue
		}
		rtts = append(rtts, rtt)
	}
	if len(rtts) == 0 {
		return failed("the VPC router answers ICMP echo from its subnet; check the network ACL allows ICMP, and look at the counters in the report for drops",
			"no reply from %s in 3 tries: %v", gw, lastErr)
	}
	var sum time.Duration
	for _, r := range rtts {
		sum += r
	}
	avg := sum / time.Duration(len(rtts))
	return pass("%d/3 replies from %s, average round trip %s", len(rtts), gw, fmtMs(float64(avg.Microseconds())/1000))
}

// metadata service requests (IMDSv2: a PUT for a token, then GETs).
func (d *doctor) checkMetadata(ctx context.Context) doctorCheck {
	dial := vpc.Dialer{Stack: d.st}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: dial.DialContext, DisableKeepAlives: true}}
	base := "http://" + vpc.MetadataAddr.String()
	const fix = "check the instance's metadata options: the endpoint enabled (aws ec2 modify-instance-metadata-options --http-endpoint enabled) and a hop limit of at least 1"
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, base+"/latest/api/token", nil)
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	resp, err := c.Do(req)
	if err != nil {
		return failed(fix, "PUT %s/latest/api/token: %v", base, err)
	}
	tok, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return failed(fix, "PUT %s/latest/api/token: HTTP %s", base, resp.Status)
	}
	get := func(key string) (string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/latest/meta-data/"+key, nil)
		req.Header.Set("X-aws-ec2-metadata-token", string(tok))
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("HTTP %s", resp.Status)
		}
		return strings.TrimSpace(string(b)), nil
	}
	id, err := get("instance-id")
	if err != nil {
		return failed(fix, "GET instance-id: %v", err)
	}
	d.host, err = get("local-hostname")
	if err != nil {
		return failed(fix, "GET local-hostname: %v", err)
	}
	return pass("instance %s, hostname %s (IMDSv2 token)", id, d.host)
}

func (d *doctor) checkDNS(ctx context.Context) doctorCheck {
	addr, _ := d.st.Addr()
	server := netip.Addr{}
	if l := d.st.Lease(); l != nil && len(l.DNS) > 0 {
		server = l.DNS[0]
	} else {
		// The Amazon resolver sits at the VPC's base address + 2; the
		// subnet's base is the best guess without the VPC's CIDR.
		b := addr.Masked().Addr().As4()
		b[3] += 2
		server = netip.AddrFrom4(b)
	}
	name := d.host
	if name == "" {
		name = "ip-" + strings.ReplaceAll(addr.Addr().String(), ".", "-") + ".ec2.internal"
	}
	dial := vpc.Dialer{Stack: d.st}
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return dial.DialContext(ctx, "udp", netip.AddrPortFrom(server, 53).String())
	}}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	got, err := r.LookupNetIP(lctx, "ip4", name)
	const fix = "check that the VPC has DNS resolution enabled (enableDnsSupport) and that the network ACL allows UDP 53 to the resolver"
	if err != nil {
		return failed(fix, "looking up %s at %s: %v", name, server, err)
	}
	for _, a := range got {
		if a == addr.Addr() {
			return pass("%s resolves to %s at %s", name, a, server)
		}
	}
	return failed(fix, "%s resolved to %v at %s, not to this instance's %s", name, got, server, addr.Addr())
}

func (d *doctor) checkThroughput(ctx context.Context) doctorCheck {
	target := d.peer
	if target == "" && d.sim {
		ln, err := d.vpc.Stack.ListenTCP(5201)
		if err != nil {
			return failed("report this as a bug", "iperf3 server on the simulated VPC: %v", err)
		}
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		srv := &iperf3.Server{Listener: ln, OneOff: true, Interval: -1, Logger: d.log}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); srv.Serve(sctx) }()
		defer wg.Wait()
		target = netip.AddrPortFrom(d.vpc.Router(), 5201).String()
	}
	if target == "" {
		return skip("give --peer HOST:5201, a stock `iperf3 -s` on another instance in the subnet, to measure throughput")
	}
	rep, err := iperf3.Run(ctx, iperf3.ClientConfig{Addr: target, Dialer: vpc.Dialer{Stack: d.st}, Duration: d.dur, Interval: -1})
	if err == nil && rep != nil && rep.Error != "" {
		err = errors.New(rep.Error)
	}
	const fix = "run enaperf -c against the same server for details, and look at the queue counters in the report for drops or stalls"
	if err != nil {
		return failed(fix, "TCP test to %s: %v", target, err)
	}
	sum := rep.End.SumReceived
	if sum == nil {
		sum = rep.End.Sum
	}
	if sum == nil || sum.Bytes == 0 {
		return failed(fix, "TCP test to %s moved no data", target)
	}
	note := ""
	if d.sim {
		note = " (simulated wire: a software number, not the instance's)"
	}
	return pass("%s over %.1f s to %s%s", observe.FormatBits(sum.BitsPerSecond), sum.Seconds, target, note)
}

func (d *doctor) close() {
	if d.st != nil {
		d.st.Close()
	}
	if d.dev != nil {
		d.dev.Close()
	}
	if d.opened != nil {
		d.opened.Close()
	}
	if d.vpc != nil {
		d.vpc.Close()
	}
}

func (d *doctor) printTable(rep doctorReport) {
	w := d.e.stdout
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tRESULT\tTIME\tDETAIL")
	for _, c := range rep.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, strings.ToUpper(c.Status), fmtMs(c.DurationMs), c.Detail)
	}
	tw.Flush()
	var fixes []doctorCheck
	for _, c := range rep.Checks {
		if c.Status == statusFail {
			fixes = append(fixes, c)
		}
	}
	if len(fixes) == 0 {
		fmt.Fprintln(w, "\nAll checks passed.")
		return
	}
	fmt.Fprintf(w, "\n%d check(s) failed. Fixes:\n", len(fixes))
	for _, c := range fixes {
		fmt.Fprintf(w, "  %s: %s\n", c.Name, c.Fix)
	}
}

func fmtMs(ms float64) string {
	if ms >= 1000 {
		return strconv.FormatFloat(ms/1000, 'f', 2, 64) + " s"
	}
	return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
}

func writeReport(path, tracePath string, rep doctorReport, trace []byte) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	if err := os.WriteFile(tracePath, trace, 0o644); err != nil {
		return fmt.Errorf("writing the trace: %w", err)
	}
	return nil
}

func hostFacts() doctorHost {
	h := doctorHost{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), UID: os.Geteuid()}
	h.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	return h
}

// traceBuffer keeps the driver's trace while on, up to max bytes.
type traceBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
	on  atomic.Bool
}

func (t *traceBuffer) Write(p []byte) (int, error) {
	if !t.on.Load() {
		return len(p), nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.buf.Len()+len(p) <= t.max {
		t.buf.Write(p)
	}
	return len(p), nil
}

func (t *traceBuffer) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Clone(t.buf.Bytes())
}
