package qemurig

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/ena/spec"
	"github.com/enanet/enanet/internal/testenv"
	"github.com/enanet/enanet/link"
	"github.com/enanet/enanet/link/simnic"
)

// guestFindENA is shell that sets BDF to the first ENA function.
const guestFindENA = `BDF=""
for d in /sys/bus/pci/devices/*; do
  [ "$(cat $d/vendor)" = "0x1d0f" ] && BDF=$(basename $d)
done
echo "GUEST-ENA $BDF"
`

// rig is one booted guest with enasim behind the proxy, its MSI-X
// delivered through qtest.
type rig struct {
	vm   *VM
	srv  *Server
	dev  *ENADevice
	msix *MSIX
	qt   *QTest
}

// guestSpec is one guest boot with enasim behind the proxy.
type guestSpec struct {
	mode     VFIOMode // VFIO mode; with noVFIO, Type1 means intel-iommu on
	noVFIO   bool     // a kernel driver (modules) takes the device instead
	iommu    bool     // emulated intel-iommu (Type1 mode implies it)
	wire     enasim.Wire
	programs map[string]string // guest path -> Go main package
	modules  []string          // kernel modules loaded after VFIO
	extra    func(*Initramfs) error
	script   string
	cpu      string    // -cpu
	trace    io.Writer // the model's trace
	memMB    int
	profile  enasim.Profile // zero = the model's default (Nitro v3)
}

// bootENAGuest builds the image for mode, starts the proxy server with an
// enasim model on wire, and boots the guest running script.
func bootENAGuest(t *testing.T, ctx context.Context, mode VFIOMode, wire enasim.Wire, programs map[string]string, script string) *rig {
	t.Helper()
	return bootGuest(t, ctx, guestSpec{mode: mode, iommu: mode == Type1, wire: wire, programs: programs, script: script})
}

// bootGuest boots g.
func bootGuest(t *testing.T, ctx context.Context, g guestSpec) *rig {
	t.Helper()
	mode := g.mode
	testenv.RequireTool(t, QEMUBinary, "apt-get install qemu-system-x86")
	needNoIOMMU := mode == NoIOMMU && !g.noVFIO
	if needNoIOMMU {
		testenv.RequireRoot(t) // the module rebuild installs linux-headers
	}
	kit, err := PrepareKit(ctx, cacheDir(t), needNoIOMMU, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bins := map[string]string{}
	for guestPath, pkg := range g.programs {
		out := filepath.Join(dir, filepath.Base(guestPath))
		if err := BuildStatic(ctx, pkg, out); err != nil {
			t.Fatal(err)
		}
		bins[guestPath] = out
	}
	initrd := filepath.Join(dir, "initrd.gz")
	im := Image{Kit: kit, Mode: mode, Programs: bins, Script: guestFindENA + g.script,
		NoVFIO: g.noVFIO, Modules: g.modules, Extra: g.extra}
	if err := im.Write(initrd); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		r, stop := startGuest(t, ctx, g, kit, initrd)
		if !g.iommu {
			t.Cleanup(func() { stop(true) })
			return r
		}
		crashed, err := waitGuestReady(r.vm)
		if err == nil {
			t.Cleanup(func() { stop(true) })
			return r
		}
		if !crashed || attempt == IOMMUBootAttempts {
			t.Cleanup(func() { stop(true) })
			t.Fatalf("%v\nconsole:\n%s", err, r.vm.Console())
		}
		t.Logf("qemurig: QEMU 7.2 crashed (SIGSEGV) while the guest kernel booted with intel-iommu, "+
			"a known QEMU 7.2 TCG bug (see IOMMUBootAttempts); booting again (attempt %d of %d)", attempt+1, IOMMUBootAttempts)
		stop(false)
	}
}

// startGuest starts one QEMU with the proxy server, MSI-X delivery and an
// enasim model behind it. stop tears all of it down and, with report,
// fails the test on errors of the proxy and of MSI-X delivery (a boot that
// QEMU crashed is torn down without: its errors are the crash's).
func startGuest(t *testing.T, ctx context.Context, g guestSpec, kit *Kit, initrd string) (r *rig, stop func(report bool)) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "proxy-remote"), os.NewFile(uintptr(fds[1]), "proxy-qemu")
	mem := &GuestMemory{}
	qt, err := NewQTest(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	msix := NewENAMSIX(qt)
	dev, err := NewENADevice(enasim.ModelConfig{Profile: g.profile, Wire: g.wire, MAC: [6]byte{0x02, 0xec, 0x20, 0, 0, 0x42}, Trace: g.trace}, mem, msix)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(ours, ENAServerConfig(0, msix), dev, mem)
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	vm, err := StartVM(ctx, VMConfig{Kernel: kit.VMLinux, Initrd: initrd, IOMMU: g.iommu, Proxy: theirs, QTest: qt.Path(),
		CPUModel: g.cpu, MemMB: g.memMB})
	theirs.Close()
	if err != nil {
		t.Fatal(err)
	}
	stop = func(report bool) {
		// A message in flight when QEMU is killed fails; only failures
		// while the guest ran count.
		if err := qt.Err(); err != nil && report {
			t.Errorf("MSI-X delivery: %v", err)
		}
		vm.Close()
		qt.Close()
		if err := <-served; err != nil && report {
			t.Errorf("proxy server: %v", err)
		}
		ours.Close()
		dev.Close()
		mem.Close()
	}
	return &rig{vm: vm, srv: srv, dev: dev, msix: msix, qt: qt}, stop
}

// writeOnlyRegs are BAR0 registers the driver only ever writes (§2.1);
// reading one would be a driver bug (and on real hardware, a wasted PCIe
// round trip at best).
var writeOnlyRegs = map[uint32]string{
	spec.RegAQDB: "AQ_DB", spec.RegAENQHeadDB: "AENQ_HEAD_DB", spec.RegMMIORegRead: "MMIO_REG_READ",
}

// checkNoWriteOnlyReads fails if the guest read a write-only register, any
// I/O doorbell or unmask register (device-chosen offsets >= 0x1000 in
// enasim), or the LLQ BAR.
func checkNoWriteOnlyReads(t *testing.T, accesses []Access) {
	t.Helper()
	reads := 0
	for _, a := range accesses {
		if a.Write {
			continue
		}
		reads++
		if name, ok := writeOnlyRegs[a.Off]; ok && a.BAR == 0 {
			t.Errorf("driver read write-only register %s: %v", name, a)
		}
		if a.BAR == 2 || (a.BAR == 0 && a.Off >= 0x1000) {
			t.Errorf("driver read a doorbell or LLQ location: %v", a)
		}
	}
	t.Logf("proxy saw %d BAR accesses, %d of them reads", len(accesses), reads)
}

// TestENAGuestControl runs enactl inside the guest against the proxied
// enasim device in both VFIO modes: list, bind to vfio-pci, and info, which
// brings the device up through the driver (admin queue in guest RAM,
// readless reads DMAed by the model, LLQ negotiated) in polling mode.
func TestENAGuestControl(t *testing.T) {
	for _, mode := range []VFIOMode{Type1, NoIOMMU} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
			defer cancel()
			flags := "--poll"
			if mode == Type1 {
				flags += " --mode iommu --iova-is-phys"
			} else {
				flags += " --mode noiommu"
			}
			r := bootENAGuest(t, ctx, mode, nil, map[string]string{"/bin/enactl": "../../cmd/enactl"}, `
echo GUEST-LIST-BEGIN; enactl list; echo GUEST-LIST-END
enactl bind $BDF && echo GUEST-BIND-OK
enactl info --device $BDF `+flags+` && echo GUEST-INFO-OK
enactl stats --device $BDF `+flags+` && echo GUEST-STATS-OK
`)
			if _, err := r.vm.WaitFor(regexp.MustCompile(`GUEST-DONE`), 6*time.Minute); err != nil {
				t.Fatalf("%v\nconsole:\n%s", err, r.vm.Console())
			}
			out := r.vm.Console()
			for _, want := range []string{"GUEST-ENA 0000:", "GUEST-BIND-OK", "GUEST-INFO-OK", "GUEST-STATS-OK",
				"1d0f:ec20 rev 00", "tx placement:        LLQ: 128 B entries", "interrupts:          admin polling, I/O busy-poll"} {
				if !strings.Contains(out, want) {
					t.Errorf("guest console lacks %q", want)
				}
			}
			if t.Failed() {
				t.Logf("console:\n%s", out)
			}
			checkNoWriteOnlyReads(t, r.srv.Accesses())
			checkNoRefusals(t, r.dev)
		})
	}
}

// TestENAGuestHTTP runs enahttp inside the guest on the proxied enasim
// device in interrupt mode (the rig's MSI-X, delivered through qtest) in
// both VFIO modes. A userspace stack on the host end of the model's wire
// fetches the pages over HTTP and moves bulk data both ways, comparing every
// byte; the admin vector and the I/O vectors must have fired, and the model
// must have refused nothing.
func TestENAGuestHTTP(t *testing.T) {
	for _, mode := range []VFIOMode{Type1, NoIOMMU} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
			defer cancel()
			flags := "--ip 10.0.0.2/24 --port 80"
			if mode == Type1 {
				flags += " --vfio-mode iommu --iova-is-phys"
			} else {
				flags += " --vfio-mode noiommu"
			}
			guestWire, hostWire := enasim.NewPair()
			nic := simnic.New(hostWire, simnic.Config{MAC: [6]byte{0x02, 0, 0, 0, 0, 1},
				Offloads: link.Offloads{TxCsumIPv4: true, TxL4CsumIPv4Partial: true, RxCsumIPv4: true, RxCsumL4: true}})
			peer, err := link.NewStack(nic, link.StackOptions{Addr: netip.MustParsePrefix("10.0.0.1/24"), NICName: "host0"})
			if err != nil {
				t.Fatal(err)
			}
			defer nic.Close()
			defer peer.Close()
			trace := newTraceCapture(4 << 20)
			r := bootGuest(t, ctx, guestSpec{mode: mode, iommu: mode == Type1, wire: guestWire, trace: trace,
				programs: map[string]string{"/bin/enactl": "../../cmd/enactl", "/bin/enahttp": "../../cmd/enahttp"}, script: `
enactl bind $BDF >/dev/null && echo GUEST-BIND-OK
enahttp -v --device $BDF ` + flags + ` 2>&1 | grep -v 'level=DEBUG' &
sleep 600
`})
			if _, err := r.vm.WaitFor(regexp.MustCompile(`enahttp: serving on 10.0.0.2:80`), 4*time.Minute); err != nil {
				t.Fatalf("%v\nconsole:\n%s", err, r.vm.Console())
			}
			client := &http.Client{Timeout: 3 * time.Minute, Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
					return peer.DialTCP(ctx, netip.MustParseAddrPort(addr))
				}}}
			defer client.CloseIdleConnections()
			page := httpGet(t, client, "http://10.0.0.2/")
			if !strings.Contains(string(page), "Served by gVisor netstack on an ENA") {
				t.Errorf("guest page:\n%s", page)
			}
			status := httpGet(t, client, "http://10.0.0.2/api/v1/status")
			if !strings.Contains(string(status), `"device"`) {
				t.Errorf("guest status:\n%s", status)
			}
			const n = 1 << 20
			body := httpGet(t, client, fmt.Sprintf("http://10.0.0.2/bytes?n=%d", n))
			if len(body) != n {
				t.Fatalf("bulk from the guest: %d bytes, want %d", len(body), n)
			}
			for i, b := range body {
				if b != byte(int64(i)*131+int64(i)>>9) {
					t.Fatalf("bulk from the guest: byte %d differs", i)
				}
			}
			up := make([]byte, n)
			for i := range up {
				up[i] = byte(i*7 + i>>11)
			}
			resp, err := client.Post("http://10.0.0.2/sink", "application/octet-stream", bytes.NewReader(up))
			if err != nil {
				t.Fatalf("bulk to the guest: %v\nconsole:\n%s", err, r.vm.Console())
			}
			res, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			sum := sha256.Sum256(up)
			if !strings.Contains(string(res), hex.EncodeToString(sum[:])) || !strings.Contains(string(res), fmt.Sprintf(`"bytes":%d`, n)) {
				t.Errorf("bulk to the guest: server answered %s, want %d bytes with sha256 %x", res, n, sum)
			}
			checkNoWriteOnlyReads(t, r.srv.Accesses())
			checkVectorsFired(t, r)
			checkNoRefusals(t, r.dev)
			steps := bringUpSteps(trace.String())
			t.Logf("enanet bring-up, %d steps:\n%s", len(steps), strings.Join(steps, "\n"))
			if mode == Type1 {
				recordBringUp("enanet", steps)
			}
			st := r.dev.Model().Stats()
			t.Logf("model stats after the transfers: %+v", st)
			if st.Resets != 1 {
				t.Errorf("the device was reset %d times; want only the driver's bring-up reset", st.Resets)
			}
			if t.Failed() {
				t.Logf("guest console:\n%s", r.vm.Console())
			}
		})
	}
}

// checkVectorsFired fails unless the admin vector (0) and at least one I/O
// vector sent MSI-X messages that qtest wrote into the guest.
func checkVectorsFired(t *testing.T, r *rig) {
	t.Helper()
	ms, qs := r.msix.Stats(), r.qt.Stats()
	t.Logf("MSI-X messages per vector %v (raised while disabled %d, pended while masked %d); qtest delivered %d, merged %d",
		ms.Sent, ms.DroppedDisabled, ms.Pended, qs.Delivered, qs.Coalesced)
	if ms.Sent[0] == 0 {
		t.Errorf("the admin/AENQ vector never fired")
	}
	io := uint64(0)
	for _, n := range ms.Sent[1:] {
		io += n
	}
	if io == 0 {
		t.Errorf("no I/O vector fired")
	}
	if qs.Delivered == 0 || qs.Refused != 0 {
		t.Errorf("qtest delivered %d messages and refused %d", qs.Delivered, qs.Refused)
	}
}

// checkNoRefusals fails if the model refused anything the guest's driver
// did (enasim's refusal score).
func checkNoRefusals(t *testing.T, d *ENADevice) {
	t.Helper()
	if r := d.Refusals(); r.Total != 0 {
		t.Errorf("the model refused the driver: %v", r)
	}
}

func httpGet(t *testing.T, c *http.Client, url string) []byte {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return b
}
