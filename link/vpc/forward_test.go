package vpc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// waitGoroutines waits until no more than n goroutines run, so a test can
// show the forwarder left none behind.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines left, want at most %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// forwardTo starts a forwarder from a new host port to target.
func forwardTo(t *testing.T, target string) (*Forwarder, net.Listener) {
	t.Helper()
	return forwardFrom(t, "127.0.0.1", target)
}

// forwardFrom starts a forwarder from a new port on the host's loopback
// address (127.0.0.1 or [::1]) to target.
func forwardFrom(t *testing.T, loopback, target string) (*Forwarder, net.Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", loopback+":0")
	if err != nil {
		t.Fatal(err)
	}
	f := NewForwarder(quiet)
	var d net.Dialer
	f.TCP(ln, func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", target) })
	return f, ln
}

// TestForwarderTCPHalfClose: each side's EOF reaches the other as a half
// close, and data keeps flowing the other way until it ends too.
func TestForwarderTCPHalfClose(t *testing.T) {
	before := runtime.NumGoroutine()
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	// The target reads everything, then answers with its length.
	go func() {
		c, err := target.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		c.Write(bytes.Repeat([]byte{'x'}, len(b)))
	}()
	f, ln := forwardTo(t, target.Addr().String())
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := bytes.Repeat([]byte("abc"), 100000)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || len(got) != len(msg) {
		t.Fatalf("answer %d bytes, %v; want %d", len(got), err, len(msg))
	}
	c.Close()
	f.Close()
	if n := f.Conns(); n != 0 {
		t.Errorf("%d sockets still tracked", n)
	}
	target.Close()
	waitGoroutines(t, before)
}

// TestForwarderCloseEndsConnections: Close closes live connections (whose
// peers then see EOF) and returns with no goroutine left.
func TestForwarderCloseEndsConnections(t *testing.T) {
	before := runtime.NumGoroutine()
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			held <- c // silent: never answers
		}
	}()
	f, ln := forwardTo(t, target.Addr().String())
	var clients []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
		<-held
	}
	// The listener and both ends of three. The target may accept before
	// the forwarder's dial returns and is tracked, so wait for it.
	for deadline := time.Now().Add(5 * time.Second); f.Conns() != 7 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if n := f.Conns(); n != 7 {
		t.Errorf("%d sockets tracked, want 7", n)
	}
	f.Close()
	for _, c := range clients {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("client after Close: %v, want EOF", err)
		}
		c.Close()
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("the listener still accepts after Close")
	}
	// A listener handed over after Close is closed at once.
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	f.TCP(ln2, nil)
	if _, err := ln2.Accept(); err == nil {
		t.Error("listener given after Close is open")
	}
	target.Close()
	close(held)
	for c := range held {
		c.Close()
	}
	waitGoroutines(t, before)
}

// TestForwarderUDP relays datagrams per source, both ways.
func TestForwarderUDP(t *testing.T) {
	before := runtime.NumGoroutine()
	echo, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		b := make([]byte, 2048)
		for {
			n, a, err := echo.ReadFrom(b)
			if err != nil {
				return
			}
			echo.WriteTo(append([]byte("re:"), b[:n]...), a)
		}
	}()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := NewForwarder(quiet)
	f.UDP(pc, func() (net.Conn, error) { return net.Dial("udp", echo.LocalAddr().String()) })
	for _, msg := range []string{"one", "two"} {
		c, err := net.Dial("udp", pc.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte(msg))
		b := make([]byte, 100)
		n, err := c.Read(b)
		if err != nil || string(b[:n]) != "re:"+msg {
			t.Errorf("reply %q, %v", b[:n], err)
		}
		c.Close()
	}
	if n := f.Conns(); n != 3 { // the relay socket and two flows
		t.Errorf("%d sockets tracked, want 3", n)
	}
	f.Close()
	echo.Close()
	waitGoroutines(t, before)
}

// TestForwarderKeepsConnectionOrder: the far side accepts connections in
// the order they reached the forwarder, even when the first one's dial is
// the slow one. iperf3 tells a test's streams apart only by that order.
func TestForwarderKeepsConnectionOrder(t *testing.T) {
	before := runtime.NumGoroutine()
	target, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer target.Close()
	const n = 3
	order := make(chan []byte, 1)
	go func() {
		// One byte from each connection, in accept order.
		var got []byte
		for range n {
			c, err := target.Accept()
			if err != nil {
				break
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			b := make([]byte, 1)
			if _, err := io.ReadFull(c, b); err != nil {
				b[0] = 'x'
			}
			got = append(got, b[0])
			c.Close()
		}
		order <- got
	}()

	// The first dial lingers until the second has connected (or for
	// 300 ms if the second waits for it, as it must).
	var calls atomic.Int32
	started := make(chan struct{}, n)
	secondDone := make(chan struct{})
	var d net.Dialer
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := NewForwarder(quiet)
	f.TCP(ln, func(ctx context.Context) (net.Conn, error) {
		i := calls.Add(1) - 1
		started <- struct{}{}
		if i == 0 {
			select {
			case <-secondDone:
			case <-time.After(300 * time.Millisecond):
			}
		}
		c, err := d.DialContext(ctx, "tcp", target.Addr().String())
		if i == 1 {
			close(secondDone)
		}
		return c, err
	})
	for i := range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		defer c.Close()
		_, err = c.Write([]byte{'0' + byte(i)})
		require.NoError(t, err)
		// The next client connects once this one's dial has begun, so
		// the forwarder holds a slow dial and a fast one at once.
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatalf("connection %d: the forwarder never dialed", i)
		}
	}
	select {
	case got := <-order:
		assert.Equal(t, "012", string(got), "the far side accepted the connections out of order")
	case <-time.After(20 * time.Second):
		t.Fatal("the far side did not get every connection")
	}
	f.Close()
	target.Close()
	waitGoroutines(t, before)
}

// TestForwarderCloseCancelsDials: Close ends a dial in progress and the
// connections queued behind it at once, without reporting them as failed
// forwards.
func TestForwarderCloseCancelsDials(t *testing.T) {
	before := runtime.NumGoroutine()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := NewForwarder(quiet)
	var dials atomic.Int32
	dialing := make(chan struct{})
	f.TCP(ln, func(ctx context.Context) (net.Conn, error) {
		if dials.Add(1) == 1 {
			close(dialing)
		}
		<-ctx.Done() // a far side that never answers
		return nil, ctx.Err()
	})
	var clients []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		clients = append(clients, c)
	}
	select {
	case <-dialing:
	case <-time.After(10 * time.Second):
		t.Fatal("the forwarder never dialed")
	}
	start := time.Now()
	f.Close()
	assert.Less(t, time.Since(start), DialTimeout/2, "Close waited for the dial timeout")
	assert.NoError(t, f.LastDialError(), "a dial ended by Close is not a failed forward")
	for _, c := range clients {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		// EOF, or a reset for a client the listener had not accepted
		// yet: either way the connection is over, not left hanging.
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		if assert.Error(t, err) && errors.As(err, &ne) {
			assert.False(t, ne.Timeout(), "the connection was left open")
		}
		c.Close()
	}
	waitGoroutines(t, before)
}
