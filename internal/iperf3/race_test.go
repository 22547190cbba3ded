//go:build race

package iperf3

// raceEnabled: the race detector slows a UDP receiver several times, so
// UDP interop tests ask for less.
const raceEnabled = true
