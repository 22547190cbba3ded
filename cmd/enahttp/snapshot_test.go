package main

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena"
)

// TestStatsCacheSingleFlight: concurrent requests share one fetch, a
// snapshot is reused until it is maxAge old, errors are shared like
// results, and a request that gives up waiting gets its context's error.
func TestStatsCacheSingleFlight(t *testing.T) {
	var fetches atomic.Int32
	release := make(chan struct{})
	fail := atomic.Bool{}
	c := newStatsCache(func(ctx context.Context) (ena.Stats, error) {
		n := fetches.Add(1)
		<-release
		if fail.Load() {
			return ena.Stats{}, errors.New("device resetting")
		}
		return ena.Stats{Driver: ena.DriverStats{AdminCommands: uint64(n)}}, nil
	}, 100*time.Millisecond)

	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, at, err := c.get(context.Background())
			assert.NoError(t, err)
			assert.EqualValues(t, 1, s.Driver.AdminCommands)
			assert.False(t, at.IsZero())
		}()
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	require.EqualValues(t, 1, fetches.Load(), "50 concurrent requests, fetches")

	_, _, err := c.get(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 1, fetches.Load(), "a fresh snapshot is reused")

	time.Sleep(120 * time.Millisecond)
	fail.Store(true)
	_, _, err = c.get(context.Background())
	require.Error(t, err)
	_, _, err = c.get(context.Background())
	require.Error(t, err, "the error is shared for maxAge")
	require.EqualValues(t, 2, fetches.Load())
}

func TestStatsCacheWaiterGivesUp(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	c := newStatsCache(func(ctx context.Context) (ena.Stats, error) {
		<-release
		return ena.Stats{}, nil
	}, time.Second)
	go c.get(context.Background()) // the fetch that hangs
	time.Sleep(10 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, _, err := c.get(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}
