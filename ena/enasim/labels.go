package enasim

import (
	"context"
	"runtime/pprof"
)

// profLabels mark the model's own goroutines in CPU profiles, so that a
// profile of a process embedding the model (bench/, the demo) can tell the
// model's work from the driver's. Work the model does synchronously inside
// a register write runs on the caller's goroutine and is found by its stack.
var profLabels = pprof.Labels("enanet", "enasim")

// goModel starts f on a goroutine labelled as the model's.
func goModel(f func()) {
	go pprof.Do(context.Background(), profLabels, func(context.Context) { f() })
}
