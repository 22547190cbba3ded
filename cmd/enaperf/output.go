package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// lineWriter writes enaperf's output: every line prefixed with -T's
// title and --timestamps' time, as iperf3 does, and written through at
// once (so --forceflush holds by construction).
type lineWriter struct {
	mu    sync.Mutex
	w     io.Writer
	title string
	stamp string // strftime format, "" for none
	atBOL bool
	now   func() time.Time
}

func newLineWriter(w io.Writer, title, stamp string) *lineWriter {
	if title != "" {
		title += ":  "
	}
	return &lineWriter{w: w, title: title, stamp: stamp, atBOL: true, now: time.Now}
}

// Write prefixes each line that begins in p.
func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.title == "" && l.stamp == "" {
		return l.w.Write(p)
	}
	n := len(p)
	var b bytes.Buffer
	for len(p) > 0 {
		if l.atBOL {
			if l.stamp != "" {
				b.WriteString(strftime(l.stamp, l.now()))
			}
			b.WriteString(l.title)
			l.atBOL = false
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			b.Write(p)
			break
		}
		b.Write(p[:i+1])
		p = p[i+1:]
		l.atBOL = true
	}
	_, err := l.w.Write(b.Bytes())
	return n, err
}

// raw writes without prefixes (JSON documents, the server's output).
func (l *lineWriter) raw(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	io.WriteString(l.w, s)
}

// strftime formats t with the C strftime directives iperf3's
// --timestamps users write; an unknown directive is printed as is.
func strftime(f string, t time.Time) string {
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		if f[i] != '%' || i+1 == len(f) {
			b.WriteByte(f[i])
			continue
		}
		i++
		switch f[i] {
		case 'c':
			b.WriteString(t.Format("Mon Jan _2 15:04:05 2006"))
		case 'Y':
			fmt.Fprintf(&b, "%04d", t.Year())
		case 'y':
			fmt.Fprintf(&b, "%02d", t.Year()%100)
		case 'm':
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case 'd':
			fmt.Fprintf(&b, "%02d", t.Day())
		case 'e':
			fmt.Fprintf(&b, "%2d", t.Day())
		case 'H':
			fmt.Fprintf(&b, "%02d", t.Hour())
		case 'M':
			fmt.Fprintf(&b, "%02d", t.Minute())
		case 'S':
			fmt.Fprintf(&b, "%02d", t.Second())
		case 'T':
			b.WriteString(t.Format("15:04:05"))
		case 'F':
			b.WriteString(t.Format("2006-01-02"))
		case 'D':
			b.WriteString(t.Format("01/02/06"))
		case 'a':
			b.WriteString(t.Format("Mon"))
		case 'A':
			b.WriteString(t.Format("Monday"))
		case 'b', 'h':
			b.WriteString(t.Format("Jan"))
		case 'B':
			b.WriteString(t.Format("January"))
		case 'j':
			fmt.Fprintf(&b, "%03d", t.YearDay())
		case 's':
			fmt.Fprintf(&b, "%d", t.Unix())
		case 'Z':
			b.WriteString(t.Format("MST"))
		case 'z':
			b.WriteString(t.Format("-0700"))
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(f[i])
		}
	}
	return b.String()
}
