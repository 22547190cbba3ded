//go:build race

package main

// raceEnabled: the race detector slows the simulated data path about
// tenfold, so the heaviest interop cases are trimmed.
const raceEnabled = true
