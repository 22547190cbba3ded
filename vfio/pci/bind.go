package pci

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// Driver names.
const (
	DriverVFIO = "vfio-pci"
	DriverENA  = "ena"
)

// ErrInUse is returned when binding would take away the interface that
// carries the default route or this SSH session.
var ErrInUse = errors.New("interface in use")

// ErrNoIOMMU is returned when vfio-pci could not take the device because
// there is no IOMMU and VFIO no-IOMMU mode is off.
var ErrNoIOMMU = errors.New("no IOMMU and VFIO no-IOMMU mode is off")

// BindOptions control Bind and Unbind.
type BindOptions struct {
	// Force binds even an interface that carries the default route or
	// the SSH session.
	Force bool
	// DryRun reports the writes without making them.
	DryRun bool
	// RouteFile and Route6File are the kernel routing tables; "" means
	// /proc/net/route and /proc/net/ipv6_route.
	RouteFile, Route6File string
	// SSHConnection is the value of $SSH_CONNECTION ("client port server
	// port"); "" means read the environment.
	SSHConnection string
	// InterfaceAddrs lists an interface's addresses; nil means ask the
	// kernel (package net).
	InterfaceAddrs func(name string) ([]netip.Addr, error)
}

// Bind moves the function at addr to vfio-pci, the driver package vfio
// needs. It returns the steps it took (or, with DryRun, would take), in the
// shell form a user can repeat by hand.
func (s Sysfs) Bind(addr string, o BindOptions) ([]string, error) {
	d, err := s.Lookup(addr)
	if err != nil {
		return nil, err
	}
	if d.Driver == DriverVFIO {
		return []string{fmt.Sprintf("# %s is already bound to vfio-pci", d.Address)}, nil
	}
	if d.Driver != "" && !o.Force {
		if err := s.CheckInUse(d, o); err != nil {
			return nil, err
		}
	}
	if !s.DriverLoaded(DriverVFIO) {
		return nil, fmt.Errorf("pci: bind %s: the vfio-pci driver is not loaded (no %s); run `modprobe vfio-pci` or `enactl setup`", d.Address, s.DriverPath(DriverVFIO))
	}
	if d.IOMMUGroup < 0 {
		if on, supported := s.NoIOMMUMode(); !on {
			return nil, s.noIOMMUError("bind "+d.Address, supported)
		}
	}
	steps := s.moveSteps(d, DriverVFIO)
	if o.DryRun {
		return steps.shell(), nil
	}
	if err := s.run(steps); err != nil {
		return steps.shell(), fmt.Errorf("pci: bind %s: %w", d.Address, err)
	}
	after, err := s.Lookup(d.Address)
	if err != nil {
		return steps.shell(), err
	}
	if after.Driver != DriverVFIO {
		now := after.Driver
		if now == "" {
			now = "none"
		}
		return steps.shell(), fmt.Errorf("pci: bind %s: the kernel did not bind it to vfio-pci (driver now: %s); check `dmesg | tail`: \"probe ... failed with error -22\" means there is no IOMMU and VFIO no-IOMMU mode is off (run `enactl setup`)", d.Address, now)
	}
	return steps.shell(), nil
}

// Unbind gives the function back to the kernel's ena driver.
func (s Sysfs) Unbind(addr string, o BindOptions) ([]string, error) {
	d, err := s.Lookup(addr)
	if err != nil {
		return nil, err
	}
	if d.Driver == DriverENA && d.DriverOverride == "" {
		return []string{fmt.Sprintf("# %s is already bound to ena", d.Address)}, nil
	}
	if !s.DriverLoaded(DriverENA) {
		return nil, fmt.Errorf("pci: unbind %s: the ena driver is not loaded (no %s); run `modprobe ena` first", d.Address, s.DriverPath(DriverENA))
	}
	steps := s.moveSteps(d, "")
	if o.DryRun {
		return steps.shell(), nil
	}
	if err := s.run(steps); err != nil {
		return steps.shell(), fmt.Errorf("pci: unbind %s: %w", d.Address, err)
	}
	after, err := s.Lookup(d.Address)
	if err != nil {
		return steps.shell(), err
	}
	if after.Driver != DriverENA {
		return steps.shell(), fmt.Errorf("pci: unbind %s: the kernel did not give it back to ena (driver now: %q); check `dmesg | tail`", d.Address, after.Driver)
	}
	return steps.shell(), nil
}

// noIOMMUError explains why vfio-pci cannot take a device on this machine.
func (s Sysfs) noIOMMUError(op string, supported bool) error {
	if !supported && s.ModuleLoaded("vfio") {
		return fmt.Errorf("pci: %s: %w: this kernel's vfio module was built without CONFIG_VFIO_NOIOMMU (no %s); use a kernel with it (Amazon Linux, Ubuntu and Debian ≥ 12 cloud kernels vary; AWS's amzn-drivers get-vfio-with-wc.sh builds one) or use a .metal instance with the IOMMU on (intel_iommu=on iommu=pt)", op, ErrNoIOMMU, s.NoIOMMUPath())
	}
	return fmt.Errorf("pci: %s: %w: this machine has no IOMMU (EC2 non-metal instances do not); run `enactl setup` to enable VFIO no-IOMMU mode (it writes Y to %s), or use a .metal instance booted with intel_iommu=on iommu=pt", op, ErrNoIOMMU, s.NoIOMMUPath())
}

// step is one write to a sysfs control file.
type step struct{ path, val string }

type steps []step

// shell renders the steps as commands a user can run.
func (ss steps) shell() []string {
	out := make([]string, len(ss))
	for i, st := range ss {
		v := st.val
		if v == "\n" {
			v = ""
		}
		out[i] = fmt.Sprintf("echo %q > %s", v, st.path)
	}
	return out
}

// moveSteps is the kernel's documented way to move a function between
// drivers: set driver_override (or clear it with ""), unbind from the current
// driver, and ask the bus to probe again.
func (s Sysfs) moveSteps(d Device, override string) steps {
	dir := s.DevicePath(d.Address)
	val := override
	if val == "" {
		val = "\n" // an empty write clears driver_override
	}
	ss := steps{{filepath.Join(dir, "driver_override"), val}}
	if d.Driver != "" {
		ss = append(ss, step{filepath.Join(dir, "driver/unbind"), d.Address})
	}
	ss = append(ss, step{filepath.Join(s.root(), "bus/pci/drivers_probe"), d.Address})
	return ss
}

// run performs the writes. The files must already exist (they are kernel
// control files; creating one would hide a wrong sysfs root).
func (s Sysfs) run(ss steps) error {
	for _, st := range ss {
		f, err := os.OpenFile(st.path, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return fmt.Errorf("write %s: %w", st.path, err)
		}
		_, err = f.WriteString(st.val)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %q to %s: %w", st.val, st.path, err)
		}
		if s.OnWrite != nil {
			s.OnWrite(st.path, st.val)
		}
	}
	return nil
}

// CheckInUse refuses a function whose interface carries the default route
// or the SSH session: binding it would cut this machine off the network.
func (s Sysfs) CheckInUse(d Device, o BindOptions) error {
	if len(d.Interfaces) == 0 {
		return nil
	}
	defIf, err := DefaultRouteInterfaces(o.RouteFile, o.Route6File)
	if err != nil {
		return fmt.Errorf("pci: %s: cannot tell whether it carries the default route: %w (use --force to bind anyway)", d.Address, err)
	}
	ssh := o.SSHConnection
	if ssh == "" {
		ssh = os.Getenv("SSH_CONNECTION")
	}
	sshAddr, haveSSH := sshLocalAddr(ssh)
	addrsOf := o.InterfaceAddrs
	if addrsOf == nil {
		addrsOf = kernelAddrs
	}
	for _, ifn := range d.Interfaces {
		if defIf[ifn] {
			return fmt.Errorf("pci: %s: %w: interface %s carries the default route; binding it to vfio-pci would cut this machine off the network (attach a second ENA for enanet, or pass --force)", d.Address, ErrInUse, ifn)
		}
		if !haveSSH {
			continue
		}
		addrs, err := addrsOf(ifn)
		if err != nil {
			continue // interface gone: nothing to protect
		}
		for _, a := range addrs {
			if a.WithZone("").Unmap() == sshAddr {
				return fmt.Errorf("pci: %s: %w: interface %s has %s, the local address of this SSH session; binding it would drop the session (pass --force to bind anyway)", d.Address, ErrInUse, ifn, sshAddr)
			}
		}
	}
	return nil
}

// DefaultRouteInterfaces returns the interfaces with an IPv4 or IPv6 default
// route. Missing tables (no IPv6) count as empty.
func DefaultRouteInterfaces(route4, route6 string) (map[string]bool, error) {
	if route4 == "" {
		route4 = "/proc/net/route"
	}
	if route6 == "" {
		route6 = "/proc/net/ipv6_route"
	}
	out := map[string]bool{}
	if err := scanLines(route4, func(f []string) {
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		if len(f) >= 8 && f[1] == "00000000" && f[7] == "00000000" {
			out[f[0]] = true
		}
	}); err != nil {
		return nil, err
	}
	if err := scanLines(route6, func(f []string) {
		// dest plen src plen nexthop metric refcnt use flags iface
		if len(f) >= 10 && f[1] == "00" && strings.Trim(f[0], "0") == "" && f[9] != "lo" {
			out[f[9]] = true
		}
	}); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return out, nil
}

// scanLines calls fn with the fields of each line of path.
func scanLines(path string, fn func([]string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fn(strings.Fields(sc.Text()))
	}
	return sc.Err()
}

// sshLocalAddr parses the server address out of $SSH_CONNECTION.
func sshLocalAddr(v string) (netip.Addr, bool) {
	f := strings.Fields(v)
	if len(f) != 4 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(f[2])
	if err != nil {
		return netip.Addr{}, false
	}
	return a.WithZone("").Unmap(), true
}

// kernelAddrs lists an interface's addresses through package net.
func kernelAddrs(name string) ([]netip.Addr, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	as, err := ifc.Addrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, a := range as {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().WithZone("").Unmap())
		}
	}
	return out, nil
}
