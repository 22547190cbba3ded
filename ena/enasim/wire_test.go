package enasim

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"github.com/enanet/enanet/internal/testenv"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/enanet/enanet/ena/spec"
)

// waitFrames polls q until n frames arrived or d passed.
func waitFrames(q *rxq, n int, d time.Duration) []rxFrame {
	var got []rxFrame
	deadline := time.Now().Add(d)
	for len(got) < n && time.Now().Before(deadline) {
		got = append(got, q.poll()...)
		if len(got) < n {
			time.Sleep(time.Millisecond)
		}
	}
	return got
}

// TestWirePair links two devices with NewPair and sends both ways.
func TestWirePair(t *testing.T) {
	wa, wb := NewPair()
	a := newIORig(t, Config{Profile: ProfileNitroV3, Wire: wa, MAC: testMACA}, 128)
	b := newIORig(t, Config{Profile: ProfileNoLLQ, Wire: wb, MAC: testMACB}, 0)
	atx, arx := a.createTx(64, true, 1), a.createRx(64, 2048, 1)
	btx, brx := b.createTx(64, false, 1), b.createRx(64, 2048, 1)
	f := tcp4(1, 2, 300)
	atx.send(f, sendOpts{})
	atx.doorbell()
	if got := brx.poll(); len(got) != 1 || !bytes.Equal(got[0].data, f) {
		t.Fatalf("B received %d frames", len(got))
	}
	if got := arx.poll(); len(got) != 0 {
		t.Fatalf("A received its own frame")
	}
	g := tcp4(3, 4, 100)
	btx.send(g, sendOpts{})
	btx.doorbell()
	if got := arx.poll(); len(got) != 1 || !bytes.Equal(got[0].data, g) {
		t.Fatalf("A received %d frames", len(got))
	}
	_ = wa.Close()
	atx.send(f, sendOpts{reqID: 1})
	atx.doorbell()
	if got := brx.poll(); len(got) != 0 {
		t.Fatal("frame crossed a closed pair")
	}
}

// freeUDPPorts returns n currently free loopback UDP ports.
func freeUDPPorts(t testing.TB, n int) []int {
	var ports []int
	var conns []*net.UDPConn
	for range n {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Skipf("no loopback UDP: %v", err)
		}
		conns = append(conns, c)
		ports = append(ports, c.LocalAddr().(*net.UDPAddr).Port)
	}
	for _, c := range conns {
		c.Close()
	}
	return ports
}

// TestWireUDP links two devices in this process through a UDP socket pair.
func TestWireUDP(t *testing.T) {
	p := freeUDPPorts(t, 2)
	la, lb := fmt.Sprintf("127.0.0.1:%d", p[0]), fmt.Sprintf("127.0.0.1:%d", p[1])
	wa, err := NewUDP(la, lb)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wa.Close() })
	wb, err := NewUDP(lb, la)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wb.Close() })
	a := newIORig(t, Config{Profile: ProfileNoLLQ, Wire: wa}, 0)
	b := newIORig(t, Config{Profile: ProfileNoLLQ, Wire: wb}, 0)
	atx := a.createTx(64, false, 1)
	brx := b.createRx(64, 2048, 1)
	big := tcp4(5, 6, 8000)
	a.mustOK(setFeat(spec.FeatMTU, &spec.MTU{MTU: 9000}))
	b.mustOK(setFeat(spec.FeatMTU, &spec.MTU{MTU: 9000}))
	frames := [][]byte{tcp4(1, 2, 10), big}
	for i, f := range frames {
		atx.send(f, sendOpts{reqID: uint16(i), seg: 4096})
	}
	atx.doorbell()
	got := waitFrames(brx, 2, 5*time.Second)
	if len(got) != 2 || !bytes.Equal(got[0].data, frames[0]) || !bytes.Equal(got[1].data, big) {
		t.Fatalf("received %d frames over UDP", len(got))
	}
	if err := wa.Close(); err != nil {
		t.Fatal(err)
	}
	if err := wa.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

// TestWireUDPTwoProcesses runs the peer device in a child process (this
// test binary re-executed) that echoes every frame back.
func TestWireUDPTwoProcesses(t *testing.T) {
	if os.Getenv("ENASIM_UDP_PEER") != "" {
		udpPeer(t)
		return
	}
	if testing.Short() {
		t.Skip("short")
	}
	p := freeUDPPorts(t, 2)
	la, lb := fmt.Sprintf("127.0.0.1:%d", p[0]), fmt.Sprintf("127.0.0.1:%d", p[1])
	cmd := exec.Command(os.Args[0], "-test.run=^TestWireUDPTwoProcesses$", "-test.v")
	cmd.Env = append(os.Environ(), "ENASIM_UDP_PEER=1", "ENASIM_UDP_LOCAL="+lb, "ENASIM_UDP_REMOTE="+la)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	wa, err := NewUDP(la, lb)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wa.Close() })
	a := newIORig(t, Config{Profile: ProfileNoLLQ, Wire: wa}, 0)
	atx, arx := a.createTx(64, false, 1), a.createRx(64, 2048, 1)
	f := tcp4(7, 8, 200)
	var got []rxFrame
	// The peer needs a moment to come up; resend until the echo arrives.
	for i := 0; i < 100 && len(got) == 0; i++ {
		atx.send(f, sendOpts{reqID: uint16(i % 64)})
		atx.doorbell()
		atx.completions()
		got = waitFrames(arx, 1, 100*time.Millisecond)
	}
	if len(got) == 0 || !bytes.Equal(got[0].data, f) {
		t.Fatalf("no echo from the peer process; its output:\n%s", out.String())
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("peer: %v\n%s", err, out.String())
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("peer did not exit\n%s", out.String())
	}
}

// udpPeer is the child side: receive one frame, send it back, exit.
func udpPeer(t *testing.T) {
	w, err := NewUDP(os.Getenv("ENASIM_UDP_LOCAL"), os.Getenv("ENASIM_UDP_REMOTE"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	b := newIORig(t, Config{Profile: ProfileNoLLQ, Wire: w}, 0)
	btx, brx := b.createTx(64, false, 1), b.createRx(64, 2048, 1)
	got := waitFrames(brx, 1, 10*time.Second)
	if len(got) == 0 {
		t.Fatal("peer received nothing")
	}
	btx.send(got[0].data, sendOpts{})
	btx.doorbell()
	time.Sleep(50 * time.Millisecond) // let the datagram leave before Close
}

// TestWireTAP puts a device on a Linux TAP interface with an IPv4 address
// and asks the kernel (the peer) for its MAC with ARP. Needs root.
func TestWireTAP(t *testing.T) {
	testenv.RequireRoot(t) // CAP_NET_ADMIN for the TAP device
	testenv.RequireTool(t, "ip", "apt-get install iproute2")
	w, err := NewTAP("enasimtap0")
	if err != nil {
		testenv.Missing(t, "a TAP device (/dev/net/tun): %v", err)
	}
	t.Cleanup(func() { w.Close() })
	if out, err := exec.Command("ip", "addr", "add", "10.213.77.1/24", "dev", "enasimtap0").CombinedOutput(); err != nil {
		t.Fatalf("cannot address the TAP interface: %v: %s", err, out)
	}
	r := newIORig(t, Config{Profile: ProfileNitroV3, Wire: w, MAC: testMACA}, 0)
	tx, rx := r.createTx(64, false, 1), r.createRx(64, 2048, 1)
	// ARP request: who has 10.213.77.1? tell 10.213.77.2 (RFC 826).
	arp := make([]byte, 42)
	copy(arp[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(arp[6:12], testMACA[:])
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	binary.BigEndian.PutUint16(arp[14:], 1)      // Ethernet
	binary.BigEndian.PutUint16(arp[16:], 0x0800) // IPv4
	arp[18], arp[19] = 6, 4
	binary.BigEndian.PutUint16(arp[20:], 1) // request
	copy(arp[22:28], testMACA[:])
	copy(arp[28:32], []byte{10, 213, 77, 2})
	copy(arp[38:42], []byte{10, 213, 77, 1})
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		tx.send(arp, sendOpts{reqID: uint16(i % 64)})
		tx.doorbell()
		tx.completions()
		for _, f := range waitFrames(rx, 1, 200*time.Millisecond) {
			d := f.data
			if len(d) >= 42 && binary.BigEndian.Uint16(d[12:]) == 0x0806 && binary.BigEndian.Uint16(d[20:]) == 2 &&
				bytes.Equal(d[0:6], testMACA[:]) && bytes.Equal(d[28:32], []byte{10, 213, 77, 1}) {
				return // the kernel answered through the TAP
			}
		}
	}
	t.Fatal("no ARP reply from the kernel through the TAP interface")
}

// TestWireLoopbackClosed: a closed loopback drops frames.
func TestWireLoopbackClosed(t *testing.T) {
	w := NewLoopback()
	n := 0
	w.SetReceiver(func([]byte) { n++ })
	w.Send([]byte{1})
	w.Close()
	w.Send([]byte{2})
	if n != 1 {
		t.Fatalf("%d frames delivered, want 1", n)
	}
}
