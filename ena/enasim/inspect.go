package enasim

import "github.com/enanet/enanet/ena/spec"

// DeviceState is what the device holds now, as negotiated and programmed by
// the driver: tests compare it with what they asked the driver for, so a
// setting counts as applied only when the device has it.
type DeviceState struct {
	// MTU is the SET_FEATURE MTU value.
	MTU int
	// RSS (§10).
	RSSFunction spec.HashFunction
	RSSKey      [spec.RSSKeySize]byte
	RSSTable    []uint16 // Rx sq_idx per entry
	RSSInputs   [spec.RSSProtoNum]uint16
	// Moderation: whether the driver advertised it (host-info bit 2), the
	// resolution the device reports, delay writes refused, and how many
	// interrupts were held by a delay.
	ModerationNegotiated bool
	IntrDelayResolution  uint16
	DelaysRefused        uint64
	InterruptsHeld       uint64
	// Vectors are the I/O vectors in use, by MSI-X index.
	Vectors map[int]VectorState
	// TxSQs and RxSQs are the I/O submission queues that exist.
	TxSQs, RxSQs []SQState
}

// VectorState is one I/O vector's moderation state.
type VectorState struct {
	RxDelay, TxDelay uint16 // units of IntrDelayResolution µs
	Delivered        uint64 // interrupts since reset
}

// SQState is one I/O submission queue.
type SQState struct {
	Idx     uint16
	Depth   int
	CQDepth int
	Vector  int // the CQ's MSI-X vector, -1 for none
	// LastRxBufLen is the length of the last Rx buffer the device used
	// (Rx only; 0 before the first frame).
	LastRxBufLen int
	// LastTxDescs is the number of data descriptors (buffers) of the last
	// packet the device sent (Tx only; 0 before the first packet).
	LastTxDescs int
}

// State returns a snapshot of the device's configuration.
func (m *Model) State() DeviceState {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := DeviceState{
		MTU:                  m.cfg.mtu,
		RSSFunction:          m.cfg.rssFunc,
		RSSKey:               m.cfg.rssKey,
		RSSTable:             append([]uint16(nil), m.cfg.rssTable...),
		RSSInputs:            m.cfg.rssInputs,
		ModerationNegotiated: m.cfg.hostModeration,
		IntrDelayResolution:  m.prof.IntrDelayResolution,
		DelaysRefused:        m.io.mod.refused,
		InterruptsHeld:       m.io.mod.held,
		Vectors:              map[int]VectorState{},
	}
	for i := range m.io.vecs {
		v := &m.io.vecs[i]
		if v.cqs > 0 {
			s.Vectors[i] = VectorState{RxDelay: v.rxDelay, TxDelay: v.txDelay, Delivered: v.delivered}
		}
	}
	sqState := func(sq *ioSQ) SQState {
		st := SQState{Idx: sq.idx, Depth: sq.depth, Vector: -1}
		if sq.cq != nil {
			st.CQDepth, st.Vector = sq.cq.depth, sq.cq.vector
		}
		if sq.rx != nil {
			st.LastRxBufLen = sq.rx.lastBufLen
		}
		if sq.tx != nil {
			st.LastTxDescs = sq.tx.lastDescs
		}
		return st
	}
	for _, sq := range m.io.txSQs {
		if sq != nil {
			s.TxSQs = append(s.TxSQs, sqState(sq))
		}
	}
	for _, sq := range m.io.rxSQs {
		if sq != nil {
			s.RxSQs = append(s.RxSQs, sqState(sq))
		}
	}
	return s
}

// State returns a snapshot of the model's configuration (Model.State).
func (d *Device) State() DeviceState { return d.model.State() }
