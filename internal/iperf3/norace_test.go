//go:build !race

package iperf3

const raceEnabled = false
