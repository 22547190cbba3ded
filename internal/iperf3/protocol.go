// Package iperf3 speaks the iperf3 protocol (as of iperf 3.12): a server
// that a stock `iperf3 -c` can drive and a client that can drive a stock
// `iperf3 -s`, with TCP and UDP streams, reverse mode, parallel streams,
// pacing and an iperf3-shaped JSON report.
//
// The package knows nothing about the network stack underneath: the server
// works over a net.Listener (and a function that opens a net.PacketConn for
// UDP tests), the client over a Dialer. The kernel's sockets (net.Listen,
// net.Dialer) and gVisor's gonet adapters both fit.
//
// Protocol summary (facts from the iperf3 sources, src/iperf_api.c,
// iperf_client_api.c, iperf_server_api.c, iperf_udp.c):
//
//   - The client opens the control connection and writes a 37-byte cookie
//     (36 characters of [a-z2-7] and a NUL).
//   - The server drives the test with one-byte state messages (signed):
//     PARAM_EXCHANGE, CREATE_STREAMS, TEST_START, TEST_RUNNING,
//     EXCHANGE_RESULTS, DISPLAY_RESULTS; the client answers with its
//     parameters, its data streams, TEST_END and IPERF_DONE.
//   - JSON documents travel as a 4-byte big-endian length and the text.
//   - Each TCP data connection begins with the same cookie; a UDP stream
//     begins with a 4-byte datagram which the server answers with another.
//   - Stream ids are 1, 3, 4, 5, ... (iperf3 skips 2 and keeps doing so for
//     compatibility); results are matched by id.
//   - A server that is busy answers a new connection with ACCESS_DENIED.
package iperf3

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
)

// State bytes on the control connection (iperf_api.h). They are signed
// chars on the wire; ACCESS_DENIED and SERVER_ERROR are negative.
const (
	stateTestStart       int8 = 1
	stateTestRunning     int8 = 2
	stateTestEnd         int8 = 4
	stateParamExchange   int8 = 9
	stateCreateStreams   int8 = 10
	stateServerTerminate int8 = 11
	stateClientTerminate int8 = 12
	stateExchangeResults int8 = 13
	stateDisplayResults  int8 = 14
	stateIperfDone       int8 = 16
	stateAccessDenied    int8 = -1
	stateServerError     int8 = -2
)

// Error numbers (i_errno values) the server sends after SERVER_ERROR.
const (
	ieNumStreams   = 6
	ieBlockSize    = 7
	ieUnimp        = 13
	ieUDPBlockSize = 20
	ieInitTest     = 101
	ieListen       = 102
	ieRecvParams   = 114
	ieProtocol     = 131
)

// Protocol limits (iperf.h).
const (
	// CookieSize is the length of the cookie that opens the control and
	// every TCP data connection: 36 characters and a NUL.
	CookieSize = 37
	// MaxStreams is the largest -P iperf3 accepts.
	MaxStreams = 128
	// MaxBlockSize is the largest TCP block length iperf3 accepts (1 MiB).
	MaxBlockSize = 1 << 20
	// MaxUDPBlockSize is the largest UDP payload iperf3 accepts.
	MaxUDPBlockSize = 65535 - 8 - 20
	// DefaultTCPBlockSize is iperf3's default TCP read/write length.
	DefaultTCPBlockSize = 128 * 1024
	// DefaultUDPBlockSize is iperf3's UDP payload length when the control
	// connection's MSS is unknown; it fits a 1500-byte MTU unfragmented.
	DefaultUDPBlockSize = 1460
	// DefaultUDPRate is iperf3's UDP target bitrate when -b is not given.
	DefaultUDPRate = 1_000_000
	// DefaultPort is iperf3's control port.
	DefaultPort = 5201

	maxJSON = 1 << 20 // refuse larger control documents rather than allocate them
)

// UDP stream set-up datagrams (iperf.h). iperf3 writes them as a native
// unsigned int, so on the little-endian hosts it runs on the bytes on the
// wire are the little-endian encoding; a client accepts the legacy reply
// too.
const (
	udpConnectMsg         = 0x36373839
	udpConnectReply       = 0x39383736
	udpLegacyConnectReply = 987654321
	udpLegacyConnectMsg   = 123456789
)

// protocolVersion is what we claim as client_version: the iperf3 release
// whose protocol this package follows.
const protocolVersion = "3.12"

const cookieChars = "abcdefghijklmnopqrstuvwxyz234567"

// newCookie returns a fresh random cookie, NUL-terminated, as iperf3 makes
// them (make_cookie in iperf_util.c draws from the same 32 characters).
func newCookie() ([CookieSize]byte, error) {
	var c [CookieSize]byte
	if _, err := rand.Read(c[:]); err != nil {
		return c, fmt.Errorf("iperf3: making a cookie: %w", err)
	}
	for i := 0; i < CookieSize-1; i++ {
		c[i] = cookieChars[int(c[i])%len(cookieChars)]
	}
	c[CookieSize-1] = 0
	return c, nil
}

// cookieString is the printable part of a cookie (up to the NUL).
func cookieString(c [CookieSize]byte) string {
	for i, b := range c {
		if b == 0 {
			return string(c[:i])
		}
	}
	return string(c[:])
}

// writeState sends one state byte.
func writeState(w io.Writer, s int8) error {
	if _, err := w.Write([]byte{byte(s)}); err != nil {
		return fmt.Errorf("iperf3: sending state %s: %w", stateName(s), err)
	}
	return nil
}

// readState reads one state byte.
func readState(r io.Reader) (int8, error) {
	var b [1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, fmt.Errorf("iperf3: reading a state byte: %w", err)
	}
	return int8(b[0]), nil
}

// writeJSON sends v as a 4-byte big-endian length and the JSON text, in one
// write so the peer sees it whole.
func writeJSON(w io.Writer, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("iperf3: encoding JSON: %w", err)
	}
	buf := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	copy(buf[4:], body)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("iperf3: sending JSON: %w", err)
	}
	return nil
}

// readJSON reads a length-prefixed JSON document into v. The length comes
// from the peer, so it is capped before anything is allocated.
func readJSON(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return fmt.Errorf("iperf3: reading a JSON length: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxJSON {
		return fmt.Errorf("iperf3: peer announced a %d-byte JSON document, more than the %d allowed", n, maxJSON)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return fmt.Errorf("iperf3: reading a %d-byte JSON document: %w", n, err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("iperf3: decoding JSON %q: %w", truncate(body, 200), err)
	}
	return nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// stateName names a state byte for error messages.
func stateName(s int8) string {
	switch s {
	case stateTestStart:
		return "TEST_START"
	case stateTestRunning:
		return "TEST_RUNNING"
	case stateTestEnd:
		return "TEST_END"
	case stateParamExchange:
		return "PARAM_EXCHANGE"
	case stateCreateStreams:
		return "CREATE_STREAMS"
	case stateServerTerminate:
		return "SERVER_TERMINATE"
	case stateClientTerminate:
		return "CLIENT_TERMINATE"
	case stateExchangeResults:
		return "EXCHANGE_RESULTS"
	case stateDisplayResults:
		return "DISPLAY_RESULTS"
	case stateIperfDone:
		return "IPERF_DONE"
	case stateAccessDenied:
		return "ACCESS_DENIED"
	case stateServerError:
		return "SERVER_ERROR"
	}
	return fmt.Sprintf("state %d", s)
}

// ErrBusy is returned by the client when the server answers ACCESS_DENIED:
// it is running another test.
var ErrBusy = errors.New("iperf3: the server is busy running a test (ACCESS_DENIED)")

// ServerError is the error a server reports with SERVER_ERROR: iperf3's
// i_errno and the system errno.
type ServerError struct {
	Code  int32 // iperf3 i_errno
	Errno int32
}

// Error names the well-known codes.
func (e *ServerError) Error() string {
	what := ""
	switch e.Code {
	case ieNumStreams:
		what = " (too many parallel streams)"
	case ieBlockSize, ieUDPBlockSize:
		what = " (block length out of range)"
	case ieUnimp:
		what = " (not implemented by the server)"
	case ieProtocol:
		what = " (protocol not supported)"
	case ieListen:
		what = " (the server could not listen for the streams)"
	}
	return fmt.Sprintf("iperf3: server error %d%s, errno %d", e.Code, what, e.Errno)
}

// params is the parameter document the client sends after PARAM_EXCHANGE
// (send_parameters in iperf_api.c). Numbers are decoded as float64 because
// cJSON may print large values in exponent form.
type params struct {
	TCP              bool    `json:"tcp,omitempty"`
	UDP              bool    `json:"udp,omitempty"`
	SCTP             bool    `json:"sctp,omitempty"`
	Omit             float64 `json:"omit"`
	Time             float64 `json:"time"`
	Num              float64 `json:"num"`
	BlockCount       float64 `json:"blockcount"`
	MSS              float64 `json:"MSS,omitempty"`
	NoDelay          bool    `json:"nodelay,omitempty"`
	Parallel         float64 `json:"parallel"`
	Reverse          bool    `json:"reverse,omitempty"`
	Bidirectional    bool    `json:"bidirectional,omitempty"`
	Window           float64 `json:"window,omitempty"`
	Len              float64 `json:"len,omitempty"`
	Bandwidth        float64 `json:"bandwidth,omitempty"`
	FQRate           float64 `json:"fqrate,omitempty"`
	PacingTimer      float64 `json:"pacing_timer,omitempty"`
	Burst            float64 `json:"burst,omitempty"`
	TOS              float64 `json:"TOS,omitempty"`
	Title            string  `json:"title,omitempty"`
	Congestion       string  `json:"congestion,omitempty"`
	ServerAffinity   float64 `json:"server_affinity,omitempty"`
	FlowLabel        float64 `json:"flowlabel,omitempty"`
	ExtraData        string  `json:"extra_data,omitempty"`
	Zerocopy         float64 `json:"zerocopy,omitempty"`
	RepeatingPayload float64 `json:"repeating_payload,omitempty"`
	DontFragment     float64 `json:"dont_fragment,omitempty"`
	GetServerOutput  float64 `json:"get_server_output,omitempty"`
	UDPCounters64Bit float64 `json:"udp_counters_64bit,omitempty"`
	ClientVersion    string  `json:"client_version,omitempty"`
}

// results is the document each side sends in EXCHANGE_RESULTS, fields in
// the order send_results writes them.
type results struct {
	CPUUtilTotal         float64        `json:"cpu_util_total"`
	CPUUtilUser          float64        `json:"cpu_util_user"`
	CPUUtilSystem        float64        `json:"cpu_util_system"`
	SenderHasRetransmits int            `json:"sender_has_retransmits"`
	CongestionUsed       string         `json:"congestion_used,omitempty"`
	ServerOutputJSON     any            `json:"server_output_json,omitempty"`
	ServerOutputText     string         `json:"server_output_text,omitempty"`
	Streams              []streamResult `json:"streams"`
}

// streamResult is one stream in a results document. Jitter is in seconds;
// Errors is the receiver's lost-packet count; Packets is the sender's
// packet count or the receiver's highest sequence number.
type streamResult struct {
	ID          int     `json:"id"`
	Bytes       uint64  `json:"bytes"`
	Retransmits int64   `json:"retransmits"`
	Jitter      float64 `json:"jitter"`
	Errors      int64   `json:"errors"`
	Packets     int64   `json:"packets"`
	StartTime   float64 `json:"start_time"`
	EndTime     float64 `json:"end_time"`
}

// rawResults decodes a peer's results leniently: numbers may be floats.
type rawResults struct {
	CPUUtilTotal         *float64        `json:"cpu_util_total"`
	CPUUtilUser          *float64        `json:"cpu_util_user"`
	CPUUtilSystem        *float64        `json:"cpu_util_system"`
	SenderHasRetransmits *float64        `json:"sender_has_retransmits"`
	CongestionUsed       string          `json:"congestion_used"`
	ServerOutputJSON     json.RawMessage `json:"server_output_json"`
	ServerOutputText     string          `json:"server_output_text"`
	Streams              []struct {
		ID          *float64 `json:"id"`
		Bytes       *float64 `json:"bytes"`
		Retransmits *float64 `json:"retransmits"`
		Jitter      *float64 `json:"jitter"`
		Errors      *float64 `json:"errors"`
		Packets     *float64 `json:"packets"`
		StartTime   *float64 `json:"start_time"`
		EndTime     *float64 `json:"end_time"`
	} `json:"streams"`
}

// decode checks the fields get_results requires and converts.
func (r *rawResults) decode() (results, error) {
	var out results
	if r.CPUUtilTotal == nil || r.CPUUtilUser == nil || r.CPUUtilSystem == nil || r.SenderHasRetransmits == nil || r.Streams == nil {
		return out, errors.New("iperf3: peer results lack cpu_util_*, sender_has_retransmits or streams")
	}
	out.CPUUtilTotal, out.CPUUtilUser, out.CPUUtilSystem = *r.CPUUtilTotal, *r.CPUUtilUser, *r.CPUUtilSystem
	out.SenderHasRetransmits = int(*r.SenderHasRetransmits)
	out.CongestionUsed = r.CongestionUsed
	for i, s := range r.Streams {
		if s.ID == nil || s.Bytes == nil || s.Retransmits == nil || s.Jitter == nil || s.Errors == nil || s.Packets == nil {
			return out, fmt.Errorf("iperf3: peer results: stream %d lacks id, bytes, retransmits, jitter, errors or packets", i)
		}
		sr := streamResult{
			ID: int(*s.ID), Retransmits: int64(*s.Retransmits), Jitter: *s.Jitter,
			Errors: int64(*s.Errors), Packets: int64(*s.Packets),
		}
		if *s.Bytes > 0 {
			sr.Bytes = uint64(*s.Bytes)
		}
		if s.StartTime != nil && s.EndTime != nil {
			sr.StartTime, sr.EndTime = *s.StartTime, *s.EndTime
		}
		out.Streams = append(out.Streams, sr)
	}
	return out, nil
}

// streamID is the id iperf3 gives the i-th stream (0-based) it creates:
// 1, 3, 4, 5, ... (iperf_add_stream).
func streamID(i int) int {
	if i == 0 {
		return 1
	}
	return i + 2
}

// socketNumber is the number stock iperf3 3.12 shows for the i-th stream
// (0-based), "[  5]" in text and "socket" in JSON. iperf3 shows the
// stream's file descriptor: on a client the data sockets are usually fds
// 5, 7, 9, ... (each stream opens one more descriptor besides its socket),
// on a TCP server 5, 8, 11, ...; scripts that parse the output see the
// same numbers from enaperf.
func socketNumber(client bool, i int) int {
	if client {
		return 5 + 2*i
	}
	return 5 + 3*i
}

// udpReplyOK reports whether a 4-byte datagram is a UDP connect reply in
// either byte order, current or legacy.
func udpReplyOK(b []byte) bool {
	if len(b) != 4 {
		return false
	}
	le, be := binary.LittleEndian.Uint32(b), binary.BigEndian.Uint32(b)
	for _, v := range []uint32{le, be} {
		if v == udpConnectReply || v == udpLegacyConnectReply {
			return true
		}
	}
	return false
}

// udpConnectOK reports whether a datagram is a client's UDP connect message
// in either byte order, current or legacy. Anything else from an unknown
// address is a stray: typically late datagrams of the previous UDP test on
// the same port, which must not take the new test's stream slot (the real
// client's connect message would then go unanswered and a stock iperf3
// client waits for the reply forever).
func udpConnectOK(b []byte) bool {
	if len(b) != 4 {
		return false
	}
	le, be := binary.LittleEndian.Uint32(b), binary.BigEndian.Uint32(b)
	for _, v := range []uint32{le, be} {
		if v == udpConnectMsg || v == udpLegacyConnectMsg {
			return true
		}
	}
	return false
}

// addrHostPort splits a net.Addr for the JSON report.
func addrHostPort(a net.Addr) (string, int) {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.IP.String(), a.Port
	case *net.UDPAddr:
		return a.IP.String(), a.Port
	case nil:
		return "", 0
	}
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String(), 0
	}
	p := 0
	fmt.Sscanf(port, "%d", &p)
	return host, p
}
