package vpc

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/enanet/enanet/link"
)

// DHCPv6ServerConfig describes the addresses a DHCPv6Server hands out.
type DHCPv6ServerConfig struct {
	// First is the first address leased (as a /128, like EC2); leases go
	// up from it, Count of them.
	First netip.Addr
	Count int
	DNS   []netip.Addr
	// Lifetime is each address's preferred and valid lifetime; 0 means
	// 450 s, what EC2's DHCPv6 server gives.
	Lifetime time.Duration
}

// DHCPv6Server is a small stateful DHCPv6 server (RFC 8415) on a
// link.Stack, standing in for the VPC's: a Solicit gets an Advertise with
// one IA_NA address, a Request, Renew, Rebind or Confirm a Reply with the
// same address. Leases are kept per MAC (from the client's DUID), as EC2
// ties an ENI's IPv6 address to the ENI.
type DHCPv6Server struct {
	cfg  DHCPv6ServerConfig
	duid dhcpv6.DUID
	conn *gonet.UDPConn

	pool *leasePool

	done chan struct{}
}

// ServeDHCPv6 starts a DHCPv6 server on port 547 of s's NIC, joined to
// All_DHCP_Relay_Agents_and_Servers (ff02::1:2). Close stops it.
func ServeDHCPv6(s *link.Stack, cfg DHCPv6ServerConfig) (*DHCPv6Server, error) {
	if !cfg.First.Is6() || cfg.First.Is4In6() || cfg.Count <= 0 {
		return nil, fmt.Errorf("vpc: DHCPv6 server: bad pool %v+%d", cfg.First, cfg.Count)
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = 450 * time.Second
	}
	group := tcpip.AddrFrom16(netip.MustParseAddr("ff02::1:2").As16())
	if terr := s.Stack.JoinGroup(ipv6.ProtocolNumber, s.NICID, group); terr != nil {
		return nil, fmt.Errorf("vpc: DHCPv6 server: joining ff02::1:2: %s", terr)
	}
	var wq waiter.Queue
	ep, terr := s.Stack.NewEndpoint(udp.ProtocolNumber, ipv6.ProtocolNumber, &wq)
	if terr != nil {
		return nil, fmt.Errorf("vpc: DHCPv6 server: making a UDP endpoint: %s", terr)
	}
	ep.SocketOptions().SetV6Only(true)
	// Bound to the NIC so replies to link-local clients find their way.
	if terr := ep.SocketOptions().SetBindToDevice(int32(s.NICID)); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("vpc: DHCPv6 server: binding to the NIC: %s", terr)
	}
	if terr := ep.Bind(tcpip.FullAddress{Port: dhcpv6.DefaultServerPort}); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("vpc: DHCPv6 server: binding port %d: %s", dhcpv6.DefaultServerPort, terr)
	}
	d := &DHCPv6Server{
		cfg:  cfg,
		duid: &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr(s.Endpoint.LinkAddress())},
		conn: gonet.NewUDPConn(&wq, ep),
		pool: newLeasePool(cfg.First, cfg.Count),
		done: make(chan struct{}),
	}
	go d.serve()
	return d, nil
}

// Close stops the server and waits for it.
func (d *DHCPv6Server) Close() error {
	err := d.conn.Close()
	<-d.done
	return err
}

func (d *DHCPv6Server) serve() {
	defer close(d.done)
	buf := make([]byte, 1500)
	for {
		n, peer, err := d.conn.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		msg, err := dhcpv6.MessageFromBytes(buf[:n])
		if err != nil {
			continue
		}
		if resp := d.answer(msg); resp != nil {
			_, _ = d.conn.WriteTo(resp.ToBytes(), peer)
		}
	}
}

// answer builds the reply to one client message, or nil to stay silent.
func (d *DHCPv6Server) answer(m *dhcpv6.Message) *dhcpv6.Message {
	cid := m.Options.ClientID()
	if cid == nil {
		return nil
	}
	if sid := m.Options.ServerID(); sid != nil && !sid.Equal(d.duid) {
		return nil // meant for another server
	}
	key := string(cid.ToBytes())
	switch c := cid.(type) { // one lease per MAC, whatever DUID kind
	case *dhcpv6.DUIDLLT:
		key = c.LinkLayerAddr.String()
	case *dhcpv6.DUIDLL:
		key = c.LinkLayerAddr.String()
	}
	var resp *dhcpv6.Message
	var err error
	mods := []dhcpv6.Modifier{dhcpv6.WithServerID(d.duid)}
	for _, a := range d.cfg.DNS {
		mods = append(mods, dhcpv6.WithDNS(net.IP(a.AsSlice())))
	}
	switch m.MessageType {
	case dhcpv6.MessageTypeSolicit, dhcpv6.MessageTypeRequest, dhcpv6.MessageTypeRenew,
		dhcpv6.MessageTypeRebind, dhcpv6.MessageTypeConfirm:
		ia := m.Options.OneIANA()
		if ia == nil {
			return nil // temporary or delegated prefixes only: not offered
		}
		addr, ok := d.pool.lease(key)
		if !ok {
			mods = append(mods, dhcpv6.WithOption(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoAddrsAvail, StatusMessage: "pool exhausted"}))
		} else {
			mods = append(mods, dhcpv6.WithOption(&dhcpv6.OptIANA{
				IaId: ia.IaId, T1: d.cfg.Lifetime / 2, T2: d.cfg.Lifetime * 4 / 5,
				Options: dhcpv6.IdentityOptions{Options: dhcpv6.Options{&dhcpv6.OptIAAddress{
					IPv6Addr: net.IP(addr.AsSlice()), PreferredLifetime: d.cfg.Lifetime, ValidLifetime: d.cfg.Lifetime,
				}}},
			}))
		}
		if m.MessageType == dhcpv6.MessageTypeSolicit {
			resp, err = dhcpv6.NewAdvertiseFromSolicit(m, mods...)
		} else {
			resp, err = dhcpv6.NewReplyFromMessage(m, mods...)
		}
	case dhcpv6.MessageTypeRelease, dhcpv6.MessageTypeInformationRequest:
		resp, err = dhcpv6.NewReplyFromMessage(m, mods...)
	default:
		return nil
	}
	if err != nil {
		return nil
	}
	return resp
}

// Leases returns a copy of the leases by client key (the MAC).
func (d *DHCPv6Server) Leases() map[string]netip.Addr { return d.pool.all() }
