package qemurig

import (
	"context"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWaitGuestReadyRetriesOnlyABootCrash: only a SIGSEGV before the guest's
// init printed GUEST-READY is the QEMU 7.2 boot crash that is retried.
func TestWaitGuestReadyRetriesOnlyABootCrash(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		crashed, ok  bool
	}{
		{"segfault in boot", `echo SeaBIOS; kill -SEGV $$`, true, false},
		{"ready", `echo "GUEST-READY mode=type1"; sleep 30`, false, true},
		{"segfault after ready", `echo "GUEST-READY mode=type1"; kill -SEGV $$`, false, true},
		{"other exit in boot", `echo SeaBIOS; exit 3`, false, false},
		{"other signal in boot", `kill -ABRT $$`, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm, err := runVM(context.Background(), exec.Command("sh", "-c", tc.script), nil)
			require.NoError(t, err)
			defer vm.Close()
			crashed, err := waitGuestReady(vm)
			assert.Equal(t, tc.crashed, crashed)
			assert.Equal(t, tc.ok, err == nil, "err = %v", err)
		})
	}
}
