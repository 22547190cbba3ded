package qemurig

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enanet/enanet/ena/enasim"
)

// dpdkPackages are what dpdk-testpmd (package dpdk-dev) loads: the DPDK
// libraries it links, the ENA and mempool drivers it loads with -d, and the
// libraries those link that a minimal Debian system may lack. Unpacked
// into the cache, never installed.
var dpdkPackages = []string{
	"dpdk-dev", "librte-net-ena23", "librte-mempool-ring23",
	"librte-ethdev23", "librte-eal23", "librte-kvargs23", "librte-telemetry23", "librte-net23",
	"librte-mbuf23", "librte-mempool23", "librte-ring23", "librte-meter23", "librte-cmdline23",
	"librte-crypto-scheduler23", "librte-cryptodev23", "librte-rcu23", "librte-bus-vdev23",
	"librte-reorder23", "librte-bitratestats23", "librte-metrics23", "librte-bpf23", "librte-gro23",
	"librte-gso23", "librte-latencystats23", "librte-pdump23", "librte-pcapng23", "librte-net-bnxt23",
	"librte-bus-pci23", "librte-pci23", "librte-net-i40e23", "librte-hash23", "librte-net-ixgbe23",
	"librte-security23", "librte-bus-dpaa23", "librte-common-dpaax23", "librte-eventdev23",
	"librte-timer23", "librte-mempool-dpaa23", "librte-net-dpaa23", "librte-net-bond23",
	"librte-sched23", "librte-ip-frag23", "librte-net-ice23", "librte-common-iavf23",
	"librte-net-mlx5-23", "librte-common-mlx5-23", "librte-bus-auxiliary23", "librte-dmadev23",
	"libnuma1", "libfdt1", "libjansson4", "libbsd0", "libmd0", "libelf1", "libpcap0.8",
	"ibverbs-providers", "libibverbs1", "libnl-3-200", "libnl-route-3-200",
}

// dpdkScript runs dpdk-testpmd on the ENA three times, one forwarding mode
// and LLQ setting each, until the host types a line on the console to say
// it has checked that mode.
const dpdkScript = `
chmod 755 /
mkdir -p /dev/hugepages && mount -t hugetlbfs none /dev/hugepages
echo vfio-pci > /sys/bus/pci/devices/$BDF/driver_override
echo $BDF > /sys/bus/pci/drivers_probe && echo GUEST-BIND-OK
tp() {
  echo "GUEST-TP-START $1"
  rm -f /tmp/tp.log # the previous run's log says its port is up already
  dpdk-testpmd --lcores '(0,1)@0' --iova-mode=pa --in-memory \
    -d librte_mempool_ring.so.23 -d librte_net_ena.so.23 -a "$BDF$2" -- \
    --forward-mode=$1 --port-topology=loop --total-num-mbufs=2048 --rxd=256 --txd=256 \
    --stats-period=1000 --auto-start 2>&1 | tee /tmp/tp.log &
  i=0; until grep -q 'Checking link statuses' /tmp/tp.log 2>/dev/null; do
    i=$((i+1)); [ $i -gt 300 ] && break; pidof dpdk-testpmd >/dev/null || break; sleep 1; done
  sleep 2; echo "GUEST-TP-RUNNING $1"
  read -t 240 GO
  killall -INT dpdk-testpmd; wait; echo "GUEST-TP-EXIT $1"
  echo "GUEST-TP-END $1"
}
tp icmpecho ""
tp io ",enable_llq=0"
tp macswap ",large_llq_hdr=1"
echo "GUEST-TP-START jumbo"
rm -f /tmp/tp.log
{ echo "port stop 0"; echo "port config mtu 0 9000"; echo "port start 0"; echo "set fwd icmpecho"; echo "start"
  i=0; until [ "$(grep -c 'Checking link statuses' /tmp/tp.log 2>/dev/null)" -ge 3 ]; do i=$((i+1)); [ $i -gt 240 ] && break; sleep 1; done; sleep 3
  echo "GUEST-TP-RUNNING jumbo" > /dev/console; read -t 240 GO < /dev/console; echo "stop"; echo "quit"; } |
  dpdk-testpmd --lcores '(0,1)@0' --iova-mode=pa --in-memory \
    -d librte_mempool_ring.so.23 -d librte_net_ena.so.23 -a "$BDF" -- -i \
    --port-topology=loop --total-num-mbufs=2048 --rxd=256 --txd=256 --mbuf-size=9344 2>&1 | tee /tmp/tp.log
echo "GUEST-TP-END jumbo"
`

// hostEnd is the host side of the model's wire for raw frames.
type hostEnd struct {
	w   enasim.Wire
	mu  sync.Mutex
	got [][]byte
	new chan struct{}
}

func newHostEnd(w enasim.Wire) *hostEnd {
	h := &hostEnd{w: w, new: make(chan struct{}, 1)}
	w.SetReceiver(func(f []byte) {
		h.mu.Lock()
		h.got = append(h.got, append([]byte(nil), f...))
		h.mu.Unlock()
		select {
		case h.new <- struct{}{}:
		default:
		}
	})
	return h
}

// waitFrame returns the first received frame (removed) that match accepts.
func (h *hostEnd) waitFrame(match func([]byte) bool, d time.Duration) []byte {
	deadline := time.After(d)
	for {
		h.mu.Lock()
		for i, f := range h.got {
			if match(f) {
				h.got = append(h.got[:i], h.got[i+1:]...)
				h.mu.Unlock()
				return f
			}
		}
		h.mu.Unlock()
		select {
		case <-h.new:
		case <-deadline:
			return nil
		}
	}
}

var (
	hostMAC  = [6]byte{0x02, 0, 0, 0, 0, 1}
	guestMAC = [6]byte{0x02, 0xec, 0x20, 0, 0, 0x42}
	hostIP   = [4]byte{10, 0, 0, 1}
	guestIP  = [4]byte{10, 0, 0, 2}
)

func ethHeader(dst [6]byte, typ uint16) []byte {
	b := append(append([]byte{}, dst[:]...), hostMAC[:]...)
	return binary.BigEndian.AppendUint16(b, typ)
}

func arpRequest() []byte {
	b := ethHeader([6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0x0806)
	b = append(b, 0, 1, 8, 0, 6, 4, 0, 1)
	b = append(b, hostMAC[:]...)
	b = append(b, hostIP[:]...)
	b = append(b, 0, 0, 0, 0, 0, 0)
	return append(b, guestIP[:]...)
}

func inetChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// ipv4 wraps payload in an IPv4 header from the host to the guest.
func ipv4(proto byte, payload []byte) []byte {
	h := make([]byte, 20)
	h[0], h[8], h[9] = 0x45, 64, proto
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	copy(h[12:], hostIP[:])
	copy(h[16:], guestIP[:])
	binary.BigEndian.PutUint16(h[10:], inetChecksum(h))
	return append(h, payload...)
}

func icmpEcho(id, seq uint16, data []byte) []byte {
	m := make([]byte, 8, 8+len(data))
	m[0] = 8
	binary.BigEndian.PutUint16(m[4:], id)
	binary.BigEndian.PutUint16(m[6:], seq)
	m = append(m, data...)
	binary.BigEndian.PutUint16(m[2:], inetChecksum(m))
	return append(ethHeader(guestMAC, 0x0800), ipv4(1, m)...)
}

func udpFrame(i int, size int) []byte {
	data := make([]byte, size)
	for j := range data {
		data[j] = byte(i*31 + j*7)
	}
	u := make([]byte, 8)
	binary.BigEndian.PutUint16(u[0:], 40000)
	binary.BigEndian.PutUint16(u[2:], uint16(9000+i))
	binary.BigEndian.PutUint16(u[4:], uint16(8+size))
	return append(ethHeader(guestMAC, 0x0800), ipv4(17, append(u, data...))...)
}

// TestDPDKENA runs DPDK 22.11's unmodified ENA PMD (dpdk-testpmd from
// Debian's dpdk-dev) in the guest over no-IOMMU vfio-pci: icmpecho answers
// ARP and pings of several sizes with LLQ (the default), then io and
// macswap forwarding of a burst the host sends, bytes checked, with
// enable_llq=0 and with large_llq_hdr=1, and last an interactive run that
// sets the MTU to 9000 and answers an 8000-byte ping. The model must refuse
// nothing.
func TestDPDKENA(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 7*time.Minute)
	defer cancel()
	tools, err := PrepareGuestTools(ctx, cacheDir(t), "dpdk", dpdkPackages, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	guestWire, hostWire := enasim.NewPair()
	host := newHostEnd(hostWire)
	defer hostWire.Close()
	// The x86 Nitro v3 class, offering 256-byte LLQ entries besides 128 as
	// later x86 generations do, so large_llq_hdr=1 gets large headers.
	prof := enasim.ProfileNitroV3
	prof.LLQ.EntrySizes |= 4
	trace := newTraceCapture(4 << 20)
	r := bootGuest(t, ctx, guestSpec{mode: NoIOMMU, wire: guestWire, cpu: "max", memMB: 1024, trace: trace, profile: prof,
		extra: func(ir *Initramfs) error {
			if err := tools.AddProgram(ir, "usr/bin/dpdk-testpmd", "/bin/dpdk-testpmd"); err != nil {
				return err
			}
			for _, lib := range []string{"librte_net_ena.so.23", "librte_mempool_ring.so.23"} {
				if err := tools.AddLibrary(ir, lib); err != nil {
					return err
				}
			}
			return nil
		},
		script: dpdkScript})
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s\nconsole:\n%s\nmodel refusals: %v\nmodel stats: %+v", fmt.Sprintf(format, args...), r.vm.Console(), r.dev.Refusals(), r.dev.Model().Stats())
	}
	wait := func(marker string, d time.Duration) []string {
		t.Helper()
		m, err := r.vm.WaitFor(regexp.MustCompile(marker), d)
		if err != nil {
			fail("%v", err)
		}
		return m
	}

	// icmpecho with LLQ: ARP, then pings of 60 to 1472 bytes of payload.
	wait(`GUEST-TP-RUNNING icmpecho`, 4*time.Minute)
	host.w.Send(arpRequest())
	reply := host.waitFrame(func(f []byte) bool {
		return len(f) >= 42 && binary.BigEndian.Uint16(f[12:]) == 0x0806 && binary.BigEndian.Uint16(f[20:]) == 2
	}, 20*time.Second)
	if reply == nil {
		fail("testpmd icmpecho did not answer ARP")
	}
	if !bytes.Equal(reply[22:28], guestMAC[:]) || !bytes.Equal(reply[28:32], guestIP[:]) {
		t.Errorf("ARP reply says %x is at %x", reply[28:32], reply[22:28])
	}
	for seq, size := range []int{60, 200, 1000, 1472} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i + seq)
		}
		host.w.Send(icmpEcho(0x77, uint16(seq), data))
		rep := host.waitFrame(func(f []byte) bool {
			return len(f) >= 42 && binary.BigEndian.Uint16(f[12:]) == 0x0800 && f[23] == 1 && f[34] == 0 &&
				binary.BigEndian.Uint16(f[40:]) == uint16(seq)
		}, 20*time.Second)
		if rep == nil {
			fail("no echo reply to a %d-byte ping", size)
		}
		if !bytes.Equal(rep[42:], data) {
			t.Errorf("echo reply to a %d-byte ping carries other data", size)
		}
	}
	t.Logf("icmpecho (LLQ): ARP and pings of 60, 200, 1000, 1472 bytes answered")
	next := func(mode string) {
		t.Helper()
		if err := r.vm.SendConsole("next"); err != nil {
			fail("%v", err)
		}
		wait(`GUEST-TP-END `+mode, 2*time.Minute)
	}
	next("icmpecho")

	for _, mode := range []struct{ fwd, llq string }{{"io", "enable_llq=0"}, {"macswap", "large_llq_hdr=1"}} {
		wait(`GUEST-TP-RUNNING `+mode.fwd, 4*time.Minute)
		const burst = 64
		sent := map[uint16][]byte{}
		for i := range burst {
			f := udpFrame(i, 100+i*20)
			sent[uint16(9000+i)] = f
			host.w.Send(f)
		}
		for range burst {
			f := host.waitFrame(func(f []byte) bool {
				return len(f) > 42 && binary.BigEndian.Uint16(f[12:]) == 0x0800 && f[23] == 17
			}, 20*time.Second)
			if f == nil {
				fail("%s (%s): %d of %d frames came back", mode.fwd, mode.llq, burst-len(sent), burst)
			}
			port := binary.BigEndian.Uint16(f[36:])
			want, ok := sent[port]
			if !ok {
				t.Errorf("%s: frame for port %d came back twice or was never sent", mode.fwd, port)
				continue
			}
			delete(sent, port)
			dst, src := want[0:6], want[6:12]
			if mode.fwd == "macswap" {
				dst, src = src, dst
			}
			if !bytes.Equal(f[0:6], dst) || !bytes.Equal(f[6:12], src) || !bytes.Equal(f[12:], want[12:]) {
				t.Errorf("%s (%s): frame for port %d differs", mode.fwd, mode.llq, port)
			}
		}
		t.Logf("%s (%s): %d frames forwarded back intact", mode.fwd, mode.llq, burst)
		next(mode.fwd)
	}
	// Jumbo: testpmd's interactive "port config mtu 0 9000" (the PMD's
	// MTU set, SET_FEATURE MTU), then icmpecho answers an 8000-byte ping.
	wait(`GUEST-TP-RUNNING jumbo`, 4*time.Minute)
	for seq, size := range []int{1472, 8000} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i * 3)
		}
		// testpmd's output is buffered in its pipe, so the guest cannot
		// tell exactly when forwarding starts: ping until answered.
		var rep []byte
		for try := 0; rep == nil && try < 12; try++ {
			host.w.Send(icmpEcho(0x78, uint16(100+seq), data))
			rep = host.waitFrame(func(f []byte) bool {
				return len(f) >= 42 && binary.BigEndian.Uint16(f[12:]) == 0x0800 && f[23] == 1 && f[34] == 0 &&
					binary.BigEndian.Uint16(f[40:]) == uint16(100+seq)
			}, 5*time.Second)
		}
		if rep == nil {
			fail("MTU 9000: no echo reply to a %d-byte ping", size)
		}
		if !bytes.Equal(rep[42:], data) {
			t.Errorf("MTU 9000: echo reply to a %d-byte ping carries other data", size)
		}
	}
	t.Logf("icmpecho after port config mtu 0 9000: pings of 1472 and 8000 bytes answered")
	next("jumbo")

	out := r.vm.Console()
	if strings.Contains(out, "didn't receive a MSI-X interrupt") {
		t.Errorf("the PMD missed an admin interrupt")
	}
	if strings.Contains(out, "Forcing large headers failed") {
		t.Errorf("large_llq_hdr=1 did not get 256-byte LLQ entries")
	}
	checkNoRefusals(t, r.dev)
	t.Logf("MSI-X messages per vector %v, qtest %+v", r.msix.Stats().Sent, r.qt.Stats())
	steps := bringUpSteps(trace.String())
	t.Logf("DPDK ENA PMD bring-up, %d steps:\n%s", len(steps), strings.Join(steps, "\n"))
	recordBringUp("dpdk", steps)
	if t.Failed() {
		t.Logf("console:\n%s", out)
	}
}
