package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Pair is a link under test: two TCP endpoints (a server side and a client
// side) joined by some path. Listen and Dial may be called several times;
// every port is used once.
type Pair interface {
	// Listen opens a listener on the server side at port.
	Listen(port uint16) (net.Listener, error)
	// Dial connects from the client side to the server side's port.
	Dial(ctx context.Context, port uint16) (net.Conn, error)
	// Close tears the link down and releases everything it holds.
	Close() error
}

// GoodputOptions bound one goodput run.
type GoodputOptions struct {
	Streams  int           // parallel TCP connections, client to server
	Warmup   time.Duration // traffic before the counted window (slow start)
	Duration time.Duration // the counted window
	WriteLen int           // bytes per Write; 0 means 128 KiB
}

// Goodput sends from the client side to the server side of p over
// o.Streams connections and returns the application bytes the server read
// per second, in bits per second, counted over o.Duration after o.Warmup.
func Goodput(ctx context.Context, p Pair, port uint16, o GoodputOptions) (float64, error) {
	bps, _, err := goodput(ctx, p, port, o, false)
	return bps, err
}

// GoodputAttributed is Goodput with a CPU profile of the whole process
// over the counted window, split by where the time went (see classify).
func GoodputAttributed(ctx context.Context, p Pair, port uint16, o GoodputOptions) (float64, Attribution, error) {
	return goodput(ctx, p, port, o, true)
}

func goodput(ctx context.Context, p Pair, port uint16, o GoodputOptions, attribute bool) (float64, Attribution, error) {
	if o.Streams <= 0 {
		o.Streams = 1
	}
	if o.WriteLen <= 0 {
		o.WriteLen = 128 << 10
	}
	ln, err := p.Listen(port)
	if err != nil {
		return 0, Attribution{}, err
	}
	defer ln.Close()
	// Every connection gets a deadline past the run, so a stalled link
	// ends the run with an error instead of hanging it.
	deadline := time.Now().Add(o.Warmup + o.Duration + 20*time.Second)

	var received atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	defer func() {
		ln.Close() // unblocks an Accept still waiting for a stream that never came
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()

	accepted := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < o.Streams; i++ {
			c, err := ln.Accept()
			if err != nil {
				accepted <- fmt.Errorf("bench: accepting stream %d: %w", i, err)
				return
			}
			c.SetDeadline(deadline)
			track(c)
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 256<<10)
				for {
					n, err := c.Read(buf)
					received.Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
		}
		accepted <- nil
	}()

	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var stop atomic.Bool
	for i := 0; i < o.Streams; i++ {
		c, err := p.Dial(dctx, port)
		if err != nil {
			return 0, Attribution{}, fmt.Errorf("bench: dialling stream %d: %w", i, err)
		}
		c.SetDeadline(deadline)
		track(c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, o.WriteLen)
			for !stop.Load() {
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		}()
	}
	select {
	case err := <-accepted:
		if err != nil {
			return 0, Attribution{}, err
		}
	case <-dctx.Done():
		return 0, Attribution{}, fmt.Errorf("bench: streams not accepted: %w", dctx.Err())
	}
	if !sleepCtx(ctx, o.Warmup) {
		return 0, Attribution{}, ctx.Err()
	}
	var prof *profiler
	if attribute {
		prof = startProfile(p)
	}
	b0, t0 := received.Load(), time.Now()
	ok := sleepCtx(ctx, o.Duration)
	b1, t1 := received.Load(), time.Now()
	var attr Attribution
	if prof != nil {
		attr = prof.stop(b1 - b0)
	}
	if !ok {
		return 0, Attribution{}, ctx.Err()
	}
	stop.Store(true)
	if b1 == b0 {
		return 0, Attribution{}, errors.New("bench: no bytes arrived during the run")
	}
	return float64(b1-b0) * 8 / t1.Sub(t0).Seconds(), attr, nil
}

// RTTResult is the distribution of ping-pong round trips of one run.
type RTTResult struct {
	P50, P99 time.Duration
	N        int
}

// RTT runs a ping-pong of size-byte messages (a request, then an equal
// reply) over one connection for d, after warm round trips, and returns
// the median and 99th percentile.
func RTT(ctx context.Context, p Pair, port uint16, size int, d time.Duration) (RTTResult, error) {
	ln, err := p.Listen(port)
	if err != nil {
		return RTTResult{}, err
	}
	defer ln.Close()
	deadline := time.Now().Add(d + 20*time.Second)
	srv := make(chan net.Conn, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			srv <- nil
			return
		}
		c.SetDeadline(deadline)
		srv <- c
		buf := make([]byte, size)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := p.Dial(dctx, port)
	var sc net.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
		if sc != nil {
			sc.Close()
		}
		ln.Close()
		wg.Wait()
	}()
	if err != nil {
		return RTTResult{}, fmt.Errorf("bench: dialling the ping-pong: %w", err)
	}
	c.SetDeadline(deadline)
	select {
	case sc = <-srv:
		if sc == nil {
			return RTTResult{}, errors.New("bench: the ping-pong server did not accept")
		}
	case <-dctx.Done():
		return RTTResult{}, fmt.Errorf("bench: ping-pong not accepted: %w", dctx.Err())
	}
	buf := make([]byte, size)
	ping := func() error {
		if _, err := c.Write(buf); err != nil {
			return err
		}
		_, err := io.ReadFull(c, buf)
		return err
	}
	for i := 0; i < 200; i++ {
		if err := ping(); err != nil {
			return RTTResult{}, fmt.Errorf("bench: ping-pong warm-up: %w", err)
		}
	}
	samples := make([]time.Duration, 0, 1<<16)
	end := time.Now().Add(d)
	for time.Now().Before(end) && ctx.Err() == nil {
		t0 := time.Now()
		if err := ping(); err != nil {
			return RTTResult{}, fmt.Errorf("bench: ping-pong: %w", err)
		}
		samples = append(samples, time.Since(t0))
	}
	if len(samples) == 0 {
		return RTTResult{}, errors.New("bench: no round trip completed")
	}
	slices.Sort(samples)
	return RTTResult{P50: quantile(samples, 0.50), P99: quantile(samples, 0.99), N: len(samples)}, nil
}

// quantile of sorted samples (nearest rank).
func quantile(s []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(s))+0.5) - 1
	i = max(0, min(i, len(s)-1))
	return s[i]
}

// median of xs (which it sorts); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
