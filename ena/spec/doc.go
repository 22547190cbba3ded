// Package spec is the wire format of the Amazon Elastic Network Adapter (ENA):
// register offsets and bit fields, admin-queue commands and completions,
// feature payloads, asynchronous event (AENQ) entries, the host-info page,
// and the data-path descriptors and completions.
//
// The driver and the device model (ena/enasim) share nothing but this
// package, so every layout here must match the hardware byte for byte; a
// mistake made here would be made identically on both sides and no test
// between the two could find it. That is why every encoding has a test whose
// expected bytes were written by hand from the upstream C layouts.
//
// # Conventions
//
// Every multi-byte field is little-endian and is read and written explicitly
// with encoding/binary at a documented offset. Nothing is overlaid on DMA
// memory with a Go struct: Go gives no layout guarantee, and DMA memory lives
// outside the Go heap.
//
// Every structure Xxx has:
//
//   - const XxxSize, the number of bytes it occupies;
//   - a Go struct with typed fields (bool for one-bit flags, uintN for wider
//     fields, named types for enumerations);
//   - func (x *Xxx) Encode(b []byte), which writes exactly XxxSize bytes,
//     reserved bytes as zero;
//   - func DecodeXxx(b []byte) Xxx.
//
// Both require len(b) >= XxxSize: callers slice fixed-size ring entries, so
// a short slice is a programming error and may panic. Neither ever panics or
// misbehaves on any field value, because decoded bytes come from memory the
// other side controls. Where the protocol says someone checks must-be-zero
// bits, the decoder keeps them visible (an MBZ or Reserved field) instead of
// discarding them.
//
// 32-bit registers use the same idea on a uint32: a struct with
// Encode() uint32 and DecodeXxx(v uint32).
//
// Enumerations that appear in messages (Opcode, Status, FeatureID,
// ResetReason, AENQGroup, L3Proto, L4Proto, ...) are named integer types with
// a String method that prints the protocol's own name, so a log line reads
// "GET_FEATURE LLQ failed: ILLEGAL_PARAMETER".
//
// # Where the facts come from
//
// The source of truth is the project's protocol notes
// (docs/protocol.md); comments cite their sections as "§4.7".
// Every constant also names the upstream header and field it mirrors: the
// BSD-licensed ena_com headers ena_regs_defs.h, ena_admin_defs.h,
// ena_eth_io_defs.h and ena_common_defs.h (amzn-drivers kernel/fbsd and DPDK
// drivers/net/ena/base), cross-checked against the Linux copy. No upstream
// code or comment text is reproduced here, only the numbers.
//
// # Files
//
// common.go (48-bit mem_addr), regs.go (§2, §3), admin.go (§4.1–§4.7),
// features.go (§4.6, §4.8, §10), aenq.go (§5), hostinfo.go (§4.8
// HOST_ATTR_CONFIG) form the control plane; the remaining files hold the data
// path (§7, §8).
package spec
