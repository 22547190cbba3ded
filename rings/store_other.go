//go:build !amd64 && !arm64

package rings

import "encoding/binary"

// store64 stores v little-endian into d.
func store64(d *[8]byte, v uint64) { binary.LittleEndian.PutUint64(d[:], v) }
