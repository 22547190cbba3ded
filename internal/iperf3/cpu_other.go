//go:build !unix

package iperf3

import "time"

// cpuSample is empty where the process's CPU time is not available.
type cpuSample struct{}

// cpuPercent is CPU use over the test as a percentage of wall time.
type cpuPercent struct{ total, user, system float64 }

func takeCPUSample() cpuSample { return cpuSample{} }

func (c cpuSample) since(cpuSample, time.Duration) cpuPercent { return cpuPercent{} }
