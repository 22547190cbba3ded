package link

import (
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// epCounters are the endpoint-wide counters.
type epCounters struct {
	txLinkDown atomic.Uint64
	fatal      atomic.Uint64
	linkChange atomic.Uint64
}

// addOwned adds n to a counter that only one goroutine (or only holders
// of one lock) writes: a load and a store, without the locked
// read-modify-write an Add costs on every packet. Readers still load it
// atomically.
func addOwned(c *atomic.Uint64, n uint64) { c.Store(c.Load() + n) }

// rxCounters are one Rx queue's counters, written by its goroutine only.
type rxCounters struct {
	packets, bytes atomic.Uint64
	devVerified    atomic.Uint64
	swVerified     atomic.Uint64
	csumBad        atomic.Uint64
	fragDropped    atomic.Uint64 // dropped: bad checksum, overlap, limits, expiry, IPv6
	fragVerified   atomic.Uint64 // delivered after the datagram's checksum was verified
	malformed      atomic.Uint64
	foreignMAC     atomic.Uint64
	noDispatcher   atomic.Uint64
	pollErrors     atomic.Uint64
	batches        atomic.Uint64
}

// TxQueueStats are the endpoint's counters for one Tx queue.
type TxQueueStats struct {
	Packets      uint64 `json:"packets"`
	Bytes        uint64 `json:"bytes"`
	NoSpace      uint64 `json:"no_space"`      // packets refused for lack of ring room after retries
	Dropped      uint64 `json:"dropped"`       // packets the queue refused for another reason
	SoftwareCsum uint64 `json:"software_csum"` // TCP/UDP checksums computed here for lack of device support
}

// RxQueueStats are the endpoint's counters for one Rx queue.
type RxQueueStats struct {
	Packets           uint64 `json:"packets"`
	Bytes             uint64 `json:"bytes"`
	Batches           uint64 `json:"batches"`
	DeviceVerified    uint64 `json:"device_verified"`    // L4 checksum checked by the device
	SoftwareVerified  uint64 `json:"software_verified"`  // L4 checksum checked here
	ChecksumBad       uint64 `json:"checksum_bad"`       // dropped: bad IPv4 or L4 checksum
	FragmentsDropped  uint64 `json:"fragments_dropped"`  // dropped: bad datagram checksum, overlap, limits, timeout, IPv6 fragments
	FragmentsVerified uint64 `json:"fragments_verified"` // IPv4 fragments delivered after their datagram's checksum was verified
	Malformed         uint64 `json:"malformed"`
	ForeignMAC        uint64 `json:"foreign_mac"`
	NoDispatcher      uint64 `json:"no_dispatcher"` // received while detached
	PollErrors        uint64 `json:"poll_errors"`
}

// Stats is a snapshot of the endpoint's state and counters.
type Stats struct {
	LinkUp        bool           `json:"link_up"`
	Fatal         string         `json:"fatal,omitempty"`
	MTU           int            `json:"mtu"`
	GSO           bool           `json:"gso"`
	GRO           bool           `json:"gro"`
	TxCsumOffload bool           `json:"tx_csum_offload"`
	RxCsumOffload bool           `json:"rx_csum_offload"`
	LinkChanges   uint64         `json:"link_changes"`
	TxLinkDown    uint64         `json:"tx_link_down"` // frames dropped while the link was down
	Tx            []TxQueueStats `json:"tx"`
	Rx            []RxQueueStats `json:"rx"`
	// Health is the device's recovery state (link down while recovering,
	// the attempt, the last error), when the NIC reports one
	// (HealthReporter).
	Health *DeviceHealth `json:"health,omitempty"`
}

// Stats returns the endpoint's counters.
func (e *Endpoint) Stats() Stats {
	st := Stats{
		LinkUp:        e.linkUp.Load(),
		MTU:           int(e.mtu.Load()),
		GSO:           e.gso,
		GRO:           e.gro,
		TxCsumOffload: e.caps&stack.CapabilityTXChecksumOffload != 0,
		RxCsumOffload: e.rxOffload,
		LinkChanges:   e.stats.linkChange.Load(),
		TxLinkDown:    e.stats.txLinkDown.Load(),
	}
	if err := e.Err(); err != nil {
		st.Fatal = err.Error()
	}
	if hr, ok := e.nic.(HealthReporter); ok {
		h := hr.DeviceHealth()
		st.Health = &h
	}
	for _, q := range e.tx {
		st.Tx = append(st.Tx, TxQueueStats{
			Packets: q.packets.Load(), Bytes: q.bytes.Load(), NoSpace: q.noSpace.Load(),
			Dropped: q.dropped.Load(), SoftwareCsum: q.swCsum.Load(),
		})
	}
	for _, r := range e.rx {
		c := &r.c
		st.Rx = append(st.Rx, RxQueueStats{
			Packets: c.packets.Load(), Bytes: c.bytes.Load(), Batches: c.batches.Load(),
			DeviceVerified: c.devVerified.Load(), SoftwareVerified: c.swVerified.Load(),
			ChecksumBad: c.csumBad.Load(), FragmentsDropped: c.fragDropped.Load(), FragmentsVerified: c.fragVerified.Load(),
			Malformed: c.malformed.Load(), ForeignMAC: c.foreignMAC.Load(),
			NoDispatcher: c.noDispatcher.Load(), PollErrors: c.pollErrors.Load(),
		})
	}
	return st
}
