package link_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/enanet/enanet/link"
	"github.com/enanet/enanet/link/simnic"
	"github.com/enanet/enanet/link/vpc"
)

var (
	macA = [6]byte{0x02, 0, 0, 0, 0, 0x0a}
	macB = [6]byte{0x02, 0, 0, 0, 0, 0x0b}

	addrA = netip.MustParsePrefix("10.0.0.1/24")
	addrB = netip.MustParsePrefix("10.0.0.2/24")

	fullOffloads = link.Offloads{TxCsumIPv4: true, TxL4CsumIPv4Partial: true, TxL4CsumIPv6Partial: true,
		RxCsumIPv4: true, RxCsumL4: true, RxHash: true}
)

// nextPort gives each transfer its own port: a closed listener's port is
// not free again at once.
var nextPort atomic.Uint32

func init() { nextPort.Store(20000) }

type rig struct {
	a, b   *link.Stack
	na, nb *simnic.NIC
}

type rigConfig struct {
	queues   int
	offloads link.Offloads
	opts     link.Options
	optsB    *link.Options // nil: same as opts
	noQDisc  bool
	noBypass bool // StackOptions.NoTxBypass
	mtu      int
}

// newRig joins two stacks through two simulated NICs on an in-memory pipe.
func newRig(t testing.TB, c rigConfig) *rig {
	t.Helper()
	wa, wb := simnic.NewPipe()
	na := simnic.New(wa, simnic.Config{MAC: macA, Queues: c.queues, Offloads: c.offloads, MTU: c.mtu})
	nb := simnic.New(wb, simnic.Config{MAC: macB, Queues: c.queues, Offloads: c.offloads, MTU: c.mtu})
	ob := c.opts
	if c.optsB != nil {
		ob = *c.optsB
	}
	a, err := link.NewStack(na, link.StackOptions{Addr: addrA, Endpoint: c.opts, NoQDisc: c.noQDisc, NoTxBypass: c.noBypass})
	require.NoError(t, err)
	b, err := link.NewStack(nb, link.StackOptions{Addr: addrB, Endpoint: ob, NoQDisc: c.noQDisc, NoTxBypass: c.noBypass})
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	r := &rig{a: a, b: b, na: na, nb: nb}
	t.Cleanup(r.close)
	return r
}

func (r *rig) close() {
	r.a.Close()
	r.b.Close()
	r.na.Close()
	r.nb.Close()
}

// echoOnce listens on a fresh port of s and echoes the first connection
// until its client closes its write side; the error of that echo arrives on
// the returned channel. The listener closes when the test ends.
func echoOnce(t testing.TB, s *link.Stack) (uint16, <-chan error) {
	t.Helper()
	port := uint16(nextPort.Add(1))
	ln, err := s.ListenTCP(port)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	echoErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			echoErr <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(c, c)
		echoErr <- err
	}()
	return port, echoErr
}

// transfer sends n random bytes from `from` to a listener on `to` and
// back again, and compares both directions.
func transfer(t testing.TB, from, to *link.Stack, toAddr netip.Prefix, n int) {
	t.Helper()
	port, echoErr := echoOnce(t, to)
	want := make([]byte, n)
	rand.Read(want)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := from.DialTCP(ctx, netip.AddrPortFrom(toAddr.Addr(), port))
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	writeErr := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		if err == nil {
			err = c.(*gonet.TCPConn).CloseWrite()
		}
		writeErr <- err
	}()
	got, err := io.ReadAll(c)
	require.NoError(t, err, "reading the echo")
	require.NoError(t, <-writeErr, "writing")
	require.NoError(t, <-echoErr, "echo")
	if !bytes.Equal(got, want) {
		t.Fatalf("echo differs: got %d bytes, want %d", len(got), len(want))
	}
}

func TestTCPBulk(t *testing.T) {
	size := 4 << 20
	if raceEnabled {
		size = 1 << 20
	}
	for _, tc := range []struct {
		name string
		c    rigConfig
	}{
		{"default", rigConfig{queues: 2, offloads: fullOffloads}},
		{"no-gso", rigConfig{queues: 2, offloads: fullOffloads, opts: link.Options{NoGSO: true}}},
		{"no-gro", rigConfig{queues: 2, offloads: fullOffloads, opts: link.Options{NoGRO: true}}},
		{"no-gso-no-gro", rigConfig{queues: 1, offloads: fullOffloads, opts: link.Options{NoGSO: true, NoGRO: true}}},
		{"no-device-offloads", rigConfig{queues: 2}},
		{"no-offloads-at-all", rigConfig{queues: 1, opts: link.Options{NoTxChecksumOffload: true, NoRxChecksumOffload: true}}},
		{"tx-v4-only", rigConfig{queues: 1, offloads: link.Offloads{TxL4CsumIPv4Partial: true}}},
		{"rx-only", rigConfig{queues: 1, offloads: link.Offloads{RxCsumIPv4: true, RxCsumL4: true}}},
		{"mixed", rigConfig{queues: 2, offloads: fullOffloads, optsB: &link.Options{NoGSO: true, NoGRO: true, NoTxChecksumOffload: true}}},
		{"no-qdisc", rigConfig{queues: 2, offloads: fullOffloads, noQDisc: true}},
		{"jumbo", rigConfig{queues: 1, offloads: fullOffloads, mtu: 9001}},
		{"jumbo-software-verdict", rigConfig{queues: 1, mtu: 9001}},
		{"jumbo-no-gro", rigConfig{queues: 2, offloads: fullOffloads, mtu: 9001, opts: link.Options{NoGRO: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.c)
			transfer(t, r.a, r.b, addrB, size)
			sa := r.a.Endpoint.Stats()
			sb := r.b.Endpoint.Stats()
			var bad uint64
			for _, q := range append(sa.Rx, sb.Rx...) {
				bad += q.ChecksumBad + q.Malformed
			}
			if bad != 0 {
				t.Errorf("%d frames dropped as bad or malformed on a clean wire", bad)
			}
			if got := r.a.Stack.Stats().TCP.ChecksumErrors.Value() + r.b.Stack.Stats().TCP.ChecksumErrors.Value(); got != 0 {
				t.Errorf("stack counted %d TCP checksum errors", got)
			}
			if tc.c.offloads == (link.Offloads{}) && !tc.c.opts.NoRxChecksumOffload {
				var sw uint64
				for _, q := range sb.Rx {
					sw += q.SoftwareVerified
				}
				if sw == 0 {
					t.Error("no frame was verified in software although the device checks nothing")
				}
			}
			if tc.c.offloads.RxCsumL4 {
				var dev uint64
				for _, q := range sb.Rx {
					dev += q.DeviceVerified
				}
				if dev == 0 {
					t.Error("no frame used the device's checksum verdict")
				}
			}
		})
	}
}

func TestMultiQueueSpread(t *testing.T) {
	r := newRig(t, rigConfig{queues: 4, offloads: fullOffloads})
	for i := 0; i < 8; i++ {
		transfer(t, r.a, r.b, addrB, 64<<10)
	}
	used := 0
	for _, q := range r.a.Endpoint.Stats().Tx {
		if q.Packets > 0 {
			used++
		}
	}
	if used < 2 {
		t.Errorf("8 connections used %d of 4 Tx queues", used)
	}
	used = 0
	for _, q := range r.b.Endpoint.Stats().Rx {
		if q.Packets > 0 {
			used++
		}
	}
	if used < 2 {
		t.Errorf("8 connections used %d of 4 Rx queues", used)
	}
}

func TestUDP(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    rigConfig
	}{
		{"offloads", rigConfig{queues: 2, offloads: fullOffloads}},
		{"software", rigConfig{queues: 1}},
		{"off", rigConfig{queues: 1, opts: link.Options{NoTxChecksumOffload: true, NoRxChecksumOffload: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, tc.c)
			srv, err := gonet.DialUDP(r.b.Stack, &tcpip.FullAddress{NIC: 1, Port: 7000}, nil, ipv4.ProtocolNumber)
			require.NoError(t, err)
			defer srv.Close()
			cli, err := gonet.DialUDP(r.a.Stack, nil, &tcpip.FullAddress{Addr: tcpip.AddrFrom4(addrB.Addr().As4()), Port: 7000}, ipv4.ProtocolNumber)
			require.NoError(t, err)
			defer cli.Close()
			buf := make([]byte, 2000)
			for i := 0; i < 50; i++ {
				msg := make([]byte, 1+i*20)
				rand.Read(msg)
				if _, err := cli.Write(msg); err != nil {
					t.Fatal(err)
				}
				srv.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, _, err := srv.ReadFrom(buf)
				if err != nil {
					t.Fatalf("datagram %d: %v", i, err)
				}
				if !bytes.Equal(buf[:n], msg) {
					t.Fatalf("datagram %d differs", i)
				}
			}
		})
	}
}

// ping sends ICMP echo requests from s to dst over an ICMP endpoint and
// waits for the replies.
func ping(t testing.TB, s *link.Stack, dst netip.Addr, count int, timeout time.Duration) int {
	t.Helper()
	var wq waiter.Queue
	ep, terr := s.Stack.NewEndpoint(icmp.ProtocolNumber4, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		t.Fatal(terr)
	}
	defer ep.Close()
	conn := gonet.NewUDPConn(&wq, ep)
	to := &tcpip.FullAddress{Addr: tcpip.AddrFrom4(dst.As4())}
	if terr := ep.Connect(*to); terr != nil {
		t.Fatal(terr)
	}
	got := 0
	buf := make([]byte, 1500)
	for i := 0; i < count; i++ {
		req := header.ICMPv4(make([]byte, header.ICMPv4MinimumSize+32))
		req.SetType(header.ICMPv4Echo)
		req.SetSequence(uint16(i))
		if _, err := conn.Write(req); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(timeout))
		n, err := conn.Read(buf)
		if err != nil {
			continue
		}
		if n >= header.ICMPv4MinimumSize && header.ICMPv4(buf[:n]).Type() == header.ICMPv4EchoReply {
			got++
		}
	}
	return got
}

func TestPing(t *testing.T) {
	r := newRig(t, rigConfig{queues: 2, offloads: fullOffloads})
	if got := ping(t, r.a, addrB.Addr(), 5, 2*time.Second); got != 5 {
		t.Fatalf("%d of 5 echo replies", got)
	}
}

func TestLinkDownUp(t *testing.T) {
	var changes []bool
	var mu sync.Mutex
	r := newRig(t, rigConfig{queues: 1, offloads: fullOffloads, opts: link.Options{OnLinkChange: func(up bool) {
		mu.Lock()
		changes = append(changes, up)
		mu.Unlock()
	}}})
	if got := ping(t, r.a, addrB.Addr(), 1, 2*time.Second); got != 1 {
		t.Fatal("no echo reply with the link up")
	}
	r.na.SetLink(false)
	if r.a.Endpoint.LinkUp() {
		t.Fatal("endpoint still reports the link up")
	}
	if got := ping(t, r.a, addrB.Addr(), 2, 200*time.Millisecond); got != 0 {
		t.Fatalf("%d echo replies with the link down", got)
	}
	if r.a.Endpoint.Stats().TxLinkDown == 0 {
		t.Error("no frame counted as dropped for the link being down")
	}
	// A transfer started while the link is down completes once it is up.
	done := make(chan struct{})
	go func() {
		defer close(done)
		transfer(t, r.a, r.b, addrB, 256<<10)
	}()
	time.Sleep(300 * time.Millisecond)
	r.na.SetLink(true)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("transfer did not finish after the link came back")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(changes) != 2 || changes[0] || !changes[1] {
		t.Errorf("link changes seen: %v, want [false true]", changes)
	}
}

func TestSetMTU(t *testing.T) {
	r := newRig(t, rigConfig{queues: 1, offloads: fullOffloads})
	if err := r.a.Endpoint.SetMTUErr(9001); err != nil {
		t.Fatal(err)
	}
	if r.a.Endpoint.MTU() != 9001 || r.na.MTU() != 9001 {
		t.Fatalf("MTU %d / device %d, want 9001", r.a.Endpoint.MTU(), r.na.MTU())
	}
	if err := r.a.Endpoint.SetMTUErr(10000); err == nil {
		t.Fatal("MTU above the device maximum accepted")
	}
	r.a.Endpoint.SetMTU(10000) // logged, ignored
	if r.a.Endpoint.MTU() != 9001 {
		t.Fatalf("refused MTU changed the endpoint MTU to %d", r.a.Endpoint.MTU())
	}
}

// rawTCPFrame builds an Ethernet/IPv4/TCP SYN from A to B with a correct
// checksum, or a corrupted one.
func rawTCPFrame(bad bool) []byte {
	f := make([]byte, header.EthernetMinimumSize+header.IPv4MinimumSize+header.TCPMinimumSize)
	header.Ethernet(f).Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(macA[:]), DstAddr: tcpip.LinkAddress(macB[:]), Type: header.IPv4ProtocolNumber})
	ip := header.IPv4(f[header.EthernetMinimumSize:])
	src, dst := tcpip.AddrFrom4(addrA.Addr().As4()), tcpip.AddrFrom4(addrB.Addr().As4())
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(f) - header.EthernetMinimumSize), TTL: 64,
		Protocol: uint8(header.TCPProtocolNumber), SrcAddr: src, DstAddr: dst})
	ip.SetChecksum(^ip.CalculateChecksum())
	tcp := header.TCP(ip[header.IPv4MinimumSize:])
	tcp.Encode(&header.TCPFields{SrcPort: 4000, DstPort: 5002, SeqNum: 1, DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagSyn, WindowSize: 1000})
	sum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, header.TCPMinimumSize)
	tcp.SetChecksum(^checksum.Checksum(tcp, sum))
	if bad {
		tcp.SetChecksum(tcp.Checksum() + 1)
	}
	return f
}

func TestRxChecksumBadDropped(t *testing.T) {
	for _, tc := range []struct {
		name     string
		offloads link.Offloads
		opts     link.Options
		endpoint bool // the endpoint drops it (else the stack)
	}{
		{"device-verdict", fullOffloads, link.Options{}, true},
		{"software-verdict", link.Offloads{}, link.Options{}, true},
		{"stack-verdict", fullOffloads, link.Options{NoRxChecksumOffload: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wa, wb := simnic.NewPipe()
			defer wa.Close()
			nb := simnic.New(wb, simnic.Config{MAC: macB, Offloads: tc.offloads})
			b, err := link.NewStack(nb, link.StackOptions{Addr: addrB, Endpoint: tc.opts})
			require.NoError(t, err)
			defer b.Close()
			ln, err := b.ListenTCP(5002)
			require.NoError(t, err)
			defer ln.Close()
			var sent sync.WaitGroup
			var replies int
			var mu sync.Mutex
			wa.SetReceiver(func(f []byte) {
				if header.Ethernet(f).Type() == header.IPv6ProtocolNumber {
					return // the stack's own IPv6 start-up (RS, MLD)
				}
				mu.Lock()
				replies++
				mu.Unlock()
			})
			sent.Add(1)
			wa.Send(rawTCPFrame(true))
			sent.Done()
			time.Sleep(100 * time.Millisecond)
			st := b.Endpoint.Stats()
			epDrops := st.Rx[0].ChecksumBad
			stackDrops := b.Stack.Stats().TCP.ChecksumErrors.Value()
			if tc.endpoint && (epDrops != 1 || stackDrops != 0) {
				t.Errorf("endpoint dropped %d, stack %d; want the endpoint to drop it", epDrops, stackDrops)
			}
			if !tc.endpoint && (epDrops != 0 || stackDrops != 1) {
				t.Errorf("endpoint dropped %d, stack %d; want the stack to drop it", epDrops, stackDrops)
			}
			mu.Lock()
			if replies != 0 {
				t.Errorf("%d frames answered a SYN with a bad checksum", replies)
			}
			mu.Unlock()
			// The same SYN with a good checksum gets an answer (ARP, SYN-ACK).
			wa.Send(rawTCPFrame(false))
			deadline := time.Now().Add(5 * time.Second)
			for {
				mu.Lock()
				n := replies
				mu.Unlock()
				if n > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no answer to a good SYN")
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

func TestRxFragments(t *testing.T) {
	// Datagrams larger than the MTU are fragmented by the sender. With Rx
	// offload the device cannot vouch for their UDP checksum, so the
	// endpoint's fragment verifier checks it over the whole datagram before
	// delivering the pieces; without offload the stack reassembles and
	// checks. Either way the datagram arrives intact.
	for _, offload := range []bool{true, false} {
		t.Run(fmt.Sprintf("rx-offload=%v", offload), func(t *testing.T) {
			opts := link.Options{NoRxChecksumOffload: !offload}
			r := newRig(t, rigConfig{queues: 1, offloads: fullOffloads, opts: opts})
			srv, err := gonet.DialUDP(r.b.Stack, &tcpip.FullAddress{NIC: 1, Port: 7001}, nil, ipv4.ProtocolNumber)
			require.NoError(t, err)
			defer srv.Close()
			cli, err := gonet.DialUDP(r.a.Stack, nil, &tcpip.FullAddress{Addr: tcpip.AddrFrom4(addrB.Addr().As4()), Port: 7001}, ipv4.ProtocolNumber)
			require.NoError(t, err)
			defer cli.Close()
			msg := make([]byte, 4000)
			rand.Read(msg)
			cli.Write(msg)
			srv.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			buf := make([]byte, 8000)
			n, _, err := srv.ReadFrom(buf)
			if err != nil || !bytes.Equal(buf[:n], msg) {
				t.Fatalf("fragmented datagram: %v", err)
			}
			st := r.b.Endpoint.Stats().Rx[0]
			if offload && (st.FragmentsVerified < 3 || st.FragmentsDropped != 0) {
				t.Fatalf("under Rx offload: %d fragments verified, %d dropped; want 3 verified (4000 B over MTU 1500), 0 dropped", st.FragmentsVerified, st.FragmentsDropped)
			}
		})
	}
}

// readPcap parses a classic pcap file and returns its frames.
func readPcap(t *testing.T, b []byte) [][]byte {
	t.Helper()
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(b[20:]) != 1 { // pcap magic, LINKTYPE_ETHERNET
		t.Fatalf("bad pcap header % x", b[:min(24, len(b))])
	}
	var frames [][]byte
	for p := b[24:]; len(p) > 0; {
		if len(p) < 16 {
			t.Fatalf("truncated record header")
		}
		incl := int(binary.LittleEndian.Uint32(p[8:]))
		orig := int(binary.LittleEndian.Uint32(p[12:]))
		if incl > orig || 16+incl > len(p) {
			t.Fatalf("bad record: incl %d orig %d, %d bytes left", incl, orig, len(p))
		}
		frames = append(frames, p[16:16+incl])
		p = p[16+incl:]
	}
	return frames
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func TestPcap(t *testing.T) {
	var buf lockedBuffer
	r := newRig(t, rigConfig{queues: 2, offloads: fullOffloads, opts: link.Options{Pcap: &buf}, optsB: &link.Options{}})
	transfer(t, r.a, r.b, addrB, 64<<10)
	ping(t, r.a, addrB.Addr(), 1, 2*time.Second)
	r.a.Close()
	buf.mu.Lock()
	data := append([]byte(nil), buf.b.Bytes()...)
	buf.mu.Unlock()
	frames := readPcap(t, data)
	var arp, fromA, toA int
	for _, f := range frames {
		eth := header.Ethernet(f)
		if eth.Type() == header.ARPProtocolNumber {
			arp++
		}
		if eth.SourceAddress() == tcpip.LinkAddress(macA[:]) {
			fromA++
		}
		if eth.DestinationAddress() == tcpip.LinkAddress(macA[:]) {
			toA++
		}
	}
	if arp == 0 || fromA < 10 || toA < 10 {
		t.Fatalf("capture has %d frames: %d ARP, %d sent, %d received", len(frames), arp, fromA, toA)
	}
	if tcpdump, err := exec.LookPath("tcpdump"); err == nil {
		f := filepath.Join(t.TempDir(), "a.pcap")
		os.WriteFile(f, data, 0o644)
		out, err := exec.Command(tcpdump, "-nr", f).CombinedOutput()
		if err != nil {
			t.Fatalf("tcpdump: %v\n%s", err, out)
		}
		if lines := bytes.Count(out, []byte("\n")); lines < len(frames) {
			t.Errorf("tcpdump printed %d lines for %d frames", lines, len(frames))
		}
	} else {
		t.Log("tcpdump not installed: checked the pcap format in Go only")
	}
}

func TestDHCP(t *testing.T) {
	wa, wb := simnic.NewPipe()
	na := simnic.New(wa, simnic.Config{MAC: macA, Offloads: fullOffloads})
	nb := simnic.New(wb, simnic.Config{MAC: macB, Offloads: fullOffloads})
	defer na.Close()
	defer nb.Close()
	router, err := link.NewStack(nb, link.StackOptions{Addr: netip.MustParsePrefix("172.31.0.2/20")})
	require.NoError(t, err)
	defer router.Close()
	srv, err := vpc.ServeDHCP(router, vpc.DHCPServerConfig{First: netip.MustParseAddr("172.31.5.10"), Count: 10,
		Router: netip.MustParseAddr("172.31.0.2"), LeaseTime: 2 * time.Second})
	require.NoError(t, err)
	defer srv.Close()
	cli, err := link.NewStack(na, link.StackOptions{DHCP: true, DHCPTimeout: 20 * time.Second})
	require.NoError(t, err)
	defer cli.Close()
	addr, gw := cli.Addr()
	if addr != netip.MustParsePrefix("172.31.5.10/20") || gw != netip.MustParseAddr("172.31.0.2") {
		t.Fatalf("got %v via %v", addr, gw)
	}
	l := cli.Lease()
	if l == nil || l.Server != netip.MustParseAddr("172.31.0.2") || l.Duration != 2*time.Second {
		t.Fatalf("lease %+v", l)
	}
	// The address works, and survives a renewal (T1 = 1 s).
	transfer(t, cli, router, netip.MustParsePrefix("172.31.0.2/20"), 64<<10)
	time.Sleep(1500 * time.Millisecond)
	if nl := cli.Lease(); nl == l {
		t.Error("lease not renewed")
	}
	if got := ping(t, router, addr.Addr(), 1, 2*time.Second); got != 1 {
		t.Error("no echo reply after renewal")
	}
}

func TestFatalRemovesNIC(t *testing.T) {
	r := newRig(t, rigConfig{queues: 2, offloads: fullOffloads})
	r.na.Fail(errors.New("test: device gone"))
	deadline := time.Now().Add(5 * time.Second)
	for r.a.Stack.HasNIC(r.a.NICID) {
		if time.Now().After(deadline) {
			t.Fatal("NIC still in the stack after a fatal device error")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if r.a.Endpoint.Err() == nil || r.a.Endpoint.Stats().Fatal == "" {
		t.Fatal("fatal error not recorded")
	}
}

// TestCloseUnderLoad tears stacks down while traffic flows both ways and
// checks that no goroutine is left behind and nothing deadlocks.
func TestCloseUnderLoad(t *testing.T) {
	before := runtime.NumGoroutine()
	for i := 0; i < 3; i++ {
		func() {
			wa, wb := simnic.NewPipe()
			na := simnic.New(wa, simnic.Config{MAC: macA, Queues: 2, Offloads: fullOffloads})
			nb := simnic.New(wb, simnic.Config{MAC: macB, Queues: 2, Offloads: fullOffloads})
			a, err := link.NewStack(na, link.StackOptions{Addr: addrA})
			require.NoError(t, err)
			b, err := link.NewStack(nb, link.StackOptions{Addr: addrB})
			require.NoError(t, err)
			// Ping floods keep the Rx goroutines inside the stack (ICMP
			// replies look up routes under the stack lock). Each stack is
			// closed while the other keeps flooding it. A stack's own
			// flood stops first: gVisor itself deadlocks when Destroy runs
			// while an application endpoint of that stack is still writing
			// (Destroy holds the stack lock and waits for the fifo
			// dispatchers; a dispatcher releasing a packet waits for the
			// writing endpoint's lock; the writer waits for the stack lock),
			// which is not the endpoint's to fix.
			stops := map[*link.Stack]chan struct{}{a: make(chan struct{}), b: make(chan struct{})}
			wgs := map[*link.Stack]*sync.WaitGroup{a: {}, b: {}}
			for _, s := range []*link.Stack{a, b} {
				wgs[s].Add(1)
				go func() {
					defer wgs[s].Done()
					var wq waiter.Queue
					ep, terr := s.Stack.NewEndpoint(icmp.ProtocolNumber4, ipv4.ProtocolNumber, &wq)
					if terr != nil {
						return
					}
					defer ep.Close()
					other := addrB.Addr()
					if s == b {
						other = addrA.Addr()
					}
					req := header.ICMPv4(make([]byte, header.ICMPv4MinimumSize))
					req.SetType(header.ICMPv4Echo)
					for {
						select {
						case <-stops[s]:
							return
						default:
						}
						var rd bytes.Reader
						rd.Reset(req)
						ep.Write(&rd, tcpip.WriteOptions{To: &tcpip.FullAddress{Addr: tcpip.AddrFrom4(other.As4())}})
						runtime.Gosched()
					}
				}()
			}
			time.Sleep(100 * time.Millisecond)
			closeUnderLoad := func(s *link.Stack) {
				t.Helper()
				close(stops[s])
				wgs[s].Wait() // its own writer has left the stack
				done := make(chan struct{})
				go func() {
					s.Close()
					close(done)
				}()
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					buf := make([]byte, 1<<20)
					t.Fatalf("Close deadlocked:\n%s", buf[:runtime.Stack(buf, true)])
				}
			}
			closeUnderLoad(a) // b still floods a
			closeUnderLoad(b)
			na.Close()
			nb.Close()
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAttachDetach drives the endpoint lifecycle directly.
func TestAttachDetach(t *testing.T) {
	wa, _ := simnic.NewPipe()
	n := simnic.New(wa, simnic.Config{MAC: macA, Queues: 2})
	ep, err := link.New(n, link.Options{})
	require.NoError(t, err)
	ep.Wait() // nothing started: must not block
	if ep.IsAttached() {
		t.Fatal("attached before Attach")
	}
	s := stack.New(stack.Options{NetworkProtocols: []stack.NetworkProtocolFactory{ipv4.NewProtocol}})
	if err := s.CreateNIC(1, ep); err != nil {
		t.Fatal(err)
	}
	if !ep.IsAttached() {
		t.Fatal("not attached after CreateNIC")
	}
	if err := s.RemoveNIC(1); err != nil {
		t.Fatal(err)
	}
	if ep.IsAttached() {
		t.Fatal("still attached after RemoveNIC")
	}
	ep.Wait()
	ep.Close() // again: idempotent
	s.Destroy()
}

// TestTxAllocs checks the Tx copy path allocates nothing per packet, with
// and without checksum offload.
func TestTxAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, off := range []link.Offloads{fullOffloads, {}} {
		wa, wb := simnic.NewPipe()
		wb.SetReceiver(func([]byte) {})
		n := simnic.New(wa, simnic.Config{MAC: macA, Queues: 2, Offloads: off})
		ep, err := link.New(n, link.Options{})
		require.NoError(t, err)
		pkt := tcpPacket(1400)
		var list stack.PacketBufferList
		list.PushBack(pkt)
		allocs := testing.AllocsPerRun(1000, func() {
			if n, err := ep.WritePackets(list); n != 1 || err != nil {
				t.Fatalf("WritePackets: %d, %v", n, err)
			}
		})
		if allocs != 0 {
			t.Errorf("offloads %+v: %.1f allocations per packet", off, allocs)
		}
		pkt.DecRef()
		ep.Close()
	}
}

// tcpPacket builds an outgoing TCP packet as the stack would hand it over:
// headers in the reserved area, payload in its own view.
func tcpPacket(payload int) *stack.PacketBuffer {
	data := make([]byte, payload)
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		ReserveHeaderBytes: 128,
		Payload:            buffer.MakeWithData(data),
	})
	tcp := header.TCP(pkt.TransportHeader().Push(header.TCPMinimumSize))
	tcp.Encode(&header.TCPFields{SrcPort: 1, DstPort: 2, DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagAck})
	pkt.TransportProtocolNumber = header.TCPProtocolNumber
	ip := header.IPv4(pkt.NetworkHeader().Push(header.IPv4MinimumSize))
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(header.IPv4MinimumSize + header.TCPMinimumSize + payload), TTL: 64,
		Protocol: uint8(header.TCPProtocolNumber), SrcAddr: tcpip.AddrFrom4(addrA.Addr().As4()), DstAddr: tcpip.AddrFrom4(addrB.Addr().As4())})
	pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
	eth := header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize))
	eth.Encode(&header.EthernetFields{SrcAddr: tcpip.LinkAddress(macA[:]), DstAddr: tcpip.LinkAddress(macB[:]), Type: header.IPv4ProtocolNumber})
	return pkt
}

// BenchmarkTCP measures one TCP stream between two stacks over the fake
// NIC, with each throughput lever on and off.
func BenchmarkTCP(b *testing.B) {
	for _, tc := range []struct {
		name string
		c    rigConfig
	}{
		{"gso+gro", rigConfig{queues: 1, offloads: fullOffloads}},
		{"gso", rigConfig{queues: 1, offloads: fullOffloads, opts: link.Options{NoGRO: true}}},
		{"gro", rigConfig{queues: 1, offloads: fullOffloads, opts: link.Options{NoGSO: true}}},
		{"none", rigConfig{queues: 1, offloads: fullOffloads, opts: link.Options{NoGSO: true, NoGRO: true}}},
		{"gso+gro-9001", rigConfig{queues: 1, offloads: fullOffloads, mtu: 9001}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := newRig(b, tc.c)
			ln, err := r.b.ListenTCP(5003)
			require.NoError(b, err)
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				io.Copy(io.Discard, c)
				c.Close()
			}()
			c, err := r.a.DialTCP(context.Background(), netip.AddrPortFrom(addrB.Addr(), 5003))
			require.NoError(b, err)
			chunk := make([]byte, 1<<20)
			b.SetBytes(int64(len(chunk)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			c.Close()
			b.StopTimer()
			b.ReportMetric(float64(r.nb.RxDropped.Load())/float64(b.N), "rxdrops/op")
			b.ReportMetric(float64(r.a.Stack.Stats().TCP.Retransmits.Value())/float64(b.N), "retrans/op")
		})
	}
}

// BenchmarkWritePackets measures the Tx path from WritePackets to the
// queue's Send for one 1400-byte TCP segment, with the device's checksum
// offload and with the checksum computed in software.
func BenchmarkWritePackets(b *testing.B) {
	for _, c := range []struct {
		name string
		off  link.Offloads
	}{{"offload", fullOffloads}, {"software-csum", link.Offloads{TxL4CsumIPv6Partial: true}}} {
		b.Run(c.name, func(b *testing.B) {
			wa, wb := simnic.NewPipe()
			wb.SetReceiver(func([]byte) {})
			n := simnic.New(wa, simnic.Config{MAC: macA, Offloads: c.off})
			ep, err := link.New(n, link.Options{})
			require.NoError(b, err)
			defer ep.Close()
			pkt := tcpPacket(1400)
			defer pkt.DecRef()
			var list stack.PacketBufferList
			list.PushBack(pkt)
			b.ReportAllocs()
			b.SetBytes(int64(pkt.Size()))
			for b.Loop() {
				if n, err := ep.WritePackets(list); n != 1 || err != nil {
					b.Fatalf("WritePackets: %d, %v", n, err)
				}
			}
		})
	}
}
