package qemurig

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

const sampleTrace = `sim0 +0.000001s W 0x058 MMIO_RESP_LO  <- 0x3f000000 | DEV_STS=0x01
sim0 +0.000002s W 0x050 MMIO_REG_READ <- 0x00580001 | DEV_STS=0x01  readless DEV_STS = 0x00000001 (req_id 1)
sim0 +0.000003s W 0x054 DEV_CTL       <- 0x00000001 | DEV_STS=0x08  reset started (NORMAL): queues discarded
sim0 +0.000004s R 0x058 DEV_STS       = 0x00000008
sim0 +0.000005s R 0x058 DEV_STS       = 0x00000008
sim0 +0.000006s W 0x000 AQ_BASE_LO    <- 0x12345000 | DEV_STS=0x01
sim0 +0.000007s AQ[0] cmd 3 GET_FEATURE DEVICE_ATTRIBUTES {Header:{IDReserved:0 Opcode:GET_FEATURE Phase:true} CtrlBuf:{Length:0 Addr:0} Select:0 FeatureID:DEVICE_ATTRIBUTES FeatureVersion:0} -> SUCCESS
      00: 08 00 00 00
sim0 +0.000008s W 0x000 AQ_DB         <- 0x00000001 | DEV_STS=0x01
sim0 +0.000009s W 0x1000 IO_REG       <- 0x00000001 | DEV_STS=0x01
sim0 +0.000010s W 0x054 DEV_CTL       <- 0x00000001 | DEV_STS=0x08  reset started (KEEP_ALIVE_TO): queues discarded
`

func TestBringUpSteps(t *testing.T) {
	steps := bringUpSteps(sampleTrace)
	assert.Equal(t, []string{
		"W MMIO_RESP_LO <- (address)",
		"R DEV_STS (readless)",
		"W DEV_CTL <- 0x00000001",
		"R DEV_STS (repeated)",
		"W AQ_BASE_LO <- (address)",
		"AQ GET_FEATURE DEVICE_ATTRIBUTES {FeatureVersion:0} -> SUCCESS",
		"W AQ_DB",
	}, steps, "stops at the first per-queue register")
	lines := strings.Split(sampleTrace, "\n")
	c := newTraceCapture(10)
	c.Write([]byte(lines[2]))
	c.Write([]byte(lines[10]))
	assert.Equal(t, []string{"NORMAL", "KEEP_ALIVE_TO"}, c.Resets(), "resets are kept past the limit")
	assert.Equal(t, lines[2], c.String(), "the capture stops at its limit")
}

func TestDiffSteps(t *testing.T) {
	a := []string{"W DEV_CTL <- 0x1", "AQ GET_FEATURE LLQ {v0}", "AQ SET_FEATURE MTU {9001}"}
	b := []string{"W DEV_CTL <- 0x1", "AQ GET_FEATURE HW_HINTS {}", "AQ GET_FEATURE LLQ {v1}"}
	assert.Equal(t, [][2]string{
		{"W DEV_CTL <- 0x1", "W DEV_CTL <- 0x1"},
		{"", "AQ GET_FEATURE HW_HINTS {}"},
		{"AQ GET_FEATURE LLQ {v0}", "AQ GET_FEATURE LLQ {v1}"},
		{"AQ SET_FEATURE MTU {9001}", ""},
	}, diffSteps(a, b))
	tab := diffTable("a", "b", a, b)
	assert.Contains(t, tab, "| 3 | AQ GET_FEATURE LLQ {v0} | AQ GET_FEATURE LLQ {v1} | values |")
	assert.Contains(t, tab, "| 2 |  | AQ GET_FEATURE HW_HINTS {} | only one |")
}
