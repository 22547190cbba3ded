package spec

import (
	"bytes"
	"strings"
	"testing"
)

func llqMustLayout(t testing.TB, size, before int, multiple bool) LLQLayout {
	t.Helper()
	l, err := NewLLQLayout(size, before, multiple)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLLQLayout(t *testing.T) {
	cases := []struct {
		size, before                 int
		multiple                     bool
		perEntry, hdrOff, maxPushHdr int
	}{
		{128, 2, true, 8, 32, 96},   // default policy (§8.1)
		{256, 2, true, 16, 32, 224}, // large LLQ
		{192, 1, true, 12, 16, 176},
		{128, 4, false, 1, 64, 64},
		{256, 8, true, 16, 128, 128},
	}
	for _, c := range cases {
		l := llqMustLayout(t, c.size, c.before, c.multiple)
		if l.EntrySize() != c.size || l.DescsBeforeHeader() != c.before || l.MultipleDescsPerEntry() != c.multiple ||
			l.DescsPerEntry() != c.perEntry || l.HeaderOffset() != c.hdrOff || l.MaxPushHeader() != c.maxPushHdr {
			t.Errorf("layout %+v: per=%d off=%d max=%d", c, l.DescsPerEntry(), l.HeaderOffset(), l.MaxPushHeader())
		}
	}
	for _, bad := range [][2]int{{0, 2}, {64, 2}, {129, 2}, {512, 2}, {128, 0}, {128, 3}, {128, 8}, {128, -1}} {
		if _, err := NewLLQLayout(bad[0], bad[1], true); err == nil {
			t.Errorf("NewLLQLayout(%d, %d) accepted", bad[0], bad[1])
		}
	}
	// 8 descriptors before the header fill a 128-byte entry completely.
	_, err := NewLLQLayout(128, 8, true)
	if err == nil || !strings.Contains(err.Error(), "no room for a header") {
		t.Fatalf("err = %v", err)
	}
}

func TestLLQEntriesFor(t *testing.T) {
	multi := llqMustLayout(t, 128, 2, true)
	single := llqMustLayout(t, 128, 2, false)
	for _, c := range []struct {
		l       LLQLayout
		n, want int
	}{
		{multi, 1, 1}, {multi, 2, 1}, {multi, 3, 2}, {multi, 10, 2}, {multi, 11, 3}, {multi, 0, 1},
		{single, 2, 1}, {single, 3, 2}, {single, 5, 4},
		{LLQLayout{}, 3, 0},
	} {
		if got := c.l.EntriesFor(c.n); got != c.want {
			t.Errorf("EntriesFor(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

// llqFirstEntry128 is a complete 128-byte first LLQ entry (§8.2; 128-byte
// entry, 2 descriptors before the header) for a 554-byte IPv4/UDP frame: a
// meta descriptor in slot 0, the data descriptor in slot 1, the 42-byte
// Ethernet+IPv4+UDP header pushed at byte 32, zeros after it. Worked out by
// hand from ena_eth_io_defs.h:
//
// struct ena_eth_io_tx_meta_desc (slot 0):
//
//	len_ctrl = ext_valid 1<<14 | eth_meta_type 1<<20 | meta_store 1<<21 |
//	           meta_desc 1<<23 | phase 1<<24 | first 1<<26 = 0x05B04000
//	word2    = l3_hdr_len 20 | l3_hdr_off 14<<8 | l4_hdr_len_in_words 2<<16 = 0x00020E14
//
// struct ena_eth_io_tx_desc (slot 1), req_id 5, 512 payload bytes at
// 0x1_2345_6000:
//
//	len_ctrl  = length 0x200 | phase 1<<24 | last 1<<27 | comp_req 1<<28 = 0x19000200
//	meta_ctrl = l3 IPv4 8 | DF 1<<4 | l4 UDP 13<<8 | l3_csum_en 1<<13 |
//	            l4_csum_en 1<<14 | req_id_lo 5<<22 = 0x01406D18
//	buff_addr_lo = 0x23456000; buff_addr_hi_hdr_sz = 0x0001 | header_length 42<<24 = 0x2A000001
var llqFirstEntry128 = []byte{
	// slot 0: meta descriptor
	0x00, 0x40, 0xB0, 0x05, 0x00, 0x00, 0x00, 0x00, 0x14, 0x0E, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
	// slot 1: data descriptor
	0x00, 0x02, 0x00, 0x19, 0x18, 0x6D, 0x40, 0x01, 0x00, 0x60, 0x45, 0x23, 0x01, 0x00, 0x00, 0x2A,
	// byte 32: Ethernet (14)
	0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00,
	// IPv4 (20): total length 540, id 0x1234, DF, TTL 64, UDP, 10.0.0.1 -> 10.0.0.2
	0x45, 0x00, 0x02, 0x1C, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00,
	0x0A, 0x00, 0x00, 0x01, 0x0A, 0x00, 0x00, 0x02,
	// UDP (8): 12345 -> 53, length 520
	0x30, 0x39, 0x00, 0x35, 0x02, 0x08, 0x00, 0x00,
	// bytes 74..127: zero
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
}

var (
	llqTestMeta = TxMetaDesc{ExtValid: true, MetaType: true, MetaStore: true, Meta: true, Phase: true, First: true,
		L3HdrLen: 20, L3HdrOff: 14, L4HdrLen: 2}
	llqTestData = TxDesc{Length: 0x200, ReqID: 5, Phase: true, Last: true, CompReq: true,
		L3Proto: L3ProtoIPv4, DF: true, L4Proto: L4ProtoUDP, L3Csum: true, L4Csum: true,
		BufAddr: 0x123456000, HeaderLen: 42}
)

func TestLLQFirstEntryVector(t *testing.T) {
	if len(llqFirstEntry128) != 128 {
		t.Fatalf("vector is %d bytes", len(llqFirstEntry128))
	}
	l := llqMustLayout(t, 128, 2, true)
	descs := make([]byte, 2*TxDescSize)
	llqTestMeta.Encode(descs[0:])
	llqTestData.Encode(descs[16:])
	header := llqFirstEntry128[32:74]

	dst := ioGarbage(128)
	n, err := BuildLLQFirstEntry(dst, l, descs, header)
	if err != nil || n != 2 {
		t.Fatalf("BuildLLQFirstEntry = %d, %v", n, err)
	}
	ioCheckBytes(t, "first entry", dst, llqFirstEntry128)

	// The bounce-buffer form gives the same single entry.
	dst = ioGarbage(256)
	entries, err := BuildLLQPacket(dst, l, descs, header)
	if err != nil || entries != 1 {
		t.Fatalf("BuildLLQPacket = %d, %v", entries, err)
	}
	ioCheckBytes(t, "packet entry", dst[:128], llqFirstEntry128)
	ioCheckBytes(t, "untouched tail", dst[128:], ioGarbage(128))

	// The model's side: split the entry back.
	parts, err := DecodeLLQEntry(llqFirstEntry128, l, true)
	if err != nil {
		t.Fatal(err)
	}
	if parts.NumSlots() != 2 || !IsMetaDesc(parts.Slot(0)) || IsMetaDesc(parts.Slot(1)) || parts.Slot(2) != nil || parts.Slot(-1) != nil {
		t.Fatalf("slots: %d", parts.NumSlots())
	}
	if got := DecodeTxMetaDesc(parts.Slot(0)); got != llqTestMeta {
		t.Fatalf("meta = %+v", got)
	}
	if got := DecodeTxDesc(parts.Slot(1)); got != llqTestData {
		t.Fatalf("data = %+v", got)
	}
	h, err := parts.PushedHeader(42)
	if err != nil {
		t.Fatal(err)
	}
	ioCheckBytes(t, "header", h, header)

	pkt, err := DecodeLLQPacket(l, llqOneEntry(llqFirstEntry128), 19, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !pkt.HasMeta || pkt.Meta != llqTestMeta || len(pkt.Descs) != 1 || pkt.Descs[0] != llqTestData || pkt.Entries != 1 {
		t.Fatalf("packet = %+v", pkt)
	}
	ioCheckBytes(t, "packet header", pkt.Header, header)
}

func llqOneEntry(e []byte) func(int) []byte {
	return func(i int) []byte {
		if i == 0 {
			return e
		}
		return nil
	}
}

func llqEntriesOf(buf []byte, size, n int) func(int) []byte {
	return func(i int) []byte {
		if i < 0 || i >= n {
			return nil
		}
		return buf[i*size : (i+1)*size]
	}
}

// TestLLQContinuation: a meta descriptor and three data descriptors with 2
// slots before the header need a continuation entry holding data
// descriptors 2 and 3 packed from byte 0 (§8.2).
func TestLLQContinuation(t *testing.T) {
	for _, multiple := range []bool{true, false} {
		l := llqMustLayout(t, 128, 2, multiple)
		d1, d2, d3 := llqTestData, TxDesc{Length: 0x111, Phase: true, BufAddr: 0xA000}, TxDesc{Length: 0x222, Phase: true, Last: true, BufAddr: 0xB000}
		d1.Last = false
		descs := make([]byte, 4*TxDescSize)
		llqTestMeta.Encode(descs[0:])
		d1.Encode(descs[16:])
		d2.Encode(descs[32:])
		d3.Encode(descs[48:])

		want := 2
		if !multiple {
			want = 3
		}
		if got := l.EntriesFor(4); got != want {
			t.Fatalf("EntriesFor(4) = %d, want %d", got, want)
		}
		buf := ioGarbage(want * 128)
		n, err := BuildLLQPacket(buf, l, descs, llqFirstEntry128[32:74])
		if err != nil || n != want {
			t.Fatalf("BuildLLQPacket = %d, %v", n, err)
		}
		// Continuation entry 1 starts with descriptor 2 (bytes 32..47 of descs).
		ioCheckBytes(t, "cont slot 0", buf[128:144], descs[32:48])
		if multiple {
			ioCheckBytes(t, "cont slot 1", buf[144:160], descs[48:64])
			ioCheckBytes(t, "cont zero", buf[160:256], make([]byte, 96))
		} else {
			ioCheckBytes(t, "cont zero", buf[144:256], make([]byte, 112))
			ioCheckBytes(t, "cont 2 slot 0", buf[256:272], descs[48:64])
			ioCheckBytes(t, "cont 2 zero", buf[272:384], make([]byte, 112))
		}
		pkt, err := DecodeLLQPacket(l, llqEntriesOf(buf, 128, want), 19, make([]TxDesc, 0, 4))
		if err != nil {
			t.Fatal(err)
		}
		if pkt.Entries != want || len(pkt.Descs) != 3 || pkt.Descs[0] != d1 || pkt.Descs[1] != d2 || pkt.Descs[2] != d3 || !pkt.HasMeta {
			t.Fatalf("packet = %+v", pkt)
		}
		ioCheckBytes(t, "header", pkt.Header, llqFirstEntry128[32:74])

		// Direct continuation encoder: at most DescsPerEntry placed.
		cont := ioGarbage(128)
		n, err = BuildLLQContinuationEntry(cont, l, descs)
		if err != nil || n != min(4, l.DescsPerEntry()) {
			t.Fatalf("BuildLLQContinuationEntry = %d, %v", n, err)
		}
		ioCheckBytes(t, "cont direct", cont[:n*16], descs[:n*16])
	}
}

// TestLLQHeaderOnlyFrame: a frame that fits in the pushed header is one data
// descriptor with length 0, address 0, header_length = frame length (§8.2).
func TestLLQHeaderOnlyFrame(t *testing.T) {
	l := llqMustLayout(t, 128, 2, true)
	frame := bytes.Repeat([]byte{0x5A}, 60)
	d := TxDesc{ReqID: 0x3FF, Phase: true, First: true, Last: true, CompReq: true, HeaderLen: 60}
	descs := make([]byte, 16)
	d.Encode(descs)
	entry := make([]byte, 128)
	if _, err := BuildLLQFirstEntry(entry, l, descs, frame); err != nil {
		t.Fatal(err)
	}
	ioCheckBytes(t, "slot 1 unused", entry[16:32], make([]byte, 16))
	pkt, err := DecodeLLQPacket(l, llqOneEntry(entry), 19, nil)
	if err != nil || pkt.HasMeta || len(pkt.Descs) != 1 || !bytes.Equal(pkt.Header, frame) {
		t.Fatalf("packet = %+v, %v", pkt, err)
	}
}

func TestLLQErrors(t *testing.T) {
	l := llqMustLayout(t, 128, 2, true)
	entry := make([]byte, 128)
	desc16 := make([]byte, 16)

	check := func(name string, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, want)
		}
	}
	_, err := BuildLLQFirstEntry(entry, l, desc16, make([]byte, 97))
	check("header too long", err, "exceeds the 96")
	_, err = BuildLLQFirstEntry(entry[:127], l, desc16, nil)
	check("short dst", err, "entry needs 128")
	_, err = BuildLLQFirstEntry(entry, l, make([]byte, 15), nil)
	check("ragged descs", err, "not a multiple of 16")
	_, err = BuildLLQFirstEntry(entry, LLQLayout{}, desc16, nil)
	check("zero layout", err, "NewLLQLayout")
	_, err = BuildLLQContinuationEntry(entry[:64], l, desc16)
	check("short cont", err, "entry needs 128")
	_, err = BuildLLQPacket(make([]byte, 128), l, make([]byte, 3*16), nil)
	check("packet dst", err, "2 entries need 256")
	_, err = BuildLLQPacket(make([]byte, 128), l, nil, nil)
	check("no descs", err, "no descriptors")
	_, err = DecodeLLQEntry(entry[:100], l, false)
	check("short entry", err, "entry is 128")
	_, err = DecodeLLQEntry(entry, LLQLayout{}, true)
	check("zero layout decode", err, "NewLLQLayout")

	parts, _ := DecodeLLQEntry(entry, l, false)
	if parts.NumSlots() != 8 || parts.HeaderArea != nil {
		t.Fatalf("continuation parts: %d slots", parts.NumSlots())
	}
	_, err = parts.PushedHeader(0)
	check("header of continuation", err, "no header")
	parts, _ = DecodeLLQEntry(entry, l, true)
	_, err = parts.PushedHeader(97)
	check("header_length 97", err, "header_length 97 exceeds the 96")
	_, err = parts.PushedHeader(-1)
	check("negative", err, "exceeds")

	// Driver bugs the model must survive.
	bad := append([]byte{}, llqFirstEntry128...)
	bad[31] = 200 // header_length 200 in the data descriptor
	_, err = DecodeLLQPacket(l, llqOneEntry(bad), 19, nil)
	check("bad header_length", err, "header_length 200 exceeds the 96")

	bad = append([]byte{}, llqFirstEntry128...)
	bad[19] &^= 0x08 // clear LAST: the chain runs past the pushed entries
	_, err = DecodeLLQPacket(l, llqOneEntry(bad), 19, nil)
	check("no LAST", err, "was not pushed")

	bad = append([]byte{}, llqFirstEntry128...)
	copy(bad[16:32], bad[0:16]) // a second meta descriptor in slot 1
	_, err = DecodeLLQPacket(l, llqOneEntry(bad), 19, nil)
	check("meta in slot 1", err, "slot 1")

	// A chain that never ends is cut at maxDescs.
	noLast := make([]byte, 128*4)
	_, err = DecodeLLQPacket(l, llqEntriesOf(noLast, 128, 4), 19, nil)
	check("maxDescs", err, "more than 19 descriptors")
	_, err = DecodeLLQPacket(LLQLayout{}, llqOneEntry(entry), 19, nil)
	check("zero layout packet", err, "NewLLQLayout")
	_, err = DecodeLLQPacket(l, func(int) []byte { return entry[:10] }, 19, nil)
	check("short entry in packet", err, "entry 0")
}

func TestLLQBuildDoesNotAllocate(t *testing.T) {
	l := llqMustLayout(t, 128, 2, true)
	descs := make([]byte, 4*16)
	header := make([]byte, 54)
	dst := make([]byte, 256)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := BuildLLQPacket(dst, l, descs, header); err != nil {
			panic(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per BuildLLQPacket", n)
	}
}

func BenchmarkBuildLLQFirstEntry(b *testing.B) {
	l := llqMustLayout(b, 128, 2, true)
	descs := make([]byte, 2*16)
	header := make([]byte, 54)
	dst := make([]byte, 128)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = BuildLLQFirstEntry(dst, l, descs, header)
	}
}

func FuzzDecodeLLQEntry(f *testing.F) {
	f.Add(llqFirstEntry128, uint8(0), 19)
	f.Add(bytes.Repeat([]byte{0xFF}, 300), uint8(3), 4)
	f.Add([]byte{}, uint8(1), 0)
	layouts := []LLQLayout{
		llqMustLayout(f, 128, 2, true),
		llqMustLayout(f, 256, 2, true),
		llqMustLayout(f, 192, 1, false),
		llqMustLayout(f, 128, 4, true),
	}
	f.Fuzz(func(t *testing.T, data []byte, which uint8, maxDescs int) {
		l := layouts[int(which)%len(layouts)]
		size := l.EntrySize()
		n := len(data) / size
		entry := func(i int) []byte {
			if i < 0 || i >= n {
				return nil
			}
			return data[i*size : (i+1)*size]
		}
		// maxDescs bounds the walk; keep it sane so the fuzzer cannot ask for
		// a billion-iteration loop over a short input.
		maxDescs %= 64
		pkt, err := DecodeLLQPacket(l, entry, maxDescs, nil)
		if err == nil {
			if len(pkt.Descs) == 0 || !pkt.Descs[len(pkt.Descs)-1].Last || len(pkt.Header) != int(pkt.Descs[0].HeaderLen) {
				t.Fatalf("accepted an inconsistent packet: %+v", pkt)
			}
			if len(pkt.Header) > l.MaxPushHeader() || pkt.Entries > n {
				t.Fatalf("header/entries out of bounds: %+v", pkt)
			}
		}
		for _, first := range []bool{true, false} {
			parts, err := DecodeLLQEntry(data, l, first)
			if err != nil {
				continue
			}
			for i := -1; i <= parts.NumSlots(); i++ {
				_ = parts.Slot(i)
			}
			_, _ = parts.PushedHeader(len(data) % 300)
		}
		// The encoders must refuse or succeed, never panic, on any input.
		dst := make([]byte, size*4)
		_, _ = BuildLLQPacket(dst, l, data[:len(data)/16*16], data[:min(len(data), l.MaxPushHeader()+int(which)%2)])
	})
}

func TestLLQLayoutFromFeature(t *testing.T) {
	// What vendor drivers SET (§8.1): inline header, 128 B, 2 before header,
	// multiple descriptors per entry.
	f := LLQ{HeaderLocationEnabled: 1, EntrySizeEnabled: 1, DescsBeforeHeaderEnabled: 2, StrideEnabled: 2}
	l, err := LLQLayoutFromFeature(&f)
	if err != nil || l.EntrySize() != 128 || l.MaxPushHeader() != 96 || l.DescsPerEntry() != 8 {
		t.Fatalf("layout %+v, %v", l, err)
	}
	f.EntrySizeEnabled, f.StrideEnabled = 4, 1 // 256 B, single stride
	l, err = LLQLayoutFromFeature(&f)
	if err != nil || l.EntrySize() != 256 || l.MaxPushHeader() != 224 || l.DescsPerEntry() != 1 {
		t.Fatalf("layout %+v, %v", l, err)
	}
	for _, bad := range []LLQ{
		{HeaderLocationEnabled: 2, EntrySizeEnabled: 1, DescsBeforeHeaderEnabled: 2, StrideEnabled: 2},
		{HeaderLocationEnabled: 1, EntrySizeEnabled: 3, DescsBeforeHeaderEnabled: 2, StrideEnabled: 2},
		{HeaderLocationEnabled: 1, EntrySizeEnabled: 1, DescsBeforeHeaderEnabled: 2, StrideEnabled: 3},
		{HeaderLocationEnabled: 1, EntrySizeEnabled: 1, DescsBeforeHeaderEnabled: 0, StrideEnabled: 2},
		{HeaderLocationEnabled: 1, EntrySizeEnabled: 1, DescsBeforeHeaderEnabled: 8, StrideEnabled: 2},
	} {
		if _, err := LLQLayoutFromFeature(&bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}
