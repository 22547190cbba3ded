package ena

import (
	"errors"
	"fmt"

	"github.com/enanet/enanet/ena/spec"
)

// Live RSS changes (§10), what `ethtool -X` and FreeBSD's rss.key and
// rss.indir_table sysctls do: each is one or two SET_FEATURE commands on
// the running device, no rebuild. The settings are kept here so every
// later bring-up (recovery, ring changes) programs them again.

// RSS hash functions the device may offer (§4.8 RSS_HASH_FUNCTION).
const (
	RSSToeplitz = spec.HashToeplitz
	RSSCRC32    = spec.HashCRC32
)

// RSSConfig is the RSS configuration in use.
type RSSConfig struct {
	// Function is the hash function; SupportedFunctions lists what the
	// device offers.
	Function           spec.HashFunction
	SupportedFunctions []spec.HashFunction
	// Key is the 40-byte hash key.
	Key []byte
	// Table is the indirection table: the queue pair each entry sends
	// its flows to.
	Table []int
	// Fields are the hash inputs per protocol (index spec.RSSTCP4 ...;
	// bits spec.RSSFieldL3SA ...), and SupportedFields what the device can
	// hash.
	Fields, SupportedFields [spec.RSSProtoNum]uint16
}

// rssSettings are what the user chose; written under resetMu, read by the
// bring-up steps.
type rssSettings struct {
	fn        spec.HashFunction // 0: Toeplitz
	fields    [spec.RSSProtoNum]uint16
	fieldsSet bool
	table     []int // queue per entry; nil: round-robin
	// What the device offers, from the last setupRSS.
	supportedFuncs  uint32
	supportedFields [spec.RSSProtoNum]uint16
}

func (r *rssSettings) function() spec.HashFunction {
	if r.fn == 0 {
		return spec.HashToeplitz
	}
	return r.fn
}

func (r *rssSettings) hashFields() [spec.RSSProtoNum]uint16 {
	if r.fieldsSet {
		return r.fields
	}
	return spec.DefaultRSSHashFields()
}

// ErrNoRSS is returned by the RSS setters when the device does not offer
// the RSS features.
var ErrNoRSS = errors.New("ena: the device does not support RSS configuration")

// RSS returns the RSS configuration the driver last programmed.
func (d *Device) RSS() (RSSConfig, error) {
	d.resetMu.Lock()
	defer d.resetMu.Unlock()
	if !d.rssSupported() {
		return RSSConfig{}, ErrNoRSS
	}
	c := RSSConfig{
		Function:        d.rss.function(),
		Key:             append([]byte(nil), d.rssKey[:]...),
		Fields:          d.rss.hashFields(),
		SupportedFields: d.rss.supportedFields,
	}
	for f := spec.HashFunction(0); f < 8; f++ {
		if d.rss.supportedFuncs&f.Bit() != 0 {
			c.SupportedFunctions = append(c.SupportedFunctions, f)
		}
	}
	c.Table = d.currentTable()
	return c, nil
}

// currentTable is the table setRSSTable programs; resetMu held.
func (d *Device) currentTable() []int {
	n := 1 << d.rssLog
	if len(d.rss.table) == n {
		return append([]int(nil), d.rss.table...)
	}
	t := make([]int, n)
	for i := range t {
		t[i] = i % max(len(d.activeQueues()), 1)
	}
	return t
}

// SetRSSKey programs a new 40-byte hash key.
func (d *Device) SetRSSKey(key []byte) error {
	if len(key) != spec.RSSKeySize {
		return fmt.Errorf("ena: RSS key is %d bytes, the device takes exactly %d", len(key), spec.RSSKeySize)
	}
	return d.changeRSS("key", func() {
		copy(d.rssKey[:], key)
	}, d.setupRSS)
}

// SetRSSFunction selects the hash function (RSSToeplitz or RSSCRC32); the
// device must offer it.
func (d *Device) SetRSSFunction(fn spec.HashFunction) error {
	if fn != RSSToeplitz && fn != RSSCRC32 {
		return fmt.Errorf("ena: unknown RSS hash function %d (want toeplitz or crc32)", fn)
	}
	return d.changeRSS("hash function", func() { d.rss.fn = fn }, d.setupRSS)
}

// SetRSSFields selects the hash inputs for one protocol (spec.RSSTCP4 ...)
// as a mask of spec.RSSField* bits; the device must support them.
func (d *Device) SetRSSFields(proto spec.RSSProto, fields uint16) error {
	if proto >= spec.RSSProtoNum {
		return fmt.Errorf("ena: RSS protocol index %d is outside 0..%d", proto, spec.RSSProtoNum-1)
	}
	if fields&^0x3F != 0 {
		return fmt.Errorf("ena: RSS hash fields 0x%x name bits beyond L2/L3/L4 source and destination (0x3f)", fields)
	}
	return d.changeRSS("hash fields", func() {
		d.rss.fields = d.rss.hashFields()
		d.rss.fieldsSet = true
		d.rss.fields[proto] = fields
	}, d.setupRSS)
}

// SetRSSTable replaces the whole indirection table: queues[i] is the queue
// pair entry i sends to. Its length must be the table size (RSS().Table).
func (d *Device) SetRSSTable(queues []int) error {
	return d.setRSSEntries(func(size int) ([]int, error) {
		if len(queues) != size {
			return nil, fmt.Errorf("ena: RSS table has %d entries, the device's table has %d", len(queues), size)
		}
		return append([]int(nil), queues...), nil
	})
}

// SetRSSEntries changes single indirection-table entries: entries maps
// an entry index to a queue pair, as `ethtool -X` index:queue pairs.
func (d *Device) SetRSSEntries(entries map[int]int) error {
	return d.setRSSEntries(func(int) ([]int, error) {
		t := d.currentTable()
		for i, q := range entries {
			if i < 0 || i >= len(t) {
				return nil, fmt.Errorf("ena: RSS table entry %d is outside 0..%d", i, len(t)-1)
			}
			t[i] = q
		}
		return t, nil
	})
}

func (d *Device) setRSSEntries(build func(size int) ([]int, error)) error {
	var table []int
	var err error
	prepare := func() error {
		table, err = build(1 << d.rssLog)
		if err != nil {
			return err
		}
		for i, q := range table {
			if n := len(d.activeQueues()); q < 0 || q >= n {
				return fmt.Errorf("ena: RSS table entry %d names queue %d; the device has queues 0..%d", i, q, n-1)
			}
		}
		return nil
	}
	return d.changeRSSChecked("indirection table", prepare, func() { d.rss.table = table }, d.setRSSTable)
}

func (d *Device) changeRSS(what string, set func(), program func() error) error {
	return d.changeRSSChecked(what, func() error { return nil }, set, program)
}

// changeRSSChecked validates under resetMu, applies set, and programs the
// device; if the device refuses, the previous settings are restored and
// programmed again, so a refused change changes nothing.
func (d *Device) changeRSSChecked(what string, check func() error, set func(), program func() error) error {
	d.resetMu.Lock()
	defer d.resetMu.Unlock()
	if !d.rssSupported() {
		return ErrNoRSS
	}
	if d.state.Load() != stateRunning {
		return (&QueuePair{d: d}).stateErr()
	}
	if err := check(); err != nil {
		return err
	}
	oldRSS, oldKey := d.rss, d.rssKey
	oldRSS.table = append([]int(nil), d.rss.table...)
	if d.rss.table == nil {
		oldRSS.table = nil
	}
	set()
	if err := program(); err != nil {
		d.rss, d.rssKey = oldRSS, oldKey
		if rerr := program(); rerr != nil {
			d.log.Warn("ena: restoring the previous RSS settings failed", "err", rerr)
		}
		return fmt.Errorf("ena: set RSS %s: %w", what, err)
	}
	d.log.Info("ena: RSS changed", "what", what)
	return nil
}
