package qemurig

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// QTest delivers MSI messages into a TCG guest through QEMU's qtest server
// (`-qtest unix:PATH`): the text command `writel ADDR DATA` writes guest
// physical memory, and a write in the local APIC's MSI window 0xFEExxxxx
// becomes an interrupt (the APIC's MSI region takes it as an MSI). QEMU
// connects to the socket as a client, so QTest listens first.
//
// Deliver never blocks: messages queue (one per vector; a vector raised
// again before its message went out is sent once, as the APIC would merge
// them in its IRR) and one goroutine writes them and reads QEMU's "OK".
type QTest struct {
	path string
	ln   *net.UnixListener

	mu     sync.Mutex
	queue  []msiMessage // FIFO, at most one entry per vector
	queued map[int]int  // vector -> index in queue
	wake   chan struct{}

	stop chan struct{}
	done chan struct{}

	delivered, coalesced, refused atomic.Uint64
	errMu                         sync.Mutex
	err                           error // first failure on the socket
}

// NewQTest listens on a socket in dir for QEMU's qtest connection.
func NewQTest(dir string) (*QTest, error) {
	path := filepath.Join(dir, "qtest.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("qemurig: listen for qtest on %s: %w", path, err)
	}
	q := &QTest{path: path, ln: ln, queued: map[int]int{}, wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	go q.run()
	return q, nil
}

// Path is the socket path for `-qtest unix:PATH`.
func (q *QTest) Path() string { return q.path }

// qtestWritel builds the one qtest command the rig sends: a 32-bit write of
// an MSI message. QEMU aborts on a malformed command (g_assert in
// qtest_process_command), so every field is checked here: the address must
// be a dword in the APIC's MSI window and the data a 32-bit value.
func qtestWritel(addr uint64, data uint32) (string, error) {
	if addr < msiAddressBase || addr > msiAddressLimit || addr&3 != 0 {
		return "", fmt.Errorf("qemurig: MSI address %#x is not a dword in the APIC window %#x-%#x", addr, msiAddressBase, msiAddressLimit)
	}
	return fmt.Sprintf("writel 0x%x 0x%x\n", addr, data), nil
}

// Deliver queues an MSI message (Deliverer).
func (q *QTest) Deliver(vector int, addr uint64, data uint32) {
	m := msiMessage{vector: vector, addr: addr, data: data}
	q.mu.Lock()
	if i, ok := q.queued[vector]; ok {
		q.queue[i] = m
		q.mu.Unlock()
		q.coalesced.Add(1)
		return
	}
	q.queued[vector] = len(q.queue)
	q.queue = append(q.queue, m)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *QTest) take() []msiMessage {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.queue
	q.queue = nil
	clear(q.queued)
	return out
}

func (q *QTest) fail(err error) {
	q.errMu.Lock()
	if q.err == nil {
		q.err = err
	}
	q.errMu.Unlock()
}

// Err returns the first delivery failure (nil if none).
func (q *QTest) Err() error {
	q.errMu.Lock()
	defer q.errMu.Unlock()
	return q.err
}

// run accepts QEMU's connection and writes queued messages until Close.
func (q *QTest) run() {
	defer close(q.done)
	type accepted struct {
		c   *net.UnixConn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := q.ln.AcceptUnix()
		ch <- accepted{c, err}
	}()
	var c *net.UnixConn
	select {
	case a := <-ch:
		if a.err != nil {
			q.fail(fmt.Errorf("qemurig: accept qtest connection: %w", a.err))
			return
		}
		c = a.c
	case <-q.stop:
		q.ln.Close()
		if a := <-ch; a.c != nil {
			a.c.Close()
		}
		return
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		select {
		case <-q.stop:
			return
		case <-q.wake:
		}
		for _, m := range q.take() {
			cmd, err := qtestWritel(m.addr, m.data)
			if err != nil {
				// The guest programmed no valid message for the vector (or
				// the device raised it before the table was written).
				q.refused.Add(1)
				q.fail(fmt.Errorf("vector %d: %w", m.vector, err))
				continue
			}
			c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := c.Write([]byte(cmd)); err != nil {
				q.fail(fmt.Errorf("qemurig: qtest %q: %w", strings.TrimSpace(cmd), err))
				return
			}
			line, err := r.ReadString('\n')
			if err != nil {
				q.fail(fmt.Errorf("qemurig: qtest %q: no answer: %w", strings.TrimSpace(cmd), err))
				return
			}
			if strings.TrimSpace(line) != "OK" {
				q.fail(fmt.Errorf("qemurig: qtest %q answered %q", strings.TrimSpace(cmd), strings.TrimSpace(line)))
				continue
			}
			q.delivered.Add(1)
		}
	}
}

// QTestStats counts messages written into the guest, merged before they
// went out, and refused (invalid address).
type QTestStats struct{ Delivered, Coalesced, Refused uint64 }

// Stats returns the counts.
func (q *QTest) Stats() QTestStats {
	return QTestStats{Delivered: q.delivered.Load(), Coalesced: q.coalesced.Load(), Refused: q.refused.Load()}
}

// Close stops delivery and removes the socket.
func (q *QTest) Close() {
	select {
	case <-q.stop:
	default:
		close(q.stop)
	}
	q.ln.Close()
	<-q.done
	os.Remove(q.path)
}
