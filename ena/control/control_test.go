package control_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/control"
	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/internal/testenv"
)

func openSim(t *testing.T) *ena.Device {
	t.Helper()
	wire := enasim.NewLoopback()
	sim, err := enasim.New(enasim.Config{Wire: wire})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sim.Close(); _ = wire.Close() })
	d, err := ena.Open(sim, ena.Config{Queues: 2, TxDepth: 256, RxDepth: 256, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func serve(t *testing.T, dir string) (*ena.Device, *control.Server) {
	t.Helper()
	d := openSim(t)
	srv, err := control.Serve(d, control.Options{Dir: dir, Program: "test", Kind: "simulated ENA"})
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	return d, srv
}

func dial(t *testing.T, path string) *control.Client {
	t.Helper()
	c, err := control.Dial(context.Background(), path)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestServeOperations(t *testing.T) {
	dir := t.TempDir()
	d, srv := serve(t, dir)
	require.Regexp(t, `^`+regexp.QuoteMeta(filepath.Join(dir, "sim-"+strconv.Itoa(os.Getpid())+"-"))+`\d+\.sock$`, srv.Path())
	// A second simulated device of the same process gets its own socket.
	_, srv2 := serve(t, dir)
	require.NotEqual(t, srv.Path(), srv2.Path())
	srv2.Close()
	fi, err := os.Stat(srv.Path())
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	c := dial(t, srv.Path())
	ctx := context.Background()
	h, err := c.Hello(ctx)
	require.NoError(t, err)
	require.Equal(t, os.Getpid(), h.PID)
	require.Equal(t, "test", h.Program)
	require.Equal(t, 2, h.Queues)
	in, err := c.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, in.Queues)
	s, err := c.Stats(ctx)
	require.NoError(t, err)
	require.Empty(t, s.Error)
	require.Contains(t, s.Values(), "queue_1_rx_cnt")
	require.Contains(t, s.Values(), "conntrack_allowance_available")

	r, err := c.Reset(ctx)
	require.NoError(t, err)
	require.Equal(t, "USER_TRIGGER", r.Reason)
	s, err = c.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(1), s.Values()["reset_user_trigger"])
	_, err = d.Stats(ctx)
	require.NoError(t, err, "the device runs after the reset")

	sc := control.Discover(ctx, dir, true)
	require.Len(t, sc.Live, 1)
	require.Equal(t, os.Getpid(), sc.Live[0].Hello.PID)

	require.NoError(t, srv.Close())
	_, err = os.Stat(srv.Path())
	require.True(t, os.IsNotExist(err), "Close removes the socket")
}

// TestStaleAndForeignPaths: a socket left by a dead process is removed, a
// live one is not taken over, a path that is not a socket is refused on
// both sides.
func TestStaleAndForeignPaths(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0000:00:06.0.sock")
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err)
	stale.SetUnlinkOnClose(false)
	stale.Close()

	_, err = control.Dial(context.Background(), path)
	var se *control.StaleError
	require.ErrorAs(t, err, &se)
	require.Contains(t, err.Error(), "stale control socket")
	sc := control.Discover(context.Background(), dir, true)
	require.Equal(t, []string{path}, sc.Removed)
	_, err = os.Stat(path)
	require.True(t, os.IsNotExist(err))

	// Serve over a stale socket removes it.
	stale, err = net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err)
	stale.SetUnlinkOnClose(false)
	stale.Close()
	d := openSim(t)
	srv, err := control.Serve(d, control.Options{Path: path})
	require.NoError(t, err)
	defer srv.Close()

	// A second server for the same path is refused: it is live.
	_, err = control.Serve(d, control.Options{Path: path})
	require.ErrorContains(t, err, "in use by a running process")

	// A regular file is not ours.
	file := filepath.Join(dir, "notes.sock")
	require.NoError(t, os.WriteFile(file, []byte("hello"), 0o600))
	_, err = control.Serve(d, control.Options{Path: file})
	require.ErrorContains(t, err, "is not a socket")
	_, err = control.Dial(context.Background(), file)
	require.ErrorContains(t, err, "is not an enanet control socket (it is a regular file")
	b, _ := os.ReadFile(file)
	require.Equal(t, "hello", string(b), "the file is left alone")

	// A socket that speaks something else.
	other := filepath.Join(dir, "other.sock")
	ln, err := net.Listen("unix", other)
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.WriteString(c, "SSH-2.0-OpenSSH\r\n")
			c.Close()
		}
	}()
	c, err := control.Dial(context.Background(), other)
	require.NoError(t, err)
	_, err = c.Hello(context.Background())
	require.ErrorContains(t, err, "does not speak the enanet control protocol")
	c.Close()
}

// raw sends lines on a fresh connection and returns the response lines.
func raw(t *testing.T, path string, lines ...string) []control.Response {
	t.Helper()
	c, err := net.Dial("unix", path)
	require.NoError(t, err)
	defer c.Close()
	r := bufio.NewReader(c)
	var out []control.Response
	for _, l := range lines {
		_, err := io.WriteString(c, l+"\n")
		require.NoError(t, err)
		b, err := r.ReadBytes('\n')
		require.NoError(t, err, "after %q", l)
		var resp control.Response
		require.NoError(t, json.Unmarshal(b, &resp))
		out = append(out, resp)
	}
	return out
}

func TestBadRequests(t *testing.T) {
	d, srv := serve(t, t.TempDir())
	rs := raw(t, srv.Path(), `{"version":1,"op":`, `hello`, `{"version":2,"op":"stats"}`, `{"version":1,"op":"format_disk"}`, `{"version":1,"op":"hello"}`)
	require.Equal(t, control.CodeBadRequest, rs[0].Error.Code)
	require.Contains(t, rs[0].Error.Message, `{"version":1,"op":"stats"}`)
	require.Equal(t, control.CodeBadRequest, rs[1].Error.Code)
	require.Equal(t, control.CodeUnsupportedVersion, rs[2].Error.Code)
	require.Contains(t, rs[2].Error.Message, "speaks version 1")
	require.Equal(t, control.CodeUnknownOp, rs[3].Error.Code)
	require.True(t, rs[4].OK, "the connection survives bad requests")

	rs = raw(t, srv.Path(), strings.Repeat("x", control.MaxRequest+10))
	require.Equal(t, control.CodeTooLarge, rs[0].Error.Code)

	// Clients that leave before their reply: the server and the device
	// carry on.
	for range 50 {
		c, err := net.Dial("unix", srv.Path())
		require.NoError(t, err)
		io.WriteString(c, `{"version":1,"op":"stats"}`+"\n")
		c.(*net.UnixConn).CloseRead()
		c.Close()
	}
	s, err := dial(t, srv.Path()).Stats(context.Background())
	require.NoError(t, err)
	require.Empty(t, s.Error)
	_, err = d.Stats(context.Background())
	require.NoError(t, err)
}

// helperEnv makes the test binary act as a control client (see
// TestHelperClient) instead of running tests.
const helperEnv = "ENANET_CONTROL_TEST_CLIENT"

// TestHelperClient is the other user's process of TestOtherUserRefused.
func TestHelperClient(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper process only")
	}
	c, err := control.Dial(context.Background(), path)
	if err == nil {
		_, err = c.Hello(context.Background())
		c.Close()
	}
	if err != nil {
		os.Stdout.WriteString("ERROR: " + err.Error() + "\n")
		return
	}
	os.Stdout.WriteString("OK\n")
}

// TestOtherUserRefused runs a client as nobody: with the socket's 0600
// mode it cannot connect; with the mode loosened, the server's
// SO_PEERCRED check refuses it. The device is unharmed either way.
func TestOtherUserRefused(t *testing.T) {
	testenv.RequireRoot(t)
	base, err := os.MkdirTemp("", "enanet-control-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	require.NoError(t, os.Chmod(base, 0o755))
	exe, err := os.Executable()
	require.NoError(t, err)
	bin := filepath.Join(base, "client.test")
	b, err := os.ReadFile(exe)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bin, b, 0o755))

	d, srv := serve(t, base)
	asNobody := func() string {
		cmd := exec.Command(bin, "-test.run=^TestHelperClient$")
		cmd.Env = append(os.Environ(), helperEnv+"="+srv.Path())
		cmd.Dir = base
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}
	out := asNobody()
	require.Contains(t, out, "ERROR: permission denied on "+srv.Path()+" (it belongs to uid 0)")

	require.NoError(t, os.Chmod(srv.Path(), 0o666))
	out = asNobody()
	require.Contains(t, out, "ERROR: permission denied: uid 65534 may not use this control socket; only root and uid 0")

	// Root still gets through, and the device is unharmed.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = dial(t, srv.Path()).Stats(ctx)
	require.NoError(t, err)
	_, err = d.Stats(ctx)
	require.NoError(t, err)
}

// TestInfoNetwork: op info carries the stack's addresses once the serving
// process reports them, and a server that does not answers without the key
// (what a version-1 client written before it expects).
func TestInfoNetwork(t *testing.T) {
	dir := t.TempDir()
	_, srv := serve(t, dir)
	ctx := context.Background()
	raw := func() map[string]json.RawMessage {
		conn, err := net.Dial("unix", srv.Path())
		require.NoError(t, err)
		defer conn.Close()
		_, err = conn.Write([]byte(`{"version":1,"op":"info"}` + "\n"))
		require.NoError(t, err)
		line, err := bufio.NewReader(conn).ReadBytes('\n')
		require.NoError(t, err)
		var m map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(line, &m))
		return m
	}

	require.NotContains(t, raw(), "network", "no stack reported: no key")
	c := dial(t, srv.Path())
	_, n, err := c.InfoNetwork(ctx)
	require.NoError(t, err)
	require.Nil(t, n)

	want := control.Network{Address: "172.31.0.10/20", Gateway: "172.31.0.1", DHCP: true,
		Address6: "fd00:ec2:0:1::10/128", Gateway6: "fe80::1", LinkLocal: "fe80::2", DHCP6: true,
		DNS: []string{"172.31.0.2", "fd00:ec2::253"}}
	srv.SetNetwork(func() control.Network { return want })
	in, n, err := c.InfoNetwork(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, in.Queues)
	require.NotNil(t, n)
	require.Equal(t, want, *n)
	var keys map[string]any
	require.NoError(t, json.Unmarshal(raw()["network"], &keys))
	for _, k := range []string{"address", "gateway", "dhcp", "address6", "gateway6", "link_local", "dhcp6", "dns"} {
		require.Contains(t, keys, k)
	}
	_, err = c.Info(ctx)
	require.NoError(t, err, "Info still answers the device's attributes alone")

	srv.SetNetwork(nil)
	require.NotContains(t, raw(), "network")

	// Options.Network serves from the start.
	d := openSim(t)
	srv2, err := control.Serve(d, control.Options{Dir: dir, Network: func() control.Network { return control.Network{Address: "10.0.0.5/24"} }})
	require.NoError(t, err)
	t.Cleanup(func() { srv2.Close() })
	_, n, err = dial(t, srv2.Path()).InfoNetwork(ctx)
	require.NoError(t, err)
	require.Equal(t, "10.0.0.5/24", n.Address)
}

func TestWriteNetwork(t *testing.T) {
	var b strings.Builder
	require.NoError(t, control.WriteNetwork(&b, control.Network{Address: "10.0.1.5/24", Gateway: "10.0.1.1",
		Address6: "fd00::5/128", DHCP6: true, LinkLocal: "fe80::5", DNS: []string{"10.0.1.2"}}))
	require.Equal(t, ""+
		"ipv4:                10.0.1.5/24 (static)\n"+
		"ipv4 gateway:        10.0.1.1\n"+
		"ipv6:                fd00::5/128 (DHCPv6)\n"+
		"ipv6 gateway:        none\n"+
		"ipv6 link-local:     fe80::5\n"+
		"dns:                 10.0.1.2\n", b.String())
}
