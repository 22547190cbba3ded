//go:build !linux

package enasim

// adviseHuge is a no-op where transparent hugepages cannot be requested.
func adviseHuge([]byte) {}
