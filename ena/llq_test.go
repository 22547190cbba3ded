package ena

import (
	"strings"
	"testing"

	"github.com/enanet/enanet/ena/spec"
)

func TestNegotiateLLQ(t *testing.T) {
	all := spec.LLQ{
		MaxLLQNum: 8, MaxLLQDepth: 1024,
		HeaderLocationSupported:    spec.LLQHeaderLocationInline,
		EntrySizeSupported:         spec.LLQEntrySize128 | spec.LLQEntrySize256,
		DescsBeforeHeaderSupported: 1 | 2 | 4 | 8,
		StrideSupported:            spec.LLQStrideMultipleDescsPerEntry | spec.LLQStrideSingleDescPerEntry,
		EntrySizeRecommended:       spec.LLQEntrySize256,
		AccelFlags:                 spec.LLQAccelDriverFlags,
		MaxTxBurstSize:             2048,
	}
	cases := []struct {
		name    string
		policy  LLQPolicy
		dev     spec.LLQ
		bar     bool
		entry   int
		depth   int
		wantErr string
	}{
		{"default follows recommendation", LLQDefault, all, true, 256, 512, ""},
		{"normal", LLQNormal, all, true, 128, 1024, ""},
		{"large", LLQLarge, all, true, 256, 512, ""},
		{"off", LLQOff, all, true, 0, 0, "disabled by policy"},
		{"no BAR2", LLQDefault, all, false, 0, 0, "BAR2"},
		{"no queues", LLQDefault, spec.LLQ{}, true, 0, 0, "max_llq_num 0"},
		{"large falls back to 128", LLQLarge, func() spec.LLQ { l := all; l.EntrySizeSupported = spec.LLQEntrySize128; return l }(), true, 128, 1024, ""},
		{"wide depth reported", LLQLarge, func() spec.LLQ { l := all; l.MaxWideLLQDepth = 256; return l }(), true, 256, 256, ""},
	}
	for _, c := range cases {
		got, err := negotiateLLQ(c.policy, c.dev, c.bar)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%s: err %v, want %q", c.name, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got.layout.EntrySize() != c.entry || got.maxDepth != c.depth || got.layout.DescsBeforeHeader() != 2 {
			t.Errorf("%s: entry %d depth %d descs %d, want %d %d 2", c.name, got.layout.EntrySize(), got.maxDepth, got.layout.DescsBeforeHeader(), c.entry, c.depth)
		}
		if got.set.AccelFlags != spec.LLQAccelDriverFlags || got.metaCaching || got.burst != 2048/c.entry {
			t.Errorf("%s: accel %#x metaCaching %v burst %d", c.name, got.set.AccelFlags, got.metaCaching, got.burst)
		}
	}
}

func TestConfigRanges(t *testing.T) {
	c := Config{}
	c, err := c.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.sizeQueues(4, 512, 16384); err != nil {
		t.Fatal(err)
	}
	if c.TxDepth != 512 || c.RxDepth != 4096 || c.Queues < 1 || c.Queues > 4 {
		t.Fatalf("defaults: %+v", c)
	}
	c = Config{TxDepth: 2048}
	if err := c.sizeQueues(4, 1024, 1024); err == nil || !strings.Contains(err.Error(), "Tx depth 2048 exceeds the device maximum 1024") {
		t.Fatalf("err %v", err)
	}
	if _, err := (Config{RxDepth: 32}).withDefaults(); err == nil {
		t.Fatal("depth 32 accepted")
	}
}
