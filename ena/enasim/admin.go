package enasim

import (
	"fmt"

	"github.com/enanet/enanet/ena/spec"
)

// The admin queue (§4): the driver writes 64-byte commands into the AQ ring
// in host memory and rings AQ_DB with its free-running tail; the device
// consumes entries up to that tail, executes each and writes one 64-byte
// completion into the ACQ ring with the command id echoed and the phase bit
// made visible last. Nothing in an entry is trusted: every field is checked
// and a bad request gets a real error status, never a panic.

// completion is one ACQ entry waiting to be written.
type completion struct {
	cmdID   uint16
	op      spec.Opcode
	status  spec.Status
	ext     uint16
	payload [spec.ACQPayloadSize]byte
}

// Extended status values the model puts in MALFORMED_REQUEST completions, so
// a driver developer can tell the reasons apart in a trace ([sim]: real
// devices' values are undocumented).
const (
	extBadPhase   = 1 // AQ entry phase bit does not match the expected AQ phase
	extCtrlBuf    = 2 // control buffer missing, too short or mem_addr reserved bits set
	extReservedID = 3 // command id bits 15:12 set
)

// validRing reports whether a queue caps register describes a usable ring:
// 64-byte entries, depth a power of two.
func validRing(v uint32) (spec.QueueCaps, bool) {
	c := spec.DecodeQueueCaps(v)
	return c, c.EntrySize == spec.AQEntrySize && c.Depth != 0 && c.Depth&(c.Depth-1) == 0
}

// ringPhase is the phase bit of the entry at free-running position pos in a
// ring of depth entries: 1 on the first lap, toggling per wrap (§4.1).
func ringPhase(pos, depth uint16) bool {
	return (uint32(pos)/uint32(depth))&1 == 0
}

// adminDoorbell consumes AQ entries from the device head up to tail (§4.1,
// §11), with mu held.
func (m *Model) adminDoorbell(tail uint16) {
	if m.fatalReason != "" || m.closed {
		return // a FATAL device answers nothing
	}
	aq, ok := validRing(m.aqCaps)
	if !ok {
		m.fatal("AQ_DB written while AQ_CAPS is 0x%08x: need 64-byte entries and a power-of-two depth", m.aqCaps)
		return
	}
	if _, ok := validRing(m.acqCaps); !ok {
		m.fatal("AQ_DB written while ACQ_CAPS is 0x%08x: need 64-byte entries and a power-of-two depth", m.acqCaps)
		return
	}
	aqBase := uint64(m.aqBaseHi)<<32 | uint64(m.aqBaseLo)
	if aqBase == 0 || m.acqBaseLo == 0 && m.acqBaseHi == 0 {
		m.fatal("AQ_DB written before AQ and ACQ base addresses were programmed")
		return
	}
	if n := tail - m.aqHead; n > aq.Depth {
		m.fatal("AQ_DB tail %d is %d entries ahead of the device head %d but the AQ holds %d", tail, n, m.aqHead, aq.Depth)
		return
	}
	for m.aqHead != tail && m.fatalReason == "" {
		slot := m.aqHead & (aq.Depth - 1)
		phase := ringPhase(m.aqHead, aq.Depth)
		if err := m.mem.Read(aqBase+uint64(slot)*spec.AQEntrySize, m.entry[:]); err != nil {
			m.dmaFault(fmt.Sprintf("reading AQ entry %d", slot), err)
			return
		}
		m.aqHead++
		m.adminStarted = true
		m.adminCmds++
		m.execute(m.entry[:], slot, phase)
	}
}

// execute runs one AQ entry and queues its completion.
func (m *Model) execute(e []byte, slot uint16, phase bool) {
	c := completion{cmdID: spec.AQEntryCommandID(e), op: spec.AQEntryOpcode(e)}
	var detail string
	hdr := spec.DecodeAQHeader(e)
	switch {
	case hdr.Phase != phase:
		// Real-device behaviour is unknown (§11); answering keeps a driver
		// bug visible instead of hanging the driver.
		c.status, c.ext = spec.StatusMalformedRequest, extBadPhase
		detail = fmt.Sprintf("phase %v, expected %v", hdr.Phase, phase)
	case hdr.IDReserved != 0:
		c.status, c.ext = spec.StatusMalformedRequest, extReservedID
		detail = "command id bits 15:12 set"
	default:
		m.score.inCommand, m.score.noted = true, false
		detail = m.dispatch(e, &c)
		m.score.inCommand = false
	}
	if c.status != spec.StatusSuccess && !m.score.noted {
		m.noteRefusal(fmt.Sprintf("admin %s answered %s", adminRuleName(e, c.op), c.status), fmt.Sprintf("AQ[%d] cmd %d %s: %s", slot, c.cmdID, c.op, detail))
	}
	m.score.noted = false
	if m.tr != nil {
		m.tr.adminCommand(slot, e, c, detail)
	}
	if m.fatalReason != "" {
		return // the command faulted the device: no completion
	}
	m.complete(&c)
}

// adminRuleName names an admin command for the refusal score: the opcode,
// and for GET/SET_FEATURE and GET_STATS what they address.
func adminRuleName(e []byte, op spec.Opcode) string {
	switch op {
	case spec.OpGetFeature:
		return fmt.Sprintf("%s %s", op, spec.DecodeGetFeatureCmd(e).FeatureID)
	case spec.OpSetFeature:
		return fmt.Sprintf("%s %s", op, spec.DecodeSetFeatureCmd(e).FeatureID)
	case spec.OpGetStats:
		return fmt.Sprintf("%s %s", op, spec.DecodeGetStatsCmd(e).Type)
	}
	return op.String()
}

// dispatch decodes the entry with the spec decoder for its opcode and runs
// it, filling c. It returns a decoded description for the trace.
func (m *Model) dispatch(e []byte, c *completion) string {
	switch c.op {
	case spec.OpCreateCQ:
		// The firmware gates of §11 (no AENQ, ghost AENQ, host info on old
		// firmware) and every queue check live in createCQ/createSQ.
		cmd := spec.DecodeCreateCQCmd(e)
		resp, st := m.createCQ(cmd)
		c.status = st
		if st == spec.StatusSuccess {
			resp.Encode(c.payload[:])
			return fmt.Sprintf("%+v -> %+v", cmd, resp)
		}
		return fmt.Sprintf("%+v", cmd)
	case spec.OpCreateSQ:
		cmd := spec.DecodeCreateSQCmd(e)
		resp, st := m.createSQ(cmd)
		c.status = st
		if st == spec.StatusSuccess {
			resp.Encode(c.payload[:])
			return fmt.Sprintf("%+v -> %+v", cmd, resp)
		}
		return fmt.Sprintf("%+v", cmd)
	case spec.OpDestroySQ:
		cmd := spec.DecodeDestroySQCmd(e)
		c.status = m.destroySQ(cmd)
		return fmt.Sprintf("%+v", cmd)
	case spec.OpDestroyCQ:
		cmd := spec.DecodeDestroyCQCmd(e)
		c.status = m.destroyCQ(cmd)
		return fmt.Sprintf("%+v", cmd)
	case spec.OpGetFeature:
		cmd := spec.DecodeGetFeatureCmd(e)
		c.status = m.getFeature(&cmd, e, c.payload[:])
		return fmt.Sprintf("%s %+v", cmd.FeatureID, cmd)
	case spec.OpSetFeature:
		cmd := spec.DecodeSetFeatureCmd(e)
		c.status = m.setFeature(&cmd, e)
		return fmt.Sprintf("%s %+v", cmd.FeatureID, cmd)
	case spec.OpGetStats:
		cmd := spec.DecodeGetStatsCmd(e)
		c.status = m.getStats(&cmd, e, c.payload[:])
		return fmt.Sprintf("%s %+v", cmd.Type, cmd)
	}
	c.status = spec.StatusBadOpcode
	return "unknown opcode"
}

// complete writes c to the ACQ, unless an injected fault drops or delays it.
func (m *Model) complete(c *completion) {
	if m.faults.dropAdmin > 0 {
		m.faults.dropAdmin--
		m.tracef("ACQ: completion of command %d dropped (injected fault)", c.cmdID)
		return
	}
	if m.faults.delayAdmin > 0 || len(m.delayed) > 0 {
		m.delayed = append(m.delayed, *c)
		gen := m.gen
		m.timers.after(m.faults.delayAdmin, func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			if m.gen != gen || len(m.delayed) == 0 || m.closed {
				return
			}
			d := m.delayed[0]
			m.delayed = append(m.delayed[:0], m.delayed[1:]...)
			m.writeCompletion(&d)
		})
		return
	}
	m.writeCompletion(c)
}

// writeCompletion writes one ACQ entry at the device's ACQ tail: everything
// but the first word, then the first word (command id, status, phase) with
// one store, then raises vector 0 (§4.1, §11).
func (m *Model) writeCompletion(c *completion) {
	if m.fatalReason != "" {
		return
	}
	acq, ok := validRing(m.acqCaps)
	base := uint64(m.acqBaseHi)<<32 | uint64(m.acqBaseLo)
	if !ok || base == 0 {
		return // the ACQ went away (reset) while the completion was delayed
	}
	slot := m.acqTail & (acq.Depth - 1)
	h := spec.ACQHeader{
		CommandID:      c.cmdID,
		Status:         c.status,
		Phase:          ringPhase(m.acqTail, acq.Depth),
		ExtendedStatus: c.ext,
		SQHeadIndx:     m.aqHead,
	}
	b := m.cbuf[:]
	h.Encode(b)
	copy(b[spec.ACQPayloadOffset:], c.payload[:])
	addr := base + uint64(slot)*spec.ACQEntrySize
	if err := m.mem.Write(addr+4, b[4:]); err != nil {
		m.dmaFault(fmt.Sprintf("writing ACQ entry %d", slot), err)
		return
	}
	if err := m.publish32(addr, le32(b[0:4])); err != nil {
		m.dmaFault(fmt.Sprintf("writing ACQ entry %d", slot), err)
		return
	}
	if m.tr != nil {
		m.tr.adminCompletion(slot, c, h.Phase)
	}
	m.acqTail++
	m.raiseMgmt()
}

// ---------------------------------------------------------------------------
// Control buffers (§4.2)

// ctrlBuf validates a command's control buffer for need bytes: present,
// long enough, a clean mem_addr. Drivers set CTRL_DATA_INDIRECT for RSS
// features but not for GET_STATS, so the flag itself is not required.
func ctrlBuf(e []byte, need int) (uint64, bool) {
	cb := spec.DecodeCtrlBuf(e[spec.CtrlBufOffset:])
	if cb.Addr == 0 || int64(cb.Length) < int64(need) || spec.MemAddrReserved(e[spec.CtrlBufOffset+4:]) != 0 {
		return 0, false
	}
	return cb.Addr, true
}

// ---------------------------------------------------------------------------
// Features (§4.6, §4.8)

// supportedFeatures is DEVICE_ATTRIBUTES.supported_features: every feature
// the model implements; LINK_CONFIG is not advertised, as on EC2 (§4.6).
func (m *Model) supportedFeatures() uint32 {
	f := spec.FeatureBit(spec.FeatDeviceAttributes) |
		spec.FeatureBit(spec.FeatMaxQueuesNum) |
		spec.FeatureBit(spec.FeatHWHints) |
		spec.FeatureBit(spec.FeatMaxQueuesExt) |
		spec.FeatureBit(spec.FeatRSSHashFunction) |
		spec.FeatureBit(spec.FeatStatelessOffloadConfig) |
		spec.FeatureBit(spec.FeatRSSIndirectionTableConfig) |
		spec.FeatureBit(spec.FeatMTU) |
		spec.FeatureBit(spec.FeatRSSHashInput) |
		spec.FeatureBit(spec.FeatInterruptModeration) |
		spec.FeatureBit(spec.FeatAENQConfig) |
		spec.FeatureBit(spec.FeatHostAttrConfig)
	if m.prof.HasLLQ() {
		f |= spec.FeatureBit(spec.FeatLLQ)
	}
	return f
}

// aenqSupportedGroups is what GET AENQ_CONFIG reports: nothing for a ghost
// AENQ or none at all (§11, the OpenBSD observation).
func (m *Model) aenqSupportedGroups() uint32 {
	if !m.cfg.aenqRegistered {
		return 0
	}
	return m.prof.AENQGroups
}

// rssSupportedFields are the hash inputs the device can use per protocol
// (§10): L3+L4 for TCP/UDP, L3 for other IP, L2 for non-IP.
func rssSupportedFields() [spec.RSSProtoNum]uint16 {
	return spec.DefaultRSSHashFields()
}

// rssSupportedFuncs: Toeplitz and CRC32 (rss.go implements both).
const rssSupportedFuncs = 1<<spec.HashToeplitz | 1<<spec.HashCRC32

// getFeature answers GET_FEATURE into payload (ACQ entry [8:]).
func (m *Model) getFeature(cmd *spec.GetFeatureCmd, e, payload []byte) spec.Status {
	id := cmd.FeatureID
	if !spec.FeatureSupported(m.supportedFeatures(), id) {
		return spec.StatusUnsupportedOpcode
	}
	p := m.prof
	switch id {
	case spec.FeatDeviceAttributes:
		a := spec.DeviceAttributes{
			ImplID:            1,
			DeviceVersion:     regVersion,
			SupportedFeatures: m.supportedFeatures(),
			Capabilities:      m.capabilities(),
			PhysAddrWidth:     capsDMAWidth,
			VirtAddrWidth:     capsDMAWidth,
			MAC:               m.mac,
			MaxMTU:            uint32(p.MaxMTU),
		}
		a.Encode(payload)
	case spec.FeatMaxQueuesNum:
		q := spec.MaxQueuesNum{
			MaxSQNum: uint32(p.MaxQueues), MaxSQDepth: uint32(p.MaxTxDepth),
			MaxCQNum: uint32(p.MaxQueues), MaxCQDepth: uint32(p.MaxTxDepth),
			MaxLegacyLLQNum: uint32(p.LLQ.MaxQueues), MaxLegacyLLQDepth: uint32(p.LLQ.MaxDepth),
			MaxHeaderSize:    uint32(p.MaxTxHeader),
			MaxPacketTxDescs: uint16(p.MaxTxDescs), MaxPacketRxDescs: uint16(p.MaxRxDescs),
		}
		q.Encode(payload)
	case spec.FeatMaxQueuesExt:
		q := spec.MaxQueuesExt{
			Version:    spec.MaxQueuesExtVersion,
			MaxTxSQNum: uint32(p.MaxQueues), MaxTxCQNum: uint32(p.MaxQueues),
			MaxRxSQNum: uint32(p.MaxQueues), MaxRxCQNum: uint32(p.MaxQueues),
			MaxTxSQDepth: uint32(p.MaxTxDepth), MaxTxCQDepth: uint32(p.MaxTxDepth),
			MaxRxSQDepth: uint32(p.MaxRxDepth), MaxRxCQDepth: uint32(p.MaxRxDepth),
			MaxTxHeaderSize:     uint32(p.MaxTxHeader),
			MaxPerPacketTxDescs: uint16(p.MaxTxDescs), MaxPerPacketRxDescs: uint16(p.MaxRxDescs),
		}
		q.Encode(payload)
	case spec.FeatHWHints:
		h := p.Hints
		h.Encode(payload)
	case spec.FeatLLQ:
		l := m.llqFeature()
		l.Encode(payload)
	case spec.FeatStatelessOffloadConfig:
		s := spec.StatelessOffload{Tx: p.TxOffloads, RxSupported: p.RxOffloads, RxEnabled: p.RxOffloads}
		s.Encode(payload)
	case spec.FeatRSSHashFunction:
		f := spec.RSSHashFunction{
			SupportedFunc: rssSupportedFuncs,
			SelectedFunc:  1 << m.cfg.rssFunc,
			InitVal:       m.cfg.rssInitVal,
		}
		f.Encode(payload)
		if addr, ok := ctrlBuf(e, spec.RSSHashKeySize); ok {
			k := spec.RSSHashKey{KeyParts: spec.RSSKeyParts, Key: m.cfg.rssKey}
			var b [spec.RSSHashKeySize]byte
			k.Encode(b[:])
			if err := m.mem.Write(addr, b[:]); err != nil {
				m.dmaFault("GET RSS_HASH_FUNCTION: writing the key buffer", err)
				return spec.StatusUnknownError
			}
		}
	case spec.FeatRSSHashInput:
		in := spec.RSSHashInput{SupportedInputSort: spec.RSSDefaultInputSort, EnabledInputSort: m.cfg.rssInputSort}
		in.Encode(payload)
		if addr, ok := ctrlBuf(e, spec.RSSHashControlSize); ok {
			hc := spec.RSSHashControl{Supported: rssSupportedFields(), Selected: m.cfg.rssInputs}
			var b [spec.RSSHashControlSize]byte
			hc.Encode(b[:])
			if err := m.mem.Write(addr, b[:]); err != nil {
				m.dmaFault("GET RSS_HASH_INPUT: writing the control buffer", err)
				return spec.StatusUnknownError
			}
		}
	case spec.FeatRSSIndirectionTableConfig:
		t := spec.RSSIndirectionTable{
			MinSize: uint16(p.RSSTableLogMin), MaxSize: uint16(p.RSSTableLogMax),
			Size: uint16(m.cfg.rssTableLog), InlineIndex: spec.RSSIndTableNoInlineIndex,
		}
		t.Encode(payload)
		n := len(m.cfg.rssTable)
		if addr, ok := ctrlBuf(e, n*spec.RSSIndEntrySize); ok && n > 0 {
			b := make([]byte, n*spec.RSSIndEntrySize)
			for i, q := range m.cfg.rssTable {
				ent := spec.RSSIndEntry{CQIdx: q}
				ent.Encode(b[i*spec.RSSIndEntrySize:])
			}
			if err := m.mem.Write(addr, b); err != nil {
				m.dmaFault("GET RSS_INDIRECTION_TABLE_CONFIG: writing the table", err)
				return spec.StatusUnknownError
			}
		}
	case spec.FeatInterruptModeration:
		im := spec.InterruptModeration{DelayResolution: p.IntrDelayResolution}
		im.Encode(payload)
	case spec.FeatAENQConfig:
		a := spec.AENQConfig{SupportedGroups: m.aenqSupportedGroups(), EnabledGroups: m.cfg.aenqGroups}
		a.Encode(payload)
	default:
		// MTU and HOST_ATTR_CONFIG are SET-only.
		return spec.StatusUnsupportedOpcode
	}
	return spec.StatusSuccess
}

// llqFeature is the GET LLQ answer (§4.8, §8.1).
func (m *Model) llqFeature() spec.LLQ {
	l := &m.prof.LLQ
	f := spec.LLQ{
		MaxLLQNum:                  uint32(l.MaxQueues),
		MaxLLQDepth:                uint32(l.MaxDepth),
		HeaderLocationSupported:    l.HeaderLocations,
		EntrySizeSupported:         l.EntrySizes,
		DescsBeforeHeaderSupported: l.DescsBeforeHeader,
		StrideSupported:            l.Strides,
		FeatureVersion:             spec.LLQFeatureVersion,
		EntrySizeRecommended:       uint8(l.Recommended),
		MaxWideLLQDepth:            l.WideDepthReported,
		AccelFlags:                 l.AccelFlags,
		MaxTxBurstSize:             l.MaxTxBurst,
	}
	if m.cfg.llqEnabled {
		f.HeaderLocationEnabled = spec.LLQHeaderLocationInline
		f.EntrySizeEnabled = entrySizeCode(m.cfg.llqEntrySize)
		f.DescsBeforeHeaderEnabled = uint16(m.cfg.llqDescsBeforeHeader)
		f.StrideEnabled = spec.LLQStrideSingleDescPerEntry
		if m.cfg.llqMultipleDescs {
			f.StrideEnabled = spec.LLQStrideMultipleDescsPerEntry
		}
	}
	return f
}

func entrySizeCode(bytes int) uint16 {
	switch bytes {
	case 128:
		return spec.LLQEntrySize128
	case 192:
		return spec.LLQEntrySize192
	case 256:
		return spec.LLQEntrySize256
	}
	return 0
}

// oneBitIn reports whether v is a single bit that mask contains.
func oneBitIn(v, mask uint16) bool {
	return v != 0 && v&(v-1) == 0 && v&mask == v
}

// setFeature runs SET_FEATURE.
func (m *Model) setFeature(cmd *spec.SetFeatureCmd, e []byte) spec.Status {
	id := cmd.FeatureID
	if !spec.FeatureSupported(m.supportedFeatures(), id) {
		return spec.StatusUnsupportedOpcode
	}
	p := m.prof
	switch id {
	case spec.FeatLLQ:
		return m.setLLQ(spec.DecodeLLQ(cmd.Payload[:]))
	case spec.FeatMTU:
		mtu := spec.DecodeMTU(cmd.Payload[:]).MTU
		if mtu > uint32(p.MaxMTU) || mtu < 68 {
			m.tracef("SET MTU %d: outside 68..%d (max_mtu)", mtu, p.MaxMTU)
			return spec.StatusIllegalParameter
		}
		m.cfg.mtu = int(mtu)
	case spec.FeatRSSHashFunction:
		f := spec.DecodeRSSHashFunction(cmd.Payload[:])
		fn, ok := f.Selected()
		if !ok || uint(fn) >= 32 || rssSupportedFuncs&(1<<uint(fn)) == 0 {
			return spec.StatusIllegalParameter
		}
		addr, ok := ctrlBuf(e, spec.RSSHashKeySize)
		if !ok {
			return spec.StatusMalformedRequest
		}
		var b [spec.RSSHashKeySize]byte
		if err := m.mem.Read(addr, b[:]); err != nil {
			m.dmaFault("SET RSS_HASH_FUNCTION: reading the key buffer", err)
			return spec.StatusUnknownError
		}
		k := spec.DecodeRSSHashKey(b[:])
		if k.KeyParts != spec.RSSKeyParts {
			m.tracef("SET RSS_HASH_FUNCTION: key_parts %d, want %d", k.KeyParts, spec.RSSKeyParts)
			return spec.StatusIllegalParameter
		}
		m.cfg.rssFunc, m.cfg.rssInitVal, m.cfg.rssKey = spec.HashFunction(fn), f.InitVal, k.Key
	case spec.FeatRSSHashInput:
		in := spec.DecodeRSSHashInput(cmd.Payload[:])
		if in.EnabledInputSort&^spec.RSSDefaultInputSort != 0 {
			return spec.StatusIllegalParameter
		}
		addr, ok := ctrlBuf(e, spec.RSSHashControlSize)
		if !ok {
			return spec.StatusMalformedRequest
		}
		var b [spec.RSSHashControlSize]byte
		if err := m.mem.Read(addr, b[:]); err != nil {
			m.dmaFault("SET RSS_HASH_INPUT: reading the control buffer", err)
			return spec.StatusUnknownError
		}
		hc := spec.DecodeRSSHashControl(b[:])
		sup := rssSupportedFields()
		for i, sel := range hc.Selected {
			if sel&^sup[i] != 0 {
				m.tracef("SET RSS_HASH_INPUT: protocol %d selects fields %#x, supported %#x", i, sel, sup[i])
				return spec.StatusIllegalParameter
			}
		}
		m.cfg.rssInputs, m.cfg.rssInputSort = hc.Selected, in.EnabledInputSort
	case spec.FeatRSSIndirectionTableConfig:
		return m.setRSSTable(cmd, e)
	case spec.FeatHostAttrConfig:
		return m.setHostAttr(spec.DecodeHostAttrConfig(cmd.Payload[:]), cmd.Payload[:])
	case spec.FeatAENQConfig:
		a := spec.DecodeAENQConfig(cmd.Payload[:])
		if a.EnabledGroups&^m.aenqSupportedGroups() != 0 {
			m.tracef("SET AENQ_CONFIG: enabled groups %#x not within supported %#x", a.EnabledGroups, m.aenqSupportedGroups())
			return spec.StatusIllegalParameter
		}
		newly := a.EnabledGroups &^ m.cfg.aenqGroups
		m.cfg.aenqGroups = a.EnabledGroups
		if newly&spec.AENQLinkChange.Bit() != 0 {
			// [sim] §11: tell the driver the link state once events flow.
			m.postLinkChange()
		}
	default:
		// DEVICE_ATTRIBUTES, MAX_QUEUES*, HW_HINTS, STATELESS_OFFLOAD_CONFIG
		// and INTERRUPT_MODERATION are GET-only.
		return spec.StatusUnsupportedOpcode
	}
	return spec.StatusSuccess
}

// setLLQ validates SET_FEATURE LLQ against the profile (§8.1): each enabled
// field a single supported value, the layout buildable. Accel flags are
// masked with what the device supports, because vendor drivers enable both
// regardless of what GET reported.
func (m *Model) setLLQ(f spec.LLQ) spec.Status {
	l := &m.prof.LLQ
	bad := func(what string, v, sup uint16) spec.Status {
		m.tracef("SET LLQ: %s %#x is not one supported value (supported %#x)", what, v, sup)
		return spec.StatusIllegalParameter
	}
	if !oneBitIn(f.HeaderLocationEnabled, l.HeaderLocations) || f.HeaderLocationEnabled != spec.LLQHeaderLocationInline {
		return bad("header location", f.HeaderLocationEnabled, l.HeaderLocations)
	}
	if !oneBitIn(f.EntrySizeEnabled, l.EntrySizes) {
		return bad("entry size", f.EntrySizeEnabled, l.EntrySizes)
	}
	if !oneBitIn(f.DescsBeforeHeaderEnabled, l.DescsBeforeHeader) {
		return bad("descriptors before header", f.DescsBeforeHeaderEnabled, l.DescsBeforeHeader)
	}
	if !oneBitIn(f.StrideEnabled, l.Strides) {
		return bad("descriptor stride", f.StrideEnabled, l.Strides)
	}
	entry := spec.LLQEntrySizeBytes(f.EntrySizeEnabled)
	multiple := f.StrideEnabled == spec.LLQStrideMultipleDescsPerEntry
	layout, err := spec.NewLLQLayout(entry, int(f.DescsBeforeHeaderEnabled), multiple)
	if err != nil {
		m.tracef("SET LLQ: %v", err)
		return spec.StatusIllegalParameter
	}
	accel := f.AccelFlags & l.AccelFlags
	m.cfg.llqEnabled = true
	m.cfg.llqLayout = layout
	m.cfg.llqEntrySize = entry
	m.cfg.llqDescsBeforeHeader = int(f.DescsBeforeHeaderEnabled)
	m.cfg.llqMultipleDescs = multiple
	m.cfg.llqMetaCachingDisabled = accel&spec.LLQAccelDisableMetaCaching != 0
	m.cfg.llqBurstLimit = accel&spec.LLQAccelLimitTxBurst != 0
	m.cfg.llqMaxBurstEntries = 0
	if m.cfg.llqBurstLimit {
		m.cfg.llqMaxBurstEntries = int(l.MaxTxBurst) / entry
	}
	return spec.StatusSuccess
}

// setRSSTable programs the indirection table (§4.8, §10): either one inline
// entry or a whole table of 2^size entries from the control buffer. Entries
// hold Rx sq_idx values; a value naming no Rx SQ is accepted, and frames
// steered to it are dropped by the I/O side.
func (m *Model) setRSSTable(cmd *spec.SetFeatureCmd, e []byte) spec.Status {
	t := spec.DecodeRSSIndirectionTable(cmd.Payload[:])
	if t.InlineIndex != spec.RSSIndTableNoInlineIndex {
		if uint64(t.InlineIndex) >= uint64(len(m.cfg.rssTable)) {
			return spec.StatusIllegalParameter
		}
		m.cfg.rssTable[t.InlineIndex] = t.InlineCQIdx
		return spec.StatusSuccess
	}
	if int(t.Size) < m.prof.RSSTableLogMin || int(t.Size) > m.prof.RSSTableLogMax {
		m.tracef("SET RSS_INDIRECTION_TABLE_CONFIG: size log %d outside %d..%d", t.Size, m.prof.RSSTableLogMin, m.prof.RSSTableLogMax)
		return spec.StatusIllegalParameter
	}
	n := 1 << t.Size
	addr, ok := ctrlBuf(e, n*spec.RSSIndEntrySize)
	if !ok {
		return spec.StatusMalformedRequest
	}
	b := make([]byte, n*spec.RSSIndEntrySize)
	if err := m.mem.Read(addr, b); err != nil {
		m.dmaFault("SET RSS_INDIRECTION_TABLE_CONFIG: reading the table", err)
		return spec.StatusUnknownError
	}
	table := make([]uint16, n)
	for i := range table {
		table[i] = spec.DecodeRSSIndEntry(b[i*spec.RSSIndEntrySize:]).CQIdx
	}
	m.cfg.rssTable, m.cfg.rssTableLog = table, int(t.Size)
	return spec.StatusSuccess
}

// setHostAttr reads the host-info page (and checks the debug area) through
// Memory (§4.8 HOST_ATTR_CONFIG). A page outside mapped memory is an IOMMU
// fault.
func (m *Model) setHostAttr(h spec.HostAttrConfig, raw []byte) spec.Status {
	if h.OSInfoAddr == 0 || spec.MemAddrReserved(raw[0:]) != 0 || spec.MemAddrReserved(raw[8:]) != 0 {
		return spec.StatusIllegalParameter
	}
	page := make([]byte, spec.HostInfoPageSize)
	if err := m.mem.Read(h.OSInfoAddr, page); err != nil {
		m.dmaFault("HOST_ATTR_CONFIG: reading the host-info page", err)
		return spec.StatusUnknownError
	}
	if h.DebugAddr != 0 && h.DebugAreaSize != 0 {
		if _, err := m.mem.Slice(h.DebugAddr, int(h.DebugAreaSize)); err != nil {
			m.dmaFault("HOST_ATTR_CONFIG: debug area", err)
			return spec.StatusUnknownError
		}
	}
	m.cfg.hostAttrSet = true
	m.cfg.hostInfo = page[:spec.HostInfoSize]
	m.cfg.hostModeration = spec.DecodeHostInfo(page).DriverSupportedFeatures&spec.HostFeatInterruptModeration != 0
	if m.tr != nil {
		hi := spec.DecodeHostInfo(page)
		m.tr.printf("    host info: %+v", hi)
	}
	return spec.StatusSuccess
}

// HostInfo returns the host-info page the driver registered with
// HOST_ATTR_CONFIG, decoded, and whether there is one.
func (m *Model) HostInfo() (spec.HostInfo, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.cfg.hostAttrSet {
		return spec.HostInfo{}, false
	}
	page := make([]byte, spec.HostInfoPageSize)
	copy(page, m.cfg.hostInfo)
	return spec.DecodeHostInfo(page), true
}

// ---------------------------------------------------------------------------
// GET_STATS (§4.7)

func (m *Model) getStats(cmd *spec.GetStatsCmd, e, payload []byte) spec.Status {
	s := &m.stats
	caps := m.capabilities()
	switch cmd.Type {
	case spec.StatsBasic:
		b := spec.BasicStats{
			TxBytes: s.txBytes, TxPkts: s.txPkts, RxBytes: s.rxBytes, RxPkts: s.rxPkts,
			RxDrops: s.rxDrops, TxDrops: s.txDrops, RxOverruns: s.rxOverruns,
		}
		b.Encode(payload)
	case spec.StatsENI:
		if !spec.CapENIStats.In(caps) {
			return spec.StatusUnsupportedOpcode
		}
		n := spec.ENIStats{
			BWInAllowanceExceeded: s.bwIn, BWOutAllowanceExceeded: s.bwOut,
			PPSAllowanceExceeded: s.pps, ConntrackAllowanceExceeded: s.conntrack,
			LinklocalAllowanceExceeded: s.linklocal,
		}
		n.Encode(payload)
	case spec.StatsCustomerMetrics:
		if !spec.CapCustomerMetrics.In(caps) {
			return spec.StatusUnsupportedOpcode
		}
		reported := cmd.RequestedMetrics & spec.CustomerMetricsSupportMask
		cm := spec.CustomerMetrics{ReportedMetrics: reported}
		cm.Encode(payload)
		cb := spec.DecodeCtrlBuf(e[spec.CtrlBufOffset:])
		if cb.Addr == 0 && cb.Length == 0 {
			return spec.StatusSuccess // discovery: only the inline bitmap
		}
		need := spec.CustomerMetricsBufLen(reported)
		addr, ok := ctrlBuf(e, need)
		if !ok {
			return spec.StatusMalformedRequest
		}
		vals := [6]uint64{s.bwIn, s.bwOut, s.pps, s.conntrack, s.linklocal, s.conntrackAvailable}
		buf := make([]byte, need)
		for id := range uint(6) {
			if slot, ok := spec.CustomerMetricSlot(reported, id); ok {
				putLE64(buf[8*slot:], vals[id])
			}
		}
		if need > 0 {
			if err := m.mem.Write(addr, buf); err != nil {
				m.dmaFault("GET_STATS CUSTOMER_METRICS: writing the metrics buffer", err)
				return spec.StatusUnknownError
			}
		}
	case spec.StatsENASRD:
		if !spec.CapENASRDInfo.In(caps) {
			return spec.StatusUnsupportedOpcode
		}
		// See Profile.ENAExpress: all traffic is eligible and carried.
		srd := spec.SRDStats{
			Flags:  spec.SRDEnabled | spec.SRDUDPEnabled,
			TxPkts: s.txPkts, EligibleTxPkts: s.txPkts, RxPkts: s.rxPkts,
		}
		srd.Encode(payload)
	case spec.StatsExtended:
		return spec.StatusUnsupportedOpcode
	default:
		return spec.StatusIllegalParameter
	}
	return spec.StatusSuccess
}

// capabilities is DEVICE_ATTRIBUTES.capabilities: the profile's, plus
// ENA_SRD_INFO when the profile offers ENA Express.
func (m *Model) capabilities() uint32 {
	c := m.prof.Capabilities
	if m.prof.ENAExpress {
		c |= spec.CapENASRDInfo.Bit()
	}
	return c
}

func putLE64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}
