package shape

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDiff(t *testing.T) {
	var ref, got any
	require.NoError(t, json.Unmarshal([]byte(`{"a":{"b":1,"c":[{"d":"x"}]},"e":true}`), &ref))
	require.NoError(t, json.Unmarshal([]byte(`{"a":{"b":2.5,"c":[{"d":3}]},"f":null,"ignored_options":["x"]}`), &got))
	require.Equal(t, []string{
		".a.c[].d: number where the reference has string",
		"extra .f (null)",
		"missing .e (bool)",
	}, Diff(Of(ref), Of(got), EnanetOnly))
	require.Empty(t, Diff(Of(ref), Of(ref), nil))
}
