package link

import (
	"context"
	"time"

	"github.com/enanet/enanet/rings"
)

// NIC is what the endpoint needs from a network device. *ena.Device
// satisfies it through a small adapter (link/enanic); tests and the
// simulated VPC use a software NIC (link/simnic). link never imports the
// driver, so the endpoint can be tested without a device model.
type NIC interface {
	// MAC is the device's unicast address (GET_FEATURE DEVICE_ATTRIBUTES, §4.8).
	MAC() [6]byte
	// MTU is the current L3 MTU (IP packet size, no Ethernet header).
	MTU() int
	// MaxMTU is the largest L3 MTU the device accepts.
	MaxMTU() int
	// SetMTU changes the device MTU (SET_FEATURE MTU, §4.8).
	SetMTU(int) error
	// Offloads are the negotiated stateless offloads.
	Offloads() Offloads
	// NumQueues is the number of I/O queue pairs.
	NumQueues() int
	// Queue returns queue pair i, 0 <= i < NumQueues(). Handles stay valid
	// across device resets.
	Queue(i int) Queue
	// LinkUp reports the last link state the device announced (AENQ
	// LINK_CHANGE, §5.2).
	LinkUp() bool
	// SetLinkHandler installs the function called on every link change.
	SetLinkHandler(func(up bool))
	// SetFatalHandler installs the function called once when the device has
	// failed for good (reset impossible or failed).
	SetFatalHandler(func(error))
}

// HealthReporter is implemented by a NIC that recovers from device faults
// by itself (enanic.NIC does): Endpoint.Stats then includes its Health.
type HealthReporter interface {
	// DeviceHealth says whether the device moves traffic and, while it
	// does not, how its recovery is going.
	DeviceHealth() DeviceHealth
}

// DeviceHealth is a device's recovery state, as Endpoint.Stats reports it.
// The fields mirror ena.Health so that link stays independent of the
// driver.
type DeviceHealth struct {
	// State is running, recovering, failed (gone for good) or closed.
	State string `json:"state"`
	// LinkUp is false while the device recovers.
	LinkUp bool `json:"link_up"`
	// Reason is the reset reason of the current recovery, or of the last
	// one when running again; Resets counts every reset.
	Reason string `json:"reset_reason,omitempty"`
	Resets uint64 `json:"resets"`
	// Attempt is the current recovery's attempt number (0 while running);
	// LastError is why the last attempt failed.
	Attempt   int    `json:"attempt"`
	LastError string `json:"last_error,omitempty"`
	// NextAttempt is when a failed recovery tries again (zero otherwise).
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// LastRecovery is how long the last completed recovery took.
	LastRecovery time.Duration `json:"last_recovery_ns"`
}

// Queue is one I/O queue pair. Tx methods are called by one goroutine at a
// time (the endpoint serialises them per queue) and Rx methods by the
// queue's Rx goroutine only.
type Queue interface {
	// Send gather-copies one frame (Ethernet header included) into the Tx
	// ring without ringing the doorbell. It returns rings.ErrNoSpace when
	// the ring is full after reclaiming completions.
	Send(segs [][]byte, off rings.TxOffload) error
	// Flush rings the doorbell once for everything Send queued.
	Flush()
	// Poll calls fn for up to budget received frames; the frames are valid
	// only during fn.
	Poll(budget int, fn func(*rings.RxPacket)) (int, error)
	// WaitRx blocks until a frame may be ready, Wake is called or ctx ends.
	WaitRx(ctx context.Context) error
	// Wake makes a concurrent WaitRx return.
	Wake()
}

// Offloads are the stateless offloads a device negotiated (GET_FEATURE
// STATELESS_OFFLOAD_CONFIG, §4.8). The fields mirror ena.Offloads so that link
// stays independent of the driver.
type Offloads struct {
	TxCsumIPv4          bool `json:"tx_csum_ipv4"`            // device computes the IPv4 header checksum
	TxL4CsumIPv4Partial bool `json:"tx_l4_csum_ipv4_partial"` // TCP/UDP over IPv4, checksum field seeded with the pseudo-header sum
	TxL4CsumIPv6Partial bool `json:"tx_l4_csum_ipv6_partial"` // TCP/UDP over IPv6, same partial mode
	RxCsumIPv4          bool `json:"rx_csum_ipv4"`            // device validates IPv4 header checksums
	RxCsumL4            bool `json:"rx_csum_l4"`              // device validates TCP/UDP checksums
	RxHash              bool `json:"rx_hash"`                 // completions carry an RSS hash
}
