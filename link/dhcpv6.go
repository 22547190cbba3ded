package link

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/dhcpv6/nclient6"
	"github.com/insomniacslk/dhcp/iana"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// Lease6 is what a DHCPv6 server gave the NIC: one address of an IA_NA
// (a /128 on EC2; the on-link prefix comes from Router Advertisements).
// The client keeps it as RFC 8415 says: from T1 it asks the same server
// to extend it (Renew), from T2 any server (Rebind), and when the valid
// lifetime runs out with no answer the address is removed.
type Lease6 struct {
	Addr      netip.Addr
	DNS       []netip.Addr
	Server    netip.Addr // the address the server answered from (link-local)
	Preferred time.Duration
	Valid     time.Duration
	// T1 and T2 are when, after Acquired, the client renews and rebinds:
	// the IA_NA's, or half and four fifths of Preferred where the server
	// left them to the client (0).
	T1, T2   time.Duration
	Acquired time.Time

	// What Renew and Rebind repeat from the server's Reply.
	clientID, serverID dhcpv6.DUID
	iaid               [4]byte
}

// renewAt, rebindAt and expiresAt are the lease's deadlines.
func (l *Lease6) renewAt() time.Time   { return l.Acquired.Add(l.T1) }
func (l *Lease6) rebindAt() time.Time  { return l.Acquired.Add(l.T2) }
func (l *Lease6) expiresAt() time.Time { return l.Acquired.Add(l.Valid) }

// minT1 keeps a server's zero or tiny lifetimes from turning the renewal
// loop into a busy loop.
const minT1 = 500 * time.Millisecond

// errRefused6 is a DHCPv6 server saying no: a status code, or the address
// given back with a valid lifetime of 0.
var errRefused6 = errors.New("link: DHCPv6: the server refused the address")

// peerConn remembers the address the latest datagram came from: the
// DHCPv6 client library reads the socket itself and does not tell.
type peerConn struct {
	net.PacketConn
	last atomic.Pointer[netip.Addr]
}

func (p *peerConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := p.PacketConn.ReadFrom(b)
	if ua, ok := a.(*net.UDPAddr); ok && err == nil {
		ip := ua.AddrPort().Addr().Unmap().WithZone("")
		p.last.Store(&ip)
	}
	return n, a, err
}

func (p *peerConn) peer() netip.Addr {
	if a := p.last.Load(); a != nil {
		return *a
	}
	return netip.Addr{}
}

// dhcp6Client opens a DHCPv6 client socket (UDP port 546) bound to the
// NIC, so that its messages to ff02::1:2 leave from the link-local
// address (RFC 8415 section 13.1). Each attempt waits timeout for an
// answer, doubling it for each of retries (-1: until ctx ends).
func (s *Stack) dhcp6Client(timeout time.Duration, retries int) (*nclient6.Client, *peerConn, error) {
	var wq waiter.Queue
	ep, terr := s.Stack.NewEndpoint(udp.ProtocolNumber, ipv6.ProtocolNumber, &wq)
	if terr != nil {
		return nil, nil, fmt.Errorf("link: DHCPv6: making a UDP endpoint: %s", terr)
	}
	ep.SocketOptions().SetV6Only(true)
	if terr := ep.SocketOptions().SetBindToDevice(int32(s.NICID)); terr != nil {
		ep.Close()
		return nil, nil, fmt.Errorf("link: DHCPv6: binding to the NIC: %s", terr)
	}
	if terr := ep.Bind(tcpip.FullAddress{Port: dhcpv6.DefaultClientPort}); terr != nil {
		ep.Close()
		return nil, nil, fmt.Errorf("link: DHCPv6: binding port %d: %s", dhcpv6.DefaultClientPort, terr)
	}
	conn := &peerConn{PacketConn: gonet.NewUDPConn(&wq, ep)}
	c, err := nclient6.NewWithConn(conn, net.HardwareAddr(s.Endpoint.LinkAddress()), nclient6.WithTimeout(timeout), nclient6.WithRetry(retries))
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("link: DHCPv6: %w", err)
	}
	return c, conn, nil
}

// acquire6 runs Solicit/Advertise/Request/Reply and configures the
// address.
func (s *Stack) acquire6(ctx context.Context) (*Lease6, error) {
	c, conn, err := s.dhcp6Client(time.Second, 3)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	adv, err := c.Solicit(ctx)
	if err != nil {
		return nil, fmt.Errorf("link: DHCPv6: no advertisement: %w", err)
	}
	reply, err := c.Request(ctx, adv)
	if err != nil {
		return nil, fmt.Errorf("link: DHCPv6: no reply to the request: %w", err)
	}
	l, err := lease6From(reply, conn.peer())
	if err != nil {
		return nil, err
	}
	return l, s.apply6(l, "acquired")
}

// apply6 makes l the NIC's DHCPv6 address (replacing the previous one if
// the server gave another).
func (s *Stack) apply6(l *Lease6, how string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.v6.static.IsValid() {
		return errStatic6
	}
	if err := s.setAddr6Locked(netip.PrefixFrom(l.Addr, 128)); err != nil {
		return err
	}
	s.v6.lease = l
	s.installRoutesLocked()
	s.log.Info("link: DHCPv6 lease "+how, "addr", l.Addr, "server", l.Server, "dns", l.DNS, "valid", l.Valid, "t1", l.T1, "t2", l.T2)
	return nil
}

// errStatic6 stops DHCPv6: Configure6 set a static address.
var errStatic6 = errors.New("link: DHCPv6: a static IPv6 address was configured meanwhile")

// expire6 removes l's address, its valid lifetime over with no server
// extending it, unless another lease or a static address replaced it.
func (s *Stack) expire6(l *Lease6) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.v6.lease != l {
		return
	}
	s.Stack.RemoveAddress(s.NICID, tcpipAddr(l.Addr))
	s.v6.lease = nil
	s.installRoutesLocked()
	s.log.Warn("link: DHCPv6 lease expired with no server extending it; address removed", "addr", l.Addr, "valid", l.Valid)
}

// lease6From reads a Reply: status, the IA_NA's first address with a
// non-zero valid lifetime, T1 and T2, DNS servers, and the identifiers
// Renew and Rebind need. from is the address the Reply came from.
func lease6From(m *dhcpv6.Message, from netip.Addr) (*Lease6, error) {
	if st := m.Options.Status(); st != nil && st.StatusCode != iana.StatusSuccess {
		return nil, fmt.Errorf("%w: %s", errRefused6, st.String())
	}
	ia := m.Options.OneIANA()
	if ia == nil {
		return nil, fmt.Errorf("link: DHCPv6: reply without an IA_NA")
	}
	if st := ia.Options.Status(); st != nil && st.StatusCode != iana.StatusSuccess {
		return nil, fmt.Errorf("%w: %s", errRefused6, st.String())
	}
	addrs := ia.Options.Addresses()
	if len(addrs) == 0 {
		return nil, fmt.Errorf("link: DHCPv6: IA_NA without an address")
	}
	var ia6 *dhcpv6.OptIAAddress
	for _, a := range addrs {
		if a.ValidLifetime > 0 {
			ia6 = a
			break
		}
	}
	if ia6 == nil {
		return nil, fmt.Errorf("%w: valid lifetime 0", errRefused6)
	}
	a, ok := netip.AddrFromSlice(ia6.IPv6Addr)
	if !ok || !a.Is6() || a.Is4In6() || a.IsUnspecified() || a.IsMulticast() {
		return nil, fmt.Errorf("link: DHCPv6: bad address %v", ia6.IPv6Addr)
	}
	l := &Lease6{Addr: a, Server: from, Preferred: min(ia6.PreferredLifetime, ia6.ValidLifetime), Valid: ia6.ValidLifetime,
		T1: ia.T1, T2: ia.T2, Acquired: time.Now(),
		clientID: m.Options.ClientID(), serverID: m.Options.ServerID(), iaid: ia.IaId}
	// RFC 8415 section 21.4: T1 and T2 of 0 leave the times to the client.
	if l.T1 == 0 {
		l.T1 = l.Preferred / 2
	}
	if l.T2 == 0 {
		l.T2 = l.Preferred * 4 / 5
	}
	l.T1 = min(max(l.T1, minT1), l.Valid)
	l.T2 = min(max(l.T2, l.T1), l.Valid)
	for _, d := range m.Options.DNS() {
		if x, ok := netip.AddrFromSlice(d); ok {
			l.DNS = append(l.DNS, x.Unmap())
		}
	}
	if l.clientID == nil {
		return nil, fmt.Errorf("link: DHCPv6: reply without a client ID")
	}
	return l, nil
}

// extend6 sends l's Renew (to its server) or Rebind (to any) until a
// Reply comes or until; nil and the reason when none extended it.
func (s *Stack) extend6(ctx context.Context, l *Lease6, kind dhcpv6.MessageType, until time.Time) (*Lease6, error) {
	left := time.Until(until)
	if left <= 0 {
		return nil, context.DeadlineExceeded
	}
	ctx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	// RFC 8415's REN_TIMEOUT and REB_TIMEOUT are 10 s; a short lease gets
	// several tries before its deadline instead.
	c, conn, err := s.dhcp6Client(min(10*time.Second, max(left/8, 100*time.Millisecond)), -1)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	msg, err := dhcpv6.NewMessage()
	if err != nil {
		return nil, err
	}
	msg.MessageType = kind
	msg.AddOption(dhcpv6.OptClientID(l.clientID))
	if kind == dhcpv6.MessageTypeRenew && l.serverID != nil {
		msg.AddOption(dhcpv6.OptServerID(l.serverID))
	}
	msg.AddOption(dhcpv6.OptElapsedTime(0))
	msg.AddOption(&dhcpv6.OptIANA{IaId: l.iaid, Options: dhcpv6.IdentityOptions{Options: dhcpv6.Options{
		&dhcpv6.OptIAAddress{IPv6Addr: net.IP(l.Addr.AsSlice())},
	}}})
	msg.AddOption(dhcpv6.OptRequestedOption(dhcpv6.OptionDNSRecursiveNameServer, dhcpv6.OptionDomainSearchList))
	reply, err := c.SendAndRead(ctx, c.RemoteAddr(), msg, nclient6.IsMessageType(dhcpv6.MessageTypeReply))
	if err != nil {
		return nil, err
	}
	return lease6From(reply, conn.peer())
}

// Lease6 returns the current DHCPv6 lease, nil without one.
func (s *Stack) Lease6() *Lease6 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.v6.lease
}

// dhcp6Loop keeps a DHCPv6 address: it acquires a lease (unless given
// l), renews it from T1, rebinds from T2, and removes the address when
// the valid lifetime ends with no server extending it; a server that
// refuses sends the client back to Solicit, keeping the address until
// then. Without a lease it solicits every 3 s. A static address
// (Configure6) ends it.
func (s *Stack) dhcp6Loop(l *Lease6) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		s.v6.dhcp6Running = false
		s.mu.Unlock()
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // ends with cancel above at the latest
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for ctx.Err() == nil {
		if l == nil {
			actx, acancel := context.WithTimeout(ctx, 15*time.Second)
			nl, err := s.acquire6(actx)
			acancel()
			if errors.Is(err, errStatic6) {
				return
			}
			if err != nil {
				s.log.Warn("link: DHCPv6 failed", "err", err)
				if !s.sleep(3 * time.Second) {
					return
				}
				continue
			}
			l = nl
		}
		if !s.sleepUntil(l.renewAt()) {
			return
		}
		nl, err := s.keep6(ctx, l)
		switch {
		case errors.Is(err, errStatic6):
			return
		case nl != nil:
			l = nl
		case ctx.Err() != nil:
			return
		default:
			s.log.Warn("link: DHCPv6 renewal failed", "addr", l.Addr, "err", err)
			s.expire6(l)
			l = nil
		}
	}
}

// keep6 extends l from T1: Renew until T2, then Rebind until the valid
// lifetime ends; after a refusal, a new Solicit until then. It returns
// the extended (or new) lease, applied, or nil and why not.
func (s *Stack) keep6(ctx context.Context, l *Lease6) (*Lease6, error) {
	nl, err := s.extend6(ctx, l, dhcpv6.MessageTypeRenew, l.rebindAt())
	if nl == nil && !errors.Is(err, errRefused6) && ctx.Err() == nil {
		nl, err = s.extend6(ctx, l, dhcpv6.MessageTypeRebind, l.expiresAt())
	}
	if nl != nil {
		how := "renewed"
		if nl.Addr != l.Addr {
			how = "renewed with a new address"
		}
		if err := s.apply6(nl, how); err != nil {
			return nil, err
		}
		return nl, nil
	}
	if !errors.Is(err, errRefused6) {
		return nil, err
	}
	s.log.Warn("link: DHCPv6 server refused to extend the lease; soliciting a new one", "addr", l.Addr, "err", err)
	for ctx.Err() == nil && time.Now().Before(l.expiresAt()) {
		actx, acancel := context.WithDeadline(ctx, l.expiresAt())
		nl, err = s.acquire6(actx)
		acancel()
		if err == nil || errors.Is(err, errStatic6) {
			return nl, err
		}
		if !s.sleep(min(3*time.Second, time.Until(l.expiresAt()))) {
			break
		}
	}
	return nil, err
}

// sleep waits d; false if the stack stopped meanwhile.
func (s *Stack) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.stop:
		return false
	case <-t.C:
		return true
	}
}

// sleepUntil waits until t; false if the stack stopped meanwhile.
func (s *Stack) sleepUntil(t time.Time) bool {
	return s.sleep(time.Until(t))
}
