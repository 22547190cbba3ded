// Package testenv lets tests say what they need from the machine (root, a
// tool, a kernel feature). Outside CI a missing need skips the test with a
// message naming it; under CI (CI=true) it fails the test, because CI runs as
// root with every tool installed and a skip there would hide a broken set-up.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under CI (the CI environment variable is
// "true" or "1").
func InCI() bool {
	v := os.Getenv("CI")
	return v == "true" || v == "1"
}

// Missing skips t (or fails it under CI) with a message saying what is missing.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI must provide this: "+format, args...)
	}
	t.Skipf("skipped, missing: "+format, args...)
}

// RequireRoot needs the test process to run as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "root (run the tests as root, e.g. sudo ./test.sh)")
	}
}

// RequireTool needs an executable in PATH and returns its path. The hint says
// how to get it (e.g. "apt-get install iperf3").
func RequireTool(t testing.TB, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s in PATH (%s)", name, hint)
	}
	return p
}
