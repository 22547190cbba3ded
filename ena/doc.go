// Package ena is the control plane of the ENA driver: it brings a device up
// in ena-com's order (protocol §6), runs the admin queue (§4) and the event
// queue (§5), negotiates features, LLQ (§8) and RSS (§10), creates the I/O
// queue pairs (package rings does the per-packet work), and keeps the
// device healthy with a 1-second watchdog that resets and rebuilds it when
// something goes wrong (§9).
//
// The driver touches hardware only through package hw, so the same code
// runs on a real ENA over VFIO and on the simulator in ena/enasim.
//
// Files: config.go (knobs), regs.go (register access, readless reads §3),
// admin.go (AQ/ACQ §4.1), commands.go (one function per admin command),
// aenq.go (§5), llq.go (§8.1), rss.go (§10), hostinfo.go (§4.8 host
// info), device.go (the Device, its fields by owner, Open, Close),
// bringup.go (one function per §6 step, shared by first boot and
// recovery), mgmt.go (the management goroutine: admin interrupts, AENQ),
// watchdog.go (health checks §9.2), recovery.go (reset and rebuild §9.3),
// queue.go (QueuePair), stats.go (statistics and Info), trace.go
// (register trace, Config.Trace).
//
// In comments, "§n.m" refers to that section of docs/protocol.md.
package ena
