package iperf3

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Dialer opens the client's connections: "tcp" for the control and TCP
// data connections, "udp" for UDP streams (a connected socket). A
// *net.Dialer satisfies it; so does an adapter over gVisor's gonet.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// ClientConfig describes one test, as iperf3's client flags do.
type ClientConfig struct {
	// Addr is the server's host:port.
	Addr string
	// Dialer opens connections; nil means a *net.Dialer (kernel sockets).
	Dialer Dialer
	// UDP selects UDP streams (-u); the default is TCP.
	UDP bool
	// Reverse makes the server send (-R).
	Reverse bool
	// Parallel is the number of streams (-P); 0 means 1.
	Parallel int
	// Duration is the test length (-t); 0 means 10 s. The server is told
	// the whole seconds, rounded up.
	Duration time.Duration
	// BlockLen is the read/write length (-l); 0 means 128 KiB for TCP and
	// 1460 bytes for UDP.
	BlockLen int
	// Bitrate is the target rate per stream in bits per second (-b); 0
	// means unlimited for TCP and 1 Mbit/s for UDP. Set Unlimited for an
	// unpaced UDP test.
	Bitrate uint64
	// Unlimited disables pacing even for UDP (iperf3's -b 0).
	Unlimited bool
	// Counters64 asks for 64-bit UDP packet counters (--udp-counters-64bit).
	Counters64 bool
	// Interval is the reporting period for Report.Intervals; 0 means 1 s,
	// negative means none.
	Interval time.Duration
	// Timeout bounds each handshake step (connect, set-up, results); 0
	// means 10 s.
	Timeout time.Duration
	// Logger gets debug messages; nil means slog.Default().
	Logger *slog.Logger

	// Bidir runs both directions at once (--bidir).
	Bidir bool
	// Omit leaves the first part of the test out of the results (-O);
	// it is rounded up to whole seconds, what the protocol carries.
	Omit time.Duration
	// Bytes and Blocks end the test after that many bytes or blocks, all
	// streams together (-n, -k), instead of after Duration.
	Bytes, Blocks uint64
	// Socket holds -w, -M, -N, -C and -S; the server applies them too.
	Socket SocketOptions
	// Network is "tcp" (either family), "tcp4" or "tcp6" (-4, -6).
	Network string
	// BindHost is the local address of every connection (-B); BindPort
	// the first local port of the data streams (--cport), each further
	// stream using the next port.
	BindHost string
	BindPort int
	// Title is sent to the server and printed in reports (-T).
	Title string
	// GetServerOutput asks the server for its report (--get-server-output).
	GetServerOutput bool
	// OnStart gets the report's start section once the streams are
	// connected, and OnInterval each interval as it ends (live text
	// output; neither may block).
	OnStart    func(*Report)
	OnInterval func(Interval)
}

func (c *ClientConfig) settings() (testSettings, error) {
	set := testSettings{udp: c.UDP, reverse: c.Reverse && !c.Bidir, parallel: c.Parallel, duration: c.Duration,
		blksize: c.BlockLen, rate: c.Bitrate, counters64: c.Counters64,
		omit: c.Omit, bytes: c.Bytes, blocks: c.Blocks, bidir: c.Bidir, sock: c.Socket, title: c.Title,
		serverOutput: c.GetServerOutput}
	if set.parallel == 0 {
		set.parallel = 1
	}
	if set.parallel < 1 || set.parallel > MaxStreams {
		return set, fmt.Errorf("iperf3: %d parallel streams is outside 1..%d", set.parallel, MaxStreams)
	}
	if set.omit < 0 {
		return set, fmt.Errorf("iperf3: negative omit time %v", set.omit)
	}
	// The protocol carries whole seconds: both sides omit the same.
	set.omit = (set.omit + time.Second - 1) / time.Second * time.Second
	if set.byCount() {
		if set.bytes > 0 && set.blocks > 0 {
			return set, errors.New("iperf3: give a byte count (-n) or a block count (-k), not both")
		}
		if c.Duration != 0 {
			return set, errors.New("iperf3: a byte or block count (-n/-k) replaces the duration (-t); give one of them")
		}
	} else if set.duration == 0 {
		set.duration = 10 * time.Second
	}
	if set.duration < 0 {
		return set, fmt.Errorf("iperf3: negative duration %v", set.duration)
	}
	if set.blksize == 0 {
		set.blksize = DefaultTCPBlockSize
		if set.udp {
			set.blksize = DefaultUDPBlockSize
		}
	}
	if set.udp {
		if set.blksize < udpHeaderLen(set.counters64) || set.blksize > MaxUDPBlockSize {
			return set, fmt.Errorf("iperf3: UDP block length %d is outside %d..%d", set.blksize, udpHeaderLen(set.counters64), MaxUDPBlockSize)
		}
		if set.rate == 0 && !c.Unlimited {
			set.rate = DefaultUDPRate
		}
	} else if set.blksize < 1 || set.blksize > MaxBlockSize {
		return set, fmt.Errorf("iperf3: block length %d is outside 1..%d", set.blksize, MaxBlockSize)
	}
	if c.Unlimited {
		set.rate = 0
	}
	return set, nil
}

// Run runs one test against an iperf3 server and returns the report. On a
// failure after the test started the report is returned too, with Error
// set.
func Run(ctx context.Context, cfg ClientConfig) (*Report, error) {
	set, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	c := &client{cfg: cfg, set: set, dialer: cfg.Dialer, timeout: cfg.Timeout, log: cfg.Logger}
	if c.dialer == nil {
		c.dialer = &net.Dialer{}
	}
	if c.timeout <= 0 {
		c.timeout = 10 * time.Second
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	rep, err := c.run(ctx)
	if err != nil && rep != nil {
		rep.Error = err.Error()
	}
	return rep, err
}

type client struct {
	cfg     ClientConfig
	set     testSettings
	dialer  Dialer
	timeout time.Duration
	log     *slog.Logger
	cookie  [CookieSize]byte
	ctrl    net.Conn
	sess    *session
	rep     *Report
}

func (c *client) run(ctx context.Context) (*Report, error) {
	var err error
	if c.cookie, err = newCookie(); err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, c.timeout)
	c.ctrl, err = c.dial(dctx, "tcp", -1)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("iperf3: connecting to %s: %w", c.cfg.Addr, explainDial(err))
	}
	defer c.ctrl.Close()
	// Unblock control reads and writes when the caller gives up.
	stopWatch := context.AfterFunc(ctx, func() { c.ctrl.SetDeadline(time.Now()) })
	defer stopWatch()

	interval := c.cfg.Interval
	if interval == 0 {
		interval = time.Second
	}
	c.sess = newSession(c.set, interval, true)
	c.sess.onInterval = c.cfg.OnInterval
	defer c.sess.closeAll()
	c.rep = newReport(c.set, cookieString(c.cookie), time.Now())
	c.rep.Start.ConnectingTo = hostPort(c.ctrl.RemoteAddr())
	c.rep.describeControl(c.ctrl, c.set)

	c.ctrl.SetDeadline(time.Now().Add(c.timeout))
	if _, err := c.ctrl.Write(c.cookie[:]); err != nil {
		return nil, fmt.Errorf("iperf3: sending the cookie: %w", err)
	}
	var peer *results
	for {
		st, err := readState(c.ctrl)
		if err != nil {
			return c.fail(ctx, err)
		}
		c.log.Debug("iperf3 client: state", "state", stateName(st))
		switch st {
		case stateParamExchange:
			if err := writeJSON(c.ctrl, c.params()); err != nil {
				return c.fail(ctx, err)
			}
		case stateCreateStreams:
			if err := c.createStreams(ctx); err != nil {
				return c.fail(ctx, err)
			}
			c.rep.addStreams(c.sess.streams)
			if c.cfg.OnStart != nil {
				c.cfg.OnStart(c.rep)
			}
		case stateTestStart:
			c.sess.begin()
		case stateTestRunning:
			c.ctrl.SetDeadline(time.Time{})
			if err := c.runTest(ctx); err != nil {
				return c.fail(ctx, err)
			}
			c.ctrl.SetDeadline(time.Now().Add(c.timeout))
		case stateExchangeResults:
			if err := writeJSON(c.ctrl, c.sess.localResults()); err != nil {
				return c.fail(ctx, err)
			}
			var raw rawResults
			if err := readJSON(c.ctrl, &raw); err != nil {
				return c.fail(ctx, err)
			}
			r, err := raw.decode()
			if err != nil {
				return c.fail(ctx, err)
			}
			peer = &r
			if c.set.serverOutput {
				c.rep.ServerOutputJSON, c.rep.ServerOutputText = raw.ServerOutputJSON, raw.ServerOutputText
			}
		case stateDisplayResults:
			c.sess.closeAll()
			c.rep.finish(c.sess, peer)
			// The test is complete; a failure to say IPERF_DONE only
			// costs the server a log line.
			if err := writeState(c.ctrl, stateIperfDone); err != nil {
				c.log.Debug("iperf3 client: sending IPERF_DONE", "err", err)
			}
			return c.rep, nil
		case stateAccessDenied:
			return c.fail(ctx, ErrBusy)
		case stateServerError:
			var b [8]byte
			if _, err := io.ReadFull(c.ctrl, b[:]); err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					return c.fail(ctx, errors.New("iperf3: the server reported an error and closed the connection without saying which (see the server's log)"))
				}
				return c.fail(ctx, fmt.Errorf("iperf3: reading the server's error code: %w", err))
			}
			return c.fail(ctx, &ServerError{Code: int32(binary.BigEndian.Uint32(b[:4])), Errno: int32(binary.BigEndian.Uint32(b[4:]))})
		case stateServerTerminate:
			return c.fail(ctx, errors.New("iperf3: the server terminated the test"))
		default:
			return c.fail(ctx, fmt.Errorf("iperf3: unexpected %s from the server", stateName(st)))
		}
	}
}

// fail ends the test on an error: the report so far carries it.
func (c *client) fail(ctx context.Context, err error) (*Report, error) {
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%v)", err, ctx.Err())
	}
	c.sess.finish()
	if c.sess.start.IsZero() {
		return c.rep, err
	}
	c.rep.finish(c.sess, nil)
	return c.rep, err
}

func (c *client) params() params {
	p := params{
		TCP: !c.set.udp, UDP: c.set.udp,
		Omit:          float64((c.set.omit + time.Second - 1) / time.Second),
		Time:          float64((c.set.duration + time.Second - 1) / time.Second),
		Num:           float64(c.set.bytes),
		BlockCount:    float64(c.set.blocks),
		MSS:           float64(c.set.sock.MSS),
		NoDelay:       c.set.sock.NoDelay,
		Parallel:      float64(c.set.parallel),
		Reverse:       c.set.reverse,
		Bidirectional: c.set.bidir,
		Window:        float64(c.set.sock.Window),
		Len:           float64(c.set.blksize),
		Bandwidth:     float64(c.set.rate),
		PacingTimer:   1000,
		TOS:           float64(c.set.sock.TOS),
		Title:         c.set.title,
		Congestion:    c.set.sock.Congestion,
		ClientVersion: protocolVersion,
	}
	if c.set.serverOutput {
		p.GetServerOutput = 1
	}
	if c.set.counters64 {
		p.UDPCounters64Bit = 1
	}
	return p
}

// dial opens a connection to the server: the control connection (stream
// -1) or data stream i, bound as -B and --cport ask, with the socket
// options applied before connecting where the dialer can.
func (c *client) dial(ctx context.Context, network string, i int) (net.Conn, error) {
	switch c.cfg.Network {
	case "tcp4", "tcp6":
		network += c.cfg.Network[3:]
	}
	local := ""
	if c.cfg.BindHost != "" || (i >= 0 && c.cfg.BindPort > 0) {
		port := 0
		if i >= 0 && c.cfg.BindPort > 0 {
			port = c.cfg.BindPort + i
		}
		local = net.JoinHostPort(c.cfg.BindHost, strconv.Itoa(port))
	}
	opts := SocketOptions{}
	if i >= 0 {
		opts = c.set.sock
	}
	if od, ok := c.dialer.(OptionDialer); ok {
		return od.DialOptions(ctx, network, local, c.cfg.Addr, opts)
	}
	if local != "" {
		return nil, errors.New("iperf3: this network cannot bind a local address (-B/--cport)")
	}
	conn, err := c.dialer.DialContext(ctx, network, c.cfg.Addr)
	if err != nil {
		return nil, err
	}
	if err := applyOptions(conn, opts); err != nil {
		conn.Close()
		return nil, fmt.Errorf("iperf3: socket options: %w", err)
	}
	return conn, nil
}

// explainDial turns a failed connect into a sentence with the fix.
func explainDial(err error) error {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), strings.Contains(err.Error(), "connection was refused"), strings.Contains(err.Error(), "connection refused"):
		return fmt.Errorf("connection refused: nothing listens there; start a server (iperf3 -s or enaperf -s) or check -c and -p")
	case errors.Is(err, context.DeadlineExceeded), strings.Contains(err.Error(), "timed out"):
		return fmt.Errorf("no answer (%v): check the address, the route and any firewall", err)
	}
	return err
}

// maxAckWait bounds the wait for a stream's cookie to be acknowledged
// before the next stream connects. A peer acknowledges at once (Linux's
// quick ACKs at a connection's start, gVisor) or after its delayed-ACK
// timer (200 ms on Windows); longer means a lost segment, and the next
// stream then connects without the proof, as stock iperf3 always does.
const maxAckWait = time.Second

// createStreams opens the data streams in order, so ids match the
// server's accept order.
func (c *client) createStreams(ctx context.Context) error {
	n := c.set.parallel
	if c.set.bidir {
		n *= 2
	}
	for i := 0; i < n; i++ {
		// With --bidir the first half send and the second half receive,
		// the order iperf3's server accepts them in.
		sender := !c.set.reverse
		if c.set.bidir {
			sender = i < c.set.parallel
		}
		st := &stream{id: streamID(i), sock: socketNumber(true, i), sender: sender, udp: c.set.udp}
		network := "tcp"
		if c.set.udp {
			network = "udp"
		}
		dctx, cancel := context.WithTimeout(ctx, c.timeout)
		conn, err := c.dial(dctx, network, i)
		cancel()
		if err != nil {
			return fmt.Errorf("iperf3: opening stream %d: %w", st.id, explainDial(err))
		}
		st.conn, st.local, st.remote = conn, conn.LocalAddr(), conn.RemoteAddr()
		c.sess.streams = append(c.sess.streams, st)
		conn.SetDeadline(time.Now().Add(c.timeout))
		if c.set.udp {
			if err := c.udpHandshake(st); err != nil {
				return err
			}
		} else if _, err := conn.Write(c.cookie[:]); err != nil {
			return fmt.Errorf("iperf3: stream %d: sending the cookie: %w", st.id, err)
		} else if i < n-1 {
			// The server tells streams apart only by the order it
			// accepts them. Connecting the next stream only once the
			// server's TCP has acknowledged this one's cookie (so it holds
			// this connection in its accept queue) keeps that order even
			// where the server's NIC spreads the handshakes over several
			// queues and completes a later one first.
			wctx, cancel := context.WithTimeout(ctx, min(c.timeout, maxAckWait))
			if ok, err := waitAcked(wctx, conn); ok && err != nil {
				c.log.Debug("iperf3 client: no acknowledgement of the cookie; opening the next stream anyway", "stream", st.id, "err", err)
			}
			cancel()
		}
		conn.SetDeadline(time.Time{})
	}
	return nil
}

// udpHandshake sends the connect datagram and waits for the reply (with a
// few data datagrams tolerated ahead of it in reverse mode, as iperf3
// does).
func (c *client) udpHandshake(st *stream) error {
	var msg [4]byte
	binary.LittleEndian.PutUint32(msg[:], udpConnectMsg)
	if _, err := st.conn.Write(msg[:]); err != nil {
		return fmt.Errorf("iperf3: stream %d: sending the UDP connect datagram: %w", st.id, err)
	}
	buf := make([]byte, 65536)
	for tries := 0; tries < 4; tries++ {
		n, err := st.conn.Read(buf)
		if err != nil {
			return fmt.Errorf("iperf3: stream %d: waiting for the UDP connect reply: %w", st.id, err)
		}
		if udpReplyOK(buf[:n]) {
			return nil
		}
	}
	return fmt.Errorf("iperf3: stream %d: no UDP connect reply among the first datagrams", st.id)
}

// runTest lets the streams run for the duration, then stops them and
// tells the server TEST_END.
func (c *client) runTest(ctx context.Context) error {
	var timeUp <-chan time.Time
	if c.set.duration > 0 {
		t := time.NewTimer(c.set.omit + c.set.duration - time.Since(c.sess.began))
		defer t.Stop()
		timeUp = t.C
	}
	var err error
	select {
	case <-timeUp:
	case <-c.sess.done:
	case <-ctx.Done():
		err = fmt.Errorf("iperf3: test interrupted: %w", ctx.Err())
	case err = <-c.sess.errc:
	}
	c.sess.finish()
	if err != nil {
		// Tell the server, as iperf3 does on an interrupt.
		c.ctrl.SetWriteDeadline(time.Now().Add(time.Second))
		writeState(c.ctrl, stateClientTerminate)
		return err
	}
	return writeState(c.ctrl, stateTestEnd)
}
