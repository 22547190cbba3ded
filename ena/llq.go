package ena

import (
	"fmt"

	"github.com/enanet/enanet/ena/spec"
)

// llqChoice is the outcome of LLQ negotiation (§8.1).
type llqChoice struct {
	set         spec.LLQ       // SET LLQ payload
	layout      spec.LLQLayout // entry layout for rings.TxConfig
	burst       int            // entries between doorbells, 0 = no limit
	metaCaching bool           // false: a meta descriptor with every packet
	maxDepth    int            // Tx depth limit in LLQ mode
	maxQueues   int            // max_llq_num
}

// negotiateLLQ picks an LLQ layout the device supports, following the
// vendor drivers' preferences (§8.1): inline headers (required), multiple
// descriptors per entry, the entry size the policy asks for with fallbacks
// 128 → 192 → 256, and 2 descriptors before the header with fallbacks
// 1, 4, 8. It returns why not when LLQ cannot be used; the caller then
// falls back to host placement.
func negotiateLLQ(policy LLQPolicy, dev spec.LLQ, haveBAR bool) (llqChoice, error) {
	switch {
	case policy == LLQOff:
		return llqChoice{}, fmt.Errorf("LLQ disabled by policy")
	case !haveBAR:
		return llqChoice{}, fmt.Errorf("no memory BAR (BAR2) mapped")
	case dev.MaxLLQNum == 0:
		return llqChoice{}, fmt.Errorf("device offers no LLQs (max_llq_num 0)")
	case dev.HeaderLocationSupported&spec.LLQHeaderLocationInline == 0:
		return llqChoice{}, fmt.Errorf("device lacks inline headers (header_location_ctrl_supported 0x%x)", dev.HeaderLocationSupported)
	}
	set := spec.LLQ{HeaderLocationEnabled: spec.LLQHeaderLocationInline, AccelFlags: spec.LLQAccelDriverFlags}

	multiple := dev.StrideSupported&spec.LLQStrideMultipleDescsPerEntry != 0
	switch {
	case multiple:
		set.StrideEnabled = spec.LLQStrideMultipleDescsPerEntry
	case dev.StrideSupported&spec.LLQStrideSingleDescPerEntry != 0:
		set.StrideEnabled = spec.LLQStrideSingleDescPerEntry
	default:
		return llqChoice{}, fmt.Errorf("device offers no known descriptor stride (0x%x)", dev.StrideSupported)
	}

	want := uint16(spec.LLQEntrySize128)
	switch policy {
	case LLQLarge:
		want = spec.LLQEntrySize256
	case LLQDefault:
		if dev.EntrySizeRecommended == spec.LLQEntrySize256 {
			want = spec.LLQEntrySize256
		}
	}
	if dev.EntrySizeSupported&want == 0 {
		want = 0
		for _, c := range []uint16{spec.LLQEntrySize128, spec.LLQEntrySize192, spec.LLQEntrySize256} {
			if dev.EntrySizeSupported&c != 0 {
				want = c
				break
			}
		}
		if want == 0 {
			return llqChoice{}, fmt.Errorf("device offers no known entry size (0x%x)", dev.EntrySizeSupported)
		}
	}
	set.EntrySizeEnabled = want
	entry := spec.LLQEntrySizeBytes(want)

	descs := -1
	for _, n := range []int{2, 1, 4, 8} {
		if dev.DescsBeforeHeaderSupported&uint16(n) != 0 {
			descs = n
			break
		}
	}
	if descs < 0 {
		return llqChoice{}, fmt.Errorf("device offers no usable descriptors-before-header count (0x%x)", dev.DescsBeforeHeaderSupported)
	}
	set.DescsBeforeHeaderEnabled = uint16(descs)

	layout, err := spec.NewLLQLayout(entry, descs, multiple)
	if err != nil {
		return llqChoice{}, fmt.Errorf("LLQ layout: %w", err)
	}
	c := llqChoice{
		set:         set,
		layout:      layout,
		metaCaching: dev.AccelFlags&spec.LLQAccelDisableMetaCaching == 0,
		maxDepth:    int(dev.MaxLLQDepth),
		maxQueues:   int(dev.MaxLLQNum),
	}
	if dev.AccelFlags&spec.LLQAccelLimitTxBurst != 0 && dev.MaxTxBurstSize != 0 {
		c.burst = max(int(dev.MaxTxBurstSize)/entry, 1)
	}
	if entry == 256 {
		// §8.1: wide entries cap the depth at max_wide_llq_depth, or halve
		// it when the device does not say.
		if dev.MaxWideLLQDepth != 0 {
			c.maxDepth = min(c.maxDepth, int(dev.MaxWideLLQDepth))
		} else {
			c.maxDepth /= 2
		}
	}
	return c, nil
}
