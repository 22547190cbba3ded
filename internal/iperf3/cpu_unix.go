//go:build unix

package iperf3

import (
	"syscall"
	"time"
)

// cpuSample is the process's CPU time so far, split as iperf3 reports it.
type cpuSample struct {
	user, system time.Duration
	ok           bool
}

// cpuPercent is CPU use over the test as a percentage of wall time
// (cpu_util in iperf_api.c reports the same three numbers).
type cpuPercent struct{ total, user, system float64 }

func takeCPUSample() cpuSample {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuSample{}
	}
	return cpuSample{
		user:   time.Duration(ru.Utime.Nano()),
		system: time.Duration(ru.Stime.Nano()),
		ok:     true,
	}
}

func (c cpuSample) since(start cpuSample, wall time.Duration) cpuPercent {
	if !c.ok || !start.ok || wall <= 0 {
		return cpuPercent{}
	}
	u := 100 * float64(c.user-start.user) / float64(wall)
	s := 100 * float64(c.system-start.system) / float64(wall)
	return cpuPercent{total: u + s, user: u, system: s}
}
