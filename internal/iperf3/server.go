package iperf3

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// Server is an iperf3 server: one test at a time, as iperf3 runs them;
// a connection that arrives while a test is running and is not one of its
// streams gets ACCESS_DENIED.
type Server struct {
	// Listener accepts the control and TCP data connections.
	Listener net.Listener
	// ListenUDP opens the socket for a UDP test's streams, on the same port
	// as Listener (iperf3 clients send there). nil refuses UDP tests.
	ListenUDP func() (net.PacketConn, error)
	// OnReport, if set, gets each test's report (with Error set when the
	// test failed) and the error.
	OnReport func(*Report, error)
	// OneOff makes Serve return after the first test (iperf3 -s -1); Serve
	// then returns that test's error.
	OneOff bool
	// Interval is the reporting period; 0 means 1 s, negative means none.
	Interval time.Duration
	// Timeout bounds each handshake step; 0 means 10 s.
	Timeout time.Duration
	// Logger gets debug messages; nil means slog.Default().
	Logger *slog.Logger

	// JSON says the server prints JSON reports; a client's
	// --get-server-output then gets the JSON report, else the text one.
	JSON bool
	// Text formats text reports (units, timestamps) for
	// --get-server-output.
	Text TextOptions
	// OnStart gets each test's report once its streams are connected, and
	// OnInterval each interval as it ends (live text output; neither may
	// block).
	OnStart    func(*Report)
	OnInterval func(Interval)
}

// Serve accepts connections until ctx is done (or after one test with
// OneOff) and closes the listener before returning. Tests in progress are
// aborted when ctx is done.
func (s *Server) Serve(ctx context.Context) error {
	if s.Listener == nil {
		return errors.New("iperf3: Server.Listener is nil")
	}
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	interval := s.Interval
	if interval == 0 {
		interval = time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { s.Listener.Close() })
	defer stop()

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		active  *serverTest
		lastErr error
	)
	defer wg.Wait()
	for {
		conn, err := s.Listener.Accept()
		if err != nil {
			if ctx.Err() != nil {
				s.Listener.Close()
				wg.Wait()
				mu.Lock()
				defer mu.Unlock()
				return lastErr
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.Listener.Close()
			return fmt.Errorf("iperf3: server: accepting: %w", err)
		}
		mu.Lock()
		t := active
		if t == nil {
			t = &serverTest{srv: s, log: log, timeout: timeout, interval: interval, ctrl: conn,
				streamc: make(chan net.Conn, MaxStreams)}
			active = t
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				rep, err := t.run(ctx)
				if err != nil && rep != nil {
					rep.Error = err.Error()
				}
				if err != nil {
					log.Debug("iperf3 server: test failed", "peer", conn.RemoteAddr(), "err", err)
				}
				if s.OnReport != nil {
					s.OnReport(rep, err)
				}
				mu.Lock()
				active = nil
				lastErr = err
				mu.Unlock()
				if s.OneOff {
					cancel()
				}
			}()
			continue
		}
		mu.Unlock()
		if !t.offer(conn) {
			deny(conn)
		}
	}
}

// deny answers a connection the server cannot take with ACCESS_DENIED,
// without reading from it (iperf_accept does the same so a stray client
// cannot stall a running test).
func deny(c net.Conn) {
	c.SetWriteDeadline(time.Now().Add(time.Second))
	c.Write([]byte{0xff}) // ACCESS_DENIED (-1)
	c.Close()
}

// serverTest is one test from the server's side.
type serverTest struct {
	srv      *Server
	log      *slog.Logger
	timeout  time.Duration
	interval time.Duration
	ctrl     net.Conn

	optErr error // the first socket option a stream did not take

	mu        sync.Mutex
	accepting bool
	streamc   chan net.Conn // TCP data connections in accept order
}

// offer hands a new connection to the test if it is waiting for streams.
func (t *serverTest) offer(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.accepting {
		return false
	}
	select {
	case t.streamc <- c:
		return true
	default:
		return false
	}
}

func (t *serverTest) setAccepting(on bool) {
	t.mu.Lock()
	t.accepting = on
	t.mu.Unlock()
	if !on {
		for {
			select {
			case c := <-t.streamc:
				deny(c)
			default:
				return
			}
		}
	}
}

// refuse sends SERVER_ERROR with iperf3's error code, as the server does
// when it cannot run what the client asked for.
func (t *serverTest) refuse(code int32, err error) error {
	var b [9]byte
	b[0] = 0xfe // SERVER_ERROR (-2)
	binary.BigEndian.PutUint32(b[1:5], uint32(code))
	t.ctrl.Write(b[:])
	return err
}

// settingsFrom checks a client's parameters; a non-zero code is the
// iperf3 error to send back. ignored lists what the client asked for that
// this server cannot do (it runs the test without).
func settingsFrom(p *params) (set testSettings, ignored []string, code int32, err error) {
	set = testSettings{udp: p.UDP, reverse: p.Reverse && !p.Bidirectional, parallel: int(p.Parallel),
		duration: time.Duration(p.Time * float64(time.Second)), blksize: int(p.Len),
		counters64: p.UDPCounters64Bit != 0,
		omit:       time.Duration(max(p.Omit, 0) * float64(time.Second)),
		bytes:      uint64(max(p.Num, 0)), blocks: uint64(max(p.BlockCount, 0)),
		bidir: p.Bidirectional, title: p.Title, serverOutput: p.GetServerOutput != 0,
		sock: SocketOptions{Window: int(p.Window), MSS: int(p.MSS), NoDelay: p.NoDelay, Congestion: p.Congestion, TOS: int(p.TOS)},
	}
	if p.Bandwidth > 0 {
		set.rate = uint64(p.Bandwidth)
	}
	if p.SCTP {
		return set, nil, ieProtocol, errors.New("iperf3: the client asked for SCTP, which is not supported")
	}
	for _, ig := range []struct {
		set  bool
		what string
	}{
		{p.FlowLabel != 0, "--flowlabel (IPv6 flow labels are not set by this stack)"},
		{p.Zerocopy != 0, "-Z (the client's zero-copy send is its own business)"},
		{p.FQRate != 0, "--fq-rate (no fair-queueing qdisc; -b paces in the application)"},
		{p.DontFragment != 0, "--dont-fragment (the stack does not set DF on request)"},
		{p.ServerAffinity != 0, "-A ,n (server CPU affinity is not set by the client)"},
		{p.RepeatingPayload != 0, "--repeating-payload (payload stays random)"},
	} {
		if ig.set {
			ignored = append(ignored, ig.what)
		}
	}
	if set.bytes > 0 || set.blocks > 0 {
		// iperf3 runs a counted test without a timer.
		set.duration = 0
	}
	if set.parallel == 0 {
		set.parallel = 1
	}
	if set.parallel < 1 || set.parallel > MaxStreams {
		return set, ignored, ieNumStreams, fmt.Errorf("iperf3: the client asked for %d parallel streams, outside 1..%d", set.parallel, MaxStreams)
	}
	if set.blksize == 0 {
		set.blksize = DefaultTCPBlockSize
		if set.udp {
			set.blksize = DefaultUDPBlockSize
		}
	}
	if set.udp {
		if set.blksize < udpHeaderLen(set.counters64) || set.blksize > MaxUDPBlockSize {
			return set, ignored, ieUDPBlockSize, fmt.Errorf("iperf3: the client asked for a UDP block length of %d, outside %d..%d", set.blksize, udpHeaderLen(set.counters64), MaxUDPBlockSize)
		}
	} else if set.blksize < 1 || set.blksize > MaxBlockSize {
		return set, ignored, ieBlockSize, fmt.Errorf("iperf3: the client asked for a block length of %d, outside 1..%d", set.blksize, MaxBlockSize)
	}
	if set.duration < 0 {
		set.duration = 0
	}
	return set, ignored, 0, nil
}

// numStreams is how many data connections a test opens.
func (t testSettings) numStreams() int {
	if t.bidir {
		return 2 * t.parallel
	}
	return t.parallel
}

// serverSends says whether the server sends on its i-th stream: with
// --bidir the first half receive (the client's senders come first).
func (t testSettings) serverSends(i int) bool {
	if t.bidir {
		return i >= t.parallel
	}
	return t.reverse
}

func (t *serverTest) run(ctx context.Context) (rep *Report, err error) {
	defer t.ctrl.Close()
	defer t.setAccepting(false)
	stopWatch := context.AfterFunc(ctx, func() { t.ctrl.SetDeadline(time.Now()) })
	defer stopWatch()

	t.ctrl.SetDeadline(time.Now().Add(t.timeout))
	var cookie [CookieSize]byte
	if _, err := io.ReadFull(t.ctrl, cookie[:]); err != nil {
		return nil, fmt.Errorf("iperf3: reading the client's cookie: %w", err)
	}
	if err := writeState(t.ctrl, stateParamExchange); err != nil {
		return nil, err
	}
	var p params
	if err := readJSON(t.ctrl, &p); err != nil {
		return nil, t.refuse(ieRecvParams, err)
	}
	set, ignored, code, err := settingsFrom(&p)
	if err != nil {
		return nil, t.refuse(code, err)
	}
	t.log.Debug("iperf3 server: test", "peer", t.ctrl.RemoteAddr(), "udp", set.udp, "reverse", set.reverse,
		"parallel", set.parallel, "len", set.blksize, "rate", set.rate, "time", set.duration)

	rep = newReport(set, cookieString(cookie), time.Now())
	rep.Start.AcceptedConnection = hostPort(t.ctrl.RemoteAddr())
	rep.describeControl(t.ctrl, set)
	rep.Ignored = ignored
	for _, ig := range ignored {
		t.log.Warn("iperf3 server: the client asked for an option this server ignores", "option", ig)
	}
	sess := newSession(set, t.interval, false)
	sess.onInterval = t.srv.OnInterval
	defer sess.closeAll()

	var udpNew chan *stream
	if set.udp {
		if t.srv.ListenUDP == nil {
			return rep, t.refuse(ieProtocol, errors.New("iperf3: UDP tests are not enabled on this server"))
		}
		pc, err := t.srv.ListenUDP()
		if err != nil {
			return rep, t.refuse(ieListen, fmt.Errorf("iperf3: opening the UDP socket: %w", err))
		}
		udpNew = make(chan *stream, set.numStreams())
		var demux sync.WaitGroup
		demux.Add(1)
		go func() {
			defer demux.Done()
			t.udpLoop(pc, sess, set, udpNew)
		}()
		defer func() {
			pc.Close()
			demux.Wait()
		}()
	}

	t.mu.Lock()
	t.accepting = true
	t.mu.Unlock()
	if err := writeState(t.ctrl, stateCreateStreams); err != nil {
		return rep, err
	}
	deadline := time.NewTimer(t.timeout)
	defer deadline.Stop()
	for len(sess.streams) < set.numStreams() {
		select {
		case <-ctx.Done():
			return rep, fmt.Errorf("iperf3: waiting for streams: %w", ctx.Err())
		case <-deadline.C:
			return rep, fmt.Errorf("iperf3: only %d of %d streams arrived within %v", len(sess.streams), set.numStreams(), t.timeout)
		case st := <-udpNew:
			sess.streams = append(sess.streams, st)
		case c := <-t.streamc:
			st, err := t.tcpStream(c, cookie, len(sess.streams), set)
			if err != nil {
				t.log.Debug("iperf3 server: stream refused", "peer", c.RemoteAddr(), "err", err)
				continue
			}
			sess.streams = append(sess.streams, st)
		}
	}
	t.setAccepting(false)
	rep.addStreams(sess.streams)
	if t.optErr != nil {
		rep.Ignored = append(rep.Ignored, "the client's socket options: "+t.optErr.Error())
	}
	if t.srv.OnStart != nil {
		t.srv.OnStart(rep)
	}

	if err := writeState(t.ctrl, stateTestStart); err != nil {
		return rep, err
	}
	sess.begin()
	if err := writeState(t.ctrl, stateTestRunning); err != nil {
		sess.finish()
		rep.finish(sess, nil)
		return rep, err
	}

	// Wait for TEST_END. A stream failure (the client vanished) cuts the
	// wait short.
	grace := 2*t.timeout + 5*time.Second
	if set.duration > 0 {
		t.ctrl.SetDeadline(time.Now().Add(set.duration + grace))
	} else {
		t.ctrl.SetDeadline(time.Time{})
	}
	var streamErr error
	watchDone := make(chan struct{})
	var watch sync.WaitGroup
	watch.Add(1)
	go func() {
		defer watch.Done()
		select {
		case streamErr = <-sess.errc:
			t.ctrl.SetReadDeadline(time.Now())
		case <-watchDone:
		}
	}()
	st, err := readState(t.ctrl)
	close(watchDone)
	watch.Wait()
	sess.finish()
	if streamErr != nil {
		err = streamErr
	}
	if err != nil {
		rep.finish(sess, nil)
		return rep, err
	}
	switch st {
	case stateTestEnd:
	case stateClientTerminate:
		rep.finish(sess, nil)
		return rep, errors.New("iperf3: the client terminated the test")
	default:
		rep.finish(sess, nil)
		return rep, fmt.Errorf("iperf3: expected TEST_END from the client, got %s", stateName(st))
	}
	// iperf3 closes the streams as soon as the test ends.
	sess.closeAll()

	t.ctrl.SetDeadline(time.Now().Add(t.timeout))
	if err := writeState(t.ctrl, stateExchangeResults); err != nil {
		rep.finish(sess, nil)
		return rep, err
	}
	var raw rawResults
	if err := readJSON(t.ctrl, &raw); err != nil {
		rep.finish(sess, nil)
		return rep, err
	}
	peer, err := raw.decode()
	if err != nil {
		rep.finish(sess, nil)
		return rep, err
	}
	res := sess.localResults()
	if set.serverOutput {
		// The server's own view so far, as iperf3 sends it.
		rep.finish(sess, nil)
		if t.srv.JSON {
			res.ServerOutputJSON = rep
		} else {
			var b strings.Builder
			rep.WriteText(&b, t.srv.Text, false)
			res.ServerOutputText = b.String()
		}
	}
	if err := writeJSON(t.ctrl, res); err != nil {
		rep.finish(sess, &peer)
		return rep, err
	}
	if err := writeState(t.ctrl, stateDisplayResults); err != nil {
		rep.finish(sess, &peer)
		return rep, err
	}
	rep.finish(sess, &peer)
	// IPERF_DONE, or the client simply closing, ends the test.
	if st, err := readState(t.ctrl); err == nil && st != stateIperfDone {
		t.log.Debug("iperf3 server: expected IPERF_DONE", "got", stateName(st))
	}
	return rep, nil
}

// tcpStream checks a data connection's cookie; a stranger is denied.
func (t *serverTest) tcpStream(c net.Conn, cookie [CookieSize]byte, n int, set testSettings) (*stream, error) {
	c.SetReadDeadline(time.Now().Add(t.timeout))
	var got [CookieSize]byte
	if _, err := io.ReadFull(c, got[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("iperf3: reading a stream's cookie: %w", err)
	}
	c.SetReadDeadline(time.Time{})
	if got != cookie {
		deny(c)
		return nil, errors.New("iperf3: a stream presented another test's cookie")
	}
	if err := applyOptions(c, set.sock); err != nil && t.optErr == nil {
		t.optErr = err
		t.log.Warn("iperf3 server: the client's socket options could not all be applied", "err", err)
	}
	return &stream{id: streamID(n), sock: socketNumber(false, n), sender: set.serverSends(n), conn: c, local: c.LocalAddr(), remote: c.RemoteAddr()}, nil
}

// udpLoop owns the server's UDP socket: a datagram from a new address
// while streams are being created opens a stream (answered with the
// connect reply); later datagrams are accounted to their stream.
func (t *serverTest) udpLoop(pc net.PacketConn, sess *session, set testSettings, newc chan<- *stream) {
	buf := make([]byte, 65536)
	byAddr := map[string]*stream{}
	local := udpLocal(pc.LocalAddr(), t.ctrl.LocalAddr())
	var reply [4]byte
	binary.LittleEndian.PutUint32(reply[:], udpConnectReply)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if isTransientUDP(err) {
				continue
			}
			return
		}
		now := time.Now()
		key := addr.String()
		st := byAddr[key]
		if st == nil {
			if len(byAddr) >= set.numStreams() || !udpConnectOK(buf[:n]) {
				continue // a stray, a stranger, or a stream beyond -P
			}
			st = &stream{id: streamID(len(byAddr)), sock: socketNumber(false, len(byAddr)), sender: set.serverSends(len(byAddr)), udp: true, pc: pc, peer: addr,
				local: local, remote: addr}
			byAddr[key] = st
			if _, err := pc.WriteTo(reply[:], addr); err != nil {
				t.log.Debug("iperf3 server: UDP connect reply", "peer", addr, "err", err)
			}
			newc <- st
			continue
		}
		if !st.sender && sess.counting.Load() {
			st.receiveUDP(buf[:n], now, set.counters64)
		}
	}
}

// udpLocal is a UDP stream's local address as iperf3 reports it: its
// socket connects to the client, so it shows the address the client
// reached (the control connection's) rather than a wildcard such as
// [::] that a socket for both families is bound to.
func udpLocal(bound, ctrl net.Addr) net.Addr {
	ua, ok1 := bound.(*net.UDPAddr)
	ta, ok2 := ctrl.(*net.TCPAddr)
	if !ok1 || !ok2 || !ua.IP.IsUnspecified() {
		return bound
	}
	return &net.UDPAddr{IP: ta.IP, Port: ua.Port}
}
