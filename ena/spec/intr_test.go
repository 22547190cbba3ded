package spec

import "testing"

// struct ena_eth_io_intr_reg intr_control: rx_intr_delay 14:0, tx_intr_delay
// 29:15, intr_unmask 30, no_moderation_update 31. Expected values are worked
// out by hand.
func TestUnmaskWordVectors(t *testing.T) {
	cases := []struct {
		w    UnmaskWord
		want uint32
	}{
		// 0x1234 | 0x0567<<15 (= 0x02B38000) | 1<<30 = 0x42B39234
		{UnmaskWord{RxDelay: 0x1234, TxDelay: 0x0567, Unmask: true}, 0x42B39234},
		// Typical driver writes (§7.8).
		{UnmaskWord{Unmask: true}, 0x40000000},
		{UnmaskWord{Unmask: true, NoModerationUpdate: true}, 0xC0000000},
		{UnmaskWord{NoModerationUpdate: true}, 0x80000000},
		// Both delays at their 15-bit maximum: 0x7FFF | 0x7FFF<<15 = 0x3FFFFFFF.
		{UnmaskWord{RxDelay: 0x7FFF, TxDelay: 0x7FFF}, 0x3FFFFFFF},
		// Linux's lost-interrupt write: delays only, rx 1 / tx 2 = 0x00010001.
		{UnmaskWord{RxDelay: 1, TxDelay: 2}, 0x00010001},
	}
	for _, c := range cases {
		if got := c.w.Encode(); got != c.want {
			t.Errorf("%+v.Encode() = 0x%08X, want 0x%08X", c.w, got, c.want)
		}
		if got := DecodeUnmaskWord(c.want); got != c.w {
			t.Errorf("DecodeUnmaskWord(0x%08X) = %+v, want %+v", c.want, got, c.w)
		}
	}
	if IntrUnmaskKeepDelays != 0xC0000000 || IntrMaskKeepDelays != 0x80000000 {
		t.Fatal("DPDK unmask/mask constants")
	}
	// Oversized delays saturate instead of spilling into neighbouring fields.
	if got := (UnmaskWord{RxDelay: 0x8000, TxDelay: 0xFFFF}).Encode(); got != 0x3FFFFFFF {
		t.Fatalf("saturation: 0x%08X", got)
	}
}

// struct ena_eth_io_numa_node_cfg_reg numa_cfg: numa 7:0, enabled 31.
func TestNUMANodeConfig(t *testing.T) {
	if got := NUMANodeRegValue(3); got != 0x80000003 {
		t.Fatalf("NUMANodeRegValue(3) = 0x%08X", got)
	}
	c := NUMANodeConfig{Node: 0xA5, Enabled: true}
	if got := c.Encode(); got != 0x800000A5 {
		t.Fatalf("Encode = 0x%08X", got)
	}
	if got := DecodeNUMANodeConfig(0x800000A5); got != c {
		t.Fatalf("Decode = %+v", got)
	}
	got := DecodeNUMANodeConfig(0x12345601)
	if got.Enabled || got.Node != 0x01 || got.Reserved != 0x12345600 {
		t.Fatalf("Decode reserved = %+v", got)
	}
	if got.Encode() != 0x12345601 {
		t.Fatal("reserved bits round trip")
	}
}

func FuzzDecodeUnmaskWord(f *testing.F) {
	f.Add(uint32(0x42B39234))
	f.Fuzz(func(t *testing.T, v uint32) {
		if got := DecodeUnmaskWord(v).Encode(); got != v {
			t.Fatalf("round trip 0x%08X -> 0x%08X", v, got)
		}
		if got := DecodeNUMANodeConfig(v).Encode(); got != v {
			t.Fatalf("NUMA round trip 0x%08X -> 0x%08X", v, got)
		}
	})
}
