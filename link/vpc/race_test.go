//go:build race

package vpc

const raceEnabled = true
