package ena

import "errors"

// SetRings, SetRxBufSize and SetMTU each decide what to rebuild from the
// settings they read (the ring sizes, the Rx buffer size and whether it
// follows the MTU, the MTU itself), allocate the new rings while traffic
// still flows, and only then take resetMu to install them. Another of
// these calls can complete in between; installing the stale decision
// would undo it (a SetRxBufSize(RxBuf4K) turned back to automatic by a
// SetMTU that looked before it). So the installing step checks that its
// basis still holds and, if not, frees its rings and reports errRingRace;
// the setter then decides again from the new settings.

// errRingRace is what a setter returns when another ring, buffer or MTU
// change completed between its decision and its rebuild, after the
// retries (ringRaceRetries) ran out too.
var errRingRace = errors.New("ena: set rings: another ring, Rx buffer or MTU change completed at the same time (nothing changed; try again)")

// ringRaceRetries is how often a setter decides again after a race: each
// retry follows a completed change, so only a stream of concurrent
// changes exhausts them.
const ringRaceRetries = 3

// ringBasis is what a ring change was decided from.
type ringBasis struct {
	rings RingParams
	mtu   int
}

// current reports whether b still describes the device; resetMu held.
func (b ringBasis) current(d *Device) bool {
	now := d.Rings()
	return d.rxBufSize == b.rings.RxBufSize && d.rxBufAuto == b.rings.RxBufAuto &&
		now.TxDepth == b.rings.TxDepth && now.RxDepth == b.rings.RxDepth &&
		d.MTU() == b.mtu
}

// retryRingRace runs set until it does not lose a race, at most
// 1+ringRaceRetries times.
func retryRingRace(set func() error) error {
	for attempt := 0; ; attempt++ {
		err := set()
		if !errors.Is(err, errRingRace) || attempt == ringRaceRetries {
			return err
		}
	}
}
