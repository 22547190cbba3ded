//go:build linux

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/internal/testenv"
	"github.com/enanet/enanet/link"
	"github.com/enanet/enanet/link/enanic"
)

// Names of what the harness creates. Both carry the creating process's
// pid, so a later run removes what a crashed run left behind without
// touching the namespaces of another test process running at the same
// time (two engineers, or two packages, testing at once).
const (
	nsPrefix  = "enanet-e2e-" // enanet-e2e-<pid>-<rand>
	tapPrefix = "enae"        // enae<pid hex>-<rand>, at most 15 bytes (IFNAMSIZ)
)

// The addresses of the one subnet on the TAP: the kernel's end inside the
// namespace and the userspace stack's end on the simulated ENA. They exist
// only inside the namespace, so concurrent peers do not collide.
var (
	kernelPrefix = netip.MustParsePrefix("10.99.0.1/24")
	stackPrefix  = netip.MustParsePrefix("10.99.0.2/24")
)

// peerOptions tune startKernelPeer; the zero value is the default set-up.
type peerOptions struct {
	// Profile is the enasim instance profile; "" is the default.
	Profile string
	// Queues is the number of ENA queue pairs; 0 means 2.
	Queues int
	// MTU is set on both ends (TAP and device); 0 means 1500.
	MTU int
	// Endpoint tunes the link endpoint (GSO, GRO, offloads, pcap).
	Endpoint link.Options
	// QueueLen is link.StackOptions.QueueLen (0: link's default).
	QueueLen int
}

// kernelPeer is a userspace stack whose only peer is the Linux kernel.
//
// startKernelPeer builds, for one test:
//
//	netns NS: TAP (KernelAddr/24) ─ TAP fd ─ enasim wire ─ simulated ENA
//	          ─ ena driver ─ link.Stack (StackAddr/24)
//
// Reuse it for any test where a kernel client talks to the stack, e.g. an
// iperf3 test:
//
//	p := startKernelPeer(t, peerOptions{})
//	ln, _ := p.Stack.ListenTCP(5201)            // serve iperf3 on the stack
//	out, err := p.Run(30*time.Second, "iperf3", "-c", p.StackAddr.String(), "-t", "3", "-J")
//
// Everything (stack, device, TAP, namespace) is removed in t.Cleanup, and
// the cleanup fails the test if a process is still running in the
// namespace. Servers a test starts on p.Stack must be stopped by cleanups
// registered after startKernelPeer (they run first).
type kernelPeer struct {
	// NS is the network namespace, for `ip netns exec NS` / `ip -n NS`.
	NS string
	// TAP is the kernel's interface inside NS.
	TAP string
	// KernelAddr is the kernel's address on TAP; StackAddr the stack's.
	KernelAddr, StackAddr netip.Addr

	Sim   *enasim.Device // the model: fault injection, model counters
	Dev   *ena.Device    // the driver: Reset, Stats
	Stack *link.Stack    // the userspace stack serving on StackAddr

	t    *testing.T
	logs *lockedBuffer // driver and endpoint logs, shown if the test fails
}

var staleOnce sync.Once

// startKernelPeer creates the namespace, the TAP, the device and the stack
// (see kernelPeer). It skips the test (fails it under CI) without root or
// iproute2.
func startKernelPeer(t *testing.T, o peerOptions) *kernelPeer {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "ip", "apt-get install iproute2")
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		testenv.Missing(t, "/dev/net/tun (TUN/TAP support in the kernel): %v", err)
	}
	staleOnce.Do(func() { removeStale(t) })
	if o.Queues == 0 {
		o.Queues = 2
	}
	if o.MTU == 0 {
		o.MTU = 1500
	}

	pid := os.Getpid()
	p := &kernelPeer{
		NS:         fmt.Sprintf("%s%d-%04x", nsPrefix, pid, rand.N(0x10000)),
		TAP:        fmt.Sprintf("%s%x-%03x", tapPrefix, pid, rand.N(0x1000)),
		KernelAddr: kernelPrefix.Addr(),
		StackAddr:  stackPrefix.Addr(),
		t:          t,
		logs:       &lockedBuffer{},
	}
	log := slog.New(slog.NewTextHandler(p.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))

	// Cleanups run last-registered first: stack, driver, model, TAP,
	// namespace.
	if err := ipCmd("netns", "add", p.NS); err != nil {
		t.Fatalf("e2e: creating namespace: %v", err)
	}
	t.Cleanup(p.removeNamespace)

	wire, err := enasim.NewTAP(p.TAP)
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	t.Cleanup(func() {
		if err := wire.Close(); err != nil {
			t.Errorf("e2e: closing TAP %s: %v", p.TAP, err)
		}
	})
	for _, args := range [][]string{
		{"link", "set", p.TAP, "netns", p.NS},
		{"-n", p.NS, "link", "set", "lo", "up"},
		{"-n", p.NS, "link", "set", p.TAP, "mtu", strconv.Itoa(o.MTU), "up"},
		{"-n", p.NS, "addr", "add", kernelPrefix.String(), "dev", p.TAP},
	} {
		if err := ipCmd(args...); err != nil {
			t.Fatalf("e2e: setting up %s in %s: %v", p.TAP, p.NS, err)
		}
	}

	prof, err := enasim.ProfileByName(o.Profile)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := enasim.New(enasim.Config{Profile: prof, Wire: wire, Logger: log})
	if err != nil {
		t.Fatalf("e2e: simulated device: %v", err)
	}
	p.Sim = sim
	t.Cleanup(func() { sim.Close() })

	dev, err := ena.Open(sim, ena.Config{Queues: o.Queues, MTU: o.MTU, Logger: log})
	if err != nil {
		t.Fatalf("e2e: opening the simulated ENA: %v", err)
	}
	p.Dev = dev
	t.Cleanup(func() { dev.Close() })

	o.Endpoint.Logger = log
	if dir := os.Getenv("ENANET_E2E_PCAP"); dir != "" && o.Endpoint.Pcap == nil {
		// Debugging aid: ENANET_E2E_PCAP=DIR captures each peer's frames
		// to DIR/<test>.pcap (read with tcpdump -r).
		f, err := os.Create(filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".pcap"))
		if err != nil {
			t.Fatalf("e2e: ENANET_E2E_PCAP: %v", err)
		}
		t.Cleanup(func() { f.Close() })
		o.Endpoint.Pcap = f
	}
	st, err := link.NewStack(enanic.New(dev), link.StackOptions{Addr: stackPrefix, Endpoint: o.Endpoint, QueueLen: o.QueueLen, Logger: log})
	if err != nil {
		t.Fatalf("e2e: stack on the simulated ENA: %v", err)
	}
	p.Stack = st
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("ENANET_E2E_DEBUG") != "" {
			p.logKernelStats()
		}
		st.Close()
		if t.Failed() {
			t.Logf("driver/endpoint log of %s:\n%s", p.NS, p.logs.String())
		}
	})
	return p
}

// logKernelStats logs the kernel's view of the TAP and its IP/TCP counters
// (drops, retransmissions), to tell the device's losses from the kernel's.
func (p *kernelPeer) logKernelStats() {
	out, err := p.Shell(10*time.Second, "ip -s -s link show dev "+p.TAP+"; nstat -az 2>/dev/null | grep -Ei 'drop|retrans|loss|prune|collapse|ofo|backlog|csum|err' | grep -v ' 0 '")
	p.t.Logf("kernel side of %s (err %v):\n%s", p.NS, err, out)
	if s, err := p.Dev.Stats(context.Background()); err == nil {
		p.t.Logf("device stats: %+v", s)
	}
	st := p.Stack.Stack.Stats()
	p.t.Logf("stack: tx dropped (qdisc full) %d, TCP segments sent %d, send errors %d, retransmits %d, timeouts %d, fast retransmits %d, SACK recoveries %d",
		st.NICs.TxPacketsDroppedNoBufferSpace.Value(), st.TCP.SegmentsSent.Value(), st.TCP.SegmentSendErrors.Value(),
		st.TCP.Retransmits.Value(), st.TCP.Timeouts.Value(), st.TCP.FastRetransmit.Value(), st.TCP.SACKRecovery.Value())
}

// Command returns name args... to run inside the namespace (under `ip
// netns exec`). The command runs in a process group of its own: when ctx
// ends the whole group is killed (a shell's children too), and Wait gives
// up on its pipes 2 s later. The process also dies with the test binary.
func (p *kernelPeer) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", p.NS, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// Run runs name args... inside the namespace with a timeout and returns
// its standard output; the error includes standard error.
func (p *kernelPeer) Run(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := p.Command(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v: %w", timeout, err)
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("e2e: %s in %s: %w; stderr: %s", name, p.NS, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Shell runs a sh script inside the namespace (see Run).
func (p *kernelPeer) Shell(timeout time.Duration, script string) (string, error) {
	return p.Run(timeout, "sh", "-c", script)
}

// inNS runs fn on an OS thread that has joined the namespace. The thread
// stays locked to its goroutine, which ends without unlocking it, so the
// runtime destroys the thread instead of letting another goroutine run in
// the namespace. Sockets fn creates belong to the namespace for life and
// may be used from any goroutine afterwards.
func (p *kernelPeer) inNS(fn func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + p.NS)
		if err != nil {
			errc <- fmt.Errorf("e2e: opening namespace %s: %w", p.NS, err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("e2e: setns into %s: %w", p.NS, err)
			return
		}
		fn()
		errc <- nil
	}()
	return <-errc
}

// Dial connects a kernel socket inside the namespace (e.g. "tcp",
// "10.99.0.2:80"); give an address literal, there is no resolver.
func (p *kernelPeer) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	var derr error
	if err := p.inNS(func() {
		var d net.Dialer
		c, derr = d.DialContext(ctx, network, addr)
	}); err != nil {
		return nil, err
	}
	return c, derr
}

// Listen listens with a kernel socket inside the namespace.
func (p *kernelPeer) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	var lerr error
	if err := p.inNS(func() { ln, lerr = net.Listen(network, addr) }); err != nil {
		return nil, err
	}
	return ln, lerr
}

// ListenPacket opens a kernel datagram socket inside the namespace.
func (p *kernelPeer) ListenPacket(network, addr string) (net.PacketConn, error) {
	var pc net.PacketConn
	var lerr error
	if err := p.inNS(func() { pc, lerr = net.ListenPacket(network, addr) }); err != nil {
		return nil, err
	}
	return pc, lerr
}

// removeNamespace deletes the namespace, first checking that no process
// the test started is still inside (any such process is ours: it was
// started in a namespace only this test knows). Killing it is by pid.
func (p *kernelPeer) removeNamespace() {
	out, err := exec.Command("ip", "netns", "pids", p.NS).Output()
	if err == nil {
		for _, f := range strings.Fields(string(out)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			if pid == os.Getpid() {
				// A thread of ours (the main thread, see TestMain) was
				// left in the namespace: a harness bug, not a leak.
				p.t.Errorf("e2e: the test process's main thread is inside %s", p.NS)
				continue
			}
			p.t.Errorf("e2e: process %d still running in %s; killing it", pid, p.NS)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if err := ipCmd("netns", "del", p.NS); err != nil {
		p.t.Errorf("e2e: removing namespace: %v", err)
	}
	// The TAP was non-persistent: closing its descriptor removed it.
	if err := exec.Command("ip", "link", "show", "dev", p.TAP).Run(); err == nil {
		p.t.Errorf("e2e: TAP %s still exists after cleanup", p.TAP)
		ipCmd("link", "del", p.TAP)
	}
}

// removeStale removes namespaces and TAPs left behind by a run of this
// package that died before its cleanups ran: those whose creating process
// no longer exists.
func removeStale(t *testing.T) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || !strings.HasPrefix(f[0], nsPrefix) {
				continue
			}
			pidStr, _, _ := strings.Cut(strings.TrimPrefix(f[0], nsPrefix), "-")
			if pid, err := strconv.Atoi(pidStr); err == nil && !processAlive(pid) {
				t.Logf("e2e: removing stale namespace %s", f[0])
				if err := ipCmd("netns", "del", f[0]); err != nil {
					t.Logf("e2e: %v", err)
				}
			}
		}
	}
	out, err = exec.Command("ip", "-o", "link", "show").Output()
	if err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			// "7: enae1f2e-3ab: <BROADCAST,...> ..."
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if !strings.HasPrefix(name, tapPrefix) {
				continue
			}
			pidHex, _, _ := strings.Cut(strings.TrimPrefix(name, tapPrefix), "-")
			if pid, err := strconv.ParseInt(pidHex, 16, 32); err == nil && !processAlive(int(pid)) {
				t.Logf("e2e: removing stale TAP %s", name)
				if err := ipCmd("link", "del", name); err != nil {
					t.Logf("e2e: %v", err)
				}
			}
		}
	}
}

func processAlive(pid int) bool {
	if pid == os.Getpid() {
		return true
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// ipCmd runs the ip tool in the root namespace, bounded to 10 s.
func ipCmd(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// pattern is an endless deterministic pseudo-random byte stream: both ends
// of a transfer derive the expected bytes from seed instead of sharing a
// buffer.
func pattern(seed uint64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return rand.NewChaCha8(s)
}

// patternSum is the SHA-256 of the first n bytes of pattern(seed).
func patternSum(seed uint64, n int64) [32]byte {
	h := sha256.New()
	io.CopyN(h, pattern(seed), n)
	var s [32]byte
	h.Sum(s[:0])
	return s
}
