//go:build linux

package iperf3

import "golang.org/x/sys/unix"

// SystemInfo is the system description iperf3 prints with -V and reports
// as start.system_info: uname's system, node, release, version and
// machine.
func SystemInfo() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return goSystemInfo()
	}
	return unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Nodename[:]) + " " +
		unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Version[:]) + " " +
		unix.ByteSliceToString(u.Machine[:])
}
