//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/internal/testenv"
	"github.com/enanet/enanet/link"
)

// The IPv6 subnet on the TAP, next to the harness's IPv4 one.
var (
	kernelPrefix6 = netip.MustParsePrefix("fd99:e2e::1/64")
	stackPrefix6  = netip.MustParsePrefix("fd99:e2e::2/64")
)

// startDualPeer is startKernelPeer with IPv6 too: the kernel's TAP gets
// kernelPrefix6 (no DAD, so it is usable at once) and the stack
// stackPrefix6, statically.
func startDualPeer(t *testing.T, o peerOptions) *kernelPeer {
	t.Helper()
	p := startKernelPeer(t, o)
	if err := ipCmd("-n", p.NS, "addr", "add", kernelPrefix6.String(), "dev", p.TAP, "nodad"); err != nil {
		t.Fatalf("e2e: adding %v: %v", kernelPrefix6, err)
	}
	require.NoError(t, p.Stack.Configure6(stackPrefix6, netip.Addr{}))
	return p
}

// TestKernelIPv6: the Linux kernel and the stack over IPv6: ping6 both
// ways (global and link-local), TCP bulk both ways checked by SHA-256, UDP
// echo with datagrams up to 64 KiB (IPv6 fragments both ways), with and
// without Rx checksum offload; the stack's Tx checksum offload is on in
// both, so its fragmented datagrams get their UDP checksum from the
// endpoint.
func TestKernelIPv6(t *testing.T) {
	for _, offload := range []bool{true, false} {
		t.Run(fmt.Sprintf("rx-offload=%v", offload), func(t *testing.T) {
			p := startDualPeer(t, peerOptions{Endpoint: link.Options{NoRxChecksumOffload: !offload}})
			testenv.RequireTool(t, "ping", "apt-get install iputils-ping")
			k6, s6 := kernelPrefix6.Addr(), stackPrefix6.Addr()
			t.Run("ping6", func(t *testing.T) {
				for _, size := range []string{"56", "1452", "4000"} {
					out, err := p.Run(20*time.Second, "ping", "-6", "-n", "-q", "-c", "5", "-i", "0.05", "-W", "2", "-w", "15", "-s", size, s6.String())
					require.NoError(t, err, out)
					assert.Contains(t, out, " 5 received", "ping -6 -s %s:\n%s", size, out)
				}
				ll := p.Stack.LinkLocal()
				out, err := p.Run(20*time.Second, "ping", "-6", "-n", "-q", "-c", "3", "-W", "2", "-w", "15", ll.String()+"%"+p.TAP)
				require.NoError(t, err, out)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, err = p.Stack.Ping(ctx, k6)
				require.NoError(t, err)
			})
			t.Run("tcp-kernel-to-stack", func(t *testing.T) { bulk6KernelToStack(t, p, bulkSize) })
			t.Run("tcp-stack-to-kernel", func(t *testing.T) { bulk6StackToKernel(t, p, bulkSize) })
			t.Run("udp", func(t *testing.T) {
				udpEcho6(t, p, []int{1, 512, 1452, 1453, 2960, 4000, 16000, 65000})
			})
			if offload {
				var verified uint64
				for _, q := range p.Stack.Endpoint.Stats().Rx {
					verified += q.FragmentsVerified
				}
				assert.NotZero(t, verified, "no IPv6 fragment went through the verifier under Rx offload")
			}
		})
	}
}

// bulk6KernelToStack: a kernel socket sends n bytes to a listener on the
// stack (Listen("tcp6")), which answers with the count and SHA-256.
func bulk6KernelToStack(t *testing.T, p *kernelPeer, n int64) {
	const seed = 61
	ln, err := p.Stack.Listen("tcp6", ":5601")
	require.NoError(t, err)
	defer ln.Close()
	sinkErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			sinkErr <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(bulkTimeout))
		got, sum, err := receive(c, n, nil)
		if err != nil {
			sinkErr <- err
			return
		}
		var reply [40]byte
		binary.BigEndian.PutUint64(reply[:], uint64(got))
		copy(reply[8:], sum[:])
		_, err = c.Write(reply[:])
		sinkErr <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), bulkTimeout)
	defer cancel()
	start := time.Now()
	c, err := p.Dial(ctx, "tcp6", netip.AddrPortFrom(stackPrefix6.Addr(), 5601).String())
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(bulkTimeout))
	_, err = io.CopyN(c, pattern(seed), n)
	require.NoError(t, err)
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	var reply [40]byte
	_, rerr := io.ReadFull(c, reply[:])
	require.NoError(t, <-sinkErr)
	require.NoError(t, rerr)
	require.Equal(t, n, int64(binary.BigEndian.Uint64(reply[:])))
	sum := patternSum(seed, n)
	require.True(t, bytes.Equal(reply[8:], sum[:]), "the stack received different bytes")
	logRate(t, n, time.Since(start))
}

// bulk6StackToKernel: the stack dials a kernel listener over IPv6 and
// sends n bytes; the kernel side hashes them.
func bulk6StackToKernel(t *testing.T, p *kernelPeer, n int64) {
	const seed = 62
	ln, err := p.Listen("tcp6", netip.AddrPortFrom(kernelPrefix6.Addr(), 0).String())
	require.NoError(t, err)
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	start := time.Now()
	var wg sync.WaitGroup
	var sendErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), bulkTimeout)
		defer cancel()
		c, err := p.Stack.Dial(ctx, "tcp6", net.JoinHostPort(kernelPrefix6.Addr().String(), strconv.Itoa(port)))
		if err != nil {
			sendErr = err
			ln.Close()
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(bulkTimeout))
		if _, err := io.CopyN(c, pattern(seed), n); err != nil {
			sendErr = err
			return
		}
		c.(interface{ CloseWrite() error }).CloseWrite()
		io.Copy(io.Discard, c)
	}()
	c, err := ln.Accept()
	if err != nil {
		wg.Wait()
		t.Fatalf("kernel accept: %v (sender: %v)", err, sendErr)
	}
	c.SetDeadline(time.Now().Add(bulkTimeout))
	got, sum, rerr := receive(c, n, nil)
	c.Close()
	wg.Wait()
	require.NoError(t, sendErr)
	require.NoError(t, rerr)
	require.Equal(t, n, got)
	require.Equal(t, patternSum(seed, n), sum, "the kernel received different bytes")
	logRate(t, n, time.Since(start))
}

// udpEcho6: an echo server on the stack (ListenPacket "udp", both
// families) answers a kernel UDP socket over IPv6, datagrams of each size.
func udpEcho6(t *testing.T, p *kernelPeer, sizes []int) {
	pc, err := p.Stack.ListenPacket("udp", ":5607")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	defer func() { pc.Close(); <-done }()
	kc, err := p.ListenPacket("udp6", netip.AddrPortFrom(kernelPrefix6.Addr(), 0).String())
	require.NoError(t, err)
	defer kc.Close()
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(stackPrefix6.Addr(), 5607))
	buf := make([]byte, 65536)
	for seq, size := range sizes {
		msg := datagram(seq, size)
		ok := false
		for try := 0; try < 3 && !ok; try++ { // UDP: a first datagram may wait for neighbour discovery
			_, err := kc.WriteTo(msg, dst)
			require.NoError(t, err)
			kc.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, _, err := kc.ReadFrom(buf)
			ok = err == nil && bytes.Equal(buf[:n], msg)
		}
		assert.True(t, ok, "no intact echo of a %d-byte datagram over IPv6", size)
	}
}

// TestKernelDNS: Debian's dnsmasq in the namespace serves a name with an
// A and an AAAA record; the stack resolves it through itself (over IPv4,
// then over IPv6), dials it by name, and gets *net.DNSError for an unknown
// name.
func TestKernelDNS(t *testing.T) {
	p := startDualPeer(t, peerOptions{})
	testenv.RequireTool(t, "dnsmasq", "apt-get install dnsmasq")
	const name = "svc.e2e.test"
	k4, k6 := p.KernelAddr, kernelPrefix6.Addr()
	ctx := context.Background()
	startDnsmasq(t, p, "--listen-address="+k4.String(), "--listen-address="+k6.String(), "--log-queries",
		"--local=/e2e.test/", "--address=/"+name+"/"+k4.String(), "--address=/"+name+"/"+k6.String())

	// The kernel also serves a dual-stack TCP port to dial by name.
	ln, err := p.Listen("tcp", "[::]:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "hello %s\n", c.RemoteAddr())
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	for _, server := range []netip.Addr{k4, k6} {
		t.Run("via "+server.String(), func(t *testing.T) {
			p.Stack.SetDNSServers(server)
			var ips []netip.Addr
			var err error
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) { // dnsmasq needs a moment to bind
				qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
				ips, err = p.Stack.Resolver().LookupNetIP(qctx, "ip", name)
				qcancel()
				if err == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			require.NoError(t, err)
			assert.ElementsMatch(t, []netip.Addr{k4, k6}, ips)

			_, err = p.Stack.Resolver().LookupHost(ctx, "nosuch.e2e.test")
			var de *net.DNSError
			require.ErrorAs(t, err, &de)
			assert.True(t, de.IsNotFound, "%v", err)

			for _, network := range []string{"tcp4", "tcp6"} {
				dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
				c, err := p.Stack.Dial(dctx, network, net.JoinHostPort(name, strconv.Itoa(port)))
				dcancel()
				require.NoError(t, err, network)
				c.SetDeadline(time.Now().Add(5 * time.Second))
				line, err := io.ReadAll(c)
				c.Close()
				require.NoError(t, err)
				want := stackPrefix.Addr().String()
				if network == "tcp6" {
					want = stackPrefix6.Addr().String()
				}
				assert.True(t, strings.Contains(string(line), want), "%s: kernel saw %q, want from %s", network, line, want)
			}
		})
	}
}

// startDnsmasq runs dnsmasq in p's namespace, in the foreground, with no
// configuration but args, until the test ends; its log is shown if the
// test fails. It returns the log.
func startDnsmasq(t *testing.T, p *kernelPeer, args ...string) *lockedBuffer {
	t.Helper()
	testenv.RequireTool(t, "dnsmasq", "apt-get install dnsmasq")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := p.Command(ctx, "dnsmasq", append([]string{"--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--log-facility=-", "--pid-file=", "--user=root", "--group=root"}, args...)...)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Command sets Pdeathsig, which fires when the OS thread that started
	// the process exits, and the harness's inNS ends the threads it
	// locks: start and wait on a thread of our own, locked for as long as
	// dnsmasq runs.
	started, exited := make(chan error, 1), make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
	}()
	require.NoError(t, <-started)
	t.Cleanup(func() {
		cancel()
		err := <-exited
		if t.Failed() {
			t.Logf("dnsmasq (%v): %s", err, out.String())
		}
	})
	return &out
}
