//go:build linux

package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// setAffinity pins every thread of the process to the CPU -A names (the
// part after a comma is the server's CPU, which iperf3 sends to the
// server; it is reported as ignored). Threads the Go runtime starts later
// inherit the mask from the thread that starts them.
func setAffinity(spec string) (note string, err error) {
	local, remote, _ := strings.Cut(spec, ",")
	if remote != "" {
		note = "-A ," + remote + ": the server's CPU affinity is the server's to set (the enaperf server does not take it from the client)"
	}
	if local == "" {
		return note, nil
	}
	cpu, err := strconv.Atoi(local)
	if err != nil || cpu < 0 || cpu >= 1024 {
		return "", fmt.Errorf("%q: want a CPU number, optionally followed by ,N for the server", spec)
	}
	var set unix.CPUSet
	set.Set(cpu)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return "", fmt.Errorf("listing threads: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			return "", fmt.Errorf("CPU %d: %w (see nproc for the CPUs you may use)", cpu, err)
		}
	}
	return note, nil
}
