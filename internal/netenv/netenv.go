// Package netenv brings up what every enanet command that serves or drives
// traffic needs: the device named by --device (package devopen), the ENA
// driver on it (ena.Open) and a userspace stack on the driver
// (link.NewStack over enanic), and for the simulated device the VPC at the
// far end of its wire (package link/vpc). cmd/enahttp and cmd/enaperf share
// it, with the same flags (AddFlags), so they cannot drift apart.
//
// It lives in internal rather than in link/vpc because it is command-line
// glue that joins the driver, VFIO and the stack: link/vpc stays a library
// that knows only link and the simulated wire.
package netenv

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/control"
	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/internal/devopen"
	"github.com/enanet/enanet/internal/flagerr"
	"github.com/enanet/enanet/link"
	"github.com/enanet/enanet/link/enanic"
	"github.com/enanet/enanet/link/vpc"
)

// DHCPTimeout bounds address acquisition when no --ip is given.
const DHCPTimeout = 20 * time.Second

// Config is the device and network part of a command line.
type Config struct {
	// Device is "sim" (or "") for the simulated ENA, else the PCI address
	// of an ENA bound to vfio-pci.
	Device string
	// Profile is the enasim instance profile (sim only).
	Profile string
	// Queues is the number of I/O queue pairs; 0 means the driver default.
	Queues int
	// LLQ is the --llq policy string (ParseLLQ).
	LLQ string
	// MTU is the L3 MTU; 0 means 1500.
	MTU int
	// IP is a static address with prefix; "" means DHCP.
	IP string
	// Gateway is the default route for IP.
	Gateway string
	// DHCP asks for DHCP explicitly (it excludes IP). A real device needs
	// IP or DHCP; the simulated one defaults to DHCP from its VPC.
	DHCP bool
	// IP6 is a static IPv6 address with prefix, Gateway6 its default
	// route ("" : from Router Advertisements); DHCP6 waits for a DHCPv6
	// address. Without either, IPv6 follows the network's Router
	// Advertisements (DHCPv6 in the background where they ask for it);
	// the simulated VPC offers it, so there DHCP6 is the default.
	IP6, Gateway6 string
	DHCP6         bool
	// Pcap names a file that receives a capture of the ENA's frames.
	Pcap string
	// Poll uses no interrupts: admin polling and busy-poll Rx.
	Poll bool
	// VFIOMode is auto, iommu or noiommu (real device only).
	VFIOMode string
	// IOVAIsPhys maps DMA at IOVA == physical address (the QEMU proxy rig).
	IOVAIsPhys bool
	// VPCMTU is the simulated VPC router's MTU; 0 means the ENA's MTU, so
	// that large UDP datagrams from the host are fragmented to frames the
	// ENA accepts.
	VPCMTU int
	// Logger receives driver and stack events; nil discards them.
	Logger *slog.Logger
	// Program names this process on the device's control socket (enactl
	// list); "" means the executable's name.
	Program string
}

// AddFlags registers the common device and network flags on fs, writing
// into c. --device is left to the command: its help text differs (enaperf
// also accepts "kernel").
func AddFlags(fs *pflag.FlagSet, c *Config) {
	fs.StringVar(&c.Profile, "profile", "", "enasim instance profile with --device sim: nitro-v3 (default), nitro-v4, no-llq; add +express for ENA Express (e.g. nitro-v4+express)")
	fs.IntVar(&c.Queues, "queues", 0, "I/O queue pairs (0: min(device maximum, GOMAXPROCS))")
	fs.StringVar(&c.LLQ, "llq", "default", "LLQ policy: default (device recommendation), normal (128 B), large (256 B), off")
	fs.IntVar(&c.MTU, "mtu", 0, "L3 MTU, 576 up to the device's max_mtu (0: 1500; ENAs report 9216, an EC2 VPC carries up to 9001)")
	fs.StringVar(&c.IP, "ip", "", "static address with prefix, e.g. 10.0.1.5/24 (default: DHCP); with the simulated device its VPC takes this subnet (/16 to /28)")
	fs.StringVar(&c.Gateway, "gw", "", "default gateway for --ip, in its subnet; with the simulated device the VPC router's address (without --gw: the subnet's base + 1, no default route)")
	fs.BoolVar(&c.DHCP, "dhcp", false, "get the address by DHCP (the default when --ip is not given)")
	fs.StringVar(&c.IP6, "ip6", "", "static IPv6 address with prefix, e.g. 2600:1f18:aaaa:bbbb::5/64 (default: from the network's Router Advertisements and DHCPv6); with the simulated device its VPC takes this /64")
	fs.StringVar(&c.Gateway6, "gw6", "", "IPv6 default gateway for --ip6 (default: the router that advertises itself)")
	fs.BoolVar(&c.DHCP6, "dhcp6", false, "wait for an IPv6 address by DHCPv6 at start (the default on the simulated device)")
	fs.StringVar(&c.Pcap, "pcap", "", "write a pcap capture of the ENA's traffic to FILE")
	fs.StringVar(&c.VFIOMode, "vfio-mode", "auto", "VFIO IOMMU mode for a real device: auto, iommu or noiommu (enactl takes it as --mode or --vfio-mode)")
	fs.BoolVar(&c.Poll, "poll", false, "use no interrupts: poll the admin queue and busy-poll Rx")
	fs.BoolVar(&c.IOVAIsPhys, "iova-is-phys", false, "type1 mode: map DMA at IOVA == physical address (QEMU proxy test rig)")
	fs.MarkHidden("iova-is-phys")
}

// MinMTU is the smallest --mtu (the IPv4 minimum); the largest is the
// device's max_mtu, which bring-up checks.
const MinMTU = 576

// MaxVPCMTU is the largest MTU an EC2 VPC (and the simulated one) carries.
const MaxVPCMTU = 9001

func checkMTU(mtu int) error {
	if mtu != 0 && mtu < MinMTU {
		return fmt.Errorf("--mtu %d: want 0 (1500) or %d up to the device's max_mtu", mtu, MinMTU)
	}
	return nil
}

// parseIP reads --ip: an address with its prefix length.
func parseIP(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err == nil {
		return p, nil
	}
	if a, aerr := netip.ParseAddr(s); aerr == nil {
		return p, fmt.Errorf("--ip %s: add the subnet's prefix length, e.g. --ip %s/24", s, a)
	}
	return p, fmt.Errorf("--ip %q: want an address with its prefix length, e.g. 10.0.1.5/24", s)
}

// ParseLLQ reads an --llq value.
func ParseLLQ(s string) (ena.LLQPolicy, error) {
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

// Host is a running device, driver and stack, and for the simulated device
// its VPC.
type Host struct {
	// Kind describes the device for people ("simulated ENA, profile
	// nitro-v3", "vfio 0000:00:06.0 (noiommu)").
	Kind string
	// Opened is the hw backend; Opened.Sim is the model when simulated.
	Opened *devopen.Opened
	// Dev is the driver.
	Dev *ena.Device
	// Stack is the userspace stack on the ENA.
	Stack *link.Stack
	// VPC is the simulated VPC, nil on a real device.
	VPC *vpc.VPC
	// Control serves the device's control socket (enactl stats, info,
	// reset); nil when it could not be created (logged, not fatal).
	Control *control.Server

	pcap  *os.File
	fatal chan error
}

// Simulated reports whether the device is the software model.
func (h *Host) Simulated() bool { return h.VPC != nil }

// Fatal delivers the device's fatal error once the endpoint has removed
// the NIC; the command should exit.
func (h *Host) Fatal() <-chan error { return h.fatal }

// Open brings the device, driver and stack up. On error it tears down what
// it built.
func Open(c Config) (h *Host, err error) {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	llq, err := ParseLLQ(c.LLQ)
	if err != nil {
		return nil, err
	}
	// The device first: a mistyped address is the mistake to report, not
	// the flags a real device would need.
	if err := devopen.Check(c.Device, ""); err != nil {
		return nil, err
	}
	sim := devopen.IsSim(c.Device)
	if err := checkMTU(c.MTU); err != nil {
		return nil, err
	}
	opts := link.StackOptions{Logger: log}
	switch {
	case c.IP != "":
		if c.DHCP {
			return nil, errors.New("--ip and --dhcp exclude each other")
		}
		if opts.Addr, err = parseIP(c.IP); err != nil {
			return nil, err
		}
		if c.Gateway != "" {
			if opts.Gateway, err = netip.ParseAddr(c.Gateway); err != nil {
				return nil, fmt.Errorf("--gw %q: want an IP address such as 10.0.1.1", c.Gateway)
			}
			if !opts.Addr.Masked().Contains(opts.Gateway) {
				return nil, fmt.Errorf("--gw %v is outside --ip %v: the gateway must be an address in the subnet %v",
					opts.Gateway, opts.Addr, opts.Addr.Masked())
			}
		}
	case c.Gateway != "":
		return nil, errors.New("--gw needs --ip: with DHCP the gateway comes from the lease")
	case !sim && !c.DHCP && c.IP6 == "" && !c.DHCP6:
		return nil, fmt.Errorf("--device %s is a real device: give it --ip ADDRESS/PREFIX (and --gw), --dhcp, --ip6 ADDRESS/PREFIX or --dhcp6", c.Device)
	case !sim && !c.DHCP:
		// IPv6 only.
	default:
		opts.DHCP = true
		opts.DHCPTimeout = DHCPTimeout
	}

	if err := ipv6Options(c, sim, &opts); err != nil {
		return nil, err
	}
	h = &Host{fatal: make(chan error, 1)}
	defer func() {
		if err != nil {
			h.Close()
			h = nil
		}
	}()
	var wire enasim.Wire
	if sim {
		var far enasim.Wire
		wire, far = enasim.NewPair()
		mtu := c.VPCMTU
		if mtu == 0 {
			// The ENA's MTU, at most what an EC2 VPC carries: an ENA
			// reports a max_mtu of 9216, a VPC forwards 9001.
			mtu = min(cmp.Or(c.MTU, 1500), MaxVPCMTU)
		}
		vc := vpc.Config{MTU: mtu, Logger: log}
		if opts.Addr.IsValid() {
			if vc.Router, err = simSubnet(opts.Addr, opts.Gateway); err != nil {
				wire.Close()
				return h, err
			}
		}
		if opts.Addr6.IsValid() {
			if vc.Router6, err = simSubnet6(opts.Addr6, opts.Gateway6); err != nil {
				wire.Close()
				return h, err
			}
		}
		if h.VPC, err = vpc.New(far, vc); err != nil {
			wire.Close()
			return h, fmt.Errorf("simulated VPC: %w", err)
		}
	}
	if h.Opened, err = devopen.Open(devopen.Options{
		Device: c.Device, Profile: c.Profile, Wire: wire, VFIOMode: c.VFIOMode,
		IOVAIsPhys: c.IOVAIsPhys, NoInterrupts: c.Poll, Logger: log,
	}); err != nil {
		if wire != nil {
			wire.Close()
		}
		return h, err
	}
	h.Kind = h.Opened.Kind
	if h.Dev, err = ena.Open(h.Opened, ena.Config{Queues: c.Queues, LLQ: llq, MTU: c.MTU, Logger: log,
		PollMode: c.Poll, AdminPolling: c.Poll}); err != nil {
		return h, err
	}
	if h.Control, err = control.Serve(h.Dev, control.Options{Program: c.Program, Kind: h.Kind, Logger: log}); err != nil {
		// The device works without it; only enactl cannot reach it.
		log.Warn("no control socket: enactl stats, info and reset cannot reach this process", "err", err)
		err = nil
	}
	if c.Pcap != "" {
		if h.pcap, err = os.Create(c.Pcap); err != nil {
			return h, fmt.Errorf("--pcap: %w", err)
		}
		opts.Endpoint.Pcap = h.pcap
	}
	opts.Endpoint.OnFatal = func(err error) {
		// The endpoint removes the NIC; the command exits with the cause.
		select {
		case h.fatal <- fmt.Errorf("device failed: %w", err):
		default:
		}
	}
	if h.Stack, err = link.NewStack(enanic.New(h.Dev), opts); err != nil {
		return h, err
	}
	if h.Control != nil { // enactl info shows the stack's addresses
		h.Control.SetNetwork(h.Network)
	}
	return h, nil
}

// Network is the stack's addressing as the control socket reports it to
// `enactl info`: IPv4 and IPv6 addresses, gateways, where they came from
// and the DNS servers.
func (h *Host) Network() control.Network {
	var n control.Network
	st := h.Stack
	if addr, gw := st.Addr(); addr.IsValid() { // else IPv6 only
		n.Address = addr.String()
		if gw.IsValid() {
			n.Gateway = gw.String()
		}
	}
	n.DHCP = st.Lease() != nil
	if addr6, gw6 := st.Addr6(); addr6.IsValid() {
		n.Address6 = addr6.String()
		if gw6.IsValid() {
			n.Gateway6 = gw6.String()
		}
	}
	if ll := st.LinkLocal(); ll.IsValid() {
		n.LinkLocal = ll.String()
	}
	n.DHCP6 = st.Lease6() != nil
	for _, d := range st.DNSServers() {
		n.DNS = append(n.DNS, d.String())
	}
	return n
}

// simSubnet is the simulated VPC's router address and prefix for a static
// --ip and --gw: the VPC follows the configured subnet, so the address is
// reachable from the host through its router. The router is --gw, or the
// subnet's base + 1 (as on EC2) when --gw is not given.
func simSubnet(ip netip.Prefix, gw netip.Addr) (netip.Prefix, error) {
	router := gw
	if !router.IsValid() {
		router = ip.Masked().Addr().Next()
	}
	subnet := netip.PrefixFrom(router, ip.Bits())
	if err := vpc.CheckSubnet(subnet); err != nil {
		return subnet, fmt.Errorf("--ip %v: %w (the default simulated VPC is %v)", ip, err, vpc.RouterPrefix.Masked())
	}
	if router == ip.Addr() {
		if gw.IsValid() {
			return subnet, fmt.Errorf("--ip %v and --gw %v are the same address", ip.Addr(), gw)
		}
		return subnet, fmt.Errorf("--ip %v is the simulated VPC router's address (the subnet's base + 1); "+
			"pick another address or name the router with --gw", ip.Addr())
	}
	return subnet, nil
}

// simSubnet6 is the simulated VPC's IPv6 router address and prefix for a
// static --ip6: the VPC follows its prefix as it follows --ip's subnet
// (router, Router Advertisement prefix, DHCPv6 pool), so the address is
// reachable through the router. The router is --gw6 when that is an
// address in the prefix, else the prefix's base + 1.
func simSubnet6(ip6 netip.Prefix, gw6 netip.Addr) (netip.Prefix, error) {
	router := gw6
	if !router.IsValid() || !ip6.Masked().Contains(router) {
		router = ip6.Masked().Addr().Next()
	}
	subnet := netip.PrefixFrom(router, ip6.Bits())
	if err := vpc.CheckSubnet6(subnet); err != nil {
		return subnet, fmt.Errorf("--ip6 %v: %w (the default simulated VPC is %v)", ip6, err, vpc.RouterPrefix6.Masked())
	}
	if router == ip6.Addr() {
		return subnet, fmt.Errorf("--ip6 %v is the simulated VPC router's address (the prefix's base + 1); "+
			"pick another address or name the router with --gw6", ip6.Addr())
	}
	return subnet, nil
}

// ipv6Options reads --ip6, --gw6 and --dhcp6 into opts.
func ipv6Options(c Config, sim bool, opts *link.StackOptions) error {
	switch {
	case c.IP6 != "":
		if c.DHCP6 {
			return errors.New("--ip6 and --dhcp6 exclude each other")
		}
		p, err := netip.ParsePrefix(c.IP6)
		if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() {
			return fmt.Errorf("--ip6 %q: want an IPv6 address with prefix, e.g. 2600:1f18:aaaa:bbbb::5/64", c.IP6)
		}
		opts.Addr6 = p
	case c.Gateway6 != "":
		return errors.New("--gw6 needs --ip6")
	case c.DHCP6 || sim:
		opts.DHCPv6 = true
		opts.DHCPTimeout = DHCPTimeout
	}
	if c.Gateway6 != "" {
		gw, err := netip.ParseAddr(c.Gateway6)
		if err != nil || !gw.Is6() || gw.Is4In6() {
			return fmt.Errorf("--gw6 %q: want an IPv6 address, e.g. fe80::1", c.Gateway6)
		}
		opts.Gateway6 = gw.WithZone("")
	}
	return nil
}

// Addr is the stack's address and port as a server address.
func (h *Host) Addr(port uint16) netip.AddrPort {
	addr, _ := h.Stack.Addr()
	if !addr.IsValid() { // IPv6 only
		addr, _ = h.Stack.Addr6()
	}
	return netip.AddrPortFrom(addr.Addr(), port)
}

// Close stops everything in reverse order; safe on a partly opened Host.
func (h *Host) Close() {
	if h.Control != nil {
		// The stack closes before the socket: no info request may read
		// its addresses meanwhile.
		h.Control.SetNetwork(nil)
	}
	if h.Stack != nil {
		h.Stack.Close()
	}
	if h.Control != nil {
		h.Control.Close()
	}
	if h.Dev != nil {
		h.Dev.Close()
	}
	if h.Opened != nil {
		h.Opened.Close()
	}
	if h.VPC != nil {
		h.VPC.Close()
	}
	if h.pcap != nil {
		h.pcap.Close()
	}
}

// FlagError rewords a command-line parse error of fs for people: the flag,
// what it takes and what it does, without the Go parse function pflag
// quotes ("strconv.ParseInt: parsing ..."). It is package flagerr's, which
// enactl shares.
func FlagError(fs *pflag.FlagSet, err error) error { return flagerr.Rewrite(fs, err) }
