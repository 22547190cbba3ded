//go:build !linux

package main

// setAffinity cannot pin threads outside Linux.
func setAffinity(spec string) (string, error) {
	return "-A " + spec + ": CPU affinity is set on Linux only", nil
}
