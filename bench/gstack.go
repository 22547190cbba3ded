package bench

import (
	"context"
	"fmt"
	"net"
	"runtime"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/link/qdisc/fifo"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/enanet/enanet/link"
)

// The two sides of every in-process pair.
var (
	serverAddr = tcpip.AddrFrom4([4]byte{10, 99, 0, 1})
	clientAddr = tcpip.AddrFrom4([4]byte{10, 99, 0, 2})
)

const nicID tcpip.NICID = 1

// newGStack builds a stack with the settings link.NewStack uses for (b),
// so that (a) and (c) differ from (b) only in the link: the same protocols,
// 1 MiB default / 8 MiB maximum TCP buffers, HandleLocal, and a fifo qdisc
// with one queue per CPU (as runsc installs it, and as many queues as the
// ena driver opens on this machine).
func newGStack(ep stack.LinkEndpoint, addr tcpip.Address) (*stack.Stack, error) {
	s := link.NewNetstack()
	// gVisor's fifo, as runsc installs it; link.NewStack gives (b) the same
	// queues plus a bypass for short frames (link/qdisc.go).
	q := fifo.New(ep, runtime.GOMAXPROCS(0), link.DefaultQueueLen)
	if err := s.CreateNICWithOptions(nicID, ep, stack.NICOptions{Name: "bench0", QDisc: q}); err != nil {
		q.Close()
		s.Destroy()
		return nil, fmt.Errorf("bench: creating the NIC: %s", err)
	}
	pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: addr, PrefixLen: 24}}
	if err := s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
		s.Destroy()
		return nil, fmt.Errorf("bench: adding address %v: %s", addr, err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: nicID}})
	return s, nil
}

// stackPair is a Pair over two in-process gVisor stacks.
type stackPair struct {
	srv, cli *stack.Stack
	closeFn  func() error // tears down the link and both stacks
}

func (p *stackPair) Listen(port uint16) (net.Listener, error) {
	ln, err := gonet.ListenTCP(p.srv, tcpip.FullAddress{NIC: nicID, Addr: serverAddr, Port: port}, ipv4.ProtocolNumber)
	if err != nil {
		return nil, fmt.Errorf("bench: listening on port %d: %w", port, err)
	}
	return ln, nil
}

func (p *stackPair) Dial(ctx context.Context, port uint16) (net.Conn, error) {
	c, err := gonet.DialContextTCP(ctx, p.cli, tcpip.FullAddress{NIC: nicID, Addr: serverAddr, Port: port}, ipv4.ProtocolNumber)
	if err != nil {
		return nil, fmt.Errorf("bench: dialling port %d: %w", port, err)
	}
	return c, nil
}

func (p *stackPair) Close() error { return p.closeFn() }
