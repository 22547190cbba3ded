//go:build race

package enanic

// raceOn makes the fault matrix run its race-detector variant (each fault
// on one profile, smaller transfers): the detector slows the two simulated
// devices and stacks about tenfold.
const raceOn = true
