package observe

import (
	"context"
	"time"

	"github.com/enanet/enanet/ena"
)

// Source is what snapshots are taken from: *ena.Device, or a cache in
// front of it (a server that polls statistics often should not send admin
// commands for every reader).
type Source interface {
	Stats(ctx context.Context) (ena.Stats, error)
}

// Snapshot is a device's counters at one instant.
type Snapshot struct {
	// Device names the device ("0000:00:06.0", "sim0").
	Device string    `json:"device"`
	Time   time.Time `json:"time"`
	// Counters in output order (see Counters).
	Counters []Counter `json:"counters"`
	// Error says why the device's own counters are missing (for example
	// during a reset); the driver's and the rings' counters are present.
	Error string `json:"error,omitempty"`
}

// Take reads src and names its counters. A device error is recorded in
// Snapshot.Error, not returned: the driver's counters are still worth
// showing, and the device's are left out rather than shown as zeros.
//
// Time is taken before the read: the driver's and the rings' counters are
// read first and the device's answer follows, so two snapshots taken
// concurrently order by Time as their driver counters do.
func Take(ctx context.Context, src Source, device string) Snapshot {
	t := time.Now()
	st, err := src.Stats(ctx)
	s := Snapshot{Device: device, Time: t, Counters: counters(&st, err == nil)}
	if err != nil {
		s.Error = err.Error()
	}
	return s
}

// Values returns the counters by name, the shape `ethtool -S` prints.
func (s Snapshot) Values() map[string]uint64 {
	m := make(map[string]uint64, len(s.Counters))
	for _, c := range s.Counters {
		m[c.Name] = c.Value
	}
	return m
}

// Rates returns, per counter name, the change per second from prev to cur.
// Gauges, counters absent from prev, and counters that went backwards (a
// device reset restarts the device's counters) have no rate.
func Rates(prev, cur Snapshot) map[string]float64 {
	dt := cur.Time.Sub(prev.Time).Seconds()
	if dt <= 0 {
		return nil
	}
	old := prev.Values()
	r := make(map[string]float64, len(cur.Counters))
	for _, c := range cur.Counters {
		p, ok := old[c.Name]
		if c.Gauge || !ok || c.Value < p {
			continue
		}
		r[c.Name] = float64(c.Value-p) / dt
	}
	return r
}
