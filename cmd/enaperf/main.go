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
	server  bool
	client  string
	port    int
	udp     bool
	reverse bool
	streams int
	secs    float64
	length  int
	rate    uint64
	rateSet bool
	json    bool
	oneOff  bool
	intvl   float64
	bind    string

	netenv.Config
	listen  string
	verbose bool

	log *slog.Logger
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := pflag.NewFlagSet("enaperf", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVarP(&c.server, "server", "s", false, "run as a server")
	fs.StringVarP(&c.client, "client", "c", "", "run as a client of the iperf3 server at HOST")
	fs.IntVarP(&c.port, "port", "p", iperf3.DefaultPort, "server port")
	fs.BoolVarP(&c.udp, "udp", "u", false, "UDP streams")
	fs.BoolVarP(&c.reverse, "reverse", "R", false, "reverse: the server sends")
	fs.IntVarP(&c.streams, "parallel", "P", 1, "parallel streams")
	fs.Float64VarP(&c.secs, "time", "t", 10, "test length in seconds")
	length := fs.StringP("length", "l", "", "read/write length, e.g. 128K (default 128K for TCP, 1460 for UDP)")
	rate := fs.StringP("bitrate", "b", "", "target bitrate per stream, e.g. 100M (default unlimited for TCP, 1M for UDP; 0 = unlimited)")
	fs.BoolVarP(&c.json, "json", "J", false, "print iperf3-style JSON")
	fs.BoolVarP(&c.oneOff, "one-off", "1", false, "server: handle one test, then exit")
	fs.Float64VarP(&c.intvl, "interval", "i", 1, "seconds between interval reports (0: none)")
	fs.StringVarP(&c.bind, "bind", "B", "", "--device kernel: address to bind")
	fs.StringVar(&c.Device, "device", "sim", `"sim" (simulated ENA), "kernel" (kernel sockets), or the PCI address of an ENA bound to vfio-pci`)
	netenv.AddFlags(fs, &c.Config)
	fs.StringVar(&c.listen, "listen", "", "--device sim server: host address forwarded (TCP and UDP) through the simulated VPC to the server (default 127.0.0.1:PORT)")
	fs.BoolVarP(&c.verbose, "verbose", "v", false, "log driver, stack and protocol events")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.server == (c.client != "") {
		return c, errors.New("give exactly one of -s and -c HOST")
	}
	if c.port <= 0 || c.port > 65535 {
		return c, fmt.Errorf("-p %d out of range", c.port)
	}
	if c.secs <= 0 || c.secs > 86400 {
		return c, fmt.Errorf("-t %v: want 0 < t <= 86400", c.secs)
	}
	if c.streams < 1 || c.streams > iperf3.MaxStreams {
		return c, fmt.Errorf("-P %d: want 1..%d", c.streams, iperf3.MaxStreams)
	}
	if c.intvl < 0 {
		return c, fmt.Errorf("-i %v is negative", c.intvl)
	}
	var err error
	if *length != "" {
		var n uint64
		if n, err = parseSize(*length, 1024); err != nil || n == 0 || n > iperf3.MaxBlockSize {
			return c, fmt.Errorf("-l %q: want a length in 1..1M (%v)", *length, err)
		}
		c.length = int(n)
	}
	if *rate != "" {
		if c.rate, err = parseSize(*rate, 1000); err != nil {
			return c, fmt.Errorf("-b %q: %w", *rate, err)
		}
		c.rateSet = true
	}
	if c.listen == "" {
		c.listen = "127.0.0.1:" + strconv.Itoa(c.port)
	}
	level := slog.LevelWarn
	if c.verbose {
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
	c, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "enaperf:", err)
		return 2
	}
	if err := run(ctx, c, stdout, stderr, ready); err != nil {
		fmt.Fprintln(stderr, "enaperf:", err)
		return 1
	}
	return 0
}

func run(ctx context.Context, c config, stdout, stderr io.Writer, ready func(string)) error {
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
		return serve(ctx, c, n, interval, stdout, stderr, ready)
	}
	addr, err := n.ClientTarget(c.client, c.port)
	if err != nil {
		return err
	}
	cfg := iperf3.ClientConfig{
		Addr: addr, Dialer: n.Dialer(), UDP: c.udp, Reverse: c.reverse, Parallel: c.streams,
		Duration: time.Duration(c.secs * float64(time.Second)), BlockLen: c.length,
		Bitrate: c.rate, Unlimited: c.rateSet && c.rate == 0, Interval: interval, Logger: c.log,
	}
	if !c.json {
		fmt.Fprintf(stdout, "Connecting to host %s, port %d (%s, dialing %s)\n", c.client, c.port, n.Kind(), addr)
	}
	rep, err := iperf3.Run(ctx, cfg)
	if rep != nil {
		printReport(stdout, rep, c.json)
	}
	return err
}

func serve(ctx context.Context, c config, n netEnv, interval time.Duration, stdout, stderr io.Writer, ready func(string)) error {
	ln, err := n.Listen(c.port)
	if err != nil {
		return err
	}
	srv := &iperf3.Server{
		Listener:  ln,
		ListenUDP: func() (net.PacketConn, error) { return n.ListenUDP(c.port) },
		OneOff:    c.oneOff,
		Interval:  interval,
		Logger:    c.log,
		OnReport: func(rep *iperf3.Report, err error) {
			if rep != nil {
				printReport(stdout, rep, c.json)
			} else if err != nil {
				fmt.Fprintln(stderr, "enaperf: test:", err)
			}
		},
	}
	addr, err := n.Expose(ctx, c.listen, c.port)
	if err != nil {
		ln.Close()
		return err
	}
	if !c.json {
		fmt.Fprintf(stdout, "Server listening on %s (%s)\n", addr, n.Kind())
	}
	if ready != nil {
		ready(addr)
	}
	err = srv.Serve(ctx)
	if c.oneOff {
		return err
	}
	return nil
}

// printReport prints a report as iperf3 -J does, or a short summary.
func printReport(w io.Writer, rep *iperf3.Report, asJSON bool) {
	if asJSON {
		b, err := json.MarshalIndent(rep, "", "\t")
		if err != nil {
			fmt.Fprintf(w, `{"error": %q}`+"\n", err.Error())
			return
		}
		w.Write(append(b, '\n'))
		return
	}
	for _, iv := range rep.Intervals {
		for _, s := range iv.Streams {
			fmt.Fprintf(w, "[%3d] %s\n", s.Socket, line(s))
		}
		if len(iv.Streams) > 1 {
			fmt.Fprintf(w, "[SUM] %s\n", line(iv.Sum))
		}
	}
	fmt.Fprintln(w, "- - - - - - - - - - - - - - - - - - - - - - - - -")
	if s := rep.End.SumSent; s != nil {
		fmt.Fprintf(w, "[SUM] %s  sender\n", line(*s))
	}
	if s := rep.End.SumReceived; s != nil {
		fmt.Fprintf(w, "[SUM] %s  receiver\n", line(*s))
	}
	if rep.Error != "" {
		fmt.Fprintf(w, "error: %s\n", rep.Error)
	}
}

func line(s iperf3.Sum) string {
	out := fmt.Sprintf("%6.2f-%-6.2f sec  %s  %s", s.Start, s.End, human(float64(s.Bytes), 1024, "Bytes"), human(s.BitsPerSecond, 1000, "bits/sec"))
	if s.JitterMS != nil && s.LostPackets != nil && s.Packets != nil && s.LostPercent != nil && !s.Sender {
		out += fmt.Sprintf("  %.3f ms  %d/%d (%.2g%%)", *s.JitterMS, *s.LostPackets, *s.Packets, *s.LostPercent)
	}
	return out
}

func human(v, unit float64, what string) string {
	prefixes := []string{"", "K", "M", "G", "T"}
	i := 0
	for v >= unit && i < len(prefixes)-1 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%6.2f %s%s", v, prefixes[i], what)
}
