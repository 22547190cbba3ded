package qemurig

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// mpqemu commands (QEMU 7.2 include/hw/remote/mpqemu-link.h, enum MPQemuCmd;
// the numbering is QEMU's).
const (
	cmdSyncSysmem  = 0
	cmdRet         = 1
	cmdCfgWrite    = 2
	cmdCfgRead     = 3
	cmdBarWrite    = 4
	cmdBarRead     = 5
	cmdSetIRQFD    = 6
	cmdDeviceReset = 7
)

// Wire sizes (QEMU 7.2 mpqemu-link.h, checked with gcc on x86_64).
const (
	msgHdrSize     = 16  // int32 cmd, 4 pad, uint64 size
	maxPayload     = 192 // the data union
	maxFDs         = 8   // REMOTE_MAX_FDS
	syncSysmemSize = 192 // u64 gpas[8], u64 sizes[8], i64 offsets[8]
)

// message is one mpqemu message as read from the socket.
type message struct {
	cmd     uint32
	payload []byte // len == header size field
	fds     []int
}

var errPeerClosed = errors.New("qemurig: QEMU closed the proxy socket")

// conn is the remote's end of the proxy socket. Reads happen on one goroutine
// (the serve loop); replies are written from the same goroutine, strictly in
// order, because the protocol has no request ids.
type conn struct {
	f   *os.File
	fd  int
	buf [msgHdrSize + maxPayload]byte
	oob []byte
}

func newConn(f *os.File) *conn {
	return &conn{f: f, fd: int(f.Fd()), oob: make([]byte, unix.CmsgSpace(maxFDs*4))}
}

// read returns the next message. The header and payload arrive with one
// sendmsg on QEMU's side, with any fds attached to it; a stream socket may
// still split them, so read the header (with ancillary data) and then the rest.
func (c *conn) read() (message, error) {
	var m message
	hdr := c.buf[:msgHdrSize]
	n, oobn, _, _, err := unix.Recvmsg(c.fd, hdr, c.oob, unix.MSG_CMSG_CLOEXEC)
	if err == unix.ECONNRESET {
		return m, errPeerClosed // QEMU was killed: the end of the session
	}
	if err != nil {
		return m, fmt.Errorf("qemurig: read message header: %w", err)
	}
	if n == 0 {
		return m, errPeerClosed
	}
	if oobn > 0 {
		fds, err := parseRights(c.oob[:oobn])
		if err != nil {
			return m, err
		}
		m.fds = fds
	}
	if err := c.readFull(hdr[n:]); err != nil {
		closeFDs(m.fds)
		return m, err
	}
	m.cmd = binary.LittleEndian.Uint32(hdr[0:4])
	size := binary.LittleEndian.Uint64(hdr[8:16])
	if size > maxPayload {
		closeFDs(m.fds)
		return m, fmt.Errorf("qemurig: message %d has payload size %d, more than %d", m.cmd, size, maxPayload)
	}
	m.payload = c.buf[msgHdrSize : msgHdrSize+int(size)]
	if err := c.readFull(m.payload); err != nil {
		closeFDs(m.fds)
		return m, err
	}
	return m, nil
}

func (c *conn) readFull(b []byte) error {
	for len(b) > 0 {
		n, err := unix.Read(c.fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("qemurig: read message: %w", err)
		}
		if n == 0 {
			return errPeerClosed
		}
		b = b[n:]
	}
	return nil
}

// reply sends MPQEMU_CMD_RET carrying val.
func (c *conn) reply(val uint64) error {
	var out [msgHdrSize + 8]byte
	binary.LittleEndian.PutUint32(out[0:4], cmdRet)
	binary.LittleEndian.PutUint64(out[8:16], 8)
	binary.LittleEndian.PutUint64(out[16:24], val)
	b := out[:]
	for len(b) > 0 {
		n, err := unix.Write(c.fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("qemurig: send reply: %w", err)
		}
		b = b[n:]
	}
	return nil
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("qemurig: parse control message: %w", err)
	}
	var fds []int
	for _, cm := range msgs {
		r, err := unix.ParseUnixRights(&cm)
		if err != nil {
			continue
		}
		fds = append(fds, r...)
	}
	if len(fds) > maxFDs {
		closeFDs(fds)
		return nil, fmt.Errorf("qemurig: %d fds in one message, at most %d allowed", len(fds), maxFDs)
	}
	return fds, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
