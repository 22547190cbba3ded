package rings

import (
	"encoding/binary"
	"errors"
	"testing"
)

// FuzzTxCompletions writes arbitrary bytes into the Tx completion ring of a
// queue with packets in flight and reclaims: whatever the device wrote, the
// queue must not panic, must only free packets that were outstanding, and
// must report violations as DeviceErrors (§7.5).
func FuzzTxCompletions(f *testing.F) {
	good := make([]byte, 8*8)
	for i := 0; i < 8; i++ {
		binary.LittleEndian.PutUint32(good[i*8:], uint32(i)|1<<24)
	}
	f.Add(good, true)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, false)
	f.Add([]byte{3, 0, 0, 0xC1, 0, 0, 0, 0, 3, 0, 0, 1}, true)
	f.Fuzz(func(t *testing.T, data []byte, mbz bool) {
		tx, _, fd := newPair(t, pairOpts{depth: 16, checkMBZ: mbz, metaCaching: true})
		fd.loop = false
		for i := 0; i < 10; i++ {
			if err := tx.Send([][]byte{mkFrame(100+i*300, uint32(i))}, TxOffload{}); err != nil {
				t.Fatal(err)
			}
		}
		tx.Flush()
		for round := 0; round < 3; round++ {
			copy(tx.cq, data[min(len(data), round*len(tx.cq)):])
			n, err := tx.Reclaim()
			var de *DeviceError
			if err != nil && !errors.As(err, &de) {
				t.Fatalf("Reclaim error %v is not a DeviceError", err)
			}
			if n < 0 || tx.InFlight() < 0 || tx.InFlight() > 10 {
				t.Fatalf("Reclaim %d, in flight %d", n, tx.InFlight())
			}
			if tx.tail-tx.head > tx.mask {
				t.Fatalf("slot accounting broken: tail %d head %d", tx.tail, tx.head)
			}
			if err != nil {
				break
			}
		}
		// Free lists never hold duplicates.
		seen := map[uint16]bool{}
		for _, id := range tx.reqFree {
			if seen[id] || tx.info[id].inflight {
				t.Fatalf("req_id %d freed twice or still in flight", id)
			}
			seen[id] = true
		}
	})
}

// FuzzRxCompletions writes arbitrary bytes into the Rx completion ring of a
// queue with buffers posted and polls: no panic, every fragment lies inside
// the queue's buffers, errors are DeviceErrors, and buffer accounting holds
// (§7.7).
func FuzzRxCompletions(f *testing.F) {
	good := make([]byte, 16*3)
	for i := 0; i < 3; i++ {
		w0 := uint32(1<<24 | 1<<30)
		if i == 0 {
			w0 |= 1 << 26
		}
		if i == 2 {
			w0 |= 1<<27 | 8 | 12<<8
		}
		binary.LittleEndian.PutUint32(good[i*16:], w0)
		binary.LittleEndian.PutUint32(good[i*16+4:], 100|uint32(i)<<16)
	}
	f.Add(good, false)
	f.Add([]byte{0, 0, 0, 0x0D, 0xff, 0xff, 0xff, 0xff}, true)
	f.Add([]byte{0x80, 0, 0x2, 0x0D, 1, 0, 5, 0}, true)
	f.Fuzz(func(t *testing.T, data []byte, mbz bool) {
		_, rx, _ := newPair(t, pairOpts{depth: 16, checkMBZ: mbz, rxBuf: 256, rxMaxDescs: 5})
		for round := 0; round < 3; round++ {
			copy(rx.cq, data[min(len(data), round*len(rx.cq)):])
			_, err := rx.Poll(64, func(p *RxPacket) {
				total := 0
				for _, fr := range p.Frags[:p.NFrags] {
					if len(fr) == 0 || len(fr) > 256 {
						t.Fatalf("fragment of %d bytes", len(fr))
					}
					total += len(fr)
				}
				if total != p.Len || p.NFrags > 5 {
					t.Fatalf("Len %d, frags %d hold %d", p.Len, p.NFrags, total)
				}
			})
			var de *DeviceError
			if err != nil && !errors.As(err, &de) {
				t.Fatalf("Poll error %v is not a DeviceError", err)
			}
			posted := 0
			for _, p := range rx.posted {
				if p {
					posted++
				}
			}
			if posted != rx.Posted() || posted+len(rx.free) != rx.Depth() || posted > rx.Depth()-1 {
				t.Fatalf("buffer accounting: posted flags %d, tail-head %d, free %d", posted, rx.Posted(), len(rx.free))
			}
			if err != nil {
				break
			}
		}
	})
}
