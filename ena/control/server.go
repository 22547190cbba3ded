package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/observe"
	"github.com/enanet/enanet/ena/spec"
)

// Server timeouts.
const (
	// IdleTimeout closes a connection that sends no request for this long.
	IdleTimeout = 30 * time.Second
	// WriteTimeout bounds writing one response to a slow client.
	WriteTimeout = 5 * time.Second
	// StatsTimeout bounds the statistics read of one request.
	StatsTimeout = 5 * time.Second
	// MaxConns is how many clients are served at once; more wait in the
	// listen backlog.
	MaxConns = 16
)

// Options configure Serve. The zero value serves the device in Dir(),
// naming the program after os.Args[0].
type Options struct {
	// Dir is the socket directory; "" means Dir().
	Dir string
	// Path overrides the socket path entirely (Dir is then ignored).
	Path string
	// Program names the serving process in `enactl list`.
	Program string
	// Kind describes the device ("simulated ENA, profile nitro-v3").
	Kind string
	// Stats is where statistics come from; nil means the device. Give a
	// cache when the process reads statistics often anyway.
	Stats observe.Source
	// Logger receives refused peers, stale sockets and client errors; nil
	// discards them.
	Logger *slog.Logger
	// Network reports the addressing of the stack the process runs on the
	// device, answered with op "info"; nil answers none. A process whose
	// stack comes up after Serve gives it later with SetNetwork.
	Network func() Network
}

// Server serves one device's control socket.
type Server struct {
	dev   *ena.Device
	src   observe.Source
	ln    *net.UnixListener
	path  string
	hello Hello
	log   *slog.Logger
	uid   int

	network atomic.Pointer[func() Network] // Options.Network or SetNetwork

	resetMu sync.Mutex // one reset at a time
	sem     chan struct{}

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Serve creates the socket and serves it until Close. A socket left behind
// by a process that is gone is removed (and logged); a live one, or a path
// that is not a socket, is an error that names the holder or the path.
func Serve(dev *ena.Device, o Options) (*Server, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	in := dev.Info()
	path := o.Path
	if path == "" {
		dir := o.Dir
		if dir == "" {
			dir = Dir()
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("control: socket directory: %w", err)
		}
		path = filepath.Join(dir, socketName(in.Identity.Address))
	}
	if err := clearStale(path, log); err != nil {
		return nil, err
	}
	ln, err := listen(path)
	if err != nil {
		return nil, err
	}
	prog := o.Program
	if prog == "" {
		prog = filepath.Base(os.Args[0])
	}
	s := &Server{
		dev: dev, src: o.Stats, ln: ln, path: path, log: log, uid: os.Geteuid(),
		sem:   make(chan struct{}, MaxConns),
		conns: map[net.Conn]struct{}{},
		hello: Hello{Protocol: Version, Program: prog, PID: os.Getpid(), UID: os.Geteuid(),
			Device: in.Identity.Address, Kind: o.Kind, Started: time.Now().UTC(), Queues: in.Queues},
	}
	if s.src == nil {
		s.src = dev
	}
	s.SetNetwork(o.Network)
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// listen creates the socket so that it appears at its path only with mode
// 0600: changing the umask would affect the whole process, so the socket is
// bound under a temporary name, chmodded, then renamed into place (a client
// of another user that reaches the temporary name meanwhile still meets
// the peer check).
func listen(path string) (*net.UnixListener, error) {
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	_ = os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control: listen on %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("control: chmod %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("control: rename %s to %s: %w", tmp, path, err)
	}
	return ln, nil
}

// clearStale removes a socket at path whose server is gone. It refuses a
// path that is not a socket, and one a live process serves.
func clearStale(path string, log *slog.Logger) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("control: %s exists and is not a socket (%s); it is not ours: move it away or choose another path", path, fi.Mode().Type())
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("control: %s is in use by a running process: the device is already served (see enactl list)", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("control: %s exists and cannot be checked: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("control: removing stale socket %s: %w", path, err)
	}
	log.Warn("control: removed a stale socket: its process is gone", "path", path)
	return nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// SetNetwork sets (or with nil removes) what reports the stack's
// addressing to op "info": for a process that brings its stack up after
// serving the socket. It is called on every info request, so it must be
// safe for concurrent use and quick.
func (s *Server) SetNetwork(fn func() Network) {
	if fn == nil {
		s.network.Store(nil)
		return
	}
	s.network.Store(&fn)
}

// Close stops serving, closes every connection, removes the socket and
// waits for the server's goroutines. The device is untouched.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	if rerr := os.Remove(s.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
		err = rerr
	}
	return err
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		s.sem <- struct{}{}
		c, err := s.ln.AcceptUnix()
		if err != nil {
			<-s.sem
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("control: accept", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			<-s.sem
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
				<-s.sem
				s.wg.Done()
			}()
			s.serveConn(c)
		}()
	}
}

// peerUID returns the connecting process's uid (SO_PEERCRED).
func peerUID(c *net.UnixConn) (int, int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, 0, err
	}
	if cerr != nil {
		return 0, 0, cerr
	}
	return int(cred.Uid), int(cred.Pid), nil
}

func (s *Server) serveConn(c *net.UnixConn) {
	uid, pid, err := peerUID(c)
	if err != nil {
		s.log.Warn("control: reading peer credentials", "err", err)
		return
	}
	if uid != 0 && uid != s.uid {
		s.log.Warn("control: refused a client of another user", "peer_uid", uid, "peer_pid", pid, "owner_uid", s.uid)
		// Read (and ignore) the first request so the refusal arrives as its
		// answer, not as a reset connection.
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, _ = bufio.NewReaderSize(c, MaxRequest).ReadSlice('\n')
		s.write(c, &Response{Version: Version, Error: errorf(CodePermissionDenied,
			"permission denied: uid %d may not use this control socket; only root and uid %d (the user running %s) may", uid, s.uid, s.hello.Program)})
		return
	}
	r := bufio.NewReaderSize(c, MaxRequest)
	for {
		c.SetReadDeadline(time.Now().Add(IdleTimeout))
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			s.write(c, &Response{Version: Version, Error: errorf(CodeTooLarge, "request longer than %d bytes", MaxRequest)})
			return
		}
		if err != nil {
			if len(line) > 0 && !errors.Is(err, io.EOF) {
				s.log.Debug("control: client read", "err", err)
			}
			if !errors.Is(err, io.EOF) || len(line) == 0 {
				return
			}
		}
		resp := s.handle(line)
		if !s.write(c, resp) {
			return
		}
		if err != nil { // a last request without newline, then EOF
			return
		}
	}
}

// write sends one response; false means the client is gone.
func (s *Server) write(c net.Conn, resp *Response) bool {
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(&Response{Version: Version, Op: resp.Op, Error: errorf(CodeDeviceError, "encoding the response: %v", err)})
	}
	c.SetWriteDeadline(time.Now().Add(WriteTimeout))
	if _, err := c.Write(append(b, '\n')); err != nil {
		// The client went away mid-reply: its problem, not the device's.
		s.log.Debug("control: client left before the reply was written", "err", err)
		return false
	}
	return true
}

func (s *Server) handle(line []byte) *Response {
	var req Request
	if err := json.Unmarshal(bytes.TrimSpace(line), &req); err != nil {
		return &Response{Version: Version, Error: errorf(CodeBadRequest,
			`malformed request (want one JSON object per line, such as {"version":1,"op":"stats"}): %v`, err)}
	}
	resp := &Response{Version: Version, Op: req.Op}
	if req.Version != Version {
		resp.Error = errorf(CodeUnsupportedVersion, "protocol version %d is not supported: this server speaks version %d", req.Version, Version)
		return resp
	}
	switch req.Op {
	case OpHello:
		h := s.hello
		resp.Hello = &h
	case OpInfo:
		in := observe.MakeInfo(s.hello.Kind, s.dev.Info(), s.dev.LinkUp())
		resp.Info = &in
		if fn := s.network.Load(); fn != nil {
			n := (*fn)()
			resp.Network = &n
		}
	case OpStats:
		ctx, cancel := context.WithTimeout(context.Background(), StatsTimeout)
		snap := observe.Take(ctx, s.src, s.hello.Device)
		cancel()
		resp.Stats = &snap
	case OpReset:
		s.resetMu.Lock()
		start := time.Now()
		err := s.dev.Reset(spec.ResetUserTrigger)
		d := time.Since(start)
		s.resetMu.Unlock()
		if err != nil {
			resp.Error = errorf(CodeDeviceError, "reset failed: %v", err)
			return resp
		}
		s.log.Info("control: device reset on request", "took", d)
		resp.Reset = &ResetResult{Reason: spec.ResetUserTrigger.String(), DurationMs: float64(d.Microseconds()) / 1000}
	case OpSet:
		s.resetMu.Lock()
		r, err := applySettings(s.dev, req.Set)
		s.resetMu.Unlock()
		if err != nil {
			resp.Error = errorf(CodeDeviceError, "%v", err)
			return resp
		}
		s.log.Info("control: settings changed on request", "applied", r.Applied)
		resp.Set = &r
	default:
		resp.Error = errorf(CodeUnknownOp, "unknown op %q: want hello, info, stats, reset or set", req.Op)
		return resp
	}
	resp.OK = true
	return resp
}
