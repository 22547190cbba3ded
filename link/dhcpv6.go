package link

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/dhcpv6/nclient6"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// Lease6 is what a DHCPv6 server gave the NIC: one address of an IA_NA
// (a /128 on EC2; the on-link prefix comes from Router Advertisements).
type Lease6 struct {
	Addr      netip.Addr
	DNS       []netip.Addr
	Server    netip.Addr // the server's (link-local) address
	Preferred time.Duration
	Valid     time.Duration
	Acquired  time.Time
}

// dhcp6Client opens a DHCPv6 client socket (UDP port 546) bound to the
// NIC, so that its Solicit to ff02::1:2 leaves from the link-local
// address (RFC 8415 section 13.1).
func (s *Stack) dhcp6Client() (*nclient6.Client, error) {
	var wq waiter.Queue
	ep, terr := s.Stack.NewEndpoint(udp.ProtocolNumber, ipv6.ProtocolNumber, &wq)
	if terr != nil {
		return nil, fmt.Errorf("link: DHCPv6: making a UDP endpoint: %s", terr)
	}
	ep.SocketOptions().SetV6Only(true)
	if terr := ep.SocketOptions().SetBindToDevice(int32(s.NICID)); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("link: DHCPv6: binding to the NIC: %s", terr)
	}
	if terr := ep.Bind(tcpip.FullAddress{Port: dhcpv6.DefaultClientPort}); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("link: DHCPv6: binding port %d: %s", dhcpv6.DefaultClientPort, terr)
	}
	conn := gonet.NewUDPConn(&wq, ep)
	c, err := nclient6.NewWithConn(conn, net.HardwareAddr(s.Endpoint.LinkAddress()), nclient6.WithTimeout(time.Second), nclient6.WithRetry(3))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("link: DHCPv6: %w", err)
	}
	return c, nil
}

// acquire6 runs Solicit/Advertise/Request/Reply and configures the
// address.
func (s *Stack) acquire6(ctx context.Context) (*Lease6, error) {
	c, err := s.dhcp6Client()
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
	l, err := lease6From(reply)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.v6.static.IsValid() {
		return nil, fmt.Errorf("link: DHCPv6: a static IPv6 address was configured meanwhile")
	}
	if err := s.setAddr6Locked(netip.PrefixFrom(l.Addr, 128)); err != nil {
		return nil, err
	}
	s.v6.lease = l
	s.installRoutesLocked()
	s.log.Info("link: DHCPv6 lease", "addr", l.Addr, "dns", l.DNS, "valid", l.Valid)
	return l, nil
}

func lease6From(m *dhcpv6.Message) (*Lease6, error) {
	if st := m.Options.Status(); st != nil && st.StatusCode != 0 {
		return nil, fmt.Errorf("link: DHCPv6: server refused: %s", st.String())
	}
	ia := m.Options.OneIANA()
	if ia == nil {
		return nil, fmt.Errorf("link: DHCPv6: reply without an IA_NA")
	}
	if st := ia.Options.Status(); st != nil && st.StatusCode != 0 {
		return nil, fmt.Errorf("link: DHCPv6: no address: %s", st.String())
	}
	addrs := ia.Options.Addresses()
	if len(addrs) == 0 {
		return nil, fmt.Errorf("link: DHCPv6: IA_NA without an address")
	}
	a, ok := netip.AddrFromSlice(addrs[0].IPv6Addr)
	if !ok || !a.Is6() || a.Is4In6() || a.IsUnspecified() || a.IsMulticast() {
		return nil, fmt.Errorf("link: DHCPv6: bad address %v", addrs[0].IPv6Addr)
	}
	l := &Lease6{Addr: a, Preferred: addrs[0].PreferredLifetime, Valid: addrs[0].ValidLifetime, Acquired: time.Now()}
	for _, d := range m.Options.DNS() {
		if x, ok := netip.AddrFromSlice(d); ok {
			l.DNS = append(l.DNS, x.Unmap())
		}
	}
	return l, nil
}

// Lease6 returns the current DHCPv6 lease, nil without one.
func (s *Stack) Lease6() *Lease6 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.v6.lease
}

// dhcp6Loop keeps a DHCPv6 lease: it acquires one (unless given l), then
// runs the exchange again at half the preferred lifetime (RFC 8415's T1
// default), a fresh Solicit rather than a Renew, which the VPC answers
// with the same address. While it has none it retries every 3 s.
func (s *Stack) dhcp6Loop(l *Lease6) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		s.v6.dhcp6Running = false
		s.mu.Unlock()
	}()
	for {
		if l != nil && !s.sleep(max(l.Preferred/2, time.Second)) {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		go func() { // ends with cancel below at the latest
			select {
			case <-s.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		nl, err := s.acquire6(ctx)
		cancel()
		if err != nil {
			s.log.Warn("link: DHCPv6 failed", "err", err)
			if !s.sleep(3 * time.Second) {
				return
			}
			l = nil
			continue
		}
		l = nl
	}
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
