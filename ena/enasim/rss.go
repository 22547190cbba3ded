package enasim

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"

	"github.com/enanet/enanet/ena/spec"
)

// Receive-side scaling (§10): the device hashes selected header fields of
// each received frame with the configured function and key, reports the hash
// in the LAST Rx completion (§7.7 offset 8), and steers the frame to the Rx
// SQ named by indirection-table entry hash & (size-1). Table entries hold
// the Rx sq_idx returned by CREATE_SQ, as every driver programs them (§10).

// rssMaxInput is the longest hash input: two IPv6 addresses and two ports
// (36 bytes); L2 addresses add at most 12 more.
const rssMaxInput = 48

// toeplitz computes the Toeplitz hash of input under key, the function the
// Microsoft RSS specification defines: for every set bit of the input, from
// the most significant bit of input[0] on, XOR in the 32 key bits starting
// at the same bit position. The key must be at least len(input)+4 bytes long;
// shorter keys are treated as zero-extended.
func toeplitz(key *[spec.RSSKeySize]byte, input []byte) uint32 {
	var h uint32
	// window holds key bits [i, i+32) for the current input bit i, with
	// the next key byte staged in the low bits of a 64-bit shifter.
	window := binary.BigEndian.Uint32(key[0:4])
	for i, b := range input {
		var next byte
		if i+4 < spec.RSSKeySize {
			next = key[i+4]
		}
		for bit := 7; bit >= 0; bit-- {
			if b&(1<<bit) != 0 {
				h ^= window
			}
			window = window<<1 | uint32(next>>bit)&1
		}
	}
	return h
}

// rssInput builds the hash input for a parsed frame from the enabled fields
// of its protocol class, in the order of the Microsoft specification:
// source address, destination address, source port, destination port; L2
// addresses (NOT_IP class) likewise source then destination. sortL3/sortL4
// implement the symmetric "input sort" options (§4.8 RSS_HASH_INPUT): the
// smaller address (or port) is placed first so both directions of a flow
// hash alike. It returns the protocol class and the number of bytes
// written into buf.
func rssInput(f []byte, fi *frameInfo, fields *[16]uint16, sortL3, sortL4 bool, buf *[rssMaxInput]byte) (class spec.RSSProto, n int) {
	switch {
	case fi.l3 == spec.L3ProtoIPv4 && fi.frag:
		class = spec.RSSIP4Frag
	case fi.l3 == spec.L3ProtoIPv4 && fi.l4 == spec.L4ProtoTCP && fi.l4Valid:
		class = spec.RSSTCP4
	case fi.l3 == spec.L3ProtoIPv4 && fi.l4 == spec.L4ProtoUDP && fi.l4Valid:
		class = spec.RSSUDP4
	case fi.l3 == spec.L3ProtoIPv4:
		class = spec.RSSIP4
	case fi.l3 == spec.L3ProtoIPv6 && fi.l4 == spec.L4ProtoTCP && fi.l4Valid:
		class = spec.RSSTCP6
	case fi.l3 == spec.L3ProtoIPv6 && fi.l4 == spec.L4ProtoUDP && fi.l4Valid:
		class = spec.RSSUDP6
	case fi.l3 == spec.L3ProtoIPv6:
		class = spec.RSSIP6
	default:
		class = spec.RSSNotIP
	}
	sel := fields[class]
	if class == spec.RSSNotIP {
		if len(f) < ethHeaderLen {
			return class, 0
		}
		if sel&spec.RSSFieldL2SA != 0 {
			n += copy(buf[n:], f[6:12])
		}
		if sel&spec.RSSFieldL2DA != 0 {
			n += copy(buf[n:], f[0:6])
		}
		return class, n
	}
	src, dst := fi.src, fi.dst
	if sortL3 && bytes.Compare(dst, src) < 0 {
		src, dst = dst, src
	}
	if sel&spec.RSSFieldL3SA != 0 {
		n += copy(buf[n:], src)
	}
	if sel&spec.RSSFieldL3DA != 0 {
		n += copy(buf[n:], dst)
	}
	if fi.l4Valid && (class <= spec.RSSUDP6) {
		sp, dp := fi.sport, fi.dport
		if sortL4 && dp < sp {
			sp, dp = dp, sp
		}
		if sel&spec.RSSFieldL4SP != 0 {
			binary.BigEndian.PutUint16(buf[n:], sp)
			n += 2
		}
		if sel&spec.RSSFieldL4DP != 0 {
			binary.BigEndian.PutUint16(buf[n:], dp)
			n += 2
		}
	}
	return class, n
}

// rssDefaultFields are the hash inputs a device starts with and every driver
// programs anyway (§10 "Default hash inputs"): L3+L4 addresses for TCP/UDP,
// L3 addresses for plain IP and fragments, L2 addresses for non-IP.
var rssDefaultFields = [16]uint16{
	spec.RSSTCP4:    spec.RSSFieldL3SA | spec.RSSFieldL3DA | spec.RSSFieldL4SP | spec.RSSFieldL4DP,
	spec.RSSUDP4:    spec.RSSFieldL3SA | spec.RSSFieldL3DA | spec.RSSFieldL4SP | spec.RSSFieldL4DP,
	spec.RSSTCP6:    spec.RSSFieldL3SA | spec.RSSFieldL3DA | spec.RSSFieldL4SP | spec.RSSFieldL4DP,
	spec.RSSUDP6:    spec.RSSFieldL3SA | spec.RSSFieldL3DA | spec.RSSFieldL4SP | spec.RSSFieldL4DP,
	spec.RSSIP4:     spec.RSSFieldL3SA | spec.RSSFieldL3DA,
	spec.RSSIP6:     spec.RSSFieldL3SA | spec.RSSFieldL3DA,
	spec.RSSIP4Frag: spec.RSSFieldL3SA | spec.RSSFieldL3DA,
	spec.RSSNotIP:   spec.RSSFieldL2SA | spec.RSSFieldL2DA,
}

// crcTable is the table for the CRC32 RSS function. The polynomial real
// devices use is not documented (§10: drivers all select Toeplitz); the
// model uses Castagnoli so a driver that selects CRC32 still gets a stable,
// well-spread hash.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// rssHash hashes the input with function fn (§10 codes). An unknown function
// falls back to Toeplitz, the only one drivers select.
func rssHash(fn spec.HashFunction, key *[spec.RSSKeySize]byte, input []byte) uint32 {
	if fn == spec.HashCRC32 {
		return crc32.Update(0, crcTable, input)
	}
	return toeplitz(key, input)
}

// toeplitzTable holds, for one key, the Toeplitz hash of every byte value at
// every input position. The hash is linear over XOR (one key window per set
// input bit), so the hash of an input is the XOR of its bytes' entries: one
// lookup per byte instead of eight conditional XORs and shifts, for the
// same result as toeplitz. The device hashes every received frame (§10).
type toeplitzTable struct {
	key [spec.RSSKeySize]byte
	t   [rssMaxInput][256]uint32
}

// keyWindow returns the 32 key bits starting at bit p (bit 0 = the most
// significant bit of key[0]), the key zero-extended past its end.
func keyWindow(key *[spec.RSSKeySize]byte, p int) uint32 {
	var w uint64
	for i := 0; i < 5; i++ {
		w <<= 8
		if j := p/8 + i; j < spec.RSSKeySize {
			w |= uint64(key[j])
		}
	}
	// w holds 40 bits starting at byte p/8; drop the p%8 leading bits.
	return uint32(w >> (8 - p%8))
}

// init fills the table for key.
func (tt *toeplitzTable) init(key *[spec.RSSKeySize]byte) {
	tt.key = *key
	for i := range tt.t {
		row := &tt.t[i]
		row[0] = 0
		for v := 1; v < 256; v++ {
			// Input bit 7 of byte i is bit 8i of the input stream;
			// bit b (0 = least significant) is bit 8i+7-b.
			low := v & -v
			b := 0
			for 1<<b != low {
				b++
			}
			row[v] = row[v&(v-1)] ^ keyWindow(key, 8*i+7-b)
		}
	}
}

// hash is toeplitz(&tt.key, input) for len(input) <= rssMaxInput.
func (tt *toeplitzTable) hash(input []byte) uint32 {
	var h uint32
	if len(input) > rssMaxInput {
		input = input[:rssMaxInput]
	}
	for i, b := range input {
		h ^= tt.t[i][b]
	}
	return h
}

// rssHashFrame hashes a received frame's hash input with the configured
// function and key (mu held); Toeplitz goes through a table rebuilt
// whenever the driver programs a new key (SET_FEATURE RSS_HASH_FUNCTION).
func (m *Model) rssHashFrame(input []byte) uint32 {
	if m.cfg.rssFunc == spec.HashCRC32 {
		return crc32.Update(0, crcTable, input)
	}
	tt := m.io.toeplitz
	if tt == nil {
		tt = new(toeplitzTable)
		tt.init(&m.cfg.rssKey)
		m.io.toeplitz = tt
	} else if tt.key != m.cfg.rssKey {
		tt.init(&m.cfg.rssKey)
	}
	return tt.hash(input)
}
