package bench

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
)

// This file decodes the subset of the pprof profile format (profile.proto,
// gzip-compressed protocol buffers) that attribution needs: each sample's
// value, its goroutine labels and its call stack as function names, leaf
// first with inlined frames expanded. The module keeps no pprof dependency
// for this; the format is small and stable.

// profSample is one decoded sample.
type profSample struct {
	Count  int64             // the first value (samples, for a CPU profile)
	Labels map[string]string // pprof string labels of the goroutine
	Stack  []string          // function names, leaf first
}

// profile field numbers (profile.proto).
const (
	fProfileSample   = 2
	fProfileLocation = 4
	fProfileFunction = 5
	fProfileStrings  = 6

	fSampleLocation = 1
	fSampleValue    = 2
	fSampleLabel    = 3

	fLabelKey = 1
	fLabelStr = 2

	fLocationID   = 1
	fLocationLine = 4
	fLineFunction = 1

	fFunctionID   = 1
	fFunctionName = 2
)

// decodeProfile parses a (possibly gzip-compressed) pprof profile.
func decodeProfile(data []byte) ([]profSample, error) {
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("bench: profile: %w", err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("bench: profile: %w", err)
		}
	}
	type rawSample struct {
		locs   []uint64
		values []uint64
		labels [][2]uint64 // key, str string indexes
	}
	var (
		strs    []string
		samples []rawSample
		locs    = map[uint64][]uint64{} // location id -> function ids, innermost first
		funcs   = map[uint64]uint64{}   // function id -> name string index
	)
	err := forFields(data, func(num int, v uint64, b []byte) error {
		switch num {
		case fProfileStrings:
			strs = append(strs, string(b))
		case fProfileSample:
			var s rawSample
			err := forFields(b, func(num int, v uint64, b []byte) error {
				switch num {
				case fSampleLocation:
					s.locs = appendPacked(s.locs, v, b)
				case fSampleValue:
					s.values = appendPacked(s.values, v, b)
				case fSampleLabel:
					var kv [2]uint64
					if err := forFields(b, func(num int, v uint64, _ []byte) error {
						switch num {
						case fLabelKey:
							kv[0] = v
						case fLabelStr:
							kv[1] = v
						}
						return nil
					}); err != nil {
						return err
					}
					s.labels = append(s.labels, kv)
				}
				return nil
			})
			samples = append(samples, s)
			return err
		case fProfileLocation:
			var id uint64
			var fns []uint64
			err := forFields(b, func(num int, v uint64, b []byte) error {
				switch num {
				case fLocationID:
					id = v
				case fLocationLine:
					return forFields(b, func(num int, v uint64, _ []byte) error {
						if num == fLineFunction {
							fns = append(fns, v)
						}
						return nil
					})
				}
				return nil
			})
			locs[id] = fns
			return err
		case fProfileFunction:
			var id, name uint64
			err := forFields(b, func(num int, v uint64, _ []byte) error {
				switch num {
				case fFunctionID:
					id = v
				case fFunctionName:
					name = v
				}
				return nil
			})
			funcs[id] = name
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	str := func(i uint64) string {
		if i < uint64(len(strs)) {
			return strs[i]
		}
		return ""
	}
	out := make([]profSample, 0, len(samples))
	for _, s := range samples {
		ps := profSample{}
		if len(s.values) > 0 {
			ps.Count = int64(s.values[0])
		}
		for _, kv := range s.labels {
			if ps.Labels == nil {
				ps.Labels = map[string]string{}
			}
			ps.Labels[str(kv[0])] = str(kv[1])
		}
		for _, l := range s.locs {
			for _, f := range locs[l] {
				ps.Stack = append(ps.Stack, str(funcs[f]))
			}
		}
		out = append(out, ps)
	}
	return out, nil
}

// appendPacked appends a repeated varint field, packed (b) or not (v).
func appendPacked(dst []uint64, v uint64, b []byte) []uint64 {
	if b == nil {
		return append(dst, v)
	}
	for len(b) > 0 {
		x, n := uvarint(b)
		if n <= 0 {
			return dst
		}
		dst = append(dst, x)
		b = b[n:]
	}
	return dst
}

var errProfile = errors.New("bench: profile: malformed protocol buffer")

// forFields calls fn for every field of the message in b: varints and
// fixed-size values in v, length-delimited ones in b (nil otherwise).
func forFields(b []byte, fn func(num int, v uint64, b []byte) error) error {
	for len(b) > 0 {
		key, n := uvarint(b)
		if n <= 0 {
			return errProfile
		}
		b = b[n:]
		num, typ := int(key>>3), key&7
		var v uint64
		var body []byte
		switch typ {
		case 0:
			v, n = uvarint(b)
			if n <= 0 {
				return errProfile
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return errProfile
			}
			for i := 7; i >= 0; i-- {
				v = v<<8 | uint64(b[i])
			}
			b = b[8:]
		case 2:
			l, n := uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return errProfile
			}
			body = b[n : n+int(l)]
			if body == nil {
				body = []byte{}
			}
			b = b[n+int(l):]
		case 5:
			if len(b) < 4 {
				return errProfile
			}
			v = uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24
			b = b[4:]
		default:
			return errProfile
		}
		if err := fn(num, v, body); err != nil {
			return err
		}
	}
	return nil
}

// uvarint decodes a protocol-buffer varint; n <= 0 on error.
func uvarint(b []byte) (uint64, int) {
	var x uint64
	for i := 0; i < len(b) && i < 10; i++ {
		x |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return x, i + 1
		}
	}
	return 0, -1
}
