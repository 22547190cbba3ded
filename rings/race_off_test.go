//go:build !race

package rings_test

// raceOn shortens the long model runs under the race detector.
const raceOn = false
