//go:build linux

package enasim

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Linux TUN/TAP constants (linux/if_tun.h, linux/sockios.h, linux/if.h).
// The ioctl numbers are the generic-encoding values shared by amd64 and
// arm64.
const (
	tunSetIff   = 0x400454ca // TUNSETIFF = _IOW('T', 202, int)
	iffTap      = 0x0002     // IFF_TAP: Ethernet frames
	iffNoPI     = 0x1000     // IFF_NO_PI: no packet-information prefix
	siocGIFFlag = 0x8913     // SIOCGIFFLAGS
	siocSIFFlag = 0x8914     // SIOCSIFFLAGS
	iffUp       = 0x1        // IFF_UP
	ifNameSize  = 16         // IFNAMSIZ
)

// ifreqFlags is struct ifreq with the flags member of the union; the kernel
// copies 40 bytes on amd64 and arm64.
type ifreqFlags struct {
	name  [ifNameSize]byte
	flags uint16
	_     [22]byte
}

// tapWire connects a device to a Linux TAP interface, so the host kernel
// is the peer: frames the device sends appear on the interface, frames the
// kernel sends there are received by the device.
type tapWire struct {
	f    *os.File
	name string
	rx   receiverSlot

	closeOnce sync.Once
	done      chan struct{}
}

// NewTAP creates (or attaches to) the TAP interface name ("" lets the
// kernel pick, e.g. "tap0"), opened with IFF_TAP|IFF_NO_PI so each read or
// write is exactly one Ethernet frame, and sets it administratively up. It
// needs CAP_NET_ADMIN (root). A reader goroutine owned by the wire delivers
// frames to the receiver; Close stops it and removes a non-persistent
// interface.
func NewTAP(name string) (Wire, error) {
	if len(name) >= ifNameSize {
		return nil, fmt.Errorf("enasim: TAP %q: name longer than %d bytes", name, ifNameSize-1)
	}
	fd, err := syscall.Open("/dev/net/tun", syscall.O_RDWR|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("enasim: TAP %q: open /dev/net/tun: %w", name, err)
	}
	var req ifreqFlags
	copy(req.name[:], name)
	req.flags = iffTap | iffNoPI
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), tunSetIff, uintptr(unsafe.Pointer(&req))); errno != 0 {
		syscall.Close(fd)
		return nil, fmt.Errorf("enasim: TAP %q: TUNSETIFF: %w (needs root / CAP_NET_ADMIN)", name, errno)
	}
	n := 0
	for n < ifNameSize && req.name[n] != 0 {
		n++
	}
	ifname := string(req.name[:n])
	if err := setLinkUp(ifname); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("enasim: TAP %s: %w", ifname, err)
	}
	// A non-blocking descriptor given to os.NewFile joins the runtime
	// poller, so Close unblocks the reader goroutine's Read.
	f := os.NewFile(uintptr(fd), "/dev/net/tun")
	w := &tapWire{f: f, name: ifname, done: make(chan struct{})}
	goModel(w.readLoop)
	return w, nil
}

// setLinkUp sets IFF_UP on the interface through an AF_INET socket ioctl.
func setLinkUp(ifname string) error {
	s, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for SIOCSIFFLAGS: %w", err)
	}
	defer syscall.Close(s)
	var req ifreqFlags
	copy(req.name[:], ifname)
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(s), siocGIFFlag, uintptr(unsafe.Pointer(&req))); errno != 0 {
		return fmt.Errorf("SIOCGIFFLAGS: %w", errno)
	}
	req.flags |= iffUp
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(s), siocSIFFlag, uintptr(unsafe.Pointer(&req))); errno != 0 {
		return fmt.Errorf("SIOCSIFFLAGS: %w", errno)
	}
	return nil
}

// Name is the kernel's name for the interface.
func (w *tapWire) Name() string { return w.name }

func (w *tapWire) readLoop() {
	defer close(w.done)
	buf := make([]byte, udpMaxFrame)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			// EAGAIN cannot reach here (the poller waits); other errors
			// (e.g. the interface going down) end the loop.
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return
		}
		w.rx.deliver(buf[:n])
	}
}

// Send writes one frame to the interface; errors (interface down, frame
// too large) drop the frame like a real cable would.
func (w *tapWire) Send(frame []byte) { _, _ = w.f.Write(frame) }

func (w *tapWire) SetReceiver(fn func([]byte)) { w.rx.set(fn) }

// Close closes the TAP descriptor (the kernel removes a non-persistent
// interface) and waits for the reader goroutine.
func (w *tapWire) Close() error {
	var err error
	w.closeOnce.Do(func() {
		err = w.f.Close()
		<-w.done
		w.rx.set(nil)
	})
	return err
}
