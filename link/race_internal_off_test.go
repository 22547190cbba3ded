//go:build !race

package link

// raceDetector is whether the tests run under the race detector.
const raceDetector = false
