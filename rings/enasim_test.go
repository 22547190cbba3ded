package rings_test

// Tests of the rings against the device model: queues created through the
// model's admin queue by the ena driver (ena.Open), frames looped back by an
// enasim loopback wire. The fake device in fake_test.go checks the driver's
// side of the wire format; these check that the model, written separately
// from the same fact sheet, agrees.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/ena/spec"
	"github.com/enanet/enanet/rings"
)

func openSim(t testing.TB, profile string, cfg ena.Config) (*ena.Device, *enasim.Device) {
	t.Helper()
	prof, err := enasim.ProfileByName(profile)
	if err != nil {
		t.Fatal(err)
	}
	wire := enasim.NewLoopback()
	sim, err := enasim.New(enasim.Config{Profile: prof, Wire: wire})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close(); _ = wire.Close() })
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.PollMode = true
	cfg.Queues = 1
	d, err := ena.Open(sim, cfg)
	if err != nil {
		t.Fatalf("ena.Open on %s: %v", profile, err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d, sim
}

// udpFrame builds an Ethernet/IPv4/UDP frame to mac with n payload bytes.
// With offload the IPv4 and UDP checksums are left for the device: the IPv4
// checksum zero, the UDP checksum seeded with the pseudo-header sum (§7.2).
func udpFrame(mac [6]byte, n int, tag byte, offload bool) []byte {
	f := make([]byte, 14+20+8+n)
	copy(f[0:], mac[:])
	copy(f[6:], mac[:])
	f[12], f[13] = 0x08, 0x00
	ip := f[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+n))
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	udp := f[34:42]
	binary.BigEndian.PutUint16(udp[0:], 1000)
	binary.BigEndian.PutUint16(udp[2:], 2000)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+n))
	for i := 42; i < len(f); i++ {
		f[i] = tag + byte(i*7)
	}
	pseudo := sum16(0, ip[12:20]) + 17 + uint32(8+n)
	if offload {
		binary.BigEndian.PutUint16(udp[6:], fold(pseudo))
	} else {
		binary.BigEndian.PutUint16(ip[10:], ^fold(sum16(0, ip)))
		binary.BigEndian.PutUint16(udp[6:], ^fold(sum16(pseudo, f[34:])))
	}
	return f
}

func sum16(s uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s>>16 != 0 {
		s = s&0xFFFF + s>>16
	}
	return uint16(s)
}

// checksumsOK verifies a received frame's IPv4 and UDP checksums.
func checksumsOK(f []byte) bool {
	ip := f[14:34]
	if fold(sum16(0, ip)) != 0xFFFF {
		return false
	}
	n := len(f) - 34
	pseudo := sum16(0, ip[12:20]) + 17 + uint32(n)
	return fold(sum16(pseudo, f[34:])) == 0xFFFF
}

var udpOffload = rings.TxOffload{L3: spec.L3ProtoIPv4, L4: spec.L4ProtoUDP, L3Csum: true, L4Csum: true,
	L4Partial: true, DF: true, L3HdrOff: 14, L3HdrLen: 20, L4HdrLen: 2}

// TestEnasimDataPath: host mode and LLQ with 128- and 256-byte entries,
// single- and multi-buffer frames up to a 9001-byte MTU, checksum offload
// computed by the model and checked on receive, Tx completions out of order,
// and enough traffic through 64-deep rings for thousands of wraps.
func TestEnasimDataPath(t *testing.T) {
	for _, c := range []struct {
		name    string
		profile string
		llq     ena.LLQPolicy
	}{
		{"host", "nitro-v3", ena.LLQOff},
		{"llq128", "nitro-v3", ena.LLQNormal},
		{"llq256", "nitro-v4", ena.LLQLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			// 2 KiB Tx buffers, not the automatic 9 KiB ones, so that long
			// frames span several buffers (and descriptors or LLQ entries).
			d, sim := openSim(t, c.profile, ena.Config{LLQ: c.llq, TxDepth: 64, RxDepth: 64, MTU: 9001, TxBufSize: 2048})
			if d.MTU() != 9001 {
				t.Skipf("device MTU %d", d.MTU())
			}
			sim.Faults().ReorderTxCompletions(5)
			q := d.Queue(0)
			sizes := []int{18, 60, 200, 1472, 2100, 5000, 8973}
			// 15000 rounds is over 50000 frames: more than 1000 laps of
			// the 64-entry Tx ring in every mode.
			rounds, minWraps := 15000, uint64(1000)
			if raceOn {
				rounds, minWraps = 1500, 50
			}
			var want [][]byte
			got := 0
			recv := func(p *rings.RxPacket) {
				var b []byte
				for _, fr := range p.Frags[:p.NFrags] {
					b = append(b, fr...)
				}
				if got >= len(want) {
					t.Fatalf("unexpected frame of %d bytes", len(b))
				}
				w := want[got]
				if !bytes.Equal(b, w[:14]) && !bytes.Equal(b[:14], w[:14]) || len(b) != len(w) {
					t.Fatalf("frame %d: %d bytes, want %d", got, len(b), len(w))
				}
				if !checksumsOK(b) || !bytes.Equal(b[42:], w[42:]) {
					t.Fatalf("frame %d (%d bytes): checksum or payload wrong", got, len(b))
				}
				if p.L3 != spec.L3ProtoIPv4 || p.L4 != spec.L4ProtoUDP || p.L3CsumErr || (p.L4CsumChecked && p.L4CsumErr) {
					t.Fatalf("frame %d: rx parse %v/%v l3err %v l4 checked %v err %v", got, p.L3, p.L4, p.L3CsumErr, p.L4CsumChecked, p.L4CsumErr)
				}
				got++
			}
			for r := 0; r < rounds; r++ {
				batch := 1 + r%6
				for i := 0; i < batch; i++ {
					n := sizes[(r+i)%len(sizes)]
					off := r%2 == 0
					f := udpFrame(d.MAC(), n, byte(r), off)
					o := rings.TxOffload{}
					if off {
						o = udpOffload
					}
					segs := [][]byte{f[:14], f[14:42], f[42:]}
					for {
						err := q.Send(segs, o)
						if err == nil {
							break
						}
						if !errors.Is(err, rings.ErrNoSpace) {
							t.Fatalf("Send: %v", err)
						}
						q.Flush()
						if _, err := q.Poll(64, recv); err != nil {
							t.Fatal(err)
						}
					}
					if off { // what comes back has the checksums filled in
						binary.BigEndian.PutUint16(f[24:], 0)
					}
					want = append(want, f)
				}
				q.Flush()
				deadline := time.Now().Add(2 * time.Second)
				for got < len(want) && time.Now().Before(deadline) {
					if _, err := q.Poll(64, recv); err != nil {
						t.Fatal(err)
					}
					q.Flush() // reclaims
				}
				if got < len(want) {
					t.Fatalf("round %d: %d of %d frames came back; model stats %+v", r, got, len(want), sim.Stats())
				}
			}
			if reason := sim.FatalReason(); reason != "" {
				t.Fatalf("model fatal: %s", reason)
			}
			st, err := d.Stats(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			tq := st.Queues[0].Tx
			slots := tq.LLQEntries
			if slots == 0 {
				slots = tq.Packets + tq.MetaDescs + tq.Bytes/2048 // lower bound on host descriptors
			}
			if slots/64 < minWraps {
				t.Errorf("only %d Tx ring wraps", slots/64)
			}
			t.Logf("%d frames, >= %d Tx wraps; driver stats %+v", got, slots/64, st.Queues)
		})
	}
}

// BenchmarkEnasimLoopback moves batches of 32 UDP frames with checksum
// offload Tx → enasim loopback → Rx through the ena driver's queue pair:
// the driver's work plus everything the device model does per packet
// (descriptor and LLQ entry parsing, DMA through its IOMMU model, the Tx
// checksum, the Rx parse, checksum check and RSS hash, completions). It is
// the device half of link (b) in bench/, without the stacks.
func BenchmarkEnasimLoopback(b *testing.B) {
	for _, c := range []struct {
		name  string
		llq   ena.LLQPolicy
		mtu   int
		txBuf int
		sizes []int
	}{
		{"host", ena.LLQOff, 0, 0, []int{64, 1514}},
		{"llq128", ena.LLQNormal, 0, 0, []int{64, 1514}},
		// MTU 9001 frames in 2 KiB Tx buffers (five descriptors and a
		// meta descriptor each) or in one 9 KiB buffer.
		{"host/mtu9001/txbuf2K", ena.LLQOff, 9001, 2048, []int{9014}},
		{"host/mtu9001/txbuf9K", ena.LLQOff, 9001, 9216, []int{9014}},
		{"llq128/mtu9001/txbuf2K", ena.LLQNormal, 9001, 2048, []int{9014}},
		{"llq128/mtu9001/txbuf9K", ena.LLQNormal, 9001, 9216, []int{9014}},
	} {
		for _, size := range c.sizes {
			b.Run(fmt.Sprintf("%s/%dB", c.name, size), func(b *testing.B) {
				d, sim := openSim(b, "nitro-v3", ena.Config{LLQ: c.llq, TxDepth: 1024, RxDepth: 1024, MTU: c.mtu, TxBufSize: c.txBuf})
				// Minimum frames at full speed exceed the profile's ENI
				// packet allowance; a clock that jumps a second per
				// reading keeps the token buckets full.
				var clock int64
				sim.Model().SetAllowanceClock(func() int64 { clock += 1e9; return clock })
				q := d.Queue(0)
				f := udpFrame(d.MAC(), size-42, 1, true)
				segs := [][]byte{f[:42], f[42:]}
				const batch = 32
				got := 0
				recv := func(p *rings.RxPacket) { got++ }
				round := func() {
					for i := 0; i < batch; i++ {
						if err := q.Send(segs, udpOffload); err != nil {
							b.Fatalf("Send: %v", err)
						}
					}
					q.Flush()
					if n, err := q.Poll(64, recv); err != nil || n != batch {
						b.Fatalf("Poll = %d, %v; want %d (model %+v)", n, err, batch, sim.Stats())
					}
				}
				round()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 := threadCPUTime()
				n := 0
				for n < b.N {
					round()
					n += batch
				}
				cpu := threadCPUTime() - cpu0
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/pkt")
				// Thread CPU time does not grow while the thread waits for
				// a core, so it is the steadier number on a busy machine.
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/pkt")
			})
		}
	}
}

// threadCPUTime is the calling thread's CPU time (RUSAGE_THREAD).
func threadCPUTime() time.Duration {
	var ru syscall.Rusage
	const rusageThread = 1
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
