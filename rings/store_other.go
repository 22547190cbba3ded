//go:build !amd64 && !arm64

package rings

import "encoding/binary"

// store64 stores v little-endian into d.
func store64(d *[8]byte, v uint64) { binary.LittleEndian.PutUint64(d[:], v) }

// storeParse stores a packed parse result and hash (rxParse) into p's
// fields.
func (p *RxPacket) storeParse(r rxParse) {
	b := p.parseBytes()
	binary.LittleEndian.PutUint64(b[0:8], r.lo)
	binary.LittleEndian.PutUint16(b[8:10], r.hi)
}
