package link

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// PingAddr is the address of a PingConn, as in wireguard-go's
// tun/netstack: an IP address whose network is "ping4" or "ping6".
type PingAddr struct{ addr netip.Addr }

var _ net.Addr = (*PingAddr)(nil)

// PingAddrFromAddr returns addr as a *PingAddr.
func PingAddrFromAddr(addr netip.Addr) *PingAddr { return &PingAddr{addr} }

// Addr is the IP address.
func (a PingAddr) Addr() netip.Addr { return a.addr }

// String is the IP address in its usual form.
func (a PingAddr) String() string { return a.addr.String() }

// Network is "ping4" or "ping6" by the address's family ("ping" without
// an address).
func (a PingAddr) Network() string {
	switch {
	case a.addr.Is4():
		return "ping4"
	case a.addr.Is6():
		return "ping6"
	}
	return "ping"
}

// PingConn is an ICMP (IPv4) or ICMPv6 echo socket on the stack, like
// Linux's unprivileged ping socket and wireguard-go's netstack PingConn:
// Write and WriteTo send one echo request, a whole ICMP message whose
// identifier the stack sets (to the socket's own, so replies find their
// way back) along with the checksum; Read and ReadFrom return one echo
// reply, the ICMP message without its IP header. It is a net.PacketConn
// and, after DialPing, a net.Conn. Deadlines work as in package net.
type PingConn struct {
	laddr, raddr PingAddr
	network      string // for errors: "ping4" or "ping6"
	nic          tcpip.NICID

	wq waiter.Queue
	ep tcpip.Endpoint

	readDeadline, writeDeadline deadline
	closeOnce                   sync.Once
	closed                      chan struct{}
}

var (
	_ net.PacketConn = (*PingConn)(nil)
	_ net.Conn       = (*PingConn)(nil)
)

// ListenPing opens an echo socket bound to laddr (nil or an unspecified
// address: any of the stack's addresses of that family; nil means IPv4);
// WriteTo picks each request's destination.
func (s *Stack) ListenPing(laddr *PingAddr) (*PingConn, error) {
	var a netip.Addr
	if laddr != nil {
		a = laddr.addr
	}
	if !a.IsValid() {
		a = netip.IPv4Unspecified()
	}
	return s.dialPing(a, netip.Addr{})
}

// DialPing opens an echo socket connected to raddr, bound to laddr if it
// is not nil; Write sends to raddr and Read returns only its replies.
func (s *Stack) DialPing(laddr, raddr *PingAddr) (*PingConn, error) {
	var l, r netip.Addr
	if laddr != nil {
		l = laddr.addr
	}
	if raddr != nil {
		r = raddr.addr
	}
	return s.dialPing(l, r)
}

// ListenPingAddr is ListenPing with a netip.Addr (the zero Addr: any IPv4
// address).
func (s *Stack) ListenPingAddr(laddr netip.Addr) (*PingConn, error) {
	return s.ListenPing(&PingAddr{laddr})
}

// DialPingAddr is DialPing with netip.Addrs; laddr may be the zero Addr.
func (s *Stack) DialPingAddr(laddr, raddr netip.Addr) (*PingConn, error) {
	return s.dialPing(laddr, raddr)
}

func (s *Stack) dialPing(laddr, raddr netip.Addr) (*PingConn, error) {
	laddr, raddr = laddr.Unmap().WithZone(""), raddr.Unmap().WithZone("")
	family := raddr
	if !family.IsValid() {
		family = laddr
	}
	network := PingAddr{family}.Network()
	if !family.IsValid() {
		return nil, opError("dial", network, nil, &net.AddrError{Err: "no address given", Addr: ""})
	}
	if laddr.IsValid() && raddr.IsValid() && laddr.Is4() != raddr.Is4() {
		return nil, opError("dial", network, &net.IPAddr{IP: raddr.AsSlice()},
			&net.AddrError{Err: "local and remote addresses of different families", Addr: laddr.String()})
	}
	trans := icmp.ProtocolNumber4
	if family.Is6() {
		trans = icmp.ProtocolNumber6
	}
	pc := &PingConn{network: network, nic: s.NICID, closed: make(chan struct{})}
	pc.readDeadline.init()
	pc.writeDeadline.init()
	ep, terr := s.Stack.NewEndpoint(trans, protoOf(family), &pc.wq)
	if terr != nil {
		return nil, opError("dial", network, nil, sysError("socket", terr))
	}
	pc.ep = ep
	bindTo := laddr
	if !bindTo.IsValid() {
		bindTo = netip.IPv4Unspecified()
		if family.Is6() {
			bindTo = netip.IPv6Unspecified()
		}
	}
	pc.laddr = PingAddr{bindTo}
	// No NIC in the bind address: with one, netstack accepts any IPv4
	// address (Linux's rule for a bound device), and the check that the
	// address is ours is what makes a typo fail here.
	var fa tcpip.FullAddress
	if !bindTo.IsUnspecified() {
		fa.Addr = tcpipAddr(bindTo)
	}
	if terr := ep.Bind(fa); terr != nil {
		ep.Close()
		return nil, opError("bind", network, &pc.laddr, sysError("bind", terr))
	}
	if raddr.IsValid() {
		pc.raddr = PingAddr{raddr}
		if terr := ep.Connect(tcpip.FullAddress{NIC: s.NICID, Addr: tcpipAddr(raddr)}); terr != nil {
			ep.Close()
			return nil, opError("dial", network, &pc.raddr, sysError("connect", terr))
		}
	}
	return pc, nil
}

// LocalAddr is the bound address (unspecified when none was given).
func (pc *PingConn) LocalAddr() net.Addr { return &pc.laddr }

// RemoteAddr is DialPing's raddr; nil after ListenPing.
func (pc *PingConn) RemoteAddr() net.Addr {
	if !pc.raddr.addr.IsValid() {
		return nil
	}
	return &pc.raddr
}

// Close closes the socket; blocked reads and writes return net.ErrClosed.
func (pc *PingConn) Close() error {
	pc.closeOnce.Do(func() {
		close(pc.closed)
		pc.ep.Close()
		pc.readDeadline.stop()
		pc.writeDeadline.stop()
	})
	return nil
}

// SetDeadline sets both deadlines.
func (pc *PingConn) SetDeadline(t time.Time) error {
	pc.readDeadline.set(t)
	pc.writeDeadline.set(t)
	return nil
}

// SetReadDeadline bounds Read and ReadFrom; the zero time removes it.
func (pc *PingConn) SetReadDeadline(t time.Time) error {
	pc.readDeadline.set(t)
	return nil
}

// SetWriteDeadline bounds Write and WriteTo; the zero time removes it.
func (pc *PingConn) SetWriteDeadline(t time.Time) error {
	pc.writeDeadline.set(t)
	return nil
}

// isClosed reports a closed conn.
func (pc *PingConn) isClosed() bool {
	select {
	case <-pc.closed:
		return true
	default:
		return false
	}
}

// ReadFrom reads one echo reply into p (truncated if p is short) and the
// address it came from, a *PingAddr.
func (pc *PingConn) ReadFrom(p []byte) (int, net.Addr, error) {
	e, readable := waiter.NewChannelEntry(waiter.ReadableEvents)
	pc.wq.EventRegister(&e)
	defer pc.wq.EventUnregister(&e)
	for {
		if pc.isClosed() {
			return 0, nil, opError("read", pc.network, &pc.laddr, net.ErrClosed)
		}
		w := tcpip.SliceWriter(p)
		res, terr := pc.ep.Read(&w, tcpip.ReadOptions{NeedRemoteAddr: true})
		switch terr.(type) {
		case nil:
			return res.Count, &PingAddr{addrFrom(res.RemoteAddr.Addr)}, nil
		case *tcpip.ErrWouldBlock:
		case *tcpip.ErrClosedForReceive:
			return 0, nil, opError("read", pc.network, &pc.laddr, net.ErrClosed)
		default:
			return 0, nil, opError("read", pc.network, &pc.laddr, sysError("recvfrom", terr))
		}
		select {
		case <-readable:
		case <-pc.closed:
		case <-pc.readDeadline.wait():
			return 0, nil, opError("read", pc.network, &pc.laddr, timeoutError{})
		}
	}
}

// Read reads one echo reply, as ReadFrom.
func (pc *PingConn) Read(p []byte) (int, error) {
	n, _, err := pc.ReadFrom(p)
	return n, err
}

// WriteTo sends p, an ICMP echo request (type 8 for IPv4, 128 for IPv6,
// code 0), to addr: a *PingAddr, PingAddr or *net.IPAddr of the socket's
// family.
func (pc *PingConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	var a netip.Addr
	switch x := addr.(type) {
	case *PingAddr:
		a = x.addr
	case PingAddr:
		a = x.addr
	case *net.IPAddr:
		a, _ = netip.AddrFromSlice(x.IP)
	default:
		return 0, opError("write", pc.network, addr, &net.AddrError{Err: fmt.Sprintf("want a *link.PingAddr or *net.IPAddr, not %T", addr)})
	}
	a = a.Unmap()
	if !a.IsValid() || a.Is4() != pc.laddr.addr.Is4() {
		return 0, opError("write", pc.network, addr, &net.AddrError{Err: "address of the wrong family for this socket", Addr: a.String()})
	}
	// The NIC is named so that link-local destinations need no zone.
	return pc.write(p, &tcpip.FullAddress{NIC: pc.nic, Addr: tcpipAddr(a)}, addr)
}

// Write sends p, an ICMP echo request, to DialPing's raddr.
func (pc *PingConn) Write(p []byte) (int, error) {
	return pc.write(p, nil, pc.RemoteAddr())
}

func (pc *PingConn) write(p []byte, to *tcpip.FullAddress, addr net.Addr) (int, error) {
	e, writable := waiter.NewChannelEntry(waiter.WritableEvents)
	pc.wq.EventRegister(&e)
	defer pc.wq.EventUnregister(&e)
	var r bytes.Reader
	for {
		if pc.isClosed() {
			return 0, opError("write", pc.network, addr, net.ErrClosed)
		}
		select {
		case <-pc.writeDeadline.wait():
			return 0, opError("write", pc.network, addr, timeoutError{})
		default:
		}
		r.Reset(p)
		n, terr := pc.ep.Write(&r, tcpip.WriteOptions{To: to})
		switch terr.(type) {
		case nil:
			return int(n), nil
		case *tcpip.ErrWouldBlock:
		case *tcpip.ErrInvalidEndpointState:
			return 0, opError("write", pc.network, addr, &net.AddrError{Err: "not an ICMP echo request (type 8 or 128, code 0, at least 8 bytes)"})
		case *tcpip.ErrDestinationRequired:
			return 0, opError("write", pc.network, addr, &net.AddrError{Err: "no destination: use WriteTo, or DialPing with a remote address"})
		default:
			return 0, opError("write", pc.network, addr, sysError("sendto", terr))
		}
		select {
		case <-writable:
		case <-pc.closed:
		case <-pc.writeDeadline.wait():
			return 0, opError("write", pc.network, addr, timeoutError{})
		}
	}
}

// addrFrom converts a netstack address to a netip.Addr.
func addrFrom(a tcpip.Address) netip.Addr {
	if a.Len() == 4 {
		return netip.AddrFrom4(a.As4())
	}
	return netip.AddrFrom16(a.As16())
}

// deadline is one direction's deadline of a PingConn: wait returns a
// channel that is closed once the deadline has passed.
type deadline struct {
	mu    sync.Mutex
	gen   uint64 // bumped by every set, so a stale timer closes nothing
	timer *time.Timer
	ch    chan struct{}
}

func (d *deadline) init() { d.ch = make(chan struct{}) }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	select {
	case <-d.ch: // passed: a new deadline starts open
		d.ch = make(chan struct{})
	default:
	}
	if t.IsZero() {
		return
	}
	dur := time.Until(t)
	if dur <= 0 {
		close(d.ch)
		return
	}
	gen, ch := d.gen, d.ch
	d.timer = time.AfterFunc(dur, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.gen == gen {
			close(ch)
		}
	})
}

func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}

func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen++
	if d.timer != nil {
		d.timer.Stop()
	}
}
