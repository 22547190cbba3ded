package enasim

import (
	"github.com/enanet/enanet/ena/spec"
)

// A device checksums every byte twice on the in-process wires: the sender
// when it computes the L4 checksum the driver asked for (§7.2), the
// receiver when it verifies it for the Rx completion (§7.7). The second
// pass cannot fail when the receiver sums exactly what the sender summed:
// the same bytes (nothing touched the frame between the two models), the
// same pseudo-header and the same segment. The sender therefore records
// where it summed (txChecksummed) next to the frame it queues, the
// in-process wires hand that record to the receiving model with the frame
// (receiverSlot.deliverSent), and the receiver skips its own sum only when
// its parse of the frame finds the segment exactly there. Everything else
// is verified as before: frames from any other wire (impairment, TAP, UDP,
// Model.Receive), frames whose checksum the driver computed itself, and a
// partial-offload frame whose pseudo-header sum, stored by the driver,
// is not the one the device derives from the headers. What the receiver
// reports is unchanged; only the redundant arithmetic is gone.

// txChecksummed is where the sending device computed a correct L4 checksum
// in a frame; the zero value (valid false) means it computed none that the
// receiver may rely on.
type txChecksummed struct {
	valid        bool
	l3           spec.L3Proto
	l4           spec.L4Proto
	l3Off, l4Off int
	l4Len        int
}

// covers reports whether the receiver's parse fi finds the L4 segment
// exactly where the sender summed it, so the sender's checksum verifies.
func (c *txChecksummed) covers(fi *frameInfo) bool {
	return c != nil && c.valid && fi.l4Valid && !fi.frag &&
		c.l3 == fi.l3 && c.l4 == fi.l4 &&
		c.l3Off == fi.l3Off && c.l4Off == fi.l4Off && c.l4Len == fi.l4Len
}
