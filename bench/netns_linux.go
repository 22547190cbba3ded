package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Every namespace this process creates is recorded here until deleted, so
// that Cleanup (called by the command's signal handler) can remove what a
// failed or interrupted run left.
var (
	nsMu      sync.Mutex
	nsLive    = map[string]bool{}
	nsCounter atomic.Int32
)

// netns is a network namespace created (and owned) by this process.
type netns struct {
	name string
	fd   int
}

// newNetns creates a fresh namespace "enabench-<pid>-<n>" with ip netns.
func newNetns() (*netns, error) {
	name := fmt.Sprintf("enabench-%d-%d", os.Getpid(), nsCounter.Add(1))
	nsMu.Lock()
	nsLive[name] = true
	nsMu.Unlock()
	if err := ipCmd("netns", "add", name); err != nil {
		forgetNetns(name)
		return nil, err
	}
	fd, err := unix.Open("/var/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		ipCmd("netns", "del", name)
		forgetNetns(name)
		return nil, fmt.Errorf("bench: opening namespace %s: %w", name, err)
	}
	return &netns{name: name, fd: fd}, nil
}

func forgetNetns(name string) {
	nsMu.Lock()
	delete(nsLive, name)
	nsMu.Unlock()
}

// close deletes the namespace and with it every interface inside.
func (n *netns) close() error {
	unix.Close(n.fd)
	err := ipCmd("netns", "del", n.name)
	forgetNetns(n.name)
	return err
}

// ip runs "ip -n <ns> args...".
func (n *netns) ip(args ...string) error {
	return ipCmd(append([]string{"-n", n.name}, args...)...)
}

// do runs fn on an OS thread switched into the namespace, so that sockets
// fn creates belong to it (a socket keeps its namespace for life). The
// thread is switched back afterwards; if that fails it is left locked, and
// the runtime discards it when the goroutine ends.
func (n *netns) do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("bench: reading the thread's namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("bench: entering namespace %s: %w", n.name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("bench: leaving namespace %s: %w", n.name, err))
			return // thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// disableIPv6 keeps the kernel from sending router and neighbour
// solicitations on the test links (IPv4 only is measured).
func (n *netns) disableIPv6() {
	cmd := exec.Command("ip", "netns", "exec", n.name, "sh", "-c",
		"echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6")
	cmd.Run() // best effort: an IPv6-less kernel has nothing to disable
}

func ipCmd(args ...string) error {
	var out bytes.Buffer
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("bench: ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// Cleanup deletes every namespace this process created and has not yet
// deleted (and so every veth inside them). It is safe to call at any time,
// e.g. from a signal handler's goroutine.
func Cleanup() {
	nsMu.Lock()
	names := make([]string, 0, len(nsLive))
	for n := range nsLive {
		names = append(names, n)
	}
	nsMu.Unlock()
	for _, n := range names {
		ipCmd("netns", "del", n)
		forgetNetns(n)
	}
}

// canUseNetns says why the veth-based links cannot run here ("" if they
// can): they need root and iproute2.
func canUseNetns() string {
	if os.Geteuid() != 0 {
		return "needs root"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "needs ip (apt-get install iproute2)"
	}
	return ""
}
