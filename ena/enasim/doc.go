// Package enasim is a software model of the Amazon Elastic Network Adapter
// (ENA), faithful enough that the enanet driver, its tests, the demo and the
// benchmarks run on a laptop exactly as they would on EC2. It is written
// from the protocol notes (docs/protocol.md; "§n.m" cites their sections)
// and shares nothing with the driver but the wire format in package
// ena/spec, so a driver bug is not silently agreed with.
//
// # Using it
//
// A Device is an in-process hw.Device; hand it to the driver as you would a
// VFIO device:
//
//	a, b := enasim.NewPair()                   // two devices on one cable
//	devA, err := enasim.New(enasim.Config{Profile: enasim.ProfileNitroV4, Wire: a})
//	...
//	defer devA.Close()
//	nic, err := ena.Open(devA, ena.Config{})   // the real driver, unchanged
//
// Config chooses the instance class (ProfileNitroV3, the default x86 class
// with optional 128-byte LLQ; ProfileNitroV4, the Graviton class that
// requires LLQ for Tx and recommends 256-byte entries it then refuses at
// depth 1024; ProfileNoLLQ, a small instance without BAR2; or ProfileByName),
// the PCI device id and revision (revision bit 0 set = no readless reads),
// the MAC, the keep-alive period (shorten it in tests), a Trace writer and a
// Logger. Wires connect devices: NewLoopback, NewPair, NewTAP (a Linux TAP
// device, so the kernel is the peer; needs root) and NewUDP (two processes).
//
// # What it models
//
// Registers and reset (§2, §3): identity 1d0f:ec20 (ec21, 0ec2, 1ec2
// selectable), VERSION 0.10, CONTROLLER_VERSION 0.0.1 impl 1, CAPS with an
// 800 ms reset timeout, 48-bit DMA and an admin timeout field of 0 (drivers use
// their 3 s default), DEV_STS, the
// two-phase DEV_CTL reset that discards every queue, registration, feature
// and the readless address, readless reads (value first, req_id last) and
// plain reads, INTR_MASK.
//
// Admin queue (§4): entries consumed on AQ_DB up to the written tail with the
// phase checked; completions with the command id echoed and the phase bit
// stored last; every opcode and every feature a driver uses, with the error
// statuses a real device gives (UNSUPPORTED_OPCODE for features it does not
// advertise, such as LINK_CONFIG; ILLEGAL_PARAMETER for values outside the
// profile; MALFORMED_REQUEST for missing control buffers; BAD_OPCODE).
//
// AENQ (§5): events only for enabled groups and only while AENQ_HEAD_DB
// credits remain (others wait); a keep-alive every period with the drop
// counters; link changes, hints and device-requested resets through Faults.
// The init-order rules real firmware enforces (§11): an AENQ registered
// after the first admin command is a ghost (GET AENQ_CONFIG reports no
// groups, and ~150 µs after AENQ_HEAD_DB the device goes FATAL and stops
// answering); without any AENQ, admin commands answer but I/O queues cannot
// be created; AENQ_HEAD_DB before the AENQ exists is a device error.
//
// I/O queues (§7, §8): host and LLQ Tx, Rx, checksums, RSS, interrupts and
// allowances; see the I/O files of this package.
//
// Memory and interrupts: the Device's DMA allocator maps memory outside the
// Go heap at device addresses from 0x10_0000_0000 and acts as an IOMMU: any
// DMA outside an allocation (a CPU pointer, a freed ring, an overrun) puts
// the device in FATAL_ERROR with the reason in FatalReason. Vector 0 is the
// management vector; 1+q belong to queue pair q.
//
// # Inspecting and breaking it
//
// Device.Stats reports the device counters and state. Device.Faults injects
// failures: InjectFatal, StopKeepAlive, DropAdminCompletions,
// DelayAdminCompletions, SetLink, RequestReset, SendHints, plus the
// data-path faults of the I/O side. A Trace writer receives one
// human-readable line per register read and write (with DEV_STS after every
// write), every admin command decoded and in hex, every completion and
// every AENQ event; it is how the late-AENQ bug of the OpenBSD port was
// found, and how to find yours:
//
//	sim0 +0.000157s W 0x040 AENQ_HEAD_DB  <- 0x00000010 | DEV_STS=0x01
//
// # Other transports
//
// The device logic is Model. It receives register accesses as calls
// (RegRead/RegWrite, or Read/Write with an access width), LLQ stores as
// MemWrite, reaches host memory only through the Memory interface and
// raises interrupts through IRQSink, so NewModel can serve a guest whose
// BAR accesses arrive over a socket. The Model owns its goroutines (the
// keep-alive ticker and timers); Close stops them.
package enasim
