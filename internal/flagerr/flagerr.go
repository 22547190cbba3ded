// Package flagerr rewrites pflag's parse errors as sentences that name the
// flag and the fix. pflag's own wording quotes the Go parser
// ("strconv.ParseInt: parsing "x": invalid syntax"), which tells a user
// nothing about what to type. enactl, enahttp and enaperf share it so their
// messages read alike.
package flagerr

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// Rewrite returns err, a parse error of fs, as a sentence for people; other
// errors are returned unchanged. fs.Name() is the command named in the
// "run ... --help" hint.
func Rewrite(fs *pflag.FlagSet, err error) error {
	var invalid *pflag.InvalidValueError
	var missing *pflag.ValueRequiredError
	var unknown *pflag.NotExistError
	switch {
	case errors.As(err, &invalid):
		fl := invalid.GetFlag()
		return fmt.Errorf("--%s %q: want %s", fl.Name, invalid.GetValue(), wantFor(fl))
	case errors.As(err, &missing):
		fl := missing.GetFlag()
		return fmt.Errorf("--%s needs a value: %s", fl.Name, wantFor(fl))
	case errors.As(err, &unknown):
		name := strings.TrimLeft(unknown.GetSpecifiedName(), "-")
		if unknown.GetSpecifiedShortnames() != "" { // -x: a one-letter flag
			return fmt.Errorf("unknown flag -%s (run %s --help for the flags)", name, fs.Name())
		}
		if s := closestFlag(fs, name); s != "" {
			return fmt.Errorf("unknown flag --%s: did you mean --%s? (run %s --help for the flags)", name, s, fs.Name())
		}
		return fmt.Errorf("unknown flag --%s (run %s --help for the flags)", name, fs.Name())
	}
	return err
}

// wantFor describes the values a flag takes, from its type, then what the
// flag does.
func wantFor(fl *pflag.Flag) string {
	what := ". --" + fl.Name + ": " + fl.Usage
	switch fl.Value.Type() {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "a whole number" + what
	case "float32", "float64":
		return "a number" + what
	case "duration":
		return "a duration such as 1s, 500ms or 2m" + what
	case "bool":
		return "true or false, or the flag alone" + what
	}
	return fl.Usage
}

// closestFlag is the flag of fs whose name is within two edits of name
// (a typo), or "" when none is.
func closestFlag(fs *pflag.FlagSet, name string) string {
	best, bestD := "", 3
	fs.VisitAll(func(fl *pflag.Flag) {
		if fl.Hidden {
			return
		}
		if d := editDistance(name, fl.Name); d < bestD {
			best, bestD = fl.Name, d
		}
	})
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
