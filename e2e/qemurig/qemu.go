package qemurig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"time"
)

// VMConfig is one guest boot.
type VMConfig struct {
	Kernel string // uncompressed vmlinux (PVH boot)
	Initrd string
	Append string // extra kernel command line
	MemMB  int    // default 1024
	// CPUs is the number of vCPUs; default 1. With two, QEMU 7.2.22 drops
	// MMIO to the proxy device when two vCPUs access it at once ("Blocked
	// re-entrant IO on MemoryRegion": the proxy releases the big lock while
	// it waits for our reply, and the re-entrancy guard then discards the
	// second vCPU's access), which loses doorbells.
	CPUs    int
	IOMMU   bool // emulated intel-iommu (and intel_iommu=on in the guest)
	Edu     bool // add QEMU's edu device
	Proxy   *os.File
	Console *os.File // optional copy of the serial console
	// QTest is the socket QEMU's qtest server connects to (see QTest); ""
	// = none.
	QTest string
	// CPUModel is -cpu; "" = QEMU's default (DPDK needs "max" for SSE4.2).
	CPUModel string
}

// VM is a running qemu-system-x86_64.
type VM struct {
	cmd   *exec.Cmd
	done  chan struct{}
	err   error
	stdin io.WriteCloser // the guest's serial console input

	mu     sync.Mutex
	serial bytes.Buffer
	wake   chan struct{} // closed and replaced on every console write
}

// QEMUBinary is the emulator the rig runs (Debian package qemu-system-x86).
const QEMUBinary = "qemu-system-x86_64"

// StartVM boots a guest under TCG with the proxy socket as fd 3
// (x-pci-proxy-dev fd=3). The VM is killed when ctx is done or Close is called.
func StartVM(ctx context.Context, cfg VMConfig) (*VM, error) {
	if cfg.MemMB == 0 {
		cfg.MemMB = 1024
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = 1
	}
	// no_timer_check: under TCG on a loaded host the kernel's check that the
	// timer interrupt works through the (interrupt-remapped) IO-APIC can
	// miss its window and panic at boot ("timer doesn't work through
	// Interrupt-remapped IO-APIC"), as it did once in CI.
	appendLine := "console=ttyS0 panic=-1 loglevel=4 no_timer_check " + cfg.Append
	if cfg.IOMMU {
		appendLine += " intel_iommu=on"
	}
	args := []string{
		"-machine", "q35,memory-backend=mem",
		"-object", fmt.Sprintf("memory-backend-memfd,id=mem,size=%dM,share=on", cfg.MemMB),
		"-m", fmt.Sprintf("%dM", cfg.MemMB),
		"-smp", fmt.Sprint(cfg.CPUs), "-accel", "tcg",
		"-nographic", "-no-reboot", "-nic", "none", "-vga", "none", "-nodefaults",
		"-serial", "stdio",
		"-kernel", cfg.Kernel, "-initrd", cfg.Initrd, "-append", appendLine,
	}
	if cfg.CPUModel != "" {
		args = append(args, "-cpu", cfg.CPUModel)
	}
	if cfg.IOMMU {
		// intremap=off: under TCG intel-iommu enables interrupt remapping
		// by default, and the guest would then program remappable-format
		// MSI messages that only the IOMMU's DMA path can translate; the
		// rig's qtest writes reach the APIC directly (qtest.go).
		args = append(args, "-device", "intel-iommu,intremap=off")
	}
	if cfg.QTest != "" {
		args = append(args, "-qtest", "unix:"+cfg.QTest, "-qtest-log", "/dev/null")
	}
	var extra []*os.File
	if cfg.Proxy != nil {
		extra = append(extra, cfg.Proxy) // becomes fd 3
		args = append(args, "-device", "x-pci-proxy-dev,id=ena0,fd=3,addr=0x5")
	}
	if cfg.Edu {
		args = append(args, "-device", "edu,addr=0x6,dma_mask=18446744073709551615")
	}
	cmd := exec.Command(QEMUBinary, args...)
	cmd.ExtraFiles = extra
	return runVM(ctx, cmd, cfg.Console)
}

// runVM starts cmd as the VM's process: its output is the console, its
// input the console's keyboard.
func runVM(ctx context.Context, cmd *exec.Cmd, console *os.File) (*VM, error) {
	vm := &VM{done: make(chan struct{}), wake: make(chan struct{})}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("qemurig: console input pipe: %w", err)
	}
	vm.stdin = stdin
	cmd.Stdout = consoleWriter{vm, console}
	cmd.Stderr = consoleWriter{vm, console}
	// Pdeathsig: QEMU dies with the test process, so none is left behind
	// even if the test binary is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("qemurig: start %s (apt-get install qemu-system-x86): %w", cmd.Path, err)
	}
	vm.cmd = cmd
	go func() {
		vm.err = cmd.Wait()
		close(vm.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			vm.kill()
		case <-vm.done:
		}
	}()
	return vm, nil
}

type consoleWriter struct {
	vm   *VM
	copy *os.File
}

func (w consoleWriter) Write(p []byte) (int, error) {
	w.vm.mu.Lock()
	w.vm.serial.Write(p)
	close(w.vm.wake)
	w.vm.wake = make(chan struct{})
	w.vm.mu.Unlock()
	if w.copy != nil {
		w.copy.Write(p)
	}
	return len(p), nil
}

// Console returns everything the guest printed so far.
func (vm *VM) Console() string {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.serial.String()
}

// WaitFor waits until the console matches re and returns the first match's
// submatches, or fails when timeout passes or QEMU exits first.
func (vm *VM) WaitFor(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		vm.mu.Lock()
		m := re.FindStringSubmatch(vm.serial.String())
		wake := vm.wake
		vm.mu.Unlock()
		if m != nil {
			return m, nil
		}
		select {
		case <-wake:
		case <-vm.done:
			if m := re.FindStringSubmatch(vm.Console()); m != nil {
				return m, nil
			}
			return nil, fmt.Errorf("qemurig: QEMU exited (%v) before the console showed %q", vm.err, re)
		case <-deadline.C:
			return nil, fmt.Errorf("qemurig: console did not show %q within %v", re, timeout)
		}
	}
}

// SendConsole types line (and a newline) on the guest's serial console,
// which the guest's script can read with `read`: the host's way to tell
// the guest a step is done.
func (vm *VM) SendConsole(line string) error {
	if _, err := io.WriteString(vm.stdin, line+"\n"); err != nil {
		return fmt.Errorf("qemurig: write to the guest console: %w", err)
	}
	return nil
}

// Done is closed when QEMU has exited.
func (vm *VM) Done() <-chan struct{} { return vm.done }

func (vm *VM) kill() {
	if vm.cmd.Process != nil {
		syscall.Kill(-vm.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// Close kills QEMU (if still running) and waits for it to exit.
func (vm *VM) Close() error {
	select {
	case <-vm.done:
	default:
		vm.kill()
		<-vm.done
	}
	var ee *exec.ExitError
	if vm.err != nil && !errors.As(vm.err, &ee) {
		return vm.err
	}
	return nil
}
