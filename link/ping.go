package link

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// pingInterval is how often Ping repeats its echo request while it waits.
const pingInterval = time.Second

// Ping sends ICMP (IPv4) or ICMPv6 echo requests to addr through the stack,
// one per second, until a reply comes or ctx ends, and returns the round
// trip time of the first reply. Give ctx a deadline: an unreachable host
// otherwise keeps Ping waiting. A timeout is a *net.OpError whose
// Timeout() is true.
func (s *Stack) Ping(ctx context.Context, addr netip.Addr) (time.Duration, error) {
	addr = addr.Unmap().WithZone("")
	network, trans := "ip4:icmp", icmp.ProtocolNumber4
	if addr.Is6() {
		network, trans = "ip6:ipv6-icmp", icmp.ProtocolNumber6
	}
	raddr := &net.IPAddr{IP: addr.AsSlice()}
	if !addr.IsValid() || addr.IsUnspecified() {
		return 0, opError("ping", network, raddr, &net.AddrError{Err: "not a unicast address", Addr: addr.String()})
	}
	var wq waiter.Queue
	ep, terr := s.Stack.NewEndpoint(trans, protoOf(addr), &wq)
	if terr != nil {
		return 0, opError("ping", network, raddr, sysError("socket", terr))
	}
	defer ep.Close()
	we, readable := waiter.NewChannelEntry(waiter.ReadableEvents)
	wq.EventRegister(&we)
	defer wq.EventUnregister(&we)

	to := tcpip.FullAddress{NIC: s.NICID, Addr: tcpipAddr(addr)}
	var payload [16]byte
	binary.BigEndian.PutUint64(payload[8:], rand.Uint64()) // tells our replies from stale ones
	sent := map[uint16]time.Time{}
	var seq uint16
	tick := time.NewTicker(pingInterval)
	defer tick.Stop()
	send := func() error {
		seq++
		req := echoRequest(addr.Is6(), seq, payload[:])
		sent[seq] = time.Now()
		if _, terr := ep.Write(bytes.NewReader(req), tcpip.WriteOptions{To: &to}); terr != nil {
			return opError("ping", network, raddr, sysError("sendto", terr))
		}
		return nil
	}
	if err := send(); err != nil {
		return 0, err
	}
	var buf bytes.Buffer
	for {
		buf.Reset()
		_, terr := ep.Read(&buf, tcpip.ReadOptions{})
		if terr == nil {
			if seqNo, ok := echoReply(addr.Is6(), buf.Bytes(), payload[:]); ok {
				if t, ok := sent[seqNo]; ok {
					return time.Since(t), nil
				}
			}
			continue
		}
		if _, ok := terr.(*tcpip.ErrWouldBlock); !ok {
			return 0, opError("ping", network, raddr, sysError("recvfrom", terr))
		}
		select {
		case <-ctx.Done():
			return 0, opError("ping", network, raddr, ctxError(ctx.Err()))
		case <-tick.C:
			if err := send(); err != nil {
				return 0, err
			}
		case <-readable:
		}
	}
}

// echoRequest builds an echo request; the stack fills in the identifier
// (the endpoint's port) and, for ICMPv6, the checksum.
func echoRequest(v6 bool, seq uint16, payload []byte) []byte {
	b := make([]byte, header.ICMPv4MinimumSize+len(payload))
	copy(b[header.ICMPv4MinimumSize:], payload)
	if v6 {
		h := header.ICMPv6(b)
		h.SetType(header.ICMPv6EchoRequest)
		h.SetSequence(seq)
		return b
	}
	h := header.ICMPv4(b)
	h.SetType(header.ICMPv4Echo)
	h.SetSequence(seq)
	h.SetChecksum(header.ICMPv4Checksum(h, 0))
	return b
}

// echoReply reports the sequence number of an echo reply carrying payload.
func echoReply(v6 bool, b, payload []byte) (uint16, bool) {
	if len(b) < header.ICMPv4MinimumSize || !bytes.Equal(b[header.ICMPv4MinimumSize:], payload) {
		return 0, false
	}
	if v6 {
		h := header.ICMPv6(b)
		return h.Sequence(), h.Type() == header.ICMPv6EchoReply
	}
	h := header.ICMPv4(b)
	return h.Sequence(), h.Type() == header.ICMPv4EchoReply
}
