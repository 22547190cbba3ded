package ena

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/enanet/enanet/ena/hw"
	"github.com/enanet/enanet/ena/hw/dmamem"
	"github.com/enanet/enanet/ena/spec"
)

// regs is BAR0 as the driver uses it: plain stores for writes and, for
// reads, either plain loads or the readless mechanism of §3, chosen by PCI
// revision bit 0 (§1.1). Every access goes through here so the register
// trace (Config.Trace) sees all of them.
type regs struct {
	bar      hw.RegisterBAR
	readless bool
	tr       *tracer

	// mu serialises readless reads: the protocol allows one outstanding
	// request at a time (§3 step 2).
	mu      sync.Mutex
	resp    *hw.Region // 8-byte response buffer, nil for plain reads
	seq     uint16
	timeout atomic.Int64 // readless poll limit in ns; HW hint mmio_read_timeout overrides (§9.1)
}

// ErrRegRead reports a readless read the device never answered, or answered
// for the wrong register (§3: the read "returns 0xFFFFFFFF").
var ErrRegRead = fmt.Errorf("ena: register read failed")

func newRegs(dev hw.Device, tr *tracer) (*regs, error) {
	r := &regs{bar: dev.Registers(), readless: dev.Identity().Readless(), tr: tr}
	r.timeout.Store(int64(spec.DefaultReadlessTimeout))
	if r.readless {
		resp, err := dev.DMA().Alloc(4096, 4096)
		if err != nil {
			return nil, fmt.Errorf("ena: allocate readless response buffer: %w", err)
		}
		r.resp = resp
	}
	return r, nil
}

// setupReadless programs the response address (§3 step 1). It must run
// before the first read and again after every DEV_CTL reset write, because
// the device forgets the address on reset (§6 step 3.4).
func (r *regs) setupReadless() {
	if r.resp == nil {
		return
	}
	r.mu.Lock()
	r.seq = 0
	dmamem.Publish32(r.resp.Bytes, 0, 0)
	r.mu.Unlock()
	r.write(spec.RegMMIORespLo, uint32(r.resp.Addr))
	r.write(spec.RegMMIORespHi, uint32(r.resp.Addr>>32))
}

// teardownReadless clears the response address (§3 step 3) and frees it.
func (r *regs) teardownReadless() {
	if r.resp == nil {
		return
	}
	r.write(spec.RegMMIORespLo, 0)
	r.write(spec.RegMMIORespHi, 0)
	r.mu.Lock()
	_ = r.resp.Free()
	r.resp = nil // later reads fail instead of touching freed memory
	r.mu.Unlock()
}

// write stores one register.
func (r *regs) write(off, val uint32) {
	r.tr.reg('W', off, val)
	r.bar.Write32(off, val)
}

// read loads one register. Readless failures return ErrRegRead so callers
// never mistake 0xFFFFFFFF for a value.
func (r *regs) read(off uint32) (uint32, error) {
	if !r.readless {
		v := r.bar.Read32(off)
		r.tr.reg('R', off, v)
		return v, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.resp == nil {
		return spec.MMIOReadTimeout, fmt.Errorf("%w: %s: readless buffer released", ErrRegRead, spec.RegName(off))
	}
	// §3 step 2: new sequence number, poison the buffer, request, poll.
	r.seq++
	seq := r.seq
	dmamem.Publish32(r.resp.Bytes, 0, uint32(uint16(seq+spec.ReadlessStaleOffset)))
	req := spec.MMIORegRead{ReqID: seq, RegOff: uint16(off)}
	r.tr.reg('W', spec.RegMMIORegRead, req.Encode())
	r.bar.Write32(spec.RegMMIORegRead, req.Encode())
	deadline := time.Now().Add(time.Duration(r.timeout.Load()))
	for i := 0; ; i++ {
		w := dmamem.Acquire32(r.resp.Bytes, 0) // req_id and reg_off
		if uint16(w) == seq {
			resp := spec.DecodeReadlessResp(r.resp.Bytes)
			if uint32(resp.RegOff) != off {
				return spec.MMIOReadTimeout, fmt.Errorf("%w: %s: device answered for offset 0x%x", ErrRegRead, spec.RegName(off), resp.RegOff)
			}
			r.tr.reg('R', off, resp.Value)
			return resp.Value, nil
		}
		if i > 64 && time.Now().After(deadline) {
			return spec.MMIOReadTimeout, fmt.Errorf("%w: %s: no readless response within %v", ErrRegRead, spec.RegName(off), time.Duration(r.timeout.Load()))
		}
		if i < 64 {
			runtime.Gosched()
		} else {
			time.Sleep(time.Microsecond)
		}
	}
}

// setReadTimeout applies the HW hint mmio_read_timeout (ms, §4.8 HW_HINTS).
func (r *regs) setReadTimeout(ms uint16) {
	if ms != 0 {
		r.timeout.Store(int64(time.Duration(ms) * time.Millisecond))
	}
}

// gone reports a device that no longer answers: a plain load of VERSION
// returns all-ones, as every PCIe read of a removed function does. The
// plain load is used even in readless mode, where the device would not
// write a response at all.
func (r *regs) gone() bool {
	v := r.bar.Read32(spec.RegVersion)
	r.tr.reg('R', spec.RegVersion, v)
	return v == 0xFFFFFFFF
}
