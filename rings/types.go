package rings

import (
	"errors"
	"fmt"

	"github.com/enanet/enanet/ena/spec"
)

// ErrNoSpace is returned by Send when the Tx ring has no room for the frame.
// The caller reclaims completions and retries, or reports back-pressure to
// the stack (tcpip.ErrNoBufferSpace) so TCP retransmits.
var ErrNoSpace = errors.New("rings: Tx ring full")

// ErrFrameTooLong is returned by Send for a frame the queue cannot carry
// (longer than its buffers and descriptor limit allow).
var ErrFrameTooLong = errors.New("rings: frame too long for the Tx queue")

// DeviceError reports a value read from device-written memory that breaks the
// protocol (a bad req_id, too many descriptors, must-be-zero bits set). The
// queue stops using the offending completion and the driver must reset the
// device with Reason (protocol §2.3, §7.5, §7.7).
type DeviceError struct {
	Queue  string           // "tx 0", "rx 3"
	Reason spec.ResetReason // reset reason to send in DEV_CTL
	Detail string           // what was wrong, for the log
}

func (e *DeviceError) Error() string {
	return fmt.Sprintf("rings: %s: %s (reset reason %v)", e.Queue, e.Detail, e.Reason)
}

// TxOffload asks the device to compute checksums for one frame. The zero value
// asks for nothing. With L4Csum and L4Partial the caller must have seeded the
// TCP/UDP checksum field with the pseudo-header sum (protocol §7.2, §7.3).
type TxOffload struct {
	L3        spec.L3Proto `json:"l3"`
	L4        spec.L4Proto `json:"l4"`
	L3Csum    bool         `json:"l3_csum"`    // compute the IPv4 header checksum
	L4Csum    bool         `json:"l4_csum"`    // compute the TCP/UDP checksum
	L4Partial bool         `json:"l4_partial"` // checksum field already holds the pseudo-header sum
	DF        bool         `json:"df"`         // IPv4 DF bit is set, or IPv6
	L3HdrOff  uint8        `json:"l3_hdr_off"` // bytes from frame start to the IP header (14 for Ethernet)
	L3HdrLen  uint8        `json:"l3_hdr_len"` // IP header length in bytes
	L4HdrLen  uint8        `json:"l4_hdr_len"` // TCP/UDP header length in 32-bit words
}

// Active reports whether the frame needs a meta descriptor for its offloads.
func (o *TxOffload) Active() bool { return o.L3Csum || o.L4Csum }

// MaxRxFrags bounds the number of buffers one received frame may span. ENA
// drivers cap Rx descriptors per packet at 19 or below (protocol §7.9).
const MaxRxFrags = 19

// RxPacket is one received frame as it sits in the Rx ring's DMA buffers.
// Frags and the bytes they reference are valid only during the callback that
// receives the packet: the buffers are re-posted to the device afterwards.
type RxPacket struct {
	Frags  [MaxRxFrags][]byte
	NFrags int
	Len    int // total bytes over all Frags

	Hash          uint32 // RSS hash from the last completion
	L3            spec.L3Proto
	L4            spec.L4Proto
	L3CsumErr     bool // IPv4 header checksum bad or not validated (IPv4 only)
	L4CsumErr     bool // L4 checksum bad or not validated (valid when L4CsumChecked)
	L4CsumChecked bool // the device validated the L4 checksum
	IPv4Frag      bool
}

// TxStats are a Tx queue's counters (cumulative, like DPDK's xstats).
type TxStats struct {
	Packets          uint64 `json:"packets"`
	Bytes            uint64 `json:"bytes"`
	Doorbells        uint64 `json:"doorbells"`
	Completions      uint64 `json:"completions"`
	NoSpace          uint64 `json:"no_space"`   // Send refused for lack of ring room
	Linearized       uint64 `json:"linearized"` // frames copied into fewer buffers to meet the descriptor limit
	MetaDescs        uint64 `json:"meta_descs"`
	LLQEntries       uint64 `json:"llq_entries"`
	BadReqID         uint64 `json:"bad_req_id"`
	MalformedCdesc   uint64 `json:"malformed_cdesc"`
	MissedCompletion uint64 `json:"missed_completion"` // packets found overdue by the watchdog
	Dropped          uint64 `json:"dropped"`           // in-flight frames discarded by a queue reset
}

// RxStats are an Rx queue's counters.
type RxStats struct {
	Packets         uint64 `json:"packets"`
	Bytes           uint64 `json:"bytes"`
	Doorbells       uint64 `json:"doorbells"`
	Refills         uint64 `json:"refills"`        // buffers posted
	RefillPartial   uint64 `json:"refill_partial"` // refills that could not fill the ring
	NoBuffer        uint64 `json:"no_buffer"`      // polls that found the ring without free buffers
	L3CsumBad       uint64 `json:"l3_csum_bad"`
	L3CsumGood      uint64 `json:"l3_csum_good"`
	L4CsumBad       uint64 `json:"l4_csum_bad"`
	L4CsumGood      uint64 `json:"l4_csum_good"`
	L4CsumUnchecked uint64 `json:"l4_csum_unchecked"`
	BadReqID        uint64 `json:"bad_req_id"`
	TooManyDescs    uint64 `json:"too_many_descs"`
	MalformedCdesc  uint64 `json:"malformed_cdesc"`
}
