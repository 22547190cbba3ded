package qemurig

import (
	"errors"
	"os/exec"
	"regexp"
	"syscall"
	"time"
)

// IOMMUBootAttempts is how many times a guest with the emulated intel-iommu
// is started when QEMU itself dies of SIGSEGV before the guest's init runs.
//
// Why: QEMU 7.2 under TCG can free a memory region while a vCPU is still
// inside a write to it. The guest kernel's writes to the intel-iommu's
// command register (a region smaller than a page, so QEMU dispatches it
// through a heap-allocated "subpage" region) rebuild the memory map from
// the vCPU thread; 7.2's tcg_commit then ends the vCPU's RCU read section
// early (cpu_reloading_memory_map), the RCU thread frees the old map with
// its subpage, and the write's epilogue in access_with_adjusted_size reads
// the freed region's owner pointer. A core dump of one such crash shows
// exactly that: SIGSEGV in the vCPU thread right after
// memory_region_dispatch_write's accessor returned, on a MemoryRegion
// allocated in the vCPU thread's arena and overwritten. QEMU 8.1 defers
// that work to the vCPU (async_run_on_cpu in tcg_commit); Debian 12's QEMU
// 7.2 does not have the change. It struck one boot in fifteen on a 2-core
// machine at load 5 and three in seven at load 12, only with intel-iommu,
// only before init.
//
// Only that crash is retried: any other exit, or a crash after the guest
// printed GUEST-READY, fails the test as before.
const IOMMUBootAttempts = 5

// guestReady is the first line the rig's init prints (image.go), after the
// kernel has enabled the IOMMU and the modules are loaded.
var guestReady = regexp.MustCompile(`GUEST-READY`)

// guestBootTimeout bounds the wait for GUEST-READY; TCG boots take 5-20 s on
// a loaded 2-core machine.
const guestBootTimeout = 3 * time.Minute

// waitGuestReady waits until the guest's init has started. crashedInBoot is
// true when QEMU died of SIGSEGV before that: the QEMU 7.2 crash described
// at IOMMUBootAttempts.
func waitGuestReady(vm *VM) (crashedInBoot bool, err error) {
	if _, err := vm.WaitFor(guestReady, guestBootTimeout); err != nil {
		return vm.diedOf(syscall.SIGSEGV) && !guestReady.MatchString(vm.Console()), err
	}
	return false, nil
}

// diedOf reports whether QEMU has exited, killed by sig.
func (vm *VM) diedOf(sig syscall.Signal) bool {
	select {
	case <-vm.done:
	default:
		return false
	}
	var ee *exec.ExitError
	if !errors.As(vm.err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}
