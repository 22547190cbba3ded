// Command enahttp serves HTTP from a userspace TCP/IP stack (gVisor's
// netstack) running on an ENA: a real one bound to vfio-pci, or by default
// the simulated device of package enasim.
//
// With the simulated device nothing needs root or hardware: the far end of
// the simulated wire is a small VPC (a DHCP server and router on a second
// userspace stack), and a host port is forwarded through that VPC to the
// server, so every request crosses the simulated ENA:
//
//	go run ./cmd/enahttp
//	curl http://127.0.0.1:8080/
//	curl -6 'http://[::1]:8080/'     # over IPv6 to the server's DHCPv6 address
//	curl http://127.0.0.1:8080/api/v1/status
//
// In comments, "§n.m" refers to that section of docs/protocol.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/enanet/enanet/internal/netenv"
)

func main() {
	c, err := parseFlags(os.Args[1:])
	if errors.Is(err, pflag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "enahttp: %v\n(enahttp --help lists the flags)\n", err)
		os.Exit(2)
	}

	level := slog.LevelWarn
	if c.verbose {
		level = slog.LevelDebug
	}
	c.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	a, err := start(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "enahttp:", err)
		os.Exit(1)
	}
	fmt.Print(a.banner())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
	case err := <-a.fatal:
		fmt.Fprintln(os.Stderr, "enahttp:", err)
	}
	a.Close()
}

// parseFlags reads the command line. --help prints the flags to stdout and
// returns pflag.ErrHelp; a bad flag returns an error that names it, without
// the usage text around it.
func parseFlags(args []string) (config, error) {
	var c config
	fs := pflag.NewFlagSet("enahttp", pflag.ContinueOnError)
	fs.StringVar(&c.Device, "device", "sim", `"sim" for the simulated ENA, or the PCI address of an ENA bound to vfio-pci`)
	netenv.AddFlags(fs, &c.Config)
	fs.IntVar(&c.port, "port", 80, "TCP port of the userspace HTTP server")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8080", "host address forwarded through the simulated VPC to the server (sim only)")
	fs.StringVar(&c.listen6, "listen6", "[::1]:8080", `host IPv6 address forwarded through the simulated VPC to the server's IPv6 address (sim only; "off" for none)`)
	fs.BoolVarP(&c.verbose, "verbose", "v", false, "log driver and stack events")
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Printf("Usage: enahttp [flags]\n\nServes HTTP from a userspace TCP/IP stack on an ENA (by default the simulated one).\n\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		return c, netenv.FlagError(fs, err)
	}
	c.listenSet = fs.Changed("listen")
	c.listen6Set = fs.Changed("listen6")
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q: enahttp takes only flags", fs.Arg(0))
	}
	return c, nil
}
