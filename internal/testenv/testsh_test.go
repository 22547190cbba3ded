package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testSHPlan runs ../../test.sh in plan mode (it prints the go test command
// line and stops, installing nothing) with extra environment variables.
func testSHPlan(t *testing.T, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("bash", "../../test.sh", "./rings/")
	cmd.Env = append(os.Environ(), "TEST_SH_PLAN=1", "CI=")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestTestSHWithoutCgo: without a C compiler the race detector cannot run,
// so test.sh runs the tests without -race and says so, and fails under CI.
func TestTestSHWithoutCgo(t *testing.T) {
	for _, env := range []string{"CGO_ENABLED=0", "CC=no-such-cc-for-test"} {
		out, err := testSHPlan(t, env)
		require.NoError(t, err, "%s: %s", env, out)
		assert.Contains(t, out, "WITHOUT the race detector", env)
		assert.Contains(t, out, "go test -count=1", env)
		assert.NotContains(t, out, "-race ", env)

		out, err = testSHPlan(t, env, "CI=true")
		assert.Error(t, err, "%s under CI: %s", env, out)
	}
}

func TestTestSHWithCgo(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		Missing(t, "gcc")
	}
	out, err := testSHPlan(t, "CC=gcc", "CGO_ENABLED=1")
	require.NoError(t, err, out)
	assert.True(t, strings.HasPrefix(out, "go test -race "), out)
}
