package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func readReport(t *testing.T, path string) doctorReport {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var r doctorReport
	require.NoError(t, json.Unmarshal(b, &r))
	return r
}

// TestDoctorSim runs the whole qualification against the simulated device
// and VPC: every network check passes and the report and trace are written.
func TestDoctorSim(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "report.json")
	code, out, errs := enactl(t, "doctor", "--device", "sim", "--report", path, "--duration", "1s")
	require.Equal(t, 0, code, "%s%s", out, errs)
	require.Contains(t, out, "All checks passed.")
	for _, name := range []string{"bring_up", "link", "dhcp", "ping", "metadata", "dns", "throughput"} {
		require.Regexp(t, "(?m)^"+name+` +PASS `, out)
	}
	rep := readReport(t, path)
	require.True(t, rep.Passed)
	require.Len(t, rep.Checks, 10)
	require.NotNil(t, rep.Stats)
	require.Positive(t, rep.Stats.Values()["queue_0_tx_cnt"]+rep.Stats.Values()["queue_1_tx_cnt"])
	require.Equal(t, filepath.Join(dir, "report.trace.txt"), rep.TraceFile)
	trace, err := os.ReadFile(rep.TraceFile)
	require.NoError(t, err)
	require.Contains(t, string(trace), "CREATE_SQ")
	require.Contains(t, string(trace), "AQ_BASE_LO")
}

// TestDoctorFailures qualifies a device that is not there on a machine
// without hugepages: each failure has its fix, later checks are skipped
// with the reason, and the report is still written.
func TestDoctorFailures(t *testing.T) {
	tr, _ := tree(t)
	tr.WriteFile("proc/sys/vm/nr_hugepages", "0\n")
	path := filepath.Join(t.TempDir(), "r.json")
	code, out, errs := enactl(t, "doctor", "--device", "0000:00:09.0", "--sysfs", tr.Root, "--proc", filepath.Join(tr.Root, "proc"), "--report", path)
	require.Equal(t, exitFailure, code, "%s%s", out, errs)
	require.Regexp(t, `(?m)^vfio +FAIL .*no such PCI device`, out)
	require.Regexp(t, `(?m)^hugepages +FAIL .*0 hugepages`, out)
	require.Regexp(t, `(?m)^dhcp +SKIP .*needs link`, out)
	require.Contains(t, out, "hugepages: sudo enactl setup --hugepages 64")
	rep := readReport(t, path)
	require.False(t, rep.Passed)

	// A device bound to its kernel driver: the fix is enactl bind.
	code, out, errs = enactl(t, "doctor", "--device", "0000:00:06.0", "--sysfs", tr.Root, "--proc", filepath.Join(tr.Root, "proc"), "--report", path)
	require.Equal(t, exitFailure, code)
	require.Contains(t, out, "0000:00:06.0 is bound to ena, not vfio-pci")
	require.Contains(t, out, "sudo enactl bind 0000:00:06.0")

	code, _, errs = enactl(t, "doctor", "--device", "sim", "--peer", "172.31.0.5:5201")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errs, "--peer applies to a real device")
	for _, bad := range [][]string{{"--duration", "0s"}, {"--peer", "nowhere"}, {"--profile", "nitro-v4"}} {
		code, _, errs := enactl(t, append([]string{"doctor", "--device", "0000:00:06.0"}, bad...)...)
		require.Equal(t, exitUsage, code, "%v: %s", bad, errs)
		require.False(t, strings.Contains(errs, "%!"), errs)
	}
}
