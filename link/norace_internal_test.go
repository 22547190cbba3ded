//go:build !race

package link

const internalRace = false
