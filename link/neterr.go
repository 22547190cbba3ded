package link

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// Errors of the net-style API (Dial, Listen, ListenPacket, Ping) look like
// package net's: a *net.OpError naming the operation, the network and the
// address, wrapping an *os.SyscallError with the errno a kernel socket
// would have given, so that errors.Is(err, syscall.ECONNREFUSED) and
// net.Error's Timeout() work unchanged after a service moves onto the
// userspace stack.

// timeoutError is what a deadline or an expired context turns into, as in
// package net: "i/o timeout", Timeout() true, and errors.Is matches both
// context.DeadlineExceeded and os.ErrDeadlineExceeded.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
func (timeoutError) Is(target error) bool {
	return target == context.DeadlineExceeded || target == os.ErrDeadlineExceeded
}

// canceledError is a cancelled context, as package net reports it.
type canceledError struct{}

func (canceledError) Error() string        { return "operation was canceled" }
func (canceledError) Is(target error) bool { return target == context.Canceled }

// ctxError maps a done context's error the way package net does.
func ctxError(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return timeoutError{}
	case errors.Is(err, context.Canceled):
		return canceledError{}
	}
	return err
}

// sysError turns a netstack error into the error a kernel socket call
// (call: "connect", "bind", ...) would have returned.
func sysError(call string, e tcpip.Error) error {
	var errno syscall.Errno
	switch e.(type) {
	case *tcpip.ErrConnectionRefused:
		errno = syscall.ECONNREFUSED
	case *tcpip.ErrPortInUse, *tcpip.ErrAlreadyBound:
		errno = syscall.EADDRINUSE
	case *tcpip.ErrBadLocalAddress:
		errno = syscall.EADDRNOTAVAIL
	case *tcpip.ErrNoPortAvailable:
		errno = syscall.EAGAIN
	case *tcpip.ErrHostUnreachable, *tcpip.ErrHostDown:
		errno = syscall.EHOSTUNREACH
	case *tcpip.ErrNetworkUnreachable, *tcpip.ErrNoNet:
		errno = syscall.ENETUNREACH
	case *tcpip.ErrConnectionReset:
		errno = syscall.ECONNRESET
	case *tcpip.ErrConnectionAborted, *tcpip.ErrAborted:
		errno = syscall.ECONNABORTED
	case *tcpip.ErrAddressFamilyNotSupported:
		errno = syscall.EAFNOSUPPORT
	case *tcpip.ErrMessageTooLong:
		errno = syscall.EMSGSIZE
	case *tcpip.ErrTimeout:
		return timeoutError{}
	default:
		return errors.New(e.String())
	}
	return os.NewSyscallError(call, errno)
}

// opError builds the *net.OpError package net would return.
func opError(op, network string, addr net.Addr, err error) *net.OpError {
	return &net.OpError{Op: op, Net: network, Addr: addr, Err: err}
}
