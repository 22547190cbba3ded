package link

import (
	"net"
	"strconv"
	"sync"
)

// listenBoth is Listen("tcp", ":port"): an IPv4 listener and an IPv6-only
// listener on the same port behind one net.Listener. Two endpoints rather
// than one dual-stack IPv6 endpoint, so that IPv4 connections stay plain
// IPv4 endpoints in netstack (an IPv4-mapped IPv6 endpoint takes other
// paths, for segment sizes among others). Port 0 takes a free port for
// both. Errors name what the caller asked for (network "tcp", address
// ":80"), as package net's do, not the per-family listener that failed.
func (s *Stack) listenBoth(network, host, port string) (net.Listener, error) {
	var last error
	for try := 0; try < 8; try++ {
		l6, err := s.Listen("tcp6", net.JoinHostPort("::", port))
		if err != nil {
			return nil, asAsked(err, network, host)
		}
		p := strconv.Itoa(l6.Addr().(*net.TCPAddr).Port)
		l4, err := s.Listen("tcp4", net.JoinHostPort("0.0.0.0", p))
		if err == nil {
			d := &dualListener{ls: [2]net.Listener{l4, l6}, conns: make(chan acceptResult), done: make(chan struct{})}
			d.l6 = l6.(*listener)
			for _, l := range d.ls {
				d.wg.Add(1)
				go d.acceptLoop(l)
			}
			return d, nil
		}
		l6.Close()
		last = asAsked(err, network, host)
		if port != "0" {
			break // the port was asked for: IPv4 has it taken
		}
	}
	return nil, last
}

// asAsked rewrites the Net and Addr of a per-family listener's *net.OpError
// to the network and wildcard host the caller gave, keeping the port the
// failed listener resolved.
func asAsked(err error, network, host string) error {
	oe, ok := err.(*net.OpError)
	if !ok {
		return err
	}
	asked := *oe
	asked.Net = network
	if ta, ok := oe.Addr.(*net.TCPAddr); ok {
		asked.Addr = &net.TCPAddr{IP: net.ParseIP(host), Port: ta.Port}
	}
	return &asked
}

// dualListener merges the Accept of two listeners. Its goroutines (one
// per listener) end when Close closes the listeners.
type dualListener struct {
	ls    [2]net.Listener
	l6    *listener
	conns chan acceptResult
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

type acceptResult struct {
	c   net.Conn
	err error
}

func (d *dualListener) acceptLoop(l net.Listener) {
	defer d.wg.Done()
	for {
		c, err := l.Accept()
		select {
		case d.conns <- acceptResult{c, err}:
		case <-d.done:
			if c != nil {
				c.Close()
			}
			return
		}
		if err != nil {
			return // closed (or broken): the error went to Accept
		}
	}
}

// Accept returns the next connection of either family.
func (d *dualListener) Accept() (net.Conn, error) {
	select {
	case r := <-d.conns:
		return r.c, r.err
	case <-d.done:
		return nil, opError("accept", "tcp", d.Addr(), net.ErrClosed)
	}
}

// Close closes both listeners and waits for their goroutines.
func (d *dualListener) Close() error {
	first := true
	d.once.Do(func() {
		first = false
		close(d.done)
		for _, l := range d.ls {
			l.Close()
		}
		d.wg.Wait()
	})
	if first {
		return opError("close", "tcp", d.Addr(), net.ErrClosed)
	}
	return nil
}

// Addr is [::]:port, as package net reports a dual-stack listener.
func (d *dualListener) Addr() net.Addr { return d.l6.Addr() }
