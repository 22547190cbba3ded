package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/enanet/enanet/internal/iperf3"
)

// netEnv is the network the tests run on: the kernel's sockets, or the
// userspace stack on an ENA.
type netEnv interface {
	// Kind describes the network for the banner.
	Kind() string
	// Dialer opens the client's connections.
	Dialer() iperf3.Dialer
	// Listen and ListenUDP open the server's sockets on port.
	Listen(port int) (net.Listener, error)
	ListenUDP(port int) (net.PacketConn, error)
	// Expose makes the server on port reachable from the host at listen
	// (the simulated device forwards it through the VPC) and returns the
	// addresses host clients should use, the first for IPv4 unless -6.
	Expose(ctx context.Context, listen string, port int) ([]string, error)
	// ClientTarget turns -c HOST -p PORT into the address to dial.
	ClientTarget(host string, port int) (string, error)
	// Fatal delivers a device failure.
	Fatal() <-chan error
	// Close tears everything down.
	Close()
	// ForwardError is why the forwarder last failed to reach a far side
	// (nil if it did not): the cause behind a connection reset.
	ForwardError() error
}

func openNet(ctx context.Context, c config) (netEnv, error) {
	switch c.Device {
	case "kernel":
		for _, f := range []struct {
			set  bool
			name string
		}{{c.Profile != "", "--profile"}, {c.IP != "", "--ip"}, {c.Gateway != "", "--gw"}, {c.DHCP, "--dhcp"}, {c.Pcap != "", "--pcap"}, {c.Queues != 0, "--queues"}, {c.MTU != 0, "--mtu"}, {c.Poll, "--poll"}} {
			if f.set {
				return nil, fmt.Errorf("%s does not apply to --device kernel", f.name)
			}
		}
		return &kernelNet{bind: c.bind, family: c.family}, nil
	default:
		return openENA(ctx, c)
	}
}

// kernelNet is the kernel's own sockets: the baseline.
type kernelNet struct{ bind, family string }

func (k *kernelNet) Kind() string          { return "kernel sockets" }
func (k *kernelNet) Dialer() iperf3.Dialer { return iperf3.KernelDialer{} }
func (k *kernelNet) Listen(port int) (net.Listener, error) {
	return net.Listen("tcp"+k.family, net.JoinHostPort(k.bind, strconv.Itoa(port)))
}
func (k *kernelNet) ListenUDP(port int) (net.PacketConn, error) {
	return net.ListenPacket("udp"+k.family, net.JoinHostPort(k.bind, strconv.Itoa(port)))
}
func (k *kernelNet) Expose(_ context.Context, _ string, port int) ([]string, error) {
	host := k.bind
	if host == "" {
		host = "127.0.0.1"
		if k.family == "6" {
			host = "::1"
		}
	}
	return []string{net.JoinHostPort(host, strconv.Itoa(port))}, nil
}
func (k *kernelNet) ClientTarget(host string, port int) (string, error) {
	if host == "" {
		return "", errors.New("no host")
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}
func (k *kernelNet) Fatal() <-chan error { return nil }
func (k *kernelNet) Close()              {}
func (k *kernelNet) ForwardError() error { return nil }
