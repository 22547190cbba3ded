package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// forwarder splices TCP connections and relays UDP flows between two
// networks (the host's sockets and a userspace stack). It owns every
// goroutine it starts; Close stops them all.
type forwarder struct {
	log *slog.Logger
	wg  sync.WaitGroup

	mu      sync.Mutex
	closers map[io.Closer]struct{}
	closed  bool
}

func newForwarder(log *slog.Logger) *forwarder {
	return &forwarder{log: log, closers: map[io.Closer]struct{}{}}
}

// track registers c to be closed by Close; false (and c closed) if the
// forwarder is already closed.
func (f *forwarder) track(c io.Closer) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		c.Close()
		return false
	}
	f.closers[c] = struct{}{}
	return true
}

func (f *forwarder) untrack(c io.Closer) {
	f.mu.Lock()
	delete(f.closers, c)
	f.mu.Unlock()
}

// Close closes listeners, sockets and connections and waits.
func (f *forwarder) Close() {
	f.mu.Lock()
	f.closed = true
	for c := range f.closers {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// TCP accepts on ln and splices each connection to one from dial.
func (f *forwarder) TCP(ln net.Listener, dial func(context.Context) (net.Conn, error)) {
	if !f.track(ln) {
		return
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.splice(c, dial)
			}()
		}
	}()
}

type closeWriter interface{ CloseWrite() error }

// splice copies both ways, passing each side's EOF on as a half close so
// protocols that shut down one direction first (iperf3 does not, HTTP may)
// still work.
func (f *forwarder) splice(a net.Conn, dial func(context.Context) (net.Conn, error)) {
	if !f.track(a) {
		return
	}
	defer f.untrack(a)
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	b, err := dial(ctx)
	cancel()
	if err != nil {
		f.log.Warn("enaperf: forwarding", "from", a.RemoteAddr(), "err", err)
		return
	}
	if !f.track(b) {
		return
	}
	defer f.untrack(b)
	defer b.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(b, a)
		if cw, ok := b.(closeWriter); ok {
			cw.CloseWrite()
		}
	}()
	io.Copy(a, b)
	if cw, ok := a.(closeWriter); ok {
		cw.CloseWrite()
	}
	<-done
}

// maxFlows bounds the UDP flows one relay keeps (each holds a socket).
const maxFlows = 512

// UDP relays datagrams arriving on pc: each source address gets its own
// socket from dial, and what comes back on that socket goes to the source.
func (f *forwarder) UDP(pc net.PacketConn, dial func() (net.Conn, error)) {
	if !f.track(pc) {
		return
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		flows := map[string]net.Conn{}
		buf := make([]byte, 65536)
		for {
			n, src, err := pc.ReadFrom(buf)
			if err != nil {
				if isClosed(err) {
					return
				}
				continue // an ICMP error echoed on the socket
			}
			key := src.String()
			fc := flows[key]
			if fc == nil {
				if len(flows) >= maxFlows {
					continue
				}
				if fc, err = dial(); err != nil {
					f.log.Warn("enaperf: UDP forwarding", "from", src, "err", err)
					continue
				}
				if !f.track(fc) {
					return
				}
				flows[key] = fc
				f.wg.Add(1)
				go func() {
					defer f.wg.Done()
					back := make([]byte, 65536)
					for {
						n, err := fc.Read(back)
						if err != nil {
							if isClosed(err) {
								return
							}
							continue
						}
						pc.WriteTo(back[:n], src)
					}
				}()
			}
			fc.Write(buf[:n]) // loss is UDP's to report
		}
	}()
}

// isClosed reports a socket closed under a reader (as opposed to an
// ICMP-induced error worth retrying).
func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || strings.Contains(err.Error(), "closed")
}
