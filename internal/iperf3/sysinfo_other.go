//go:build !linux

package iperf3

// SystemInfo is the system description iperf3 prints with -V and reports
// as start.system_info; without uname, Go's view of it.
func SystemInfo() string { return goSystemInfo() }
