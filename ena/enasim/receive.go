package enasim

// Receive hands the model a frame arriving from the wire, for code that
// wires a Model itself instead of through Device (the QEMU proxy rig): pass
// m.Receive to Wire.SetReceiver. The frame is not retained.
func (m *Model) Receive(frame []byte) { m.receive(frame) }
