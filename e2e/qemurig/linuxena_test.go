package qemurig

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/link"
	"github.com/enanet/enanet/link/simnic"
)

// enaModule is Linux's ENA driver in the linux-image package the kit
// unpacks: unmodified, the same ena.ko Debian runs on EC2.
const enaModule = "drivers/net/ethernet/amazon/ena/ena.ko"

// bulkBytes is what each direction of the ena.ko bulk test moves.
const bulkBytes = 8 << 20

// linuxENAScript drives ena.ko in the guest. The host follows the markers:
// it sends and receives the bulk data, and flips the link and stops the
// keep-alive from the model while the guest waits.
const linuxENAScript = `
IF=""
for i in $(seq 100); do IF=$(ls /sys/bus/pci/devices/$BDF/net/ 2>/dev/null); [ -n "$IF" ] && break; sleep 0.1; done
echo "GUEST-IF $IF"
carrier() { cat /sys/class/net/$IF/carrier 2>/dev/null; }
waitcarrier() { i=0; while [ "$(carrier)" != "$1" ]; do i=$((i+1)); [ $i -gt 600 ] && return 1; sleep 0.1; done; }
pingok() { ping -c 2 -W 10 $* 10.0.0.1 >/tmp/ping 2>&1 || { cat /tmp/ping; return 1; }; }
ip link set $IF up && ip addr add 10.0.0.2/24 dev $IF && echo GUEST-ADDR-OK
waitcarrier 1 && echo GUEST-LINK-UP
pingok && echo GUEST-PING-OK
nc -l -p 5001 > /tmp/in &
NCPID=$!
echo GUEST-LISTENING
wait $NCPID
echo "GUEST-RX-SHA $(sha256sum < /tmp/in | cut -d' ' -f1) $(wc -c < /tmp/in)"
rm -f /tmp/in
dd if=/dev/urandom of=/tmp/out bs=1M count=8 2>/dev/null
echo "GUEST-TX-SHA $(sha256sum < /tmp/out | cut -d' ' -f1)"
nc 10.0.0.1 5002 < /tmp/out && echo GUEST-TX-DONE
rm -f /tmp/out
echo GUEST-IRQ-BEGIN; grep -E 'ena|Tx-Rx' /proc/interrupts; echo GUEST-IRQ-END
ip link set $IF mtu 9001 && echo GUEST-MTU9001-OK
waitcarrier 1; pingok -s 8000 && echo GUEST-JUMBO-PING-OK
ip link set $IF mtu 1500 && echo GUEST-MTU1500-OK
waitcarrier 1; pingok && echo GUEST-PING2-OK
echo GUEST-WAIT-LINK
waitcarrier 0 && echo GUEST-LINK-DOWN-SEEN
waitcarrier 1 && echo GUEST-LINK-UP-SEEN
pingok && echo GUEST-PING3-OK
ethtool -S $IF > /tmp/stats && echo GUEST-ETHTOOL-S-OK
grep -E ' (tx_timeout|suspend|resume|wd_expired|interface_up|interface_down|admin_q_pause|queue_0_tx_cnt|queue_0_rx_cnt):' /tmp/stats
ethtool -l $IF; ethtool -L $IF combined 1 && echo GUEST-ETHTOOL-L-OK
ethtool -g $IF; ethtool -G $IF rx 512 tx 512 && echo GUEST-ETHTOOL-G-OK
ethtool -g $IF | grep -A4 'Current' ; waitcarrier 1
ethtool -x $IF > /tmp/rss && echo GUEST-ETHTOOL-x-OK; head -4 /tmp/rss
ethtool -X $IF equal 1 && echo GUEST-ETHTOOL-X-OK
pingok && echo GUEST-PING4-OK
echo GUEST-WAIT-RESET
i=0; until dmesg | grep -q 'Device reset completed successfully'; do i=$((i+1)); [ $i -gt 600 ] && break; sleep 0.1; done
dmesg | grep -q 'Device reset completed successfully' && echo GUEST-RESET-DONE
waitcarrier 1; pingok && echo GUEST-PING5-OK
echo GUEST-DMESG-BEGIN; dmesg | grep -E ' ena ' | grep -vE ' (queue_[0-9]+_|ena_admin_q_)' ; echo GUEST-DMESG-END
`

// TestLinuxENA loads Debian's unmodified ena.ko in the guest on enasim
// (MSI-X through qtest, no vIOMMU: the proxy hands the model guest-physical
// addresses, which is what the kernel's DMA API gives without an IOMMU) and
// judges the model with it: probe, link, address, ping, 8 MiB of TCP each
// way checked by SHA-256, MTU 9001 and back, link down and up from the
// model, ethtool -S/-L/-G/-x/-X, and a reset after the model stops its
// keep-alives that the driver recovers from. The model must refuse nothing.
func TestLinuxENA(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 7*time.Minute)
	defer cancel()
	tools, err := PrepareGuestTools(ctx, cacheDir(t), "ethtool", []string{"ethtool", "libmnl0"}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	guestWire, hostWire := enasim.NewPair()
	nic := simnic.New(hostWire, simnic.Config{MAC: [6]byte{0x02, 0, 0, 0, 0, 1}, MTU: 9001,
		Offloads: link.Offloads{TxCsumIPv4: true, TxL4CsumIPv4Partial: true, RxCsumIPv4: true, RxCsumL4: true}})
	peer, err := link.NewStack(nic, link.StackOptions{Addr: netip.MustParsePrefix("10.0.0.1/24"), NICName: "host0"})
	if err != nil {
		t.Fatal(err)
	}
	defer nic.Close()
	defer peer.Close()
	ln, err := peer.ListenTCP(5002)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	trace := newTraceCapture(4 << 20)
	r := bootGuest(t, ctx, guestSpec{mode: NoIOMMU, noVFIO: true, wire: guestWire, modules: []string{enaModule}, trace: trace,
		extra:  func(ir *Initramfs) error { return tools.AddProgram(ir, "sbin/ethtool", "/bin/ethtool") },
		script: linuxENAScript})
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s\nconsole:\n%s\nmodel refusals: %v", fmt.Sprintf(format, args...), r.vm.Console(), r.dev.Refusals())
	}
	wait := func(marker string, d time.Duration) []string {
		t.Helper()
		m, err := r.vm.WaitFor(regexp.MustCompile(marker), d)
		if err != nil {
			fail("%v", err)
		}
		return m
	}
	wait(`GUEST-PING-OK`, 3*time.Minute)
	wait(`GUEST-LISTENING`, time.Minute)

	// Host to guest: 8 MiB into the guest's nc, hashed there.
	up := make([]byte, bulkBytes)
	rand.Read(up)
	var conn net.Conn
	for i := 0; ; i++ {
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		conn, err = peer.DialTCP(dctx, netip.MustParseAddrPort("10.0.0.2:5001"))
		dcancel()
		if err == nil {
			break
		}
		if i == 20 {
			fail("dial the guest's nc: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	start := time.Now()
	conn.SetDeadline(time.Now().Add(3 * time.Minute))
	if _, err := conn.Write(up); err != nil {
		fail("send %d bytes to the guest: %v", len(up), err)
	}
	conn.Close()
	m := wait(`GUEST-RX-SHA ([0-9a-f]{64}) (\d+)\s`, 3*time.Minute)
	sum := sha256.Sum256(up)
	if m[1] != hex.EncodeToString(sum[:]) || m[2] != strconv.Itoa(bulkBytes) {
		t.Errorf("host to guest: guest got %s bytes with sha256 %s, sent %d with %x", m[2], m[1], bulkBytes, sum)
	}
	t.Logf("host to guest: %d bytes in %v", bulkBytes, time.Since(start).Round(time.Millisecond))

	// Guest to host: the guest's nc sends 8 MiB of urandom to our listener.
	m = wait(`GUEST-TX-SHA ([0-9a-f]{64})\s`, time.Minute)
	type accepted struct {
		c   net.Conn
		err error
	}
	acc := make(chan accepted, 1)
	go func() { c, err := ln.Accept(); acc <- accepted{c, err} }()
	var in net.Conn
	select {
	case a := <-acc:
		if a.err != nil {
			fail("accept the guest's connection: %v", a.err)
		}
		in = a.c
	case <-time.After(time.Minute):
		fail("the guest did not connect within a minute")
	}
	start = time.Now()
	in.SetDeadline(time.Now().Add(3 * time.Minute))
	h := sha256.New()
	n, err := io.Copy(h, in)
	in.Close()
	if err != nil || n != bulkBytes || hex.EncodeToString(h.Sum(nil)) != m[1] {
		t.Errorf("guest to host: got %d bytes with sha256 %x (%v), want %d with %s", n, h.Sum(nil), err, bulkBytes, m[1])
	}
	t.Logf("guest to host: %d bytes in %v", n, time.Since(start).Round(time.Millisecond))

	irqs := wait(`(?s)GUEST-IRQ-BEGIN(.*?)GUEST-IRQ-END`, time.Minute)[1]
	checkLinuxInterrupts(t, irqs)

	wait(`GUEST-PING2-OK`, 3*time.Minute)
	wait(`GUEST-WAIT-LINK`, time.Minute)
	model := r.dev.Model()
	model.Faults().SetLink(false)
	wait(`GUEST-LINK-DOWN-SEEN`, time.Minute)
	model.Faults().SetLink(true)
	wait(`GUEST-PING3-OK`, 2*time.Minute)

	wait(`GUEST-WAIT-RESET`, 3*time.Minute)
	resets := model.Stats().Resets
	model.Faults().StopKeepAlive(true)
	deadline := time.Now().Add(90 * time.Second)
	for model.Stats().Resets == resets && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	model.Faults().StopKeepAlive(false)
	if model.Stats().Resets == resets {
		fail("ena.ko did not reset the device within 90 s of the keep-alives stopping")
	}
	wait(`GUEST-PING5-OK`, 3*time.Minute)
	dmesg := wait(`(?s)GUEST-DMESG-BEGIN(.*?)GUEST-DMESG-END`, time.Minute)[1]

	out := r.vm.Console()
	for _, want := range []string{"GUEST-ADDR-OK", "GUEST-LINK-UP", "GUEST-TX-DONE", "GUEST-MTU9001-OK", "GUEST-JUMBO-PING-OK",
		"GUEST-MTU1500-OK", "GUEST-LINK-UP-SEEN", "GUEST-ETHTOOL-S-OK", "GUEST-ETHTOOL-L-OK", "GUEST-ETHTOOL-G-OK",
		"GUEST-ETHTOOL-x-OK", "GUEST-ETHTOOL-X-OK", "GUEST-PING4-OK", "GUEST-RESET-DONE"} {
		if !strings.Contains(out, want) {
			t.Errorf("guest console lacks %s", want)
		}
	}
	checkLinuxDmesg(t, dmesg)
	checkNoRefusals(t, r.dev)
	st := model.Stats()
	// ena.ko resets at probe (NORMAL), on the keep-alive loss
	// (KEEP_ALIVE_TO), and again when it re-initialises the device
	// (NORMAL); nothing else may have reset it.
	if got, want := strings.Join(trace.Resets(), " "), "NORMAL KEEP_ALIVE_TO NORMAL"; got != want {
		t.Errorf("device resets with reasons %q, want %q", got, want)
	}
	steps := bringUpSteps(trace.String())
	t.Logf("ena.ko bring-up, %d steps:\n%s", len(steps), strings.Join(steps, "\n"))
	recordBringUp("ena.ko", steps)
	if ours := recordedBringUp("enanet"); ours != nil {
		t.Logf("bring-up, Linux ena.ko against enanet:\n%s", diffTable("Linux ena.ko", "enanet", steps, ours))
		if dpdk := recordedBringUp("dpdk"); dpdk != nil {
			t.Logf("bring-up, DPDK ENA PMD against enanet:\n%s", diffTable("DPDK ENA PMD", "enanet", dpdk, ours))
			t.Logf("bring-up, Linux ena.ko against DPDK ENA PMD:\n%s", diffTable("Linux ena.ko", "DPDK ENA PMD", steps, dpdk))
		}
	}
	ms := r.msix.Stats()
	t.Logf("MSI-X messages per vector %v, qtest %+v, model %+v", ms.Sent, r.qt.Stats(), st)
	if t.Failed() {
		t.Logf("console:\n%s", out)
	}
}

// checkLinuxInterrupts reads ena.ko's lines of /proc/interrupts: the
// management vector and the queue vector must both have counted.
func checkLinuxInterrupts(t *testing.T, procIRQ string) {
	t.Helper()
	var mgmt, io uint64
	for _, line := range strings.Split(procIRQ, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch {
		case strings.Contains(line, "ena-mgmnt"):
			mgmt += n
		case strings.Contains(line, "Tx-Rx"):
			io += n
		}
	}
	t.Logf("/proc/interrupts: management %d, I/O %d\n%s", mgmt, io, procIRQ)
	if mgmt == 0 || io == 0 {
		t.Errorf("ena.ko's vectors did not all fire: management %d, I/O %d", mgmt, io)
	}
}

// checkLinuxDmesg fails on driver messages that mean the model misbehaved:
// a missing interrupt, a Tx timeout, a reset other than the keep-alive one
// the test provoked, a failed admin command.
func checkLinuxDmesg(t *testing.T, dmesg string) {
	t.Helper()
	bad := regexp.MustCompile(`(?i)missing|MSI-X|tx timeout|fail|error|invalid|Reset indication|Reset reason|unexpected|timeout`)
	resets := 0
	for _, line := range strings.Split(dmesg, "\n") {
		if strings.Contains(line, "Trigger reset is on") {
			resets++
		}
		if strings.Contains(line, "Keep alive watchdog timeout") || strings.Contains(line, "tx_timeout: 0") {
			continue
		}
		if bad.MatchString(line) {
			t.Errorf("ena.ko: %s", strings.TrimSpace(line))
		}
	}
	if resets > 1 {
		t.Errorf("ena.ko triggered %d resets; only the keep-alive one was provoked", resets)
	}
	if !bytes.Contains([]byte(dmesg), []byte("Keep alive watchdog timeout")) {
		t.Errorf("ena.ko did not report the keep-alive loss the model provoked")
	}
}
