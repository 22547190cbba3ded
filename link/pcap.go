package link

import (
	"encoding/binary"
	"io"
	"sync"
	"time"
)

// pcapWriter writes the classic libpcap format (magic 0xa1b2c3d4, version
// 2.4, microsecond timestamps, LINKTYPE_ETHERNET), which tcpdump, tshark
// and Wireshark all read. Frames are captured where they meet the device, so
// the file shows exactly what crossed the wire, seeded Tx checksums included.
type pcapWriter struct {
	mu      sync.Mutex
	w       io.Writer
	snap    int
	buf     []byte
	failed  bool
	nowFunc func() time.Time
}

const (
	pcapMagic        = 0xa1b2c3d4
	pcapLinkEthernet = 1
)

func newPcapWriter(w io.Writer, snap int) (*pcapWriter, error) {
	if snap <= 0 || snap > 65535 {
		snap = 65535
	}
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], pcapMagic)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	// thiszone and sigfigs stay 0.
	binary.LittleEndian.PutUint32(h[16:], uint32(snap))
	binary.LittleEndian.PutUint32(h[20:], pcapLinkEthernet)
	if _, err := w.Write(h[:]); err != nil {
		return nil, err
	}
	return &pcapWriter{w: w, snap: snap, buf: make([]byte, 0, 16+snap), nowFunc: time.Now}, nil
}

// write records one frame given as segments of total length size.
func (p *pcapWriter) write(segs [][]byte, size int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed {
		return
	}
	p.header(size)
	for _, s := range segs {
		room := 16 + p.snap - len(p.buf)
		if room <= 0 {
			break
		}
		if len(s) > room {
			s = s[:room]
		}
		p.buf = append(p.buf, s...)
	}
	p.flush()
}

// writeFrame records one contiguous frame.
func (p *pcapWriter) writeFrame(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed {
		return
	}
	p.header(len(b))
	if len(b) > p.snap {
		b = b[:p.snap]
	}
	p.buf = append(p.buf, b...)
	p.flush()
}

func (p *pcapWriter) header(size int) {
	now := p.nowFunc()
	incl := size
	if incl > p.snap {
		incl = p.snap
	}
	var h [16]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(now.Unix()))
	binary.LittleEndian.PutUint32(h[4:], uint32(now.Nanosecond()/1000))
	binary.LittleEndian.PutUint32(h[8:], uint32(incl))
	binary.LittleEndian.PutUint32(h[12:], uint32(size))
	p.buf = append(p.buf[:0], h[:]...)
}

func (p *pcapWriter) flush() {
	if _, err := p.w.Write(p.buf); err != nil {
		p.failed = true // stop capturing rather than fail the data path
	}
}
