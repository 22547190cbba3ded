package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// RequestOptions bound one request-rate run: Conns HTTP/1.1 keep-alive
// connections, each with one GET outstanding at a time (a closed loop, as
// wrk runs), against net/http serving a Body-byte response.
type RequestOptions struct {
	Conns    int           // connections (and client goroutines); 0 means 16
	Body     int           // response body bytes
	Warmup   time.Duration // requests before the counted window
	Duration time.Duration // the counted window
}

// RequestResult is one request-rate run.
type RequestResult struct {
	RPS      float64       // requests completed per second in the window
	P50, P99 time.Duration // latency of the requests completed in the window
	N        int           // requests completed in the window
	// CPUPerReq is the whole process's CPU time (user+system) in the
	// window divided by the requests completed in it: both stacks, the
	// link, the HTTP client and server. Unlike RPS it does not fall when
	// other processes take the machine's cores.
	CPUPerReq time.Duration
}

// maxLatencySamples bounds the memory one run keeps per connection.
const maxLatencySamples = 1 << 18

// RequestRate serves GET /body with net/http on p's server side and runs
// o.Conns keep-alive clients on p's client side for o.Warmup+o.Duration.
func RequestRate(ctx context.Context, p Pair, port uint16, o RequestOptions) (RequestResult, error) {
	if o.Conns <= 0 {
		o.Conns = 16
	}
	ln, err := p.Listen(port)
	if err != nil {
		return RequestResult{}, err
	}
	body := make([]byte, o.Body)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	size := strconv.Itoa(len(body))
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", size)
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(body)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln) // ends with srv.Close below
	}()
	defer func() {
		srv.Close()
		<-served
	}()

	deadline := time.Now().Add(o.Warmup + o.Duration + 20*time.Second)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := p.Dial(ctx, port)
			if err == nil {
				c.SetDeadline(deadline) // a stalled link ends the run with an error
			}
			return c, err
		},
		MaxIdleConns:        o.Conns,
		MaxIdleConnsPerHost: o.Conns,
		MaxConnsPerHost:     o.Conns,
		DisableCompression:  true,
		IdleConnTimeout:     time.Minute,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	url := fmt.Sprintf("http://bench:%d/body", port)

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		counting atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		lat      []time.Duration
		firstErr error
	)
	get := func(buf []byte) error {
		req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		n, err := io.CopyBuffer(io.Discard, resp.Body, buf)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || n != int64(len(body)) {
			return fmt.Errorf("bench: GET %s: status %d, %d bytes; want 200 and %d", url, resp.StatusCode, n, len(body))
		}
		return nil
	}
	for range o.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64<<10)
			mine := make([]time.Duration, 0, 4096)
			for rctx.Err() == nil {
				t0 := time.Now()
				if err := get(buf); err != nil {
					if rctx.Err() == nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						cancel()
					}
					break
				}
				if counting.Load() && len(mine) < maxLatencySamples {
					mine = append(mine, time.Since(t0))
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	if !sleepCtx(rctx, o.Warmup) {
		cancel()
		wg.Wait()
		return RequestResult{}, runErr(ctx, firstErr)
	}
	counting.Store(true)
	t0, cpu0 := time.Now(), processCPU()
	ok := sleepCtx(rctx, o.Duration)
	counting.Store(false)
	el, cpu := time.Since(t0), processCPU()-cpu0
	cancel()
	wg.Wait()
	if !ok {
		return RequestResult{}, runErr(ctx, firstErr)
	}
	if len(lat) == 0 {
		return RequestResult{}, errors.New("bench: no request completed in the counted window")
	}
	slices.Sort(lat)
	return RequestResult{RPS: float64(len(lat)) / el.Seconds(), P50: quantile(lat, 0.5), P99: quantile(lat, 0.99), N: len(lat),
		CPUPerReq: cpu / time.Duration(len(lat))}, nil
}

func runErr(ctx context.Context, first error) error {
	if first != nil {
		return first
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.New("bench: request run interrupted")
}

// RequestConfig bounds the request-rate rows.
type RequestConfig struct {
	Bodies   []int         // response body sizes; default 1 KiB and 64 KiB
	Conns    int           // keep-alive connections; default 16
	Runs     int           // runs per cell (median of each number); default 3
	Warmup   time.Duration // default 300 ms
	Duration time.Duration // default 1 s
	Off      bool          // do not run request-rate cells
}

func (c *RequestConfig) defaults() {
	if len(c.Bodies) == 0 {
		c.Bodies = []int{1 << 10, 64 << 10}
	}
	if c.Conns <= 0 {
		c.Conns = 16
	}
	if c.Runs <= 0 {
		c.Runs = 3
	}
	if c.Warmup <= 0 {
		c.Warmup = 300 * time.Millisecond
	}
	if c.Duration <= 0 {
		c.Duration = time.Second
	}
}

// RequestCell is the median of a cell's request-rate runs, or why it is
// missing.
type RequestCell struct {
	RPS       float64
	P50, P99  time.Duration
	CPUPerReq time.Duration // process CPU per request (RequestResult.CPUPerReq)
	Err       string
}

// runRequests runs every body size over p.
func runRequests(ctx context.Context, cfg Config, p Pair, port *uint16, id string, logf func(string, ...any)) map[int]RequestCell {
	if cfg.Requests.Off {
		return nil
	}
	rc := cfg.Requests
	out := map[int]RequestCell{}
	for _, body := range rc.Bodies {
		var rps, p50, p99, cpu []float64
		cell := RequestCell{}
		for run := 0; run < rc.Runs && ctx.Err() == nil; run++ {
			*port++
			res, err := RequestRate(ctx, p, *port, RequestOptions{Conns: rc.Conns, Body: body, Warmup: rc.Warmup, Duration: rc.Duration})
			if err != nil {
				cell.Err = "not measured: " + err.Error()
				break
			}
			rps, p50, p99 = append(rps, res.RPS), append(p50, float64(res.P50)), append(p99, float64(res.P99))
			cpu = append(cpu, float64(res.CPUPerReq))
		}
		if cell.Err == "" && len(rps) == 0 {
			cell.Err = "not measured: interrupted"
		}
		if cell.Err == "" {
			cell.RPS, cell.P50, cell.P99 = median(rps), time.Duration(median(p50)), time.Duration(median(p99))
			cell.CPUPerReq = time.Duration(median(cpu))
		}
		out[body] = cell
		logf("%s requests %d B: %.0f req/s p50 %v p99 %v cpu/req %v %s", id, body, cell.RPS, cell.P50, cell.P99, cell.CPUPerReq, cell.Err)
	}
	return out
}

// DemoLink describes the demo row.
var DemoLink = Link{ID: "demo", Group: "demo",
	Label: "enahttp demo path: kernel loopback → host forwarder → simulated VPC → enasim pair → stack (b)"}

// runDemo measures the request rate through the enahttp demo path.
func runDemo(ctx context.Context, cfg Config, port *uint16, logf func(string, ...any)) *LinkResult {
	lr := &LinkResult{Link: DemoLink}
	p, err := NewDemoPair()
	if err != nil {
		lr.Skipped = "not measured: " + err.Error()
		logf("demo: %s", lr.Skipped)
		return lr
	}
	defer p.Close()
	lr.Requests = runRequests(ctx, cfg, p, port, "demo", logf)
	return lr
}
