// Package control is a running device's local control socket: a Unix
// socket through which enactl (or any client) reads statistics and
// attributes of a device another process holds, and asks for a reset.
//
// A process that runs an enanet device serves it with one call:
//
//	srv, err := control.Serve(dev, control.Options{Program: "myservice"})
//	defer srv.Close()
//
// The socket lives in Options.Dir (default Dir(): /run/enanet for root),
// is named after the device (0000:00:06.0.sock; sim-<pid>-<n>.sock for a
// simulated device, of which every process has its own), has mode 0600,
// and the server checks every peer's credentials (SO_PEERCRED): only root
// and the server's own user may use it.
//
// # Protocol (version 1)
//
// Newline-delimited JSON over a stream socket. A client sends one request
// per line and reads one response line per request, on as many requests
// per connection as it likes:
//
//	{"version":1,"op":"stats"}
//	{"version":1,"op":"stats","ok":true,"stats":{"device":"sim0","time":"…","counters":[…]}}
//
// Operations: "hello" (who serves the socket: program, pid, device),
// "info" (observe.Info, and the stack's addresses under "network" when
// the serving process reports them: Network), "stats" (observe.Snapshot), "reset" (reset
// and rebuild the device, as the watchdog would) and "set" (change
// channels, rings, RSS or moderation; set.go). A failure answers
// {"version":1,"ok":false,"error":{"code":"…","message":"…"}} with one of
// the Code* codes. Keys are snake_case; a client must ignore keys it does
// not know, and a server answers a request of another version with
// code unsupported_version.
package control

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/enanet/enanet/ena/observe"
)

// Version is the protocol version this package speaks.
const Version = 1

// Operations.
const (
	OpHello = "hello"
	OpInfo  = "info"
	OpStats = "stats"
	OpReset = "reset"
)

// Error codes.
const (
	CodeBadRequest         = "bad_request"
	CodeUnsupportedVersion = "unsupported_version"
	CodeUnknownOp          = "unknown_op"
	CodePermissionDenied   = "permission_denied"
	CodeDeviceError        = "device_error"
	CodeTooLarge           = "request_too_large"
)

// MaxRequest is the longest request line the server reads.
const MaxRequest = 4096

// DefaultDir is where sockets live unless Options.Dir or
// $ENANET_CONTROL_DIR says otherwise.
const DefaultDir = "/run/enanet"

// DirEnv names the environment variable that moves the socket directory
// (tests, or a system without /run).
const DirEnv = "ENANET_CONTROL_DIR"

// Dir returns the socket directory: $ENANET_CONTROL_DIR if set; else for
// root DefaultDir, and for other users $XDG_RUNTIME_DIR/enanet (their own
// runtime directory, since /run is root's) when set.
func Dir() string { return DirFor(os.Getenv, os.Geteuid()) }

// DirFor is Dir with the environment and effective uid given.
func DirFor(getenv func(string) string, euid int) string {
	if d := getenv(DirEnv); d != "" {
		return d
	}
	if x := getenv("XDG_RUNTIME_DIR"); euid != 0 && x != "" {
		return filepath.Join(x, "enanet")
	}
	return DefaultDir
}

// Request is one request line.
type Request struct {
	Version int       `json:"version"`
	Op      string    `json:"op"`
	Set     *Settings `json:"set,omitempty"` // op "set" (set.go)
}

// Response is one response line; exactly one of the result fields is set
// when OK.
type Response struct {
	Version int               `json:"version"`
	Op      string            `json:"op,omitempty"`
	OK      bool              `json:"ok"`
	Error   *Error            `json:"error,omitempty"`
	Hello   *Hello            `json:"hello,omitempty"`
	Info    *observe.Info     `json:"info,omitempty"`
	Network *Network          `json:"network,omitempty"` // with info, when the server reports its stack (network.go)
	Stats   *observe.Snapshot `json:"stats,omitempty"`
	Reset   *ResetResult      `json:"reset,omitempty"`
	Set     *SetResult        `json:"set_result,omitempty"`
}

// Error is a failed request, as the server reports it.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// Hello says who serves a socket.
type Hello struct {
	Protocol int       `json:"protocol"`
	Program  string    `json:"program"`
	PID      int       `json:"pid"`
	UID      int       `json:"uid"`
	Device   string    `json:"device"`
	Kind     string    `json:"kind,omitempty"`
	Started  time.Time `json:"started"`
	Queues   int       `json:"queues"`
}

// ResetResult reports a reset the client asked for.
type ResetResult struct {
	Reason     string  `json:"reason"`
	DurationMs float64 `json:"duration_ms"`
}

// pciAddress matches a full PCI address; anything else (sim0) is made
// unique per process.
var pciAddress = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)

// simSeq numbers the simulated devices of this process.
var simSeq atomic.Uint32

// socketName is the socket file name for a device: the PCI address, or
// for a simulated device "sim-<pid>-<n>" (a process may run several).
func socketName(address string) string {
	if pciAddress.MatchString(address) {
		return address + ".sock"
	}
	return fmt.Sprintf("sim-%d-%d.sock", os.Getpid(), simSeq.Add(1))
}

// IsSimSocket reports whether a socket file name is a simulated device's.
func IsSimSocket(name string) bool {
	return len(name) > len("sim-.sock") && name[:4] == "sim-" && filepath.Ext(name) == ".sock"
}

// DeviceOfSocket returns the PCI address a socket name stands for, or
// "sim" for a simulated device's.
func DeviceOfSocket(name string) string {
	if IsSimSocket(name) {
		return "sim"
	}
	return name[:len(name)-len(filepath.Ext(name))]
}

func errorf(code, format string, a ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, a...)}
}
