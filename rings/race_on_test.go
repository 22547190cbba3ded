//go:build race

package rings_test

// raceOn shortens the long model runs under the race detector, which slows
// the simulator about tenfold.
const raceOn = true
