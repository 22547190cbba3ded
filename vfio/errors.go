package vfio

import (
	"errors"
	"fmt"
	"strings"
)

// Kinds of failure Open and the DMA allocator report. Each is a sentinel for
// errors.Is; the *Error carrying it also says how to fix the problem.
var (
	// ErrNoDevice: no PCI function at the address.
	ErrNoDevice = errors.New("no such PCI device")
	// ErrNotBound: the function is bound to another driver, or to none.
	ErrNotBound = errors.New("device not bound to vfio-pci")
	// ErrNoIOMMU: no IOMMU group for the function and VFIO no-IOMMU mode is
	// off, so vfio-pci cannot take the device.
	ErrNoIOMMU = errors.New("no IOMMU and VFIO no-IOMMU mode is off")
	// ErrGroupNotViable: another device in the IOMMU group is bound to a
	// host driver.
	ErrGroupNotViable = errors.New("IOMMU group not viable")
	// ErrPermission: /dev/vfio or /proc/self/pagemap refused us.
	ErrPermission = errors.New("permission denied")
	// ErrHugepages: no free 2 MiB hugepages.
	ErrHugepages = errors.New("no free 2 MiB hugepages")
	// ErrMemlock: the locked-memory limit is too low to pin DMA memory.
	ErrMemlock = errors.New("locked-memory limit too low")
	// ErrVFIOMissing: the vfio modules are not loaded.
	ErrVFIOMissing = errors.New("VFIO not available")
	// ErrUnsupported: the device or kernel lacks something we need.
	ErrUnsupported = errors.New("unsupported")
)

// Error is a failure with the operation that failed, its kind, the
// underlying cause and what the user should do about it.
type Error struct {
	Op    string // what we were doing, e.g. "open 0000:00:06.0"
	Kind  error  // one of the Err* sentinels above, or nil
	Cause string // what went wrong, as a phrase
	Err   error  // underlying system error, or nil
	Fix   string // what to do, as an imperative sentence
}

// Error reads as a sentence: "vfio: op: cause: err; to fix: fix".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("vfio: ")
	b.WriteString(e.Op)
	if e.Cause != "" {
		b.WriteString(": ")
		b.WriteString(e.Cause)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.Fix != "" {
		b.WriteString("; to fix: ")
		b.WriteString(e.Fix)
	}
	return b.String()
}

// Unwrap lets errors.Is match both the kind and the system error.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// errorf builds an *Error without a kind or fix, for failures that are bugs
// or kernel surprises rather than setup problems.
func errorf(op string, err error, format string, args ...any) *Error {
	return &Error{Op: op, Err: err, Cause: fmt.Sprintf(format, args...)}
}
