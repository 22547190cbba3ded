// Package bench measures enanet side by side with what a user would pick
// instead, in one run on one machine: the driver's data path (the rings
// benchmarks), TCP goodput and round-trip time between two gVisor stacks
// linked by (a) gVisor's channel endpoint, (b) two enasim devices through
// the ena driver and the link endpoint, (c) gVisor's fdbased endpoint over a
// veth pair (with and without runsc's host GSO), and Linux kernel TCP over a
// veth pair between two network namespaces, plus bring-up and
// reset-recovery time on enasim. For the (b) rows it also splits the
// process's CPU time between the device model, enanet's own code, gVisor
// and the Go runtime (GoodputAttributed), and for every row, plus the
// enahttp demo path, it measures HTTP request rate and latency
// (RequestRate).
//
// The command is bench/cmd/enabench (see bench/README.md). Everything that
// needs root (namespaces, veth, AF_PACKET) is skipped, with the reason in the
// table, when the process is not root; nothing is ever made up: a row that
// could not be measured says why.
//
// Network rules: the veth-based links live only inside network namespaces
// this package creates (named "enabench-<pid>-<n>"), carry only addresses
// from 10.99.0.0/16, and are deleted on every exit path (Close, and the
// command's signal handler).
package bench
