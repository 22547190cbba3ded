package control

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/enanet/enanet/ena"
)

// OpSet changes settings of the running device (enactl set): channels,
// ring sizes, Rx buffer size, RSS and interrupt moderation, through the
// ena.Device setters, in the order the fields are listed. The request
// carries {"set":{…}}; the answer {"set_result":{"applied":[…]}}. The
// first refused setting stops the request; the ones before it stay.
const OpSet = "set"

// Settings are the changes one set request asks for; a nil or empty field
// is left alone.
type Settings struct {
	Channels  *int `json:"channels,omitempty"`
	TxDepth   *int `json:"tx_depth,omitempty"`
	RxDepth   *int `json:"rx_depth,omitempty"`
	RxBufSize *int `json:"rx_buf_size,omitempty"` // 2048, 4096, 9216; 0 follows the MTU
	// RSSKey is the 40-byte key in hex.
	RSSKey      string `json:"rss_key,omitempty"`
	RSSFunction string `json:"rss_function,omitempty"` // "toeplitz" or "crc32"
	// RSSTable is the whole indirection table (queue per entry);
	// RSSEntries are [index, queue] pairs.
	RSSTable   []int    `json:"rss_table,omitempty"`
	RSSEntries [][2]int `json:"rss_entries,omitempty"`
	// Interrupt moderation; one left out keeps its current setting.
	RxUsecs  *int  `json:"rx_usecs,omitempty"`
	TxUsecs  *int  `json:"tx_usecs,omitempty"`
	Adaptive *bool `json:"adaptive_rx,omitempty"`
}

// SetResult lists what a set request changed.
type SetResult struct {
	Applied []string `json:"applied"`
}

// applySettings runs s's changes on dev in order.
func applySettings(dev *ena.Device, s *Settings) (SetResult, error) {
	var r SetResult
	if s == nil {
		return r, fmt.Errorf(`set needs settings: {"version":1,"op":"set","set":{"channels":2}}`)
	}
	step := func(name string, f func() error) error {
		if err := f(); err != nil {
			if len(r.Applied) > 0 {
				return fmt.Errorf("%s: %w (already applied: %s)", name, err, strings.Join(r.Applied, ", "))
			}
			return fmt.Errorf("%s: %w", name, err)
		}
		r.Applied = append(r.Applied, name)
		return nil
	}
	var steps []struct {
		name string
		f    func() error
	}
	add := func(name string, f func() error) {
		steps = append(steps, struct {
			name string
			f    func() error
		}{name, f})
	}
	if s.Channels != nil {
		add("channels", func() error { return dev.SetChannels(*s.Channels) })
	}
	if s.TxDepth != nil || s.RxDepth != nil {
		tx, rx := 0, 0
		if s.TxDepth != nil {
			tx = *s.TxDepth
		}
		if s.RxDepth != nil {
			rx = *s.RxDepth
		}
		if tx == 0 && rx == 0 {
			return r, fmt.Errorf("rings: ring sizes must be powers of two, not 0")
		}
		add("rings", func() error { return dev.SetRings(tx, rx) })
	}
	if s.RxBufSize != nil {
		add("rx_buf_size", func() error { return dev.SetRxBufSize(*s.RxBufSize) })
	}
	if s.RSSKey != "" {
		add("rss_key", func() error {
			k, err := ParseRSSKey(s.RSSKey)
			if err != nil {
				return err
			}
			return dev.SetRSSKey(k)
		})
	}
	if s.RSSFunction != "" {
		add("rss_function", func() error {
			switch strings.ToLower(s.RSSFunction) {
			case "toeplitz":
				return dev.SetRSSFunction(ena.RSSToeplitz)
			case "crc32":
				return dev.SetRSSFunction(ena.RSSCRC32)
			}
			return fmt.Errorf("unknown hash function %q (want toeplitz or crc32)", s.RSSFunction)
		})
	}
	if len(s.RSSTable) > 0 {
		add("rss_table", func() error { return dev.SetRSSTable(s.RSSTable) })
	}
	if len(s.RSSEntries) > 0 {
		add("rss_entries", func() error {
			m := make(map[int]int, len(s.RSSEntries))
			for _, e := range s.RSSEntries {
				m[e[0]] = e[1]
			}
			return dev.SetRSSEntries(m)
		})
	}
	if s.RxUsecs != nil || s.TxUsecs != nil || s.Adaptive != nil {
		// As ethtool -C: what the request leaves out keeps its setting.
		cur := dev.Coalesce()
		c := cur.Coalesce
		for _, u := range []struct {
			name string
			v    *int
		}{{"rx_usecs", s.RxUsecs}, {"tx_usecs", s.TxUsecs}} {
			if u.v == nil {
				continue
			}
			if *u.v < 0 {
				return r, fmt.Errorf("coalesce: %s %d: want 0 (off) or more microseconds", u.name, *u.v)
			}
			if max := cur.MaxDelay; cur.Supported && max > 0 && time.Duration(*u.v)*time.Microsecond > max {
				return r, fmt.Errorf("coalesce: %s %d: the device's maximum is %d µs", u.name, *u.v, max/time.Microsecond)
			}
		}
		if s.RxUsecs != nil {
			c.RxDelay = time.Duration(*s.RxUsecs) * time.Microsecond
		}
		if s.TxUsecs != nil {
			c.TxDelay = time.Duration(*s.TxUsecs) * time.Microsecond
		}
		if s.Adaptive != nil {
			c.Adaptive = *s.Adaptive
		}
		add("coalesce", func() error { return dev.SetCoalesce(c) })
	}
	if len(steps) == 0 {
		return r, fmt.Errorf(`set: nothing to change: give at least one setting, e.g. {"channels":2}`)
	}
	for _, st := range steps {
		if err := step(st.name, st.f); err != nil {
			return r, err
		}
	}
	return r, nil
}

// Set asks the server to change the device's settings.
func (c *Client) Set(ctx context.Context, s Settings) (SetResult, error) {
	r, err := c.do(ctx, Request{Version: Version, Op: OpSet, Set: &s})
	if err != nil {
		return SetResult{}, err
	}
	if r.Set == nil {
		return SetResult{}, fmt.Errorf("%s answered set without a result", c.path)
	}
	return *r.Set, nil
}

// ParseRSSKey reads an RSS key written as hex digits, colons allowed
// between them (ethtool -X hkey's form). The length is the device's to
// judge (40 bytes on ENA).
func ParseRSSKey(s string) ([]byte, error) {
	digits := strings.ReplaceAll(s, ":", "")
	k, err := hex.DecodeString(digits)
	if err != nil {
		return nil, fmt.Errorf("the key %s: want 80 hex digits (0-9, a-f; colons allowed)", badHex(digits))
	}
	return k, nil
}

// badHex names the first character of digits that is not a hex digit, or
// says the count is odd.
func badHex(digits string) string {
	for i, c := range digits {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return fmt.Sprintf("has %q at position %d, not a hex digit", c, i+1)
		}
	}
	return fmt.Sprintf("has %d hex digits, an odd count", len(digits))
}
