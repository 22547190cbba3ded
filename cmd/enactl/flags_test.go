package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTraceQueuesFlag checks that --queues reaches the driver: the queue
// count used to be read before the flags were parsed, so every value
// created one queue pair.
func TestTraceQueuesFlag(t *testing.T) {
	code, out, errs := enactl(t, "trace", "--device", "sim", "--queues", "3")
	require.Equal(t, 0, code, errs)
	require.Equal(t, 6, strings.Count(out, " CREATE_SQ "), "3 queue pairs = 3 Tx + 3 Rx SQs:\n%s", out)
	require.Contains(t, out, "create Rx SQ 2")
	for _, bad := range []string{"0", "-2", "999"} {
		code, out, errs := enactl(t, "trace", "--device", "sim", "--queues", bad)
		require.Equal(t, exitUsage, code, "--queues %s: %s", bad, out)
		require.Contains(t, errs, "--queues "+bad+": want 1..32 queue pairs")
		require.Empty(t, out, "--queues %s brought a device up", bad)
	}
	code, _, errs = enactl(t, "trace", "--device", "sim", "--queues", "9")
	require.Equal(t, exitFailure, code)
	require.Contains(t, errs, "9 queue pairs requested, the device offers 8")
}

func setupFixture(t *testing.T) (sysfs, proc, nr string) {
	tr, _ := tree(t)
	tr.SetNoIOMMU("N")
	nr = tr.WriteFile("proc/sys/vm/nr_hugepages", "0\n")
	return tr.Root, filepath.Join(tr.Root, "proc"), nr
}

// TestSetupNeedsRoot checks that setup as another user stops before
// anything, saying it needs root, and that --dry-run still works.
func TestSetupNeedsRoot(t *testing.T) {
	old := geteuid
	geteuid = func() int { return 1000 }
	t.Cleanup(func() { geteuid = old })
	sysfs, proc, nr := setupFixture(t)
	code, out, errs := enactl(t, "setup", "--sysfs", sysfs, "--proc", proc)
	require.Equal(t, exitFailure, code)
	require.Empty(t, out, "setup as non-root printed something before refusing")
	require.Contains(t, errs, "needs root")
	require.Contains(t, errs, "--dry-run")
	b, _ := os.ReadFile(nr)
	require.Equal(t, "0", strings.TrimSpace(string(b)))
	code, out, _ = enactl(t, "setup", "--sysfs", sysfs, "--proc", proc, "--dry-run")
	require.Equal(t, 0, code)
	require.Contains(t, out, "would change: hugepages 0 -> 64")
}

// TestSetupReportsOnlyDoneChanges checks that a change that fails is not
// reported as made: setup used to print "changed:" before writing.
func TestSetupReportsOnlyDoneChanges(t *testing.T) {
	old := writeFile
	writeFile = func(string, []byte, os.FileMode) error { return errors.New("permission denied") }
	t.Cleanup(func() { writeFile = old })
	sysfs, proc, _ := setupFixture(t)
	code, out, errs := enactl(t, "setup", "--sysfs", sysfs, "--proc", proc, "--hugepages", "32")
	require.Equal(t, exitFailure, code)
	require.NotContains(t, out, "changed:")
	require.Contains(t, errs, "reserve hugepages: permission denied")
}

func TestStatsFlagErrors(t *testing.T) {
	for _, tc := range []struct{ args, want string }{
		{"--watch -1s", "must not be negative"},
		{"--count 3", "--count needs --watch"},
		{"--watch 1ms", "at least 10ms"},
	} {
		code, out, errs := enactl(t, append([]string{"stats", "--device", "sim"}, strings.Fields(tc.args)...)...)
		require.Equal(t, exitUsage, code, tc.args)
		require.Contains(t, errs, tc.want)
		require.Empty(t, out)
	}
}

// TestFlagErrorsNameTheFix: a mistyped flag or value gets a sentence with
// the fix and the synopsis, never the parser's internals.
func TestFlagErrorsNameTheFix(t *testing.T) {
	for _, tc := range []struct{ args, want string }{
		{"stats --device sim --count x", `--count "x": want a whole number. --count: with --watch`},
		{"stats --device sim --watch abc", `--watch "abc": want a duration such as 1s`},
		{"stats --device sim --watch", `--watch needs a value: a duration`},
		{"info --devcie sim", `unknown flag --devcie: did you mean --device?`},
		{"info --zzz", `unknown flag --zzz (run enactl info --help for the flags)`},
		{"info -x", `unknown flag -x (run`},
		{"info --json=maybe", `--json "maybe": want true or false`},
		{"set --device sim --channels two", `--channels "two": want a whole number`},
		{"trace --device sim --duration 5", `--duration "5": want a duration`},
	} {
		code, out, errs := enactl(t, strings.Fields(tc.args)...)
		require.Equal(t, exitUsage, code, tc.args)
		require.Empty(t, out, tc.args)
		require.Contains(t, errs, tc.want, tc.args)
		require.Contains(t, errs, "\nUsage: enactl ", tc.args)
		require.NotRegexp(t, `strconv|time: invalid|Parse`, errs, tc.args)
	}
}

// TestVFIOModeAlias: enactl takes --vfio-mode, enahttp's and enaperf's
// spelling of --mode, so a device command line carries over.
func TestVFIOModeAlias(t *testing.T) {
	code, _, errs := enactl(t, "info", "--device", "0000:00:06.0", "--vfio-mode", "noiommu", "--sysfs", t.TempDir())
	require.Equal(t, 1, code, errs)
	require.NotContains(t, errs, "unknown flag")
	_, out, _ := enactl(t, "info", "--help")
	require.Contains(t, out, "--vfio-mode")
}
