package netenv

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena/control"
)

// TestOpenServesControlSocket checks that every command built on netenv
// (enahttp, enaperf) serves its device's control socket.
func TestOpenServesControlSocket(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(control.DirEnv, dir)
	h, err := Open(Config{Program: "enahttp"})
	require.NoError(t, err)
	require.NotNil(t, h.Control)
	require.Equal(t, dir, filepath.Dir(h.Control.Path()))
	c, err := control.Dial(context.Background(), h.Control.Path())
	require.NoError(t, err)
	hello, err := c.Hello(context.Background())
	require.NoError(t, err)
	require.Equal(t, "enahttp", hello.Program)
	s, err := c.Stats(context.Background())
	require.NoError(t, err)
	require.Empty(t, s.Error)
	// enactl info shows the stack's addresses (from the VPC's DHCP).
	_, network, err := c.InfoNetwork(context.Background())
	require.NoError(t, err)
	require.NotNil(t, network, "the stack's addresses reach the control socket")
	require.Equal(t, h.Network(), *network)
	require.NotEmpty(t, network.Address)
	require.True(t, network.DHCP)
	require.NotEmpty(t, network.LinkLocal)
	c.Close()
	h.Close()
	_, err = os.Stat(h.Control.Path())
	require.True(t, os.IsNotExist(err), "Close removes the socket")
}

// TestOpenWithoutControlSocket: a directory that cannot hold the socket
// costs the socket, not the device.
func TestOpenWithoutControlSocket(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	t.Setenv(control.DirEnv, file)
	h, err := Open(Config{})
	require.NoError(t, err)
	defer h.Close()
	require.Nil(t, h.Control)
}
