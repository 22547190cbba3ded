package ena

import (
	"crypto/rand"
	"fmt"

	"github.com/enanet/enanet/ena/spec"
)

// RSS set-up (§10, §6 steps 26 and 29): Toeplitz with a 40-byte key, the
// default hash inputs, and an indirection table spread round-robin over the
// Rx queues. Control buffers travel in d.ctrl, one 4 KiB DMA page shared by
// all RSS commands under d.ctrlMu.

// rssMaxLog caps the indirection table at 2^7 = 128 entries, the FreeBSD
// choice; 128 × 4 B fits the control page with room to spare.
const rssMaxLog = 7

// newRSSKey returns cfg's key or a random one (§10: random by default).
func newRSSKey(cfg []byte) ([spec.RSSKeySize]byte, error) {
	var k [spec.RSSKeySize]byte
	if cfg != nil {
		copy(k[:], cfg)
		return k, nil
	}
	if _, err := rand.Read(k[:]); err != nil {
		return k, fmt.Errorf("ena: RSS key: %w", err)
	}
	return k, nil
}

// rssSupported reports whether the device offers the three RSS features.
func (d *Device) rssSupported() bool {
	return d.featureSupported(spec.FeatRSSHashFunction) &&
		d.featureSupported(spec.FeatRSSIndirectionTableConfig) &&
		d.featureSupported(spec.FeatRSSHashInput)
}

// ctrlBuf describes the first n bytes of the control page.
func (d *Device) ctrlBuf(n int) *spec.CtrlBuf {
	return &spec.CtrlBuf{Length: uint32(n), Addr: d.ctrl.Addr}
}

// setupRSS programs hash function, key and inputs (§6 step 26). The table
// comes later, once the Rx SQs exist (setRSSTable).
func (d *Device) setupRSS() error {
	if !d.rssSupported() {
		return nil
	}
	d.ctrlMu.Lock()
	defer d.ctrlMu.Unlock()

	// Table limits first: GET RSS_INDIRECTION_TABLE_CONFIG.
	p, err := d.getFeature("get RSS indirection table limits", spec.FeatRSSIndirectionTableConfig, spec.RSSIndirectionTableVersion, nil)
	if err != nil {
		return err
	}
	t := spec.DecodeRSSIndirectionTable(p)
	if t.MinSize > t.MaxSize || t.MinSize > rssMaxLog+3 {
		return fmt.Errorf("ena: RSS indirection table limits 2^%d..2^%d are unusable", t.MinSize, t.MaxSize)
	}
	d.rssLog = max(min(int(t.MaxSize), rssMaxLog), int(t.MinSize))

	// Hash function and key: GET (device fills the control buffer), then SET.
	clear(d.ctrl.Bytes[:spec.RSSHashKeySize])
	p, err = d.getFeature("get RSS hash function", spec.FeatRSSHashFunction, 0, d.ctrlBuf(spec.RSSHashKeySize))
	if err != nil {
		return err
	}
	fn := spec.DecodeRSSHashFunction(p)
	d.rss.supportedFuncs = fn.SupportedFunc
	want := d.rss.function()
	if fn.SupportedFunc&want.Bit() == 0 {
		return fmt.Errorf("ena: RSS: device does not support %v (supported_func 0x%x)", want, fn.SupportedFunc)
	}
	// The key goes out unreversed, as Linux sends it; §10 records that the
	// BSD drivers reverse it and the sources disagree.
	key := spec.RSSHashKey{KeyParts: spec.RSSKeyParts, Key: d.rssKey}
	key.Encode(d.ctrl.Bytes)
	set := spec.RSSHashFunction{SelectedFunc: want.Bit(), InitVal: 0xFFFFFFFF}
	if err := d.setFeature("set RSS hash function", spec.FeatRSSHashFunction, 0, d.ctrlBuf(spec.RSSHashKeySize), set.Encode); err != nil {
		return err
	}

	// Hash inputs: GET supported fields, SET the defaults within them.
	clear(d.ctrl.Bytes[:spec.RSSHashControlSize])
	if _, err := d.getFeature("get RSS hash inputs", spec.FeatRSSHashInput, 0, d.ctrlBuf(spec.RSSHashControlSize)); err != nil {
		return err
	}
	sup := spec.DecodeRSSHashControl(d.ctrl.Bytes)
	d.rss.supportedFields = sup.Supported
	fields := d.rss.hashFields()
	ctl := spec.RSSHashControl{Supported: sup.Supported}
	for i := range fields {
		if fields[i]&^sup.Supported[i] != 0 {
			return fmt.Errorf("ena: RSS: hash fields 0x%x for protocol %d not supported (device offers 0x%x)", fields[i], i, sup.Supported[i])
		}
		ctl.Selected[i] = fields[i]
	}
	ctl.Encode(d.ctrl.Bytes)
	in := spec.RSSHashInput{EnabledInputSort: spec.RSSDefaultInputSort}
	return d.setFeature("set RSS hash inputs", spec.FeatRSSHashInput, 0, d.ctrlBuf(spec.RSSHashControlSize), in.Encode)
}

// setRSSTable fills the indirection table with the Rx SQ indexes (§10: the
// field named cq_idx holds the Rx sq_idx) (§6 step 29): round-robin over
// the queues, or the table SetRSSTable chose if it still fits.
func (d *Device) setRSSTable() error {
	active := d.activeQueues()
	if !d.rssSupported() || len(active) == 0 {
		return nil
	}
	d.ctrlMu.Lock()
	defer d.ctrlMu.Unlock()
	n := 1 << d.rssLog
	table := d.rss.table
	if len(table) != n {
		table = nil
	}
	for i := range n {
		q := i % len(active)
		if table != nil && table[i] < len(active) {
			q = table[i]
		}
		e := spec.RSSIndEntry{CQIdx: active[q].rxSQIdx}
		e.Encode(d.ctrl.Bytes[i*spec.RSSIndEntrySize:])
	}
	t := spec.RSSIndirectionTable{Size: uint16(d.rssLog), InlineIndex: spec.RSSIndTableNoInlineIndex}
	return d.setFeature("set RSS indirection table", spec.FeatRSSIndirectionTableConfig, spec.RSSIndirectionTableVersion, d.ctrlBuf(n*spec.RSSIndEntrySize), t.Encode)
}
