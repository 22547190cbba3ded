package link

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// Lease is what a DHCP server gave the NIC.
type Lease struct {
	Addr     netip.Prefix
	Router   netip.Addr // zero if the server sent none
	DNS      []netip.Addr
	Server   netip.Addr
	Duration time.Duration
	Acquired time.Time

	raw *nclient4.Lease
}

// dhcpClient opens a DHCP client socket (UDP port 68) on the NIC. gonet
// hides the endpoint, so it is made here with broadcast allowed and bound
// to the NIC, as nclient4 needs.
func (s *Stack) dhcpClient() (*nclient4.Client, error) {
	var wq waiter.Queue
	ep, terr := s.Stack.NewEndpoint(udp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		return nil, fmt.Errorf("link: DHCP: making a UDP endpoint: %s", terr)
	}
	ep.SocketOptions().SetBroadcast(true)
	if terr := ep.SocketOptions().SetBindToDevice(int32(s.NICID)); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("link: DHCP: binding to the NIC: %s", terr)
	}
	if terr := ep.Bind(tcpip.FullAddress{Port: dhcpv4.ClientPort}); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("link: DHCP: binding port %d: %s", dhcpv4.ClientPort, terr)
	}
	conn := gonet.NewUDPConn(&wq, ep)
	mac := s.Endpoint.LinkAddress()
	c, err := nclient4.NewWithConn(conn, net.HardwareAddr(mac), nclient4.WithTimeout(2*time.Second), nclient4.WithRetry(4))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("link: DHCP: %w", err)
	}
	return c, nil
}

// acquire runs DISCOVER/OFFER/REQUEST/ACK and configures the lease. While
// the NIC has no address it carries 0.0.0.0 so broadcasts can leave, and
// the broadcast flag asks the server to broadcast its replies: a unicast to
// the not-yet-assigned address would be dropped. (Promiscuous mode would
// accept those, but it also stops limited broadcasts from reaching the UDP
// socket in this gVisor version, so it is not used.)
func (s *Stack) acquire(ctx context.Context) (*Lease, error) {
	any := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddressWithPrefix{Address: header.IPv4Any}}
	if err := s.Stack.AddProtocolAddress(s.NICID, any, stack.AddressProperties{}); err != nil {
		return nil, fmt.Errorf("link: DHCP: adding 0.0.0.0: %s", err)
	}
	defer s.Stack.RemoveAddress(s.NICID, header.IPv4Any)
	// Broadcast needs a route: on-link everything while unconfigured.
	s.mu.Lock()
	unconfigured := !s.addr.IsValid()
	s.mu.Unlock()
	if unconfigured {
		s.Stack.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: s.NICID}})
	}
	c, err := s.dhcpClient()
	if err != nil {
		return nil, err
	}
	raw, err := c.Request(ctx, dhcpv4.WithBroadcast(true))
	c.Close()
	if err != nil {
		return nil, fmt.Errorf("link: DHCP: no lease: %w", err)
	}
	l, err := leaseFrom(raw)
	if err != nil {
		return nil, err
	}
	if err := s.apply(l); err != nil {
		return nil, err
	}
	s.log.Info("link: DHCP lease", "addr", l.Addr, "router", l.Router, "server", l.Server, "duration", l.Duration)
	return l, nil
}

func (s *Stack) apply(l *Lease) error {
	if err := s.Configure(l.Addr, l.Router); err != nil {
		return err
	}
	s.mu.Lock()
	s.lease = l
	s.mu.Unlock()
	return nil
}

func leaseFrom(raw *nclient4.Lease) (*Lease, error) {
	ack := raw.ACK
	ip, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if !ok || ip.IsUnspecified() {
		return nil, fmt.Errorf("link: DHCP: ACK without an address")
	}
	bits := 24
	if m := ack.SubnetMask(); m != nil {
		if ones, total := m.Size(); total == 32 {
			bits = ones
		}
	}
	l := &Lease{Addr: netip.PrefixFrom(ip, bits), Acquired: time.Now(), raw: raw}
	if r := ack.Router(); len(r) > 0 {
		l.Router, _ = netip.AddrFromSlice(r[0].To4())
	}
	for _, d := range ack.DNS() {
		if a, ok := netip.AddrFromSlice(d.To4()); ok {
			l.DNS = append(l.DNS, a)
		}
	}
	if sid := ack.ServerIdentifier(); sid != nil {
		l.Server, _ = netip.AddrFromSlice(sid.To4())
	}
	l.Duration = ack.IPAddressLeaseTime(time.Hour)
	return l, nil
}

// renewLoop renews the lease at half its time (RFC 2131 T1), retries more
// often as expiry nears, and starts over with a DISCOVER once it expired.
func (s *Stack) renewLoop(l *Lease) {
	defer s.wg.Done()
	for {
		wait := l.Duration / 2
		if wait < time.Second {
			wait = time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		go func() { // ends with cancel below at the latest
			select {
			case <-s.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		nl, err := s.renew(ctx, l)
		if err != nil && time.Since(l.Acquired) > l.Duration {
			nl, err = s.acquire(ctx)
		}
		cancel()
		if err != nil {
			s.log.Warn("link: DHCP renewal failed", "err", err)
			l = &Lease{Addr: l.Addr, Router: l.Router, Server: l.Server, Duration: l.Duration / 2, Acquired: l.Acquired, raw: l.raw}
			continue
		}
		l = nl
	}
}

func (s *Stack) renew(ctx context.Context, l *Lease) (*Lease, error) {
	c, err := s.dhcpClient()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	raw, err := c.Renew(ctx, l.raw)
	if err != nil {
		return nil, fmt.Errorf("link: DHCP: renewing: %w", err)
	}
	nl, err := leaseFrom(raw)
	if err != nil {
		return nil, err
	}
	if err := s.apply(nl); err != nil {
		return nil, err
	}
	return nl, nil
}
