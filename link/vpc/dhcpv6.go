package vpc

import (
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
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
	// 450 s, what EC2's DHCPv6 server gives. T1 and T2 are half and four
	// fifths of it. The wire carries whole seconds.
	Lifetime time.Duration
	// ServerID is the server's DUID; nil means a DUID-LL from the NIC's
	// MAC. Two servers with different IDs on one link play a server
	// replaced by another: clients Renew with the one they know and
	// Rebind with whichever answers.
	ServerID dhcpv6.DUID
}

// DHCPv6Server is a small stateful DHCPv6 server (RFC 8415) on a
// link.Stack, standing in for the VPC's: a Solicit gets an Advertise with
// one IA_NA address, a Request, Renew, Rebind or Confirm a Reply with the
// same address and fresh lifetimes. Leases are kept per MAC (from the
// client's DUID), as EC2 ties an ENI's IPv6 address to the ENI; an address
// a client renews or rebinds that is not its lease comes back with
// lifetimes of 0, so the client drops it. A Renew naming another server
// is left to that server.
type DHCPv6Server struct {
	cfg  DHCPv6ServerConfig
	duid dhcpv6.DUID
	conn *gonet.UDPConn

	pool     *leasePool
	received [256]atomic.Uint64 // client messages by type

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
	if cfg.Lifetime < time.Second {
		return nil, fmt.Errorf("vpc: DHCPv6 server: lifetime %v: want at least 1 s (DHCPv6 carries whole seconds)", cfg.Lifetime)
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
	duid := cfg.ServerID
	if duid == nil {
		duid = &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr(s.Endpoint.LinkAddress())}
	}
	d := &DHCPv6Server{
		cfg:  cfg,
		duid: duid,
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
		d.received[msg.MessageType].Add(1)
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
			opts := dhcpv6.Options{&dhcpv6.OptIAAddress{
				IPv6Addr: net.IP(addr.AsSlice()), PreferredLifetime: d.cfg.Lifetime, ValidLifetime: d.cfg.Lifetime,
			}}
			if m.MessageType == dhcpv6.MessageTypeRenew || m.MessageType == dhcpv6.MessageTypeRebind {
				// Not this client's address (any more): lifetimes 0.
				for _, a := range ia.Options.Addresses() {
					if x, ok := netip.AddrFromSlice(a.IPv6Addr); ok && x.Unmap() != addr {
						opts = append(opts, &dhcpv6.OptIAAddress{IPv6Addr: a.IPv6Addr})
					}
				}
			}
			mods = append(mods, dhcpv6.WithOption(&dhcpv6.OptIANA{
				IaId: ia.IaId, T1: d.cfg.Lifetime / 2, T2: d.cfg.Lifetime * 4 / 5,
				Options: dhcpv6.IdentityOptions{Options: opts},
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

// Received counts the client messages of type t the server has read
// (dhcpv6.MessageTypeRenew, ...), answered or not.
func (d *DHCPv6Server) Received(t dhcpv6.MessageType) uint64 { return d.received[t].Load() }

// Leases returns a copy of the leases by client key (the MAC).
func (d *DHCPv6Server) Leases() map[string]netip.Addr { return d.pool.all() }
