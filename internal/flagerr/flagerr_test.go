package flagerr

import (
	"io"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRewriteNamesTheFix(t *testing.T) {
	fs := pflag.NewFlagSet("tool", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.IntP("port", "p", 5201, "server port")
	fs.Float64P("time", "t", 10, "test length in seconds")
	fs.Bool("poll", false, "poll")
	fs.Duration("wait", 0, "how long")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-p", "abc"}, `--port "abc": want a whole number. --port: server port`},
		{[]string{"-t", "abc"}, `--time "abc": want a number. --time: test length in seconds`},
		{[]string{"--poll=maybe"}, `--poll "maybe": want true or false`},
		{[]string{"--wait"}, `--wait needs a value: a duration such as 1s`},
		{[]string{"--tiem", "1"}, `unknown flag --tiem: did you mean --time? (run tool --help for the flags)`},
		{[]string{"-x"}, `unknown flag -x (run tool --help for the flags)`},
	} {
		err := Rewrite(fs, fs.Parse(tc.args))
		require.Error(t, err, tc.args)
		assert.Contains(t, err.Error(), tc.want, tc.args)
		assert.NotRegexp(t, `strconv|Parse|invalid syntax`, err.Error(), tc.args)
	}
	assert.NoError(t, Rewrite(fs, nil))
}
