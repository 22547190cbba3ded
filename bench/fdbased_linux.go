package bench

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// FDSettings choose a (c) configuration of gVisor's fdbased endpoint.
type FDSettings struct {
	MTU int
	// HostGSO is runsc's host GSO: PACKET_VNET_HDR on the AF_PACKET
	// socket, GSOMaxSize 64 KiB with GVisorGSOEnabled false, so TCP hands
	// 64 KiB segments to the kernel, which carries them across the veth
	// whole; with Rx checksum offload on, as runsc sets it.
	HostGSO bool
	// SoftGSO is runsc's fallback where the host has no GSO: gVisor GSO
	// (GVisorGSOEnabled) with Rx checksum offload on.
	SoftGSO bool
}

// NewFDBasedPair is link (c): one namespace holding a veth pair (no
// addresses on it, IPv6 off), an AF_PACKET socket bound to each end, and a
// gVisor stack on each socket through fdbased (recvmmsg dispatch, Ethernet
// header, fifo qdisc), which is what a gVisor user picks today. Needs root.
func NewFDBasedPair(s FDSettings) (Pair, error) {
	if why := canUseNetns(); why != "" {
		return nil, errors.New("bench: fdbased veth pair " + why)
	}
	ns, err := newNetns()
	if err != nil {
		return nil, err
	}
	var fds []int
	var stacks []*stack.Stack
	fail := func(err error) (Pair, error) {
		for _, st := range stacks {
			st.Destroy() // closes the endpoint, whose FD we still close below
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
		ns.close()
		return nil, err
	}
	ns.disableIPv6()
	m := strconv.Itoa(s.MTU)
	if err := ns.ip("link", "add", "fv0", "mtu", m, "type", "veth", "peer", "name", "fv1", "mtu", m); err != nil {
		return fail(err)
	}
	for _, dev := range []string{"fv0", "fv1"} {
		if err := ns.ip("link", "set", dev, "up"); err != nil {
			return fail(err)
		}
	}
	addrs := []tcpip.Address{serverAddr, clientAddr}
	for i, dev := range []string{"fv0", "fv1"} {
		var fd int
		var mac net.HardwareAddr
		err := ns.do(func() error {
			ifc, err := net.InterfaceByName(dev)
			if err != nil {
				return fmt.Errorf("bench: finding %s: %w", dev, err)
			}
			mac = ifc.HardwareAddr
			fd, err = packetSocket(ifc.Index, s.HostGSO)
			return err
		})
		if err != nil {
			return fail(err)
		}
		fds = append(fds, fd)
		o := &fdbased.Options{
			FDs:                []int{fd},
			MTU:                uint32(s.MTU),
			EthernetHeader:     true,
			Address:            tcpip.LinkAddress(mac),
			PacketDispatchMode: fdbased.RecvMMsg,
			RXChecksumOffload:  s.HostGSO || s.SoftGSO,
		}
		if s.HostGSO || s.SoftGSO {
			o.GSOMaxSize = stack.GVisorGSOMaxSize
			o.GVisorGSOEnabled = s.SoftGSO && !s.HostGSO
		}
		ep, err := fdbased.New(o)
		if err != nil {
			return fail(fmt.Errorf("bench: fdbased.New on %s: %w", dev, err))
		}
		st, err := newGStack(ep, addrs[i])
		if err != nil {
			return fail(err)
		}
		stacks = append(stacks, st)
	}
	return &stackPair{srv: stacks[0], cli: stacks[1], closeFn: func() error {
		for _, st := range stacks {
			st.Destroy()
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
		return ns.close()
	}}, nil
}

// packetSocket opens an AF_PACKET socket bound to ifindex, with virtio-net
// headers when vnet (host GSO), and 4 MiB socket buffers so that a burst
// from the fifo qdisc is not dropped by the socket.
func packetSocket(ifindex int, vnet bool) (int, error) {
	proto := int(htons(unix.ETH_P_ALL))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return -1, fmt.Errorf("bench: AF_PACKET socket: %w", err)
	}
	if vnet {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("bench: PACKET_VNET_HDR: %w", err)
		}
	}
	for _, opt := range []int{unix.SO_RCVBUFFORCE, unix.SO_SNDBUFFORCE} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, 4<<20); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("bench: socket buffer size: %w", err)
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bench: binding AF_PACKET to ifindex %d: %w", ifindex, err)
	}
	return fd, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
