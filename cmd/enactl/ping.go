package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/enanet/enanet/link"
)

// ping sends one ICMP echo request to dst through the userspace stack (a
// gVisor ping endpoint, which sets the identifier and checksum) and waits
// for the reply.
func ping(ctx context.Context, st *link.Stack, dst netip.Addr, seq uint16, timeout time.Duration) (time.Duration, error) {
	var wq waiter.Queue
	ep, terr := st.Stack.NewEndpoint(icmp.ProtocolNumber4, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		return 0, fmt.Errorf("ICMP endpoint: %s", terr)
	}
	defer ep.Close()
	we, ready := waiter.NewChannelEntry(waiter.ReadableEvents)
	wq.EventRegister(&we)
	defer wq.EventUnregister(&we)
	if terr := ep.Connect(tcpip.FullAddress{NIC: st.NICID, Addr: tcpip.AddrFrom4(dst.As4())}); terr != nil {
		return 0, fmt.Errorf("ICMP connect to %s: %s", dst, terr)
	}
	msg := make([]byte, header.ICMPv4MinimumSize+32)
	msg[0] = byte(header.ICMPv4Echo)
	binary.BigEndian.PutUint16(msg[6:], seq)
	copy(msg[header.ICMPv4MinimumSize:], "enactl doctor ping payload......")
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		if _, terr := ep.Write(bytes.NewReader(msg), tcpip.WriteOptions{}); terr == nil {
			break
		} else if _, ok := terr.(*tcpip.ErrWouldBlock); !ok {
			return 0, fmt.Errorf("ICMP send to %s: %s", dst, terr)
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("ICMP send to %s: timed out", dst)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for {
		var b bytes.Buffer
		_, terr := ep.Read(&b, tcpip.ReadOptions{})
		if terr == nil {
			r := b.Bytes()
			if len(r) >= header.ICMPv4MinimumSize && r[0] == byte(header.ICMPv4EchoReply) && binary.BigEndian.Uint16(r[6:]) == seq {
				return time.Since(start), nil
			}
			continue
		}
		if _, ok := terr.(*tcpip.ErrWouldBlock); !ok {
			return 0, fmt.Errorf("ICMP receive: %s", terr)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return 0, fmt.Errorf("no echo reply from %s within %s", dst, timeout)
		}
		select {
		case <-ready:
		case <-time.After(left):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}
