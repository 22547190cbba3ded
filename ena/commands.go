package ena

import (
	"fmt"

	"github.com/enanet/enanet/ena/spec"
)

// One small function per admin command (§4.7, §4.8). Each names its step
// for errors, encodes with package spec and decodes the response with it.

// getFeature sends GET_FEATURE id and returns the response payload (ACQ
// entry offset 8). ctrl, if non-nil, is a control buffer the device fills.
func (d *Device) getFeature(op string, id spec.FeatureID, version uint8, ctrl *spec.CtrlBuf) ([]byte, error) {
	cmd := spec.GetFeatureCmd{FeatureID: id, FeatureVersion: version}
	if ctrl != nil {
		cmd.Header.CtrlDataIndirect = true
		cmd.CtrlBuf = *ctrl
	}
	var e [spec.AQEntrySize]byte
	cmd.Encode(e[:])
	resp, err := d.admin.exec(op, e[:])
	if err != nil {
		return nil, err
	}
	return resp[spec.ACQPayloadOffset:], nil
}

// setFeature sends SET_FEATURE id with the payload encode writes.
func (d *Device) setFeature(op string, id spec.FeatureID, version uint8, ctrl *spec.CtrlBuf, encode func(b []byte)) error {
	cmd := spec.SetFeatureCmd{FeatureID: id, FeatureVersion: version}
	if ctrl != nil {
		cmd.Header.CtrlDataIndirect = true
		cmd.CtrlBuf = *ctrl
	}
	encode(cmd.Payload[:])
	var e [spec.AQEntrySize]byte
	cmd.Encode(e[:])
	_, err := d.admin.exec(op, e[:])
	return err
}

// featureSupported reports whether DEVICE_ATTRIBUTES advertised id (§4.6);
// drivers never send GET/SET for features the device did not advertise.
func (d *Device) featureSupported(id spec.FeatureID) bool {
	return spec.FeatureSupported(d.attrs.SupportedFeatures, id)
}

// setHostAttr sends SET HOST_ATTR_CONFIG with the host-info page (§6 step 12).
func (d *Device) setHostAttr() error {
	h := spec.HostAttrConfig{OSInfoAddr: d.hostInfo.Addr}
	return d.setFeature("set host attributes", spec.FeatHostAttrConfig, 0, nil, h.Encode)
}

// getDeviceAttributes reads MAC, max MTU, features and capabilities (§6 step 13).
func (d *Device) getDeviceAttributes() (spec.DeviceAttributes, error) {
	p, err := d.getFeature("get device attributes", spec.FeatDeviceAttributes, 0, nil)
	if err != nil {
		return spec.DeviceAttributes{}, err
	}
	return spec.DecodeDeviceAttributes(p), nil
}

// queueLimits is what MAX_QUEUES_EXT or MAX_QUEUES_NUM allows (§4.8).
type queueLimits struct {
	queues          int // queue pairs
	txDepth         int
	rxDepth         int
	maxTxDescs      int // descriptors per Tx packet incl. meta
	maxRxDescs      int
	maxTxHeaderSize int
}

// getMaxQueues reads the queue limits, MAX_QUEUES_EXT if advertised, else
// MAX_QUEUES_NUM (§6 step 14).
func (d *Device) getMaxQueues() (queueLimits, error) {
	if d.featureSupported(spec.FeatMaxQueuesExt) {
		p, err := d.getFeature("get max queues (ext)", spec.FeatMaxQueuesExt, spec.MaxQueuesExtVersion, nil)
		if err != nil {
			return queueLimits{}, err
		}
		m := spec.DecodeMaxQueuesExt(p)
		if m.Version != spec.MaxQueuesExtVersion {
			return queueLimits{}, fmt.Errorf("ena: get max queues (ext): device answered version %d, want %d (§4.8)", m.Version, spec.MaxQueuesExtVersion)
		}
		return queueLimits{
			queues:          int(min(m.MaxTxSQNum, m.MaxTxCQNum, m.MaxRxSQNum, m.MaxRxCQNum, 1024)),
			txDepth:         int(min(m.MaxTxSQDepth, m.MaxTxCQDepth, 1<<16)),
			rxDepth:         int(min(m.MaxRxSQDepth, m.MaxRxCQDepth, 1<<16)),
			maxTxDescs:      int(m.MaxPerPacketTxDescs),
			maxRxDescs:      int(m.MaxPerPacketRxDescs),
			maxTxHeaderSize: int(min(m.MaxTxHeaderSize, 256)),
		}, nil
	}
	p, err := d.getFeature("get max queues", spec.FeatMaxQueuesNum, 0, nil)
	if err != nil {
		return queueLimits{}, err
	}
	m := spec.DecodeMaxQueuesNum(p)
	return queueLimits{
		queues:          int(min(m.MaxSQNum, m.MaxCQNum, 1024)),
		txDepth:         int(min(m.MaxSQDepth, m.MaxCQDepth, 1<<16)),
		rxDepth:         int(min(m.MaxSQDepth, m.MaxCQDepth, 1<<16)),
		maxTxDescs:      int(m.MaxPacketTxDescs),
		maxRxDescs:      int(m.MaxPacketRxDescs),
		maxTxHeaderSize: int(min(m.MaxHeaderSize, 256)),
	}, nil
}

// getAENQConfig reads the supported AENQ groups (§6 steps 15 and 20).
func (d *Device) getAENQConfig() (spec.AENQConfig, error) {
	p, err := d.getFeature("get AENQ config", spec.FeatAENQConfig, 0, nil)
	if err != nil {
		return spec.AENQConfig{}, err
	}
	return spec.DecodeAENQConfig(p), nil
}

// setAENQConfig enables groups (already intersected with the supported
// ones, §4.8 AENQ_CONFIG).
func (d *Device) setAENQConfig(groups uint32) error {
	c := spec.AENQConfig{EnabledGroups: groups}
	return d.setFeature("set AENQ config", spec.FeatAENQConfig, 0, nil, c.Encode)
}

// getOffloads reads STATELESS_OFFLOAD_CONFIG (§6 step 16).
func (d *Device) getOffloads() (spec.StatelessOffload, error) {
	p, err := d.getFeature("get stateless offloads", spec.FeatStatelessOffloadConfig, 0, nil)
	if err != nil {
		return spec.StatelessOffload{}, err
	}
	return spec.DecodeStatelessOffload(p), nil
}

// getHints reads HW_HINTS when advertised; zeros otherwise (§6 step 17).
func (d *Device) getHints() (spec.HWHints, error) {
	if !d.featureSupported(spec.FeatHWHints) {
		return spec.HWHints{}, nil
	}
	p, err := d.getFeature("get HW hints", spec.FeatHWHints, 0, nil)
	if err != nil {
		return spec.HWHints{}, err
	}
	return spec.DecodeHWHints(p), nil
}

// getLLQ reads the LLQ capabilities when advertised; zeros otherwise
// (§6 step 18).
func (d *Device) getLLQ() (spec.LLQ, error) {
	if !d.featureSupported(spec.FeatLLQ) {
		return spec.LLQ{}, nil
	}
	p, err := d.getFeature("get LLQ", spec.FeatLLQ, spec.LLQFeatureVersion, nil)
	if err != nil {
		return spec.LLQ{}, err
	}
	return spec.DecodeLLQ(p), nil
}

// setLLQ enables the negotiated LLQ layout (§6 step 21, §8.1).
func (d *Device) setLLQ(l spec.LLQ) error {
	return d.setFeature("set LLQ", spec.FeatLLQ, spec.LLQFeatureVersion, nil, l.Encode)
}

// setMTU sends SET MTU (L3 MTU, §4.8).
func (d *Device) setMTU(mtu int) error {
	if !d.featureSupported(spec.FeatMTU) {
		return nil
	}
	m := spec.MTU{MTU: uint32(mtu)}
	return d.setFeature(fmt.Sprintf("set MTU %d", mtu), spec.FeatMTU, 0, nil, m.Encode)
}

// createCQ sends CREATE_CQ (§4.7). vector < 0 means no interrupt.
func (d *Device) createCQ(op string, depth int, entryWords uint8, vector int, addr uint64) (spec.CreateCQResp, error) {
	cmd := spec.CreateCQCmd{
		EntrySizeWords: entryWords,
		Depth:          uint16(depth),
		MSIXVector:     spec.MSIXNoVector,
		BaseAddr:       addr,
	}
	if vector >= 0 {
		cmd.InterruptMode = true
		cmd.MSIXVector = uint32(vector)
	}
	var e [spec.AQEntrySize]byte
	cmd.Encode(e[:])
	resp, err := d.admin.exec(op, e[:])
	if err != nil {
		return spec.CreateCQResp{}, err
	}
	return spec.DecodeCreateCQResp(resp[spec.ACQPayloadOffset:]), nil
}

// createSQ sends CREATE_SQ bound to cqIdx (§4.7).
func (d *Device) createSQ(op string, dir spec.SQDirection, placement spec.PlacementPolicy, cqIdx uint16, depth int, addr uint64) (spec.CreateSQResp, error) {
	cmd := spec.CreateSQCmd{
		Direction:        dir,
		Placement:        placement,
		CompletionPolicy: spec.CompletionPolicyDesc,
		PhysContiguous:   true,
		CQIdx:            cqIdx,
		Depth:            uint16(depth),
		BaseAddr:         addr,
	}
	var e [spec.AQEntrySize]byte
	cmd.Encode(e[:])
	resp, err := d.admin.exec(op, e[:])
	if err != nil {
		return spec.CreateSQResp{}, err
	}
	return spec.DecodeCreateSQResp(resp[spec.ACQPayloadOffset:]), nil
}

// destroySQ sends DESTROY_SQ (§4.7).
func (d *Device) destroySQ(op string, dir spec.SQDirection, sqIdx uint16) error {
	cmd := spec.DestroySQCmd{SQIdx: sqIdx, Direction: dir}
	var e [spec.AQEntrySize]byte
	cmd.Encode(e[:])
	_, err := d.admin.exec(op, e[:])
	return err
}

// destroyCQ sends DESTROY_CQ (§4.7).
func (d *Device) destroyCQ(op string, cqIdx uint16) error {
	cmd := spec.DestroyCQCmd{CQIdx: cqIdx}
	var e [spec.AQEntrySize]byte
	cmd.Encode(e[:])
	_, err := d.admin.exec(op, e[:])
	return err
}

// getStats sends GET_STATS of type t for the function itself (§4.7) and
// returns the response payload.
func (d *Device) getStats(t spec.StatsType) ([]byte, error) {
	return d.getStatsCmd(spec.GetStatsCmd{Type: t})
}

// getStatsCmd sends GET_STATS cmd (type, control buffer, requested
// metrics) for the function itself over the ETH_TRAFFIC scope.
func (d *Device) getStatsCmd(cmd spec.GetStatsCmd) ([]byte, error) {
	t := cmd.Type
	cmd.Scope, cmd.DeviceID = spec.StatsScopeEthTraffic, spec.StatsDeviceSelf
	var e [spec.AQEntrySize]byte
	cmd.Encode(e[:])
	resp, err := d.admin.exec("get "+t.String()+" statistics", e[:])
	if err != nil {
		return nil, err
	}
	return resp[spec.ACQPayloadOffset:], nil
}
