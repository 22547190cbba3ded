package qemurig

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type recordDeliverer struct {
	mu   sync.Mutex
	msgs []msiMessage
}

func (r *recordDeliverer) Deliver(v int, addr uint64, data uint32) {
	r.mu.Lock()
	r.msgs = append(r.msgs, msiMessage{vector: v, addr: addr, data: data})
	r.mu.Unlock()
}

func (r *recordDeliverer) take() []msiMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.msgs
	r.msgs = nil
	return m
}

// program writes vector v's table entry as a guest kernel does.
func program(x *MSIX, v int, addr uint64, data uint32, masked bool) {
	base := x.TableOffset() + uint32(v)*msixEntrySize
	x.Write(base, 8, addr)
	x.Write(base+8, 4, uint64(data))
	ctrl := uint64(0)
	if masked {
		ctrl = msixCtrlMasked
	}
	x.Write(base+12, 4, ctrl)
}

func TestMSIXCapabilityInConfigSpace(t *testing.T) {
	x := NewENAMSIX(&recordDeliverer{})
	c := newConfigSpace(0x1d0f, 0xec20, 0, 0x020000, map[int]BAR{0: {Size: ENARegBARSize}})
	c.addMSIX(msixCapOffset, x)
	assert.NotZero(t, c.read(pciStatus, 2)&statusCapList, "status says a capability list exists")
	assert.Equal(t, uint32(msixCapOffset), c.read(pciCapPtr, 1))
	assert.Equal(t, uint32(msixCapID), c.read(msixCapOffset, 1))
	assert.Equal(t, uint32(ENAMSIXVectors-1), c.read(msixCapOffset+2, 2), "table size is N-1")
	assert.Equal(t, uint32(ENAMSIXTableOffset), c.read(msixCapOffset+4, 4), "table in BAR0 at 0x2000")
	assert.Equal(t, uint32(ENAMSIXPBAOffset), c.read(msixCapOffset+8, 4), "PBA in BAR0 at 0x3000")

	c.write(msixCapOffset+2, 2, 0xffff) // only Enable and Function Mask stick
	assert.Equal(t, uint32(0xc000|(ENAMSIXVectors-1)), c.read(msixCapOffset+2, 2))
	c.resetMSIX()
	assert.Equal(t, uint32(ENAMSIXVectors-1), c.read(msixCapOffset+2, 2))
}

func TestMSIXMaskPendingAndDelivery(t *testing.T) {
	d := &recordDeliverer{}
	x := NewENAMSIX(d)
	x.Raise(1)
	assert.Empty(t, d.take(), "MSI-X disabled: nothing is sent")
	assert.Equal(t, uint64(1), x.Stats().DroppedDisabled)

	x.SetControl(true, true) // enabled, function-masked (Linux's order)
	program(x, 0, 0xfee00000, 0x41, false)
	program(x, 1, 0xfee00000, 0x42, true)
	x.Raise(0)
	assert.Empty(t, d.take(), "function mask holds vector 0")
	assert.Equal(t, uint64(1), x.Read(x.PBAOffset(), 8), "pending bit 0")
	x.SetControl(true, false)
	assert.Equal(t, []msiMessage{{0, 0xfee00000, 0x41}}, d.take(), "clearing the function mask fires the pending vector")
	assert.Zero(t, x.Read(x.PBAOffset(), 8))

	x.Raise(1)
	assert.Empty(t, d.take(), "vector 1 is masked")
	assert.Equal(t, uint64(2), x.Read(x.PBAOffset(), 8))
	x.Write(x.TableOffset()+msixEntrySize+12, 4, 0)
	assert.Equal(t, []msiMessage{{1, 0xfee00000, 0x42}}, d.take(), "unmask fires the pending vector")
	x.Raise(1)
	assert.Equal(t, []msiMessage{{1, 0xfee00000, 0x42}}, d.take())

	assert.Equal(t, uint64(0x42), x.Read(x.TableOffset()+msixEntrySize+8, 4), "table reads back")
	x.Write(x.TableOffset()+12, 4, 0xfffffffe)
	assert.Zero(t, x.Read(x.TableOffset()+12, 4), "reserved Vector Control bits read as zero")
	x.Write(x.PBAOffset(), 8, ^uint64(0))
	assert.Zero(t, x.Read(x.PBAOffset(), 8), "the PBA is read-only")
	assert.Equal(t, []uint64{1, 2, 0, 0, 0, 0, 0, 0, 0}, x.Stats().Sent)

	x.Reset()
	assert.Equal(t, uint64(msixCtrlMasked), x.Read(x.TableOffset()+12, 4), "reset masks every vector")
	assert.True(t, x.Contains(0, ENAMSIXTableOffset+9*16-1))
	assert.False(t, x.Contains(0, ENAMSIXTableOffset+9*16))
	assert.True(t, x.Contains(0, ENAMSIXPBAOffset+7))
	assert.False(t, x.Contains(2, ENAMSIXPBAOffset))
}

func TestQTestWritelChecksEveryField(t *testing.T) {
	cmd, err := qtestWritel(0xfee00000, 0x41)
	require.NoError(t, err)
	assert.Equal(t, "writel 0xfee00000 0x41\n", cmd)
	for _, addr := range []uint64{0, 0xfee00002, 0xfef00000, 0xfedfffff, 1 << 40} {
		_, err := qtestWritel(addr, 0x41)
		assert.Error(t, err, "address %#x", addr)
	}
}
