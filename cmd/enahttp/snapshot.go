package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/enanet/enanet/ena"
)

// snapshotMaxAge is how long one statistics snapshot answers requests.
// Reading the device counters takes admin commands (GET_STATS BASIC and
// ENI, §4.7), and the admin queue is small and shared with the driver's own
// work; a page polled by many clients must not turn each request into two
// commands.
const snapshotMaxAge = 500 * time.Millisecond

// snapshotTimeout bounds one fetch of the device counters. Each admin
// command is already bounded by the admin timeout (3 s by default, §4.1);
// this is the outer limit for the whole fetch, generous so that a loaded
// machine gets a slow answer with counters rather than a quick one
// without (a 2 s limit failed under the race detector on a busy host).
const snapshotTimeout = 15 * time.Second

// statsCache hands out one recent ena.Stats snapshot to every request: a
// request finds a fresh snapshot, joins the fetch already under way, or
// starts the one fetch. Errors (a reset in progress) are cached like
// results, so a failing device is not hammered either.
type statsCache struct {
	fetch  func(context.Context) (ena.Stats, error)
	maxAge time.Duration

	mu       sync.Mutex
	stats    ena.Stats
	err      error
	at       time.Time     // when the snapshot was taken; zero: none yet
	inflight chan struct{} // closed when the fetch under way ends
}

func newStatsCache(fetch func(context.Context) (ena.Stats, error), maxAge time.Duration) *statsCache {
	return &statsCache{fetch: fetch, maxAge: maxAge}
}

// get returns a snapshot at most maxAge old and when it was taken. It
// returns ctx's error if ctx ends while waiting for a fetch.
func (c *statsCache) get(ctx context.Context) (ena.Stats, time.Time, error) {
	c.mu.Lock()
	for {
		if !c.at.IsZero() && time.Since(c.at) < c.maxAge {
			s, at, err := c.stats, c.at, c.err
			c.mu.Unlock()
			return s, at, err
		}
		if c.inflight == nil {
			break
		}
		wait := c.inflight
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ena.Stats{}, time.Time{}, ctx.Err()
		}
		c.mu.Lock()
	}
	done := make(chan struct{})
	c.inflight = done
	c.mu.Unlock()

	// The fetch is shared, so it runs on its own deadline, not on the
	// context of the request that happened to start it.
	fctx, cancel := context.WithTimeout(context.Background(), snapshotTimeout)
	s, err := c.fetch(fctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("reading the device counters took over %v", snapshotTimeout)
	}
	cancel()
	at := time.Now()

	c.mu.Lock()
	c.stats, c.err, c.at, c.inflight = s, err, at, nil
	c.mu.Unlock()
	close(done)
	return s, at, err
}
