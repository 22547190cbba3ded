package enasim

import (
	"encoding/binary"
	"testing"

	"github.com/enanet/enanet/ena/spec"
)

// Fuzz targets: arbitrary descriptor bytes, LLQ entries and received frames
// must never panic the model. A malformed input may make the device FATAL
// (that is the point of the checks); it must not crash the process.

// aimAddrs rewrites the buffer address of every 16-byte slot whose first
// byte is odd to point inside buf, so the fuzzer reaches the gather and
// offload code instead of stopping at the first IOMMU fault.
func aimAddrs(b []byte, base uint64, size int) {
	for i := 0; i+16 <= len(b); i += 16 {
		if b[i]&1 == 0 {
			continue
		}
		a := base + uint64(binary.LittleEndian.Uint32(b[i+8:]))%uint64(size)
		binary.LittleEndian.PutUint32(b[i+8:], uint32(a))
		w3 := binary.LittleEndian.Uint32(b[i+12:])
		binary.LittleEndian.PutUint32(b[i+12:], w3&^0xFFFF|uint32(a>>32))
	}
}

func seedDescs() [][]byte {
	var seeds [][]byte
	one := make([]byte, 32)
	m := spec.TxMetaDesc{ExtValid: true, MetaStore: true, First: true, Phase: true, L3HdrOff: 14, L3HdrLen: 20, L4HdrLen: 5}
	m.Encode(one[0:])
	d := spec.TxDesc{Length: 60, First: false, Last: true, CompReq: true, Phase: true, L3Csum: true, L4Csum: true,
		L3Proto: spec.L3ProtoIPv4, L4Proto: spec.L4ProtoTCP, BufAddr: 1}
	d.Encode(one[16:])
	one[16] |= 1
	seeds = append(seeds, one)
	two := make([]byte, 16)
	d = spec.TxDesc{Length: 1500, First: true, Last: true, CompReq: true, Phase: true, BufAddr: 1}
	d.Encode(two)
	seeds = append(seeds, two)
	return seeds
}

func FuzzTxHostDescriptors(f *testing.F) {
	for _, s := range seedDescs() {
		f.Add(s, uint16(len(s)/16))
	}
	f.Fuzz(func(t *testing.T, data []byte, tail uint16) {
		r := newIORig(t, Config{Profile: ProfileNoLLQ, Wire: NewLoopback()}, 0)
		q := r.createTx(16, false, noVec)
		r.createRx(16, 2048, noVec)
		copy(q.bufs.Bytes, tcp4(1, 2, 1400))
		n := copy(q.ring.Bytes, data)
		aimAddrs(q.ring.Bytes[:n], q.bufs.Addr, 16*txBufSize-65536)
		r.w(q.db, uint32(tail%20))
		r.w(q.db, uint32(tail%20)+1)
		_ = r.d.FatalReason()
	})
}

func FuzzTxLLQEntries(f *testing.F) {
	for _, s := range seedDescs() {
		e := make([]byte, 128)
		copy(e, s)
		copy(e[32:], tcp4(1, 2, 0))
		f.Add(e, uint16(1), false)
		f.Add(e, uint16(1), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, tail uint16, wide bool) {
		prof, entry, depth := ProfileNitroV3, 128, 16
		if wide {
			prof, entry = ProfileNitroV4, 256
		}
		r := newIORig(t, Config{Profile: prof, Wire: NewLoopback()}, entry)
		q := r.createTx(depth, true, noVec)
		r.createRx(16, 2048, noVec)
		copy(q.bufs.Bytes, tcp4(1, 2, 1400))
		buf := make([]byte, (min(len(data), depth*entry)+7)&^7)
		copy(buf, data)
		aimAddrs(buf, q.bufs.Addr, 16*txBufSize-65536)
		if len(buf) > 0 {
			r.d.LLQ().WriteBlock(q.llqOff, buf)
		}
		r.w(q.db, uint32(tail%(uint16(depth)+2)))
		_ = r.d.FatalReason()
	})
}

func FuzzRxFrame(f *testing.F) {
	f.Add(tcp4(1, 2, 30))
	f.Add(buildFrame(frameSpec{src: addr("2001:db8::1"), dst: addr("2001:db8::2"), proto: 17, sport: 1, dport: 2, payload: 5}))
	f.Add(buildFrame(frameSpec{src: addr("10.0.0.1"), dst: addr("10.0.0.2"), proto: 17, vlan: true, frag: true}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		r := newIORig(t, Config{Profile: ProfileNitroV3}, 0)
		q := r.createRx(16, 512, noVec)
		r.m.receive(frame)
		if r.d.FatalReason() != "" {
			t.Fatalf("a received frame made the device FATAL: %s", r.d.FatalReason())
		}
		for _, got := range q.poll() {
			if len(got.data) != len(frame) {
				t.Fatalf("delivered %d bytes of a %d-byte frame", len(got.data), len(frame))
			}
		}
	})
}
