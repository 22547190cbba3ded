package vpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/enanet/enanet/link"
)

// DialTimeout bounds how long the forwarder waits for the far side of one
// TCP connection, counted from the connection's arrival: it includes the
// wait for the dials of connections that arrived before it (see TCP).
const DialTimeout = 10 * time.Second

// MaxUDPFlows bounds the UDP flows one relay keeps; each holds a socket.
const MaxUDPFlows = 512

// HostSocketBuffer is the send and receive buffer of every kernel TCP
// socket the forwarder splices. Left to auto-tuning, Linux grows a
// loopback socket's receive buffer to tcp_rmem's maximum (32 MiB here),
// so a host sender's bytes piled up in the forwarder's socket instead of
// waiting for the slower userspace path: with iperf3 -P 128 the host
// client counted 4.76 Gbit/s sent while 437 Mbit/s arrived. A fixed
// buffer turns that into back-pressure on the sender; 256 KiB still
// covers loopback's bandwidth-delay product many times over.
const HostSocketBuffer = 256 << 10

// DialFunc opens the far side of one forwarded TCP connection.
type DialFunc func(ctx context.Context) (net.Conn, error)

// Forwarder splices TCP connections and relays UDP flows between two
// networks, such as the host's sockets and a userspace stack. It owns every
// goroutine it starts and every socket it is given or opens: Close closes
// them and waits for the goroutines.
type Forwarder struct {
	log  *slog.Logger
	wg   sync.WaitGroup
	ctx  context.Context // canceled by Close: ends dials and their queues
	stop context.CancelFunc

	mu      sync.Mutex
	closers map[io.Closer]struct{}
	closed  bool
	lastErr error // the latest failed dial, for callers explaining a reset
}

// LastDialError is the latest failure to reach a forwarded connection's
// far side (nil if none): the reason a client of the forwarder saw its
// connection reset.
func (f *Forwarder) LastDialError() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastErr
}

// boundBuffers fixes a kernel socket's buffers at HostSocketBuffer
// (which also turns off their auto-tuning); other connections are left
// alone.
func boundBuffers(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetReadBuffer(HostSocketBuffer)
		tc.SetWriteBuffer(HostSocketBuffer)
	}
}

// NewForwarder returns an idle forwarder; log (nil: slog.Default()) gets
// failed dials.
func NewForwarder(log *slog.Logger) *Forwarder {
	if log == nil {
		log = slog.Default()
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Forwarder{log: log, ctx: ctx, stop: stop, closers: map[io.Closer]struct{}{}}
}

// track registers c to be closed by Close; false (and c closed) if the
// forwarder is already closed.
func (f *Forwarder) track(c io.Closer) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		c.Close()
		return false
	}
	f.closers[c] = struct{}{}
	return true
}

func (f *Forwarder) untrack(c io.Closer) {
	f.mu.Lock()
	delete(f.closers, c)
	f.mu.Unlock()
}

// Conns reports how many sockets (listeners, connections, UDP flows) the
// forwarder holds open.
func (f *Forwarder) Conns() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.closers)
}

// Close closes every listener, socket and connection and waits for the
// forwarder's goroutines. Later TCP and UDP calls close what they are given.
func (f *Forwarder) Close() {
	f.stop()
	f.mu.Lock()
	f.closed = true
	for c := range f.closers {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// TCP accepts on ln until it is closed and splices each connection to one
// from dial. The forwarder takes ln over.
//
// The far sides are opened in the order the connections arrived: a dial
// starts once the previous connection's far side is up or its dial has
// failed. A direct path keeps that order for a client that opens one
// connection after another, and protocols rely on it: an iperf3 server
// tells a test's streams apart only by the order it accepts them. Dialing
// each far side independently let two dials finish the wrong way round
// under load; with --bidir the server then sent on the stream the client
// sends on, and both sides waited for data on streams nobody wrote. Each
// connection still gets DialTimeout from its arrival, queueing included,
// so a far side that stops answering fails queued connections as soon as
// before.
func (f *Forwarder) TCP(ln net.Listener, dial DialFunc) {
	if !f.track(ln) {
		return
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer f.untrack(ln)
		prev := make(chan struct{})
		close(prev)
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed
			}
			// The deadline runs from arrival and the forwarder's Close
			// cancels it, so waiting for turn (closed only after the
			// previous dial ends) is bounded too.
			ctx, cancel := context.WithTimeout(f.ctx, DialTimeout)
			turn, dialed := prev, make(chan struct{})
			prev = dialed
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.splice(c, func() (net.Conn, error) {
					defer cancel()
					defer close(dialed)
					select {
					case <-turn:
					case <-ctx.Done():
					}
					// Both may be ready: a closed forwarder or a spent
					// deadline dials nothing.
					if err := ctx.Err(); err != nil {
						return nil, fmt.Errorf("vpc: the connections that arrived before it were still being forwarded: %w", err)
					}
					return dial(ctx)
				})
			}()
		}
	}()
}

type closeWriter interface{ CloseWrite() error }

// copyBuf is the splice buffer size. A large buffer lets each write hand
// the sending stack a big chunk: gVisor TCP sends a PSH-terminated
// (possibly short) segment at the end of every write it can send at once,
// so small writes mean more segments and more ACKs per byte.
const copyBuf = 128 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBuf); return &b }}

// pipe copies src to dst, then passes src's EOF on as a half close of dst,
// so protocols that shut one direction down first (HTTP may) still work.
func pipe(dst, src net.Conn) {
	bp := bufPool.Get().(*[]byte)
	// Plain Read/Write loop: io.CopyBuffer would defer to a ReaderFrom or
	// WriterTo with its own, smaller buffer.
	buf := *bp
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	bufPool.Put(bp)
	if cw, ok := dst.(closeWriter); ok {
		cw.CloseWrite()
	}
}

// splice connects a to a new connection from open and copies both ways
// until both directions have ended.
func (f *Forwarder) splice(a net.Conn, open func() (net.Conn, error)) {
	if !f.track(a) {
		return
	}
	defer f.untrack(a)
	defer a.Close()
	boundBuffers(a)
	b, err := open()
	if err != nil {
		if f.ctx.Err() != nil {
			return // the forwarder is closing
		}
		f.mu.Lock()
		f.lastErr = err
		f.mu.Unlock()
		f.log.Warn("vpc: forwarding a TCP connection", "from", a.RemoteAddr(), "err", err)
		return
	}
	boundBuffers(b)
	if !f.track(b) {
		return
	}
	defer f.untrack(b)
	defer b.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(b, a)
	}()
	pipe(a, b)
	<-done
}

// UDP relays datagrams arriving on pc until it is closed: each source
// address gets its own socket from dial, and what comes back on that socket
// goes to the source. The forwarder takes pc over.
func (f *Forwarder) UDP(pc net.PacketConn, dial func() (net.Conn, error)) {
	if !f.track(pc) {
		return
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer f.untrack(pc)
		flows := map[string]net.Conn{}
		buf := make([]byte, 65536)
		for {
			n, src, err := pc.ReadFrom(buf)
			if err != nil {
				if isClosed(err) {
					return
				}
				continue // an ICMP error echoed on the socket
			}
			key := src.String()
			fc := flows[key]
			if fc == nil {
				if len(flows) >= MaxUDPFlows {
					continue
				}
				if fc, err = dial(); err != nil {
					f.log.Warn("vpc: forwarding a UDP flow", "from", src, "err", err)
					continue
				}
				if !f.track(fc) {
					return
				}
				flows[key] = fc
				f.wg.Add(1)
				go func() {
					defer f.wg.Done()
					back := make([]byte, 65536)
					for {
						n, err := fc.Read(back)
						if err != nil {
							if isClosed(err) {
								return
							}
							continue
						}
						pc.WriteTo(back[:n], src)
					}
				}()
			}
			fc.Write(buf[:n]) // loss is UDP's to report
		}
	}()
}

// isClosed reports a socket closed under a reader, as opposed to an
// ICMP-induced error worth reading past. gonet reports a closed endpoint
// with tcpip's own error text, hence the string test.
func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || strings.Contains(err.Error(), "closed")
}

// Dialer dials through a userspace stack. It satisfies the usual
// DialContext interface (net.Dialer's method), for IP:port addresses.
type Dialer struct{ Stack *link.Stack }

// FullAddress converts ap to the stack's address form on its NIC, with the
// network protocol it needs.
func FullAddress(st *link.Stack, ap netip.AddrPort) (tcpip.FullAddress, tcpip.NetworkProtocolNumber) {
	a := ap.Addr().Unmap()
	proto := ipv4.ProtocolNumber
	if a.Is6() {
		proto = ipv6.ProtocolNumber
	}
	return tcpip.FullAddress{NIC: st.NICID, Addr: tcpip.AddrFromSlice(a.AsSlice()), Port: ap.Port()}, proto
}

// DialContext opens a "tcp" or "udp" connection to address, an IP:port.
func (d Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("vpc: the userspace stack dials IP:port only: %w", err)
	}
	switch network {
	case "tcp", "tcp4", "tcp6":
		return d.Stack.DialTCP(ctx, ap)
	case "udp", "udp4", "udp6":
		fa, proto := FullAddress(d.Stack, ap)
		c, err := gonet.DialUDP(d.Stack.Stack, nil, &fa, proto)
		if err != nil {
			return nil, fmt.Errorf("vpc: dialing UDP %v: %w", ap, err)
		}
		return c, nil
	}
	return nil, fmt.Errorf("vpc: network %q not supported", network)
}

// ForwardTCPBuffer is the send and receive buffer of the userspace side
// of each connection the forwarder opens with TCPTo. Like
// HostSocketBuffer it bounds what one forwarded connection holds, so the
// far sender's count stays close to what arrived.
const ForwardTCPBuffer = 256 << 10

// TCPTo returns a DialFunc that dials target through the stack, with
// ForwardTCPBuffer-sized buffers.
func (d Dialer) TCPTo(target netip.AddrPort) DialFunc {
	return func(ctx context.Context) (net.Conn, error) { return d.dialBuffered(ctx, target, ForwardTCPBuffer) }
}

// dialBuffered connects to target with the endpoint's buffers fixed at
// size before the handshake, so the advertised window never exceeds it.
func (d Dialer) dialBuffered(ctx context.Context, target netip.AddrPort, size int) (net.Conn, error) {
	fa, proto := FullAddress(d.Stack, target)
	var wq waiter.Queue
	ep, terr := d.Stack.Stack.NewEndpoint(tcp.ProtocolNumber, proto, &wq)
	if terr != nil {
		return nil, fmt.Errorf("vpc: dialing %v: %s", target, terr)
	}
	so := ep.SocketOptions()
	so.SetSendBufferSize(int64(size), true)
	so.SetReceiveBufferSize(int64(size), true)
	cerr, terr := link.Connect(ctx, ep, &wq, fa)
	if cerr != nil {
		ep.Close()
		return nil, fmt.Errorf("vpc: dialing %v: %w", target, cerr)
	}
	if terr != nil {
		ep.Close()
		return nil, fmt.Errorf("vpc: dialing %v: %s", target, terr)
	}
	return gonet.NewTCPConn(&wq, ep), nil
}

// UDPTo returns a dial function for Forwarder.UDP that opens a socket on
// the stack connected to target.
func (d Dialer) UDPTo(target netip.AddrPort) func() (net.Conn, error) {
	return func() (net.Conn, error) { return d.DialContext(context.Background(), "udp", target.String()) }
}

// TCPTo6 returns a DialFunc that dials port at server's global IPv6
// address (link.Stack.Addr6) through d's stack, with ForwardTCPBuffer-sized
// buffers, as TCPTo does. The address is read at each dial rather than
// once: a DHCPv6 address may arrive after the forwarder starts, or change
// with a new lease. Without one the dial fails with an error saying so.
func (d Dialer) TCPTo6(server *link.Stack, port uint16) DialFunc {
	return func(ctx context.Context) (net.Conn, error) {
		target, err := addr6Of(server, port)
		if err != nil {
			return nil, err
		}
		return d.dialBuffered(ctx, target, ForwardTCPBuffer)
	}
}

// UDPTo6 is UDPTo to port at server's global IPv6 address, read at each
// new flow as TCPTo6 does.
func (d Dialer) UDPTo6(server *link.Stack, port uint16) func() (net.Conn, error) {
	return func() (net.Conn, error) {
		target, err := addr6Of(server, port)
		if err != nil {
			return nil, err
		}
		return d.DialContext(context.Background(), "udp", target.String())
	}
}

// errNoAddr6 is a forwarded dial to a server without a global IPv6
// address.
var errNoAddr6 = errors.New("vpc: the server's stack has no global IPv6 address (none from DHCPv6 yet, and no static one)")

func addr6Of(server *link.Stack, port uint16) (netip.AddrPort, error) {
	a, _ := server.Addr6()
	if !a.IsValid() {
		return netip.AddrPort{}, errNoAddr6
	}
	return netip.AddrPortFrom(a.Addr(), port), nil
}

// ListenUDP binds a UDP socket on the stack's NIC at port.
func ListenUDP(st *link.Stack, port uint16) (net.PacketConn, error) {
	c, err := gonet.DialUDP(st.Stack, &tcpip.FullAddress{NIC: st.NICID, Port: port}, nil, ipv4.ProtocolNumber)
	if err != nil {
		return nil, fmt.Errorf("vpc: binding UDP port %d: %w", port, err)
	}
	return c, nil
}
