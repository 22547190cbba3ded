package devopen

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheck(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "bus/pci/devices/0000:00:06.0"), 0o755))
	assert.NoError(t, Check("sim", root))
	assert.NoError(t, Check("", root))
	assert.NoError(t, Check("0000:00:06.0", root))
	assert.NoError(t, Check("00:06.0", root), "the domain is optional")

	err := Check("0000:00:1f.7", root)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--device 0000:00:1f.7: no such PCI device")
	err = Check("eth0", root)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `want "sim" or a PCI address`)
}

// TestVFIOModeChecked: --vfio-mode is checked with the simulated device
// too, where a typo was silently ignored.
func TestVFIOModeChecked(t *testing.T) {
	for mode, want := range map[string]string{
		"bogus":   `--vfio-mode "bogus": want auto, iommu or noiommu`,
		"iommu":   "--vfio-mode iommu applies to a real device only",
		"noiommu": "--vfio-mode noiommu applies to a real device only",
	} {
		d, err := Open(Options{Device: "sim", VFIOMode: mode})
		if d != nil {
			d.Close()
		}
		if assert.Error(t, err, mode) {
			assert.Contains(t, err.Error(), want)
		}
	}
	d, err := Open(Options{Device: "sim", VFIOMode: "auto"})
	require.NoError(t, err)
	d.Close()
}
