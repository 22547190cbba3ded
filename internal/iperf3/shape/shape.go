// Package shape compares the structure of JSON documents: which keys
// exist where, nested how, holding which JSON type. The iperf3
// conformance tests use it to hold enaperf's -J output to stock iperf3's
// field by field, whatever the measured values.
package shape

import (
	"fmt"
	"sort"
)

// Of flattens a decoded JSON document (encoding/json's any) into its
// shape: every key path, arrays written as [], with the type found there.
// All numbers are "number": cJSON prints whole numbers without a decimal
// point, and a JSON parser does not tell them apart.
func Of(v any) map[string]string {
	out := map[string]string{}
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch x := v.(type) {
		case map[string]any:
			out[path] = "object"
			for k, e := range x {
				walk(e, path+"."+k)
			}
		case []any:
			out[path] = "array"
			for _, e := range x {
				walk(e, path+"[]")
			}
		case float64:
			out[path] = "number"
		case string:
			out[path] = "string"
		case bool:
			out[path] = "bool"
		case nil:
			out[path] = "null"
		}
	}
	walk(v, "")
	return out
}

// Diff lists, sorted, the paths whose presence or type differ between
// want (the reference) and got; paths in extra may appear in got only.
func Diff(want, got map[string]string, extra map[string]bool) []string {
	var d []string
	for p, t := range want {
		if g, ok := got[p]; !ok {
			d = append(d, "missing "+p+" ("+t+")")
		} else if g != t {
			d = append(d, fmt.Sprintf("%s: %s where the reference has %s", p, g, t))
		}
	}
	for p, t := range got {
		if _, ok := want[p]; !ok && !extra[p] {
			d = append(d, "extra "+p+" ("+t+")")
		}
	}
	sort.Strings(d)
	return d
}

// EnanetOnly are the keys enaperf adds to iperf3's document.
var EnanetOnly = map[string]bool{".ignored_options": true, ".ignored_options[]": true}
