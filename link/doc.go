// Package link runs gVisor's netstack on an ENA (or any NIC with the same
// queue shape): Endpoint is a stack.LinkEndpoint and stack.GSOEndpoint over
// the NIC interface, and NewStack builds a ready stack around it.
//
// A service embeds it in a few lines (package enanic adapts *ena.Device):
//
//	dev, err := ena.Open(hwdev, ena.Config{})            // vfio.Open(...) or enasim.New(...)
//	st, err := link.NewStack(enanic.New(dev), link.StackOptions{DHCP: true})
//	ln, err := st.Listen("tcp", ":80")                // IPv4 and IPv6
//	http.Serve(ln, handler)
//	resp, err := st.HTTPClient().Get("http://orders.internal/") // DNS through the stack
//
// What the endpoint does with the device:
//   - Ethernet is built in: MAC and MTU come from the device, SetMTU goes
//     to the device (SET_FEATURE MTU).
//   - Tx: packets go to queue pkt.Hash % NumQueues, the rule of the fifo
//     qdisc NewStack installs with one queue per ring (a short frame that
//     finds its queue idle skips the queue's goroutine: qdisc.go), and are
//     gather-copied from the stack's views without allocating. With the device's partial
//     L4 checksum offload the endpoint seeds the pseudo-header sum (§7.2).
//   - Rx: one goroutine per queue polls a batch, copies each frame into a
//     pooled view, checks checksums (device verdict or software) and hands
//     the batch to the stack through a per-queue GRO, flushed per batch.
//   - gVisor GSO and GRO are on by default; Options turns each lever off.
//   - Link changes are tracked (frames are dropped while the link is
//     down), and a device that fails for good removes its NIC from the
//     stack through the close action the stack installs.
//   - Options.Pcap captures every frame in tcpdump's format.
//
// Where to find things, in the order a packet takes them:
//   - endpoint.go: Options, New, and the stack.LinkEndpoint lifecycle
//     (Attach, Wait, Close, link and fatal events).
//   - tx.go: WritePackets down to the queue's Send, with the Tx checksum
//     offload for IPv4 and IPv6.
//   - rx.go: the Rx queue, from a completed frame to DeliverNetworkPacket,
//     with the Rx checksum checks.
//   - frag.go: holding IPv4 and IPv6 fragments until their datagram's
//     checksum is verified; txfrag.go: the UDP checksum of datagrams the
//     stack fragments on Tx. pcap.go: the capture writer. stats.go:
//     counters.
//   - nic.go: the NIC and Queue interfaces a device implements.
//   - stack.go, dhcp.go: NewStack, the embedding API and the DHCP client.
//   - dial.go, listen.go, resolver.go, ping.go, neterr.go: the net-style
//     API (Dial, Listen, ListenPacket, Resolver, Ping, HTTPClient) with
//     package net's errors, after tsnet and wireguard-go's tun/netstack.
//   - ipv6.go, dhcpv6.go: IPv6 as EC2 gives it (link-local address, Router
//     Advertisements, DHCPv6, static addresses).
//
// link/simnic is the same NIC in software over a frame pipe, for tests and
// simulations; link/vpc runs the simulated VPC (router, DHCP and DHCPv6
// servers, Router Advertisements, DNS) on the far end of the wire.
//
// In comments, "§n.m" refers to that section of docs/protocol.md.
package link
