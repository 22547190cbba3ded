// Package e2e holds end-to-end tests in which the Linux kernel is the peer
// of the userspace stack.
//
// Each test builds a kernel peer (harness_test.go, startKernelPeer): a
// network namespace of its own, a simulated ENA whose wire is a TAP
// interface moved into that namespace, and a gVisor stack (package link)
// on the driver. Real Linux clients then talk to the userspace stack from
// inside the namespace: curl, ping, and kernel TCP/UDP sockets.
//
// Code that must run as a kernel client inside the namespace (bulk TCP,
// UDP) does so in-process: a goroutine locks itself to an OS thread,
// setns()es that thread into the namespace, creates its socket there and
// exits without unlocking, so the runtime destroys the thread and no other
// goroutine ever runs in the namespace. A socket keeps the namespace it was
// created in, so the returned net.Conn is used from any goroutine. External
// tools run under `ip netns exec`.
//
// The tests need root (namespaces, TAP) and iproute2, ping and curl. They
// skip saying what is missing, except under CI=true, where a skip is a
// failure (internal/testenv). The QEMU rig in e2e/qemurig is separate.
//
// In comments, "§n.m" refers to that section of docs/protocol.md.
package e2e
