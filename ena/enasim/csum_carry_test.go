package enasim

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/enanet/enanet/ena/spec"
)

// carrySend sends one TCP/IPv4 frame over the loopback wire (an in-process
// wire, so the receiving model gets what the sender checksummed) with the
// L4 offload and meta geometry given, seeding the checksum field with seed
// (partial mode), and returns the LAST Rx completion and the frame.
func carrySend(t *testing.T, lr *loopRig, reqID uint16, l3HdrLen uint8, partial bool, seed uint16) (spec.RxCompletion, []byte) {
	t.Helper()
	f := buildFrame(frameSpec{src: addr("192.168.1.10"), dst: addr("10.9.8.7"), proto: 6, sport: 4242, dport: 443, payload: 333, noCsum: true})
	binary.BigEndian.PutUint16(f[14+20+16:], seed)
	o := sendOpts{
		reqID: reqID, meta: true,
		meta3:   spec.TxMetaDesc{ExtValid: true, MetaStore: true, MetaType: true, L3HdrOff: 14, L3HdrLen: l3HdrLen, L4HdrLen: 5},
		offload: spec.TxDesc{L3Proto: spec.L3ProtoIPv4, L4Proto: spec.L4ProtoTCP, L4Csum: true, L4CsumPartial: partial, DF: true},
	}
	got, _ := lr.roundTrip(t, [][]byte{f}, o)
	require.Len(t, got, 1)
	return got[0].last(), got[0].data
}

// TestChecksumCarryStillRefuses checks that a receiver does not take the
// sender's word for a checksum the sender could not vouch for: a partial
// offload whose driver-seeded pseudo-header sum is wrong, and meta
// geometry that puts the L4 header where the frame does not, both arrive
// with L4_CSUM_ERR, as they would from any other wire; a correct partial
// offload arrives good.
func TestChecksumCarryStillRefuses(t *testing.T) {
	lr := newLoopRig(t, ProfileNitroV3, 0, 64, 2048)
	f := buildFrame(frameSpec{src: addr("192.168.1.10"), dst: addr("10.9.8.7"), proto: 6, sport: 4242, dport: 443, payload: 333, noCsum: true})
	pseudo := pseudoSum(f, 14, 6, len(f)-14-20)

	c, data := carrySend(t, lr, 1, 20, true, pseudo)
	assert.True(t, c.L4CsumChecked)
	assert.False(t, c.L4CsumErr, "correct partial offload")
	_, l4ok := verifyChecksums(data)
	assert.True(t, l4ok)

	c, data = carrySend(t, lr, 2, 20, true, pseudo+1)
	assert.True(t, c.L4CsumChecked)
	assert.True(t, c.L4CsumErr, "partial offload with a wrong pseudo-header sum")
	_, l4ok = verifyChecksums(data)
	assert.False(t, l4ok)

	// The meta descriptor claims a 24-byte IPv4 header (options) that the
	// frame does not have: the device sums and stores at the wrong place.
	c, _ = carrySend(t, lr, 3, 24, false, 0)
	assert.True(t, c.L4CsumChecked)
	assert.True(t, c.L4CsumErr, "meta geometry that disagrees with the frame")
}

// TestTxChecksummedCovers checks the receiver relies on the sender's sum
// only for the exact segment its own parse finds.
func TestTxChecksummedCovers(t *testing.T) {
	fi := frameInfo{l3: spec.L3ProtoIPv4, l4: spec.L4ProtoTCP, l3Off: 14, l3Len: 20, l4Off: 34, l4Len: 353, l4Valid: true}
	sent := txChecksummed{valid: true, l3: spec.L3ProtoIPv4, l4: spec.L4ProtoTCP, l3Off: 14, l4Off: 34, l4Len: 353}
	assert.True(t, sent.covers(&fi))
	var none *txChecksummed
	assert.False(t, none.covers(&fi), "no record (another wire)")
	for name, mod := range map[string]func(c *txChecksummed, f *frameInfo){
		"not computed": func(c *txChecksummed, _ *frameInfo) { c.valid = false },
		"other L3":     func(c *txChecksummed, _ *frameInfo) { c.l3 = spec.L3ProtoIPv6 },
		"other L4":     func(c *txChecksummed, _ *frameInfo) { c.l4 = spec.L4ProtoUDP },
		"other L3 off": func(c *txChecksummed, _ *frameInfo) { c.l3Off = 18 },
		"other L4 off": func(c *txChecksummed, _ *frameInfo) { c.l4Off = 38 },
		"other length": func(c *txChecksummed, _ *frameInfo) { c.l4Len-- },
		"fragment":     func(_ *txChecksummed, f *frameInfo) { f.frag = true },
		"truncated L4": func(_ *txChecksummed, f *frameInfo) { f.l4Valid = false },
	} {
		c, f := sent, fi
		mod(&c, &f)
		assert.False(t, c.covers(&f), name)
	}
}
