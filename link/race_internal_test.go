//go:build race

package link

// internalRace is whether the race detector is on (it makes sync.Pool
// drop items, so allocation counts are not meaningful).
const internalRace = true
