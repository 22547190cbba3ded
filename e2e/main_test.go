//go:build linux

package e2e

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain pins the main goroutine to the main thread for the whole run,
// and after the tests checks that they left no goroutine behind.
//
// The pinning is for kernelPeer.inNS: it moves short-lived locked threads
// into a test's network namespace and lets them die. The runtime cannot
// end the main thread (it parks it instead, still inside the namespace),
// so no such goroutine may ever be scheduled there; with the main thread
// taken by the main goroutine, none is.
func TestMain(m *testing.M) {
	runtime.LockOSThread()
	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		if leak := leftGoroutines(before); leak != "" {
			fmt.Fprintf(os.Stderr, "e2e: goroutines left behind by the tests:\n%s\n", leak)
			code = 1
		}
	}
	os.Exit(code)
}

// leftGoroutines waits up to 5 s for the goroutine count to return to n
// and otherwise returns the stacks of the goroutines still running.
func leftGoroutines(n int) string {
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			var out []string
			for _, g := range strings.Split(string(buf), "\n\n") {
				if !strings.Contains(g, "testing.(*M).Run") && !strings.Contains(g, "runtime.Stack") {
					out = append(out, g)
				}
			}
			return strings.Join(out, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return ""
}
