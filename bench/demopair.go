package bench

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/enanet/enanet/internal/netenv"
	"github.com/enanet/enanet/link/vpc"
)

// demoPair is the path of the README's enahttp demo: the server on the
// userspace stack of a simulated ENA (netenv, as enahttp opens it: the
// device, the driver, the stack, and the simulated VPC with its DHCP
// server and router), reached from kernel TCP on loopback through the host
// forwarder (vpc.Forwarder), which splices every connection into the
// VPC router's stack. Every request crosses two gVisor stacks, the
// simulated ENA twice and the kernel's loopback.
type demoPair struct {
	host *netenv.Host
	fwd  *vpc.Forwarder

	mu    sync.Mutex
	ports map[uint16]string // server port -> forwarded host address
}

// NewDemoPair brings the demo path up with enahttp's defaults (simulated
// device, DHCP from the VPC, MTU 1500).
func NewDemoPair() (Pair, error) {
	h, err := netenv.Open(netenv.Config{Device: "sim", Logger: quiet})
	if err != nil {
		return nil, fmt.Errorf("bench: opening the simulated host: %w", err)
	}
	return &demoPair{host: h, fwd: vpc.NewForwarder(quiet), ports: map[uint16]string{}}, nil
}

// Listen listens on the stack and forwards a fresh loopback port to it.
func (p *demoPair) Listen(port uint16) (net.Listener, error) {
	ln, err := p.host.Stack.ListenTCP(port)
	if err != nil {
		return nil, fmt.Errorf("bench: listening on port %d: %w", port, err)
	}
	hostLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("bench: host listener: %w", err)
	}
	p.fwd.TCP(hostLn, vpc.Dialer{Stack: p.host.VPC.Stack}.TCPTo(p.host.Addr(port)))
	p.mu.Lock()
	p.ports[port] = hostLn.Addr().String()
	p.mu.Unlock()
	return ln, nil
}

// Dial connects over kernel loopback to the forwarded port.
func (p *demoPair) Dial(ctx context.Context, port uint16) (net.Conn, error) {
	p.mu.Lock()
	addr, ok := p.ports[port]
	p.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("bench: port %d is not listening", port)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

func (p *demoPair) Close() error {
	p.fwd.Close()
	p.host.Close()
	return nil
}
