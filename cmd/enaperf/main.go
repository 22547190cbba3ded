// Command enaperf is an iperf3-compatible server and client on the
// userspace stack: gVisor's netstack on an ENA (the simulated device of
// package enasim by default, or a real one bound to vfio-pci), or on the
// kernel's sockets as a baseline (--device kernel).
//
// A stock iperf3 drives it and it drives a stock iperf3: the iperf3
// control protocol, TCP and UDP streams, -R, -P, -t, -l, -b and -J.
//
// With the simulated device nothing needs root. The far end of the
// simulated wire is a small VPC (a DHCP server and router on a second
// userspace stack) and host ports are forwarded through it, TCP and UDP:
//
//	enaperf -s                      # listens on the simulated ENA
//	iperf3 -c 127.0.0.1 -t 5        # host iperf3, forwarded to it
//	iperf3 -c 127.0.0.1 -u -b 100M -l 1400 -R
//
//	iperf3 -s -p 5202 &             # a host iperf3 server
//	enaperf -c 127.0.0.1 -p 5202    # our client on the simulated ENA; the
//	                                # VPC router forwards to the host
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/enanet/enanet/internal/iperf3"
	"github.com/enanet/enanet/internal/netenv"
)

// config is the command line.
type config struct {
	server          bool
	client          string
	port            int
	udp             bool
	reverse         bool
	bidir           bool
	streams         int
	secs            float64
	secsSet         bool
	omit            float64
	bytes           uint64
	blocks          uint64
	length          int
	rate            uint64
	rateSet         bool
	json            bool
	oneOff          bool
	intvl           float64
	bind            string
	cport           int
	family          string // "", "4" or "6"
	sock            iperf3.SocketOptions
	title           string
	format          byte
	getServerOutput bool
	counters64      bool
	connectTimeout  time.Duration
	logfile         string
	timestamps      string // strftime format; "" = none
	pidfile         string
	affinity        string
	zerocopy        bool
	verbose         bool
	version         bool
	// ignored lists accepted options that mean nothing here, with why.
	ignored []string

	netenv.Config
	listen string
	debug  bool

	log *slog.Logger
}

// ignoredOption is an iperf3 option enaperf accepts so scripts run
// unchanged, and reports as ignored.
type ignoredOption struct {
	long, short string
	value       bool // takes an argument
	why         string
}

var ignoredOptions = []ignoredOption{
	{"file", "F", true, "no file transfer: data is generated in memory"},
	{"bind-dev", "", true, "the userspace stack has no kernel network device to bind"},
	{"daemon", "D", false, "enaperf stays in the foreground; use your service manager"},
	{"server-bitrate-limit", "", true, "not enforced by the enaperf server"},
	{"idle-timeout", "", true, "not enforced by the enaperf server"},
	{"rsa-private-key-path", "", true, "no authentication in enaperf"},
	{"authorized-users-path", "", true, "no authentication in enaperf"},
	{"time-skew-threshold", "", true, "no authentication in enaperf"},
	{"username", "", true, "no authentication in enaperf"},
	{"rsa-public-key-path", "", true, "no authentication in enaperf"},
	{"use-pkcs1-padding", "", false, "no authentication in enaperf"},
	{"pacing-timer", "", true, "-b pacing runs per block in the application"},
	{"fq-rate", "", true, "no fair-queueing qdisc on the userspace stack; use -b"},
	{"flowlabel", "L", true, "IPv6 flow labels are not set by the userspace stack"},
	{"repeating-payload", "", false, "the payload stays random"},
	{"dont-fragment", "", false, "the stack does not set DF on request"},
	{"extra-data", "", true, "not carried"},
	{"mptcp", "m", false, "no MPTCP in gVisor"},
}

// parseFlags reads the command line. --help prints the options to stdout
// (as iperf3 does) and returns pflag.ErrHelp; a bad option returns an error
// that names it and the fix, never the Go parser's wording.
func parseFlags(args []string, stdout, stderr io.Writer) (config, error) {
	var c config
	fs := pflag.NewFlagSet("enaperf", pflag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are rewritten and reported by the caller
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprint(stdout, `Usage: enaperf -s [options]          serve iperf3 clients on the userspace stack
       enaperf -c HOST [options]     run a test against an iperf3 server

enaperf takes iperf3 3.12's options with iperf3's spelling and defaults; options that
mean nothing on a userspace stack are accepted and reported as ignored.

`)
		fmt.Fprint(stdout, fs.FlagUsages())
	}
	fs.BoolVarP(&c.server, "server", "s", false, "run as a server")
	fs.StringVarP(&c.client, "client", "c", "", "run as a client of the iperf3 server at HOST")
	fs.IntVarP(&c.port, "port", "p", iperf3.DefaultPort, "server port")
	format := fs.StringP("format", "f", "a", "rate unit: k m g t (bits/s), K M G T (bytes/s), a/A adaptive")
	fs.Float64VarP(&c.intvl, "interval", "i", 1, "seconds between interval reports (0: none)")
	fs.StringVarP(&c.pidfile, "pidfile", "I", "", "write the process id to FILE")
	fs.StringVarP(&c.affinity, "affinity", "A", "", "pin enaperf's threads to CPU n (n,m: m is the server's, which the enaperf server ignores)")
	fs.StringVarP(&c.bind, "bind", "B", "", "local address: the server listens on it, the client binds it (an address of the userspace stack, or of the host with --device kernel)")
	fs.BoolVarP(&c.verbose, "verbose", "V", false, "more detail in the output (CPU use)")
	fs.BoolVarP(&c.json, "json", "J", false, "print iperf3-style JSON")
	fs.StringVar(&c.logfile, "logfile", "", "send output to FILE (appended) instead of standard output")
	forceflush := fs.Bool("forceflush", false, "flush output after every line (enaperf never buffers; accepted for scripts)")
	fs.StringVar(&c.timestamps, "timestamps", "", "prefix every output line with the time (strftime FORMAT, default \"%c \")")
	fs.Lookup("timestamps").NoOptDefVal = "%c "
	fs.BoolVarP(&c.debug, "debug", "d", false, "log driver, stack and protocol events")
	fs.BoolVarP(&c.version, "version", "v", false, "print the version and exit")
	fs.BoolVarP(&c.oneOff, "one-off", "1", false, "server: handle one test, then exit")
	fs.BoolVarP(&c.udp, "udp", "u", false, "UDP streams")
	connTimeout := fs.Int("connect-timeout", 0, "client: connection timeout in ms (0: 10 s)")
	rate := fs.StringP("bitrate", "b", "", "target bitrate per stream, e.g. 100M (default unlimited for TCP, 1M for UDP; 0 = unlimited)")
	fs.Float64VarP(&c.secs, "time", "t", 10, "test length in seconds")
	nbytes := fs.StringP("bytes", "n", "", "end after this many bytes, e.g. 1G (instead of -t)")
	nblocks := fs.StringP("blockcount", "k", "", "end after this many blocks (instead of -t)")
	length := fs.StringP("length", "l", "", "read/write length, e.g. 128K (default 128K for TCP, 1460 for UDP)")
	fs.IntVar(&c.cport, "cport", 0, "client: local port of the data streams (each further stream the next port)")
	fs.IntVarP(&c.streams, "parallel", "P", 1, "parallel streams")
	fs.BoolVarP(&c.reverse, "reverse", "R", false, "reverse: the server sends")
	fs.BoolVar(&c.bidir, "bidir", false, "both directions at once")
	window := fs.StringP("window", "w", "", "socket send and receive buffer size, e.g. 256K (default: the stack's auto-tuning)")
	fs.IntVarP(&c.sock.MSS, "set-mss", "M", 0, "TCP maximum segment size")
	fs.BoolVarP(&c.sock.NoDelay, "no-delay", "N", false, "disable Nagle's algorithm")
	v4 := fs.BoolP("version4", "4", false, "IPv4 only")
	v6 := fs.BoolP("version6", "6", false, "IPv6 only")
	tos := fs.StringP("tos", "S", "", "IP type of service, e.g. 0x10")
	dscp := fs.String("dscp", "", "DSCP value (sets the top six bits of -S)")
	fs.BoolVarP(&c.zerocopy, "zerocopy", "Z", false, "zero-copy send (accepted; the userspace stack copies each write once either way)")
	fs.Float64VarP(&c.omit, "omit", "O", 0, "leave the first SECONDS out of the results")
	fs.StringVarP(&c.title, "title", "T", "", "prefix every output line with TITLE")
	fs.StringVarP(&c.sock.Congestion, "congestion", "C", "", "TCP congestion control: reno or cubic on the userspace stack")
	fs.BoolVar(&c.getServerOutput, "get-server-output", false, "print the server's report too")
	fs.BoolVar(&c.counters64, "udp-counters-64bit", false, "64-bit UDP packet counters")
	sctp := fs.Bool("sctp", false, "SCTP (not supported: the userspace stack has none)")
	ignoredVals := map[string]*string{}
	ignoredBools := map[string]*bool{}
	for _, o := range ignoredOptions {
		help := "ignored: " + o.why
		if o.value {
			ignoredVals[o.long] = fs.StringP(o.long, o.short, "", help)
		} else {
			ignoredBools[o.long] = fs.BoolP(o.long, o.short, false, help)
		}
	}
	fs.StringVar(&c.Device, "device", "sim", `"sim" (simulated ENA), "kernel" (kernel sockets), or the PCI address of an ENA bound to vfio-pci`)
	netenv.AddFlags(fs, &c.Config)
	fs.StringVar(&c.listen, "listen", "", "--device sim server: host address forwarded (TCP and UDP) through the simulated VPC to the server (default 127.0.0.1:PORT, and [::1]:PORT to the stack's IPv6 address)")
	if err := fs.Parse(args); err != nil {
		return c, netenv.FlagError(fs, err)
	}
	if c.version {
		return c, nil
	}
	_ = forceflush
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q (options take one dash for a letter, two for a word)", fs.Args())
	}
	if c.server == (c.client != "") {
		return c, errors.New("give exactly one of -s (server) and -c HOST (client)")
	}
	if *sctp {
		return c, errors.New("--sctp: the userspace stack has no SCTP; use TCP (the default) or -u")
	}
	if c.port <= 0 || c.port > 65535 {
		return c, fmt.Errorf("-p %d: want a port in 1..65535", c.port)
	}
	c.secsSet = fs.Changed("time")
	if c.secs <= 0 || c.secs > 86400 {
		return c, fmt.Errorf("-t %v: want 0 < t <= 86400 seconds", c.secs)
	}
	if c.omit < 0 || c.omit > 600 {
		return c, fmt.Errorf("-O %v: want 0..600 seconds", c.omit)
	}
	if c.streams < 1 || c.streams > iperf3.MaxStreams {
		return c, fmt.Errorf("-P %d: want 1..%d streams", c.streams, iperf3.MaxStreams)
	}
	if c.intvl < 0 || c.intvl > 60 || (c.intvl > 0 && c.intvl < 0.1) {
		return c, fmt.Errorf("-i %v: want 0 (no interval reports) or 0.1..60 seconds", c.intvl)
	}
	if c.cport < 0 || c.cport > 65535 {
		return c, fmt.Errorf("--cport %d: want a port in 1..65535", c.cport)
	}
	if c.sock.MSS < 0 || (c.sock.MSS > 0 && (c.sock.MSS < 88 || c.sock.MSS > 9216)) {
		return c, fmt.Errorf("-M %d: want an MSS in 88..9216 bytes", c.sock.MSS)
	}
	if *v4 && *v6 {
		return c, errors.New("give -4 or -6, not both")
	}
	if *v4 {
		c.family = "4"
	} else if *v6 {
		c.family = "6"
	}
	switch *format {
	case "k", "m", "g", "t", "K", "M", "G", "T", "a", "A", "b", "B":
		c.format = (*format)[0]
	default:
		return c, fmt.Errorf("-f %q: want one of k m g t (bits/s), K M G T (bytes/s), a or A (adaptive)", *format)
	}
	if *connTimeout < 0 {
		return c, fmt.Errorf("--connect-timeout %d: want milliseconds >= 0", *connTimeout)
	}
	c.connectTimeout = time.Duration(*connTimeout) * time.Millisecond
	var err error
	if *length != "" {
		n, err := parseSize(*length, 1024)
		max := uint64(iperf3.MaxBlockSize)
		if c.udp {
			max = iperf3.MaxUDPBlockSize
		}
		if err != nil || n == 0 || n > max {
			return c, fmt.Errorf("-l %q: want a length in 1..%d bytes, e.g. 128K", *length, max)
		}
		c.length = int(n)
	}
	if *rate != "" {
		if c.rate, err = parseSize(*rate, 1000); err != nil {
			return c, fmt.Errorf("-b %q: want a rate in bits/s such as 100M or 2.5G (0 = unlimited)", *rate)
		}
		c.rateSet = true
	}
	if *nbytes != "" {
		if c.bytes, err = parseSize(*nbytes, 1024); err != nil || c.bytes == 0 {
			return c, fmt.Errorf("-n %q: want a byte count such as 100M", *nbytes)
		}
	}
	if *nblocks != "" {
		if c.blocks, err = parseSize(*nblocks, 1024); err != nil || c.blocks == 0 {
			return c, fmt.Errorf("-k %q: want a block count such as 1000 or 10K", *nblocks)
		}
	}
	if (c.bytes > 0 || c.blocks > 0) && c.secsSet {
		return c, errors.New("-t with -n or -k: give one end condition (time, bytes or blocks)")
	}
	if c.bytes > 0 && c.blocks > 0 {
		return c, errors.New("-n with -k: give one end condition (bytes or blocks)")
	}
	if *window != "" {
		w, err := parseSize(*window, 1024)
		if err != nil || w == 0 || w > 512<<20 {
			return c, fmt.Errorf("-w %q: want a buffer size in 1..512M bytes, e.g. 256K", *window)
		}
		c.sock.Window = int(w)
	}
	if *tos != "" {
		v, err := strconv.ParseInt(*tos, 0, 16)
		if err != nil || v < 0 || v > 255 {
			return c, fmt.Errorf("-S %q: want a TOS byte, 0..255 (decimal, 0x hex or 0 octal)", *tos)
		}
		c.sock.TOS = int(v)
	}
	if *dscp != "" {
		v, err := strconv.ParseInt(*dscp, 0, 16)
		if err != nil || v < 0 || v > 63 {
			return c, fmt.Errorf("--dscp %q: want 0..63", *dscp)
		}
		c.sock.TOS = int(v) << 2
	}
	switch c.sock.Congestion {
	case "", "reno", "cubic":
	default:
		if c.Device != "kernel" {
			return c, fmt.Errorf("-C %q: the userspace stack has reno and cubic", c.sock.Congestion)
		}
	}
	for _, o := range ignoredOptions {
		if fs.Changed(o.long) {
			c.ignored = append(c.ignored, "--"+o.long+": "+o.why)
		}
	}
	if c.zerocopy {
		c.ignored = append(c.ignored, "-Z: zero-copy send has no meaning on the userspace stack: each write is copied once into gVisor's send buffer either way")
	}
	if c.server {
		for _, f := range []string{"client", "udp", "bitrate", "time", "bytes", "blockcount", "length", "cport", "parallel", "reverse", "bidir", "window", "set-mss", "no-delay", "tos", "dscp", "omit", "title", "congestion", "get-server-output", "udp-counters-64bit", "zerocopy", "connect-timeout"} {
			if fs.Changed(f) {
				return c, fmt.Errorf("--%s is a client option; the client sends it to the server", f)
			}
		}
	}
	level := slog.LevelWarn
	if c.debug {
		level = slog.LevelDebug
	}
	c.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return c, nil
}

// parseSize reads a number with an optional K, M, G suffix (powers of
// unit, as iperf3 does: 1024 for lengths, 1000 for rates).
func parseSize(s string, unit uint64) (uint64, error) {
	mult := uint64(1)
	switch strings.ToUpper(s[len(s)-1:]) {
	case "K":
		mult = unit
	case "M":
		mult = unit * unit
	case "G":
		mult = unit * unit * unit
	}
	if mult != 1 {
		s = s[:len(s)-1]
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("not a non-negative number: %q", s)
	}
	return uint64(f * float64(mult)), nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr, nil)
	stop()
	os.Exit(code)
}

// runMain is main without the process: flags, network, test(s), output.
// ready, if set, is called with the address clients should use once a
// server is up.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(addr string)) int {
	c, err := parseFlags(args, stdout, stderr)
	if err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "enaperf:", err)
		fmt.Fprintln(stderr, "enaperf: run enaperf --help for the options")
		return 2
	}
	if c.version {
		fmt.Fprintf(stdout, "enaperf (%s)\n%s\n", iperf3.Version, "Optional features available: CPU affinity setting, TCP congestion algorithm setting (reno, cubic)")
		return 0
	}
	if c.logfile != "" {
		f, err := os.OpenFile(c.logfile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintf(stderr, "enaperf: --logfile: %v\n", err)
			return 1
		}
		defer f.Close()
		stdout = f
	}
	if c.pidfile != "" {
		if err := os.WriteFile(c.pidfile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			fmt.Fprintf(stderr, "enaperf: -I: %v\n", err)
			return 1
		}
		defer os.Remove(c.pidfile)
	}
	if c.affinity != "" {
		note, err := setAffinity(c.affinity)
		if err != nil {
			fmt.Fprintln(stderr, "enaperf: -A:", err)
			return 2
		}
		if note != "" {
			c.ignored = append(c.ignored, note)
		}
	}
	out := newLineWriter(stdout, c.title, c.timestamps)
	if err := run(ctx, c, out, stderr, ready); err != nil {
		fmt.Fprintln(stderr, "enaperf:", explain(err))
		return 1
	}
	return 0
}

// explain turns an error chain into what a user can act on: the cause
// and the fix, without Go or protocol internals.
func explain(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, iperf3.ErrBusy):
		return "the server is busy running another test; try again when it is done"
	case strings.Contains(msg, "connection refused"):
		return "cannot reach the iperf3 server: connection refused (nothing listens on that address and port); start one with `iperf3 -s` or `enaperf -s`, or check -c and -p"
	}
	return strings.ReplaceAll(msg, "iperf3: ", "")
}

func run(ctx context.Context, c config, out *lineWriter, stderr io.Writer, ready func(string)) error {
	n, err := openNet(ctx, c)
	if err != nil {
		return err
	}
	defer n.Close()
	// A device failure ends the run.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watchDone := make(chan struct{})
	defer close(watchDone)
	go func() {
		select {
		case err := <-n.Fatal():
			fmt.Fprintln(stderr, "enaperf:", err)
			cancel()
		case <-watchDone:
		}
	}()
	interval := time.Duration(c.intvl * float64(time.Second))
	if interval == 0 {
		interval = -1
	}
	if c.server {
		return serve(ctx, c, n, interval, out, stderr, ready)
	}
	addr, err := n.ClientTarget(c.client, c.port)
	if err != nil {
		return err
	}
	text := iperf3.TextOptions{Format: c.format, Verbose: c.verbose}
	cfg := iperf3.ClientConfig{
		Addr: addr, Dialer: n.Dialer(), UDP: c.udp, Reverse: c.reverse, Bidir: c.bidir, Parallel: c.streams,
		BlockLen: c.length, Bitrate: c.rate, Unlimited: c.rateSet && c.rate == 0, Interval: interval, Logger: c.log,
		Omit: time.Duration(c.omit * float64(time.Second)), Bytes: c.bytes, Blocks: c.blocks,
		Socket: c.sock, BindHost: c.bind, BindPort: c.cport, Title: c.title, GetServerOutput: c.getServerOutput,
		Counters64: c.counters64, Timeout: c.connectTimeout,
	}
	if c.bytes == 0 && c.blocks == 0 {
		cfg.Duration = time.Duration(c.secs * float64(time.Second))
	}
	if c.family != "" {
		cfg.Network = "tcp" + c.family
	}
	if !c.json {
		if c.verbose {
			printVersion(out)
			fmt.Fprintf(out, "Time: %s\n", time.Now().UTC().Format(iperf3.TimeLayout))
		}
		fmt.Fprintf(out, "Connecting to host %s, port %d\n", c.client, c.port)
		if c.verbose || n.Kind() != "kernel sockets" {
			fmt.Fprintf(out, "(enaperf: %s, dialing %s)\n", n.Kind(), addr)
		}
		for _, ig := range c.ignored {
			fmt.Fprintf(out, "enaperf: ignoring %s\n", ig)
		}
		live := &liveText{w: out, o: text, client: true, bidir: c.bidir}
		cfg.OnStart = live.start
		cfg.OnInterval = live.interval
	}
	rep, err := iperf3.Run(ctx, cfg)
	if err != nil {
		if ferr := n.ForwardError(); ferr != nil {
			// The router accepted and then reset the connection: the
			// real cause is on the host side of the forwarder.
			err = fmt.Errorf("the simulated VPC router could not reach %s:%d on the host: %w", c.client, c.port, ferr)
			if rep != nil {
				rep.Error = explain(err)
			}
		}
	}
	if rep != nil {
		rep.Ignored = append(c.ignored, rep.Ignored...)
		if err != nil && !c.json {
			// The error goes to standard error once, below.
			rep.Error = ""
		}
		if c.json {
			printJSON(out, rep)
		} else {
			if rep.End.SumSent != nil {
				rep.TextEnd(out, text, true)
			} else if rep.Error != "" {
				fmt.Fprintf(out, "iperf3: error - %s\n", explain(errors.New(rep.Error)))
			}
			if c.verbose {
				printVerboseEnd(out, rep, true)
			}
			if rep.ServerOutputText != "" || len(rep.ServerOutputJSON) > 0 {
				fmt.Fprint(out, "\nServer output:\n")
				if rep.ServerOutputText != "" {
					out.raw(rep.ServerOutputText + "\n")
				} else {
					out.raw(string(rep.ServerOutputJSON) + "\n")
				}
			}
			if err == nil {
				fmt.Fprint(out, "\niperf Done.\n")
			}
		}
	}
	return err
}

// liveText prints a test's start and intervals as they happen, as
// iperf3 does.
type liveText struct {
	w      io.Writer
	o      iperf3.TextOptions
	client bool
	bidir  bool
	n      int
}

func (l *liveText) start(r *iperf3.Report) {
	l.n = 0
	r.TextStart(l.w, l.o, l.client)
}

func (l *liveText) interval(iv iperf3.Interval) {
	iperf3.TextInterval(l.w, iv, l.o, l.client, l.bidir, l.n == 0)
	l.n++
}

// printVersion is iperf3 -V's first lines: the version and the system.
func printVersion(w io.Writer) {
	fmt.Fprintf(w, "%s\n%s\n", iperf3.Version, iperf3.SystemInfo())
}

// printVerboseEnd is what iperf3 -V prints after the summary: CPU use
// (getrusage, this process's and the peer's from the results exchange)
// and the congestion control of each direction.
func printVerboseEnd(w io.Writer, rep *iperf3.Report, client bool) {
	e := rep.End
	if c := e.CPUUtilizationPercent; c != nil {
		local := client == (rep.Start.TestStart.Reverse == 0) // this side sends
		fmt.Fprintf(w, "CPU Utilization: local/%s %.1f%% (%.1f%%u/%.1f%%s), remote/%s %.1f%% (%.1f%%u/%.1f%%s)\n",
			role(local), c.HostTotal, c.HostUser, c.HostSystem, role(!local), c.RemoteTotal, c.RemoteUser, c.RemoteSystem)
	}
	if e.SenderTCPCongestion != "" {
		fmt.Fprintf(w, "snd_tcp_congestion %s\n", e.SenderTCPCongestion)
	}
	if e.ReceiverTCPCongestion != "" {
		fmt.Fprintf(w, "rcv_tcp_congestion %s\n", e.ReceiverTCPCongestion)
	}
}

func role(sender bool) string {
	if sender {
		return "sender"
	}
	return "receiver"
}

func serve(ctx context.Context, c config, n netEnv, interval time.Duration, out *lineWriter, stderr io.Writer, ready func(string)) error {
	ln, err := n.Listen(c.port)
	if err != nil {
		return err
	}
	text := iperf3.TextOptions{Format: c.format, Verbose: c.verbose}
	test := 1
	banner := func() {
		if !c.json {
			fmt.Fprintf(out, "-----------------------------------------------------------\nServer listening on %d (test #%d)\n-----------------------------------------------------------\n", c.port, test)
		}
	}
	live := &liveText{w: out, o: text}
	if c.verbose && !c.json {
		printVersion(out)
	}
	srv := &iperf3.Server{
		Listener:  ln,
		ListenUDP: func() (net.PacketConn, error) { return n.ListenUDP(c.port) },
		OneOff:    c.oneOff,
		Interval:  interval,
		Logger:    c.log,
		JSON:      c.json,
		Text:      text,
		OnReport: func(rep *iperf3.Report, err error) {
			if rep != nil {
				rep.Ignored = append(c.ignored, rep.Ignored...)
				if c.json {
					printJSON(out, rep)
				} else {
					rep.TextEnd(out, text, false)
					if c.verbose {
						printVerboseEnd(out, rep, false)
					}
				}
			} else if err != nil {
				fmt.Fprintln(stderr, "enaperf: test:", explain(err))
			}
			test++
			if !c.oneOff {
				banner()
			}
		},
	}
	if !c.json {
		srv.OnStart = func(r *iperf3.Report) {
			live.bidir = r.End.SumSentBidirReverse != nil || r.Start.TestStart.Bidir()
			live.start(r)
		}
		srv.OnInterval = live.interval
	}
	addrs, err := n.Expose(ctx, c.listen, c.port)
	if err != nil {
		ln.Close()
		return err
	}
	if !c.json {
		fmt.Fprintf(out, "(enaperf: %s; clients connect to %s)\n", n.Kind(), strings.Join(addrs, " or "))
		for _, ig := range c.ignored {
			fmt.Fprintf(out, "enaperf: ignoring %s\n", ig)
		}
	}
	banner()
	if ready != nil {
		ready(addrs[0])
	}
	err = srv.Serve(ctx)
	if c.oneOff {
		return err
	}
	return nil
}

// printJSON prints a report as iperf3 -J does.
func printJSON(w *lineWriter, rep *iperf3.Report) {
	b, err := json.MarshalIndent(rep, "", "\t")
	if err != nil {
		w.raw(fmt.Sprintf(`{"error": %q}`+"\n", err.Error()))
		return
	}
	w.raw(string(b) + "\n")
}
