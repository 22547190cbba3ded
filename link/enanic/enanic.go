// Package enanic adapts the ENA driver to link.NIC. It is the only place
// where link and ena meet: link stays testable without the driver, and the
// driver knows nothing of gVisor.
//
//	dev, _ := ena.Open(hwdev, ena.Config{})
//	st, _ := link.NewStack(enanic.New(dev), link.StackOptions{DHCP: true})
package enanic

import (
	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/link"
)

// NIC is an *ena.Device seen as a link.NIC.
type NIC struct {
	*ena.Device
}

var _ link.NIC = NIC{}

// New wraps dev.
func New(dev *ena.Device) NIC { return NIC{dev} }

// Offloads implements link.NIC: the same fields, in link's type.
func (n NIC) Offloads() link.Offloads {
	o := n.Device.Offloads()
	return link.Offloads{
		TxCsumIPv4:          o.TxCsumIPv4,
		TxL4CsumIPv4Partial: o.TxL4CsumIPv4Partial,
		TxL4CsumIPv6Partial: o.TxL4CsumIPv6Partial,
		RxCsumIPv4:          o.RxCsumIPv4,
		RxCsumL4:            o.RxCsumL4,
		RxHash:              o.RxHash,
	}
}

// DeviceHealth implements link.HealthReporter: the device's Health in
// link's type, so the endpoint's Stats show recovery.
func (n NIC) DeviceHealth() link.DeviceHealth {
	h := n.Device.Health()
	d := link.DeviceHealth{
		State: h.State.String(), LinkUp: h.LinkUp, Resets: h.Resets, Attempt: h.Attempt,
		LastError: h.LastError, NextAttempt: h.NextAttempt, LastRecovery: h.LastRecovery,
	}
	if h.Resets > 0 {
		d.Reason = h.Reason.String()
	}
	return d
}

var _ link.HealthReporter = NIC{}

// Queue implements link.NIC; *ena.QueuePair has exactly link.Queue's methods.
func (n NIC) Queue(i int) link.Queue { return n.Device.Queue(i) }
