package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/enanet/enanet/ena/observe"
)

// DialTimeout bounds connecting to a socket.
const DialTimeout = 2 * time.Second

// ResetTimeout bounds a reset request: the device rebuilds its queues.
const ResetTimeout = 60 * time.Second

// Client is a connection to a control socket.
type Client struct {
	path string
	conn net.Conn
	r    *bufio.Reader
}

// Dial connects to the socket at path. Its errors say what is wrong with
// the path: missing, not a socket, nobody serving it (stale), or not
// allowed for this user.
func Dial(ctx context.Context, path string) (*Client, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s does not exist: no process serves a control socket there", path)
		}
		return nil, err
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return nil, fmt.Errorf("%s is not an enanet control socket (it is a %s, not a socket)", path, kindOf(fi.Mode()))
	}
	d := net.Dialer{Timeout: DialTimeout}
	c, err := d.DialContext(ctx, "unix", path)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return nil, &StaleError{Path: path}
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		owner := ""
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			owner = fmt.Sprintf(" (it belongs to uid %d)", st.Uid)
		}
		return nil, fmt.Errorf("permission denied on %s%s: run as root or as the user that runs the device", path, owner)
	case err != nil:
		return nil, err
	}
	return &Client{path: path, conn: c, r: bufio.NewReader(c)}, nil
}

// StaleError is a socket file whose process is gone.
type StaleError struct{ Path string }

func (e *StaleError) Error() string {
	return fmt.Sprintf("%s is a stale control socket: the process that served it is gone", e.Path)
}

func kindOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m.IsRegular():
		return "regular file"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	}
	return "special file"
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Path is the socket's path.
func (c *Client) Path() string { return c.path }

// Do sends one request and reads its response. A server-side failure is
// returned as *Error.
func (c *Client) Do(ctx context.Context, op string) (*Response, error) {
	return c.do(ctx, Request{Version: Version, Op: op})
}

// do sends req and reads its response.
func (c *Client) do(ctx context.Context, req Request) (*Response, error) {
	op := req.Op
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(StatsTimeout + 5*time.Second)
		if op == OpReset || op == OpSet {
			deadline = time.Now().Add(ResetTimeout)
		}
	}
	c.conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	b, _ := json.Marshal(req)
	_, werr := c.conn.Write(append(b, '\n'))
	// Read even after a failed write: a server that refuses a client
	// says why before it closes.
	line, err := c.r.ReadBytes('\n')
	if err != nil && werr != nil {
		return nil, fmt.Errorf("sending %s to %s: %w", op, c.path, werr)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("reading the %s reply from %s: %w (the server closed the connection)", op, c.path, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("%s does not speak the enanet control protocol: %v", c.path, err)
	}
	if !resp.OK {
		if resp.Error == nil {
			return nil, fmt.Errorf("%s answered %s with neither a result nor an error", c.path, op)
		}
		return nil, resp.Error
	}
	return &resp, nil
}

// Hello asks who serves the socket.
func (c *Client) Hello(ctx context.Context) (Hello, error) {
	r, err := c.Do(ctx, OpHello)
	if err != nil {
		return Hello{}, err
	}
	if r.Hello == nil {
		return Hello{}, fmt.Errorf("%s answered hello without one", c.path)
	}
	return *r.Hello, nil
}

// Info reads the device's attributes.
func (c *Client) Info(ctx context.Context) (observe.Info, error) {
	in, _, err := c.InfoNetwork(ctx)
	return in, err
}

// InfoNetwork reads the device's attributes and the addressing of the
// stack the serving process runs on it; the Network is nil when the
// server does not report one (no stack, or an older server).
func (c *Client) InfoNetwork(ctx context.Context) (observe.Info, *Network, error) {
	r, err := c.Do(ctx, OpInfo)
	if err != nil {
		return observe.Info{}, nil, err
	}
	if r.Info == nil {
		return observe.Info{}, nil, fmt.Errorf("%s answered info without one", c.path)
	}
	return *r.Info, r.Network, nil
}

// Stats reads a snapshot of the device's counters.
func (c *Client) Stats(ctx context.Context) (observe.Snapshot, error) {
	r, err := c.Do(ctx, OpStats)
	if err != nil {
		return observe.Snapshot{}, err
	}
	if r.Stats == nil {
		return observe.Snapshot{}, fmt.Errorf("%s answered stats without a snapshot", c.path)
	}
	return *r.Stats, nil
}

// Reset asks the server to reset and rebuild the device.
func (c *Client) Reset(ctx context.Context) (ResetResult, error) {
	r, err := c.Do(ctx, OpReset)
	if err != nil {
		return ResetResult{}, err
	}
	if r.Reset == nil {
		return ResetResult{}, fmt.Errorf("%s answered reset without a result", c.path)
	}
	return *r.Reset, nil
}

// Endpoint is a live socket and who serves it.
type Endpoint struct {
	Path  string
	Hello Hello
}

// Scan is what Discover found in a directory.
type Scan struct {
	// Live are sockets a process answers, sorted by path.
	Live []Endpoint
	// Removed are stale sockets (their process gone) that were deleted.
	Removed []string
	// Problems are sockets that could not be used, each a sentence.
	Problems []error
}

// Discover looks at every *.sock in dir: it asks each live one who serves
// it, removes stale ones (when removeStale is set; their process is gone)
// and reports the others. A missing dir is an empty scan.
func Discover(ctx context.Context, dir string, removeStale bool) Scan {
	var sc Scan
	names, _ := filepath.Glob(filepath.Join(dir, "*.sock"))
	sort.Strings(names)
	for _, p := range names {
		c, err := Dial(ctx, p)
		var stale *StaleError
		if errors.As(err, &stale) {
			if !removeStale {
				sc.Problems = append(sc.Problems, err)
				continue
			}
			if rerr := os.Remove(p); rerr != nil {
				sc.Problems = append(sc.Problems, fmt.Errorf("%w; removing it: %v", err, rerr))
				continue
			}
			sc.Removed = append(sc.Removed, p)
			continue
		}
		if err != nil {
			sc.Problems = append(sc.Problems, err)
			continue
		}
		h, err := c.Hello(ctx)
		c.Close()
		if err != nil {
			sc.Problems = append(sc.Problems, fmt.Errorf("%s: %w", p, err))
			continue
		}
		sc.Live = append(sc.Live, Endpoint{Path: p, Hello: h})
	}
	return sc
}
