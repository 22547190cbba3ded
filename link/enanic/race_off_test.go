//go:build !race

package enanic

const raceOn = false
