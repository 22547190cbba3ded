package vpc

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/enanet/enanet/link"
)

// DHCPServerConfig describes the addresses a DHCPServer hands out.
type DHCPServerConfig struct {
	// First is the first address leased; leases go up from it, Count of
	// them. The mask comes from the serving stack's own prefix.
	First netip.Addr
	Count int
	// Router is sent as option 3 (the VPC router, subnet base + 1 on EC2).
	Router netip.Addr
	DNS    []netip.Addr
	// LeaseTime defaults to one hour (EC2 uses one hour too).
	LeaseTime time.Duration
}

// DHCPServer is a small DHCPv4 server on a link.Stack, standing in for the
// VPC's: DISCOVER gets an OFFER, REQUEST an ACK (or NAK for an address it
// did not offer). Leases are kept per MAC.
type DHCPServer struct {
	s    *link.Stack
	cfg  DHCPServerConfig
	self netip.Prefix
	conn *gonet.UDPConn

	pool *leasePool

	done chan struct{}
}

// ServeDHCP starts a DHCP server on port 67 of s, which must have a static
// address. Close stops it.
func ServeDHCP(s *link.Stack, cfg DHCPServerConfig) (*DHCPServer, error) {
	self, _ := s.Addr()
	if !self.IsValid() {
		return nil, errors.New("vpc: DHCP server: the stack has no address")
	}
	if !cfg.First.Is4() || cfg.Count <= 0 {
		return nil, fmt.Errorf("vpc: DHCP server: bad pool %v+%d", cfg.First, cfg.Count)
	}
	if cfg.LeaseTime == 0 {
		cfg.LeaseTime = time.Hour
	}
	// Replies to clients without an address go to 255.255.255.255.
	bcast := tcpip.AddressWithPrefix{Address: tcpip.AddrFrom4([4]byte{255, 255, 255, 255}), PrefixLen: 32}.Subnet()
	s.Stack.AddRoute(tcpip.Route{Destination: bcast, NIC: s.NICID})

	var wq waiter.Queue
	ep, terr := s.Stack.NewEndpoint(udp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		return nil, fmt.Errorf("vpc: DHCP server: making a UDP endpoint: %s", terr)
	}
	ep.SocketOptions().SetBroadcast(true)
	if terr := ep.Bind(tcpip.FullAddress{Port: dhcpv4.ServerPort}); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("vpc: DHCP server: binding port %d: %s", dhcpv4.ServerPort, terr)
	}
	d := &DHCPServer{s: s, cfg: cfg, self: self, conn: gonet.NewUDPConn(&wq, ep),
		pool: newLeasePool(cfg.First, cfg.Count), done: make(chan struct{})}
	go d.serve()
	return d, nil
}

// Close stops the server and waits for it.
func (d *DHCPServer) Close() error {
	err := d.conn.Close()
	<-d.done
	return err
}

func (d *DHCPServer) serve() {
	defer close(d.done)
	buf := make([]byte, 1500)
	for {
		n, _, err := d.conn.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		req, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || req.OpCode != dhcpv4.OpcodeBootRequest {
			continue
		}
		resp := d.answer(req)
		if resp == nil {
			continue
		}
		dst := &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
		if !req.ClientIPAddr.IsUnspecified() && !req.IsBroadcast() {
			dst.IP = req.ClientIPAddr
		}
		_, _ = d.conn.WriteTo(resp.ToBytes(), dst)
	}
}

// answer builds the reply to one request, or nil to stay silent.
func (d *DHCPServer) answer(req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	mac := req.ClientHWAddr.String()
	var typ dhcpv4.MessageType
	var ip netip.Addr
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		typ = dhcpv4.MessageTypeOffer
		var ok bool
		if ip, ok = d.pool.lease(mac); !ok {
			return nil // pool exhausted
		}
	case dhcpv4.MessageTypeRequest:
		want := req.RequestedIPAddress()
		if want == nil || want.IsUnspecified() {
			want = req.ClientIPAddr
		}
		if sid := req.ServerIdentifier(); sid != nil && !sid.Equal(net.IP(d.self.Addr().AsSlice())) {
			return nil // the client chose another server
		}
		have, ok := d.pool.lease(mac)
		w, _ := netip.AddrFromSlice(want.To4())
		typ, ip = dhcpv4.MessageTypeAck, have
		if !ok || w != have {
			typ = dhcpv4.MessageTypeNak
		}
	default:
		return nil
	}
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithServerIP(net.IP(d.self.Addr().AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP(d.self.Addr().AsSlice()))),
	}
	if typ != dhcpv4.MessageTypeNak {
		mask := net.CIDRMask(d.self.Bits(), 32)
		mods = append(mods,
			dhcpv4.WithYourIP(net.IP(ip.AsSlice())),
			dhcpv4.WithNetmask(mask),
			dhcpv4.WithLeaseTime(uint32(d.cfg.LeaseTime/time.Second)),
		)
		if d.cfg.Router.IsValid() {
			mods = append(mods, dhcpv4.WithRouter(net.IP(d.cfg.Router.AsSlice())))
		}
		for _, a := range d.cfg.DNS {
			mods = append(mods, dhcpv4.WithDNS(net.IP(a.AsSlice())))
		}
	}
	resp, err := dhcpv4.NewReplyFromRequest(req, mods...)
	if err != nil {
		return nil
	}
	return resp
}

// Leases returns a copy of the leases by MAC.
func (d *DHCPServer) Leases() map[string]netip.Addr { return d.pool.all() }
