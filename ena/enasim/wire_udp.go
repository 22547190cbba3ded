package enasim

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
)

// udpMaxFrame is the largest frame a UDP wire carries: one Ethernet frame
// per datagram, and a jumbo frame (9216 MTU + headers) fits easily in the
// 65507-byte UDP payload limit.
const udpMaxFrame = 65535

// udpWire carries one Ethernet frame per UDP datagram between two sockets,
// so two simulated devices in different processes can talk without root
// (no TAP device, no network namespace).
type udpWire struct {
	conn *net.UDPConn
	rx   receiverSlot

	sent, sendErrs, received atomic.Uint64

	closeOnce sync.Once
	done      chan struct{} // closed when the reader goroutine has exited
}

// NewUDP binds laddr and sends every frame as one datagram to raddr
// (both "host:port", normally on 127.0.0.1). Datagrams from any address
// other than raddr are ignored, since the socket is connected. Frames
// sent before the peer's socket exists are lost, as on an unplugged cable.
// A reader goroutine delivers received frames; Close stops it.
func NewUDP(laddr, raddr string) (Wire, error) {
	la, err := net.ResolveUDPAddr("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("enasim: UDP wire: local address %q: %w", laddr, err)
	}
	ra, err := net.ResolveUDPAddr("udp", raddr)
	if err != nil {
		return nil, fmt.Errorf("enasim: UDP wire: remote address %q: %w", raddr, err)
	}
	conn, err := net.DialUDP("udp", la, ra)
	if err != nil {
		return nil, fmt.Errorf("enasim: UDP wire %s -> %s: %w", laddr, raddr, err)
	}
	w := &udpWire{conn: conn, done: make(chan struct{})}
	goModel(w.readLoop)
	return w, nil
}

// LocalAddr is the bound address (useful with port 0).
func (w *udpWire) LocalAddr() net.Addr { return w.conn.LocalAddr() }

func (w *udpWire) readLoop() {
	defer close(w.done)
	buf := make([]byte, udpMaxFrame)
	for {
		n, err := w.conn.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ECONNREFUSED from an earlier send to a peer that is not up
			// yet surfaces on Read of a connected socket; keep reading.
			continue
		}
		w.received.Add(1)
		w.rx.deliver(buf[:n])
	}
}

func (w *udpWire) Send(frame []byte) {
	if _, err := w.conn.Write(frame); err != nil {
		w.sendErrs.Add(1)
		return
	}
	w.sent.Add(1)
}

func (w *udpWire) SetReceiver(fn func([]byte)) { w.rx.set(fn) }

// Close closes the socket and waits for the reader goroutine to exit.
func (w *udpWire) Close() error {
	var err error
	w.closeOnce.Do(func() {
		err = w.conn.Close()
		<-w.done
		w.rx.set(nil)
	})
	return err
}
