package ena

import (
	"fmt"
	"github.com/enanet/enanet/ena/spec"
	"io"
	"log/slog"
	"runtime"
	"time"
)

// LLQPolicy chooses how Tx descriptors reach the device (§8.1), mirroring
// DPDK's llq_policy devarg.
type LLQPolicy int

// LLQ policies.
const (
	// LLQDefault follows the device: 256-byte entries if it recommends them,
	// else 128-byte entries; host placement when LLQ is unavailable.
	LLQDefault LLQPolicy = iota
	// LLQNormal asks for 128-byte entries (96 bytes of pushed header).
	LLQNormal
	// LLQLarge asks for 256-byte entries (224 bytes of pushed header); the
	// Tx depth is capped at max_wide_llq_depth or halved (§8.1).
	LLQLarge
	// LLQOff keeps descriptors in host memory. Nitro v4 and later lose a lot
	// of performance this way (§8.4).
	LLQOff
)

// String names the policy as DPDK's llq_policy values do.
func (p LLQPolicy) String() string {
	switch p {
	case LLQDefault:
		return "default"
	case LLQNormal:
		return "normal"
	case LLQLarge:
		return "large"
	case LLQOff:
		return "off"
	}
	return fmt.Sprintf("LLQPolicy(%d)", int(p))
}

// Config tunes Open. The zero value is a sensible default, the same knobs
// the FreeBSD driver exposes as tunables.
type Config struct {
	// Queues is the number of I/O queue pairs; 0 means min(device maximum,
	// GOMAXPROCS). More than the device offers is an error.
	Queues int
	// MaxQueues is how many queue pairs NumQueues reports and SetChannels
	// may enable: the handles a link endpoint holds are fixed at Open, so
	// the channel count can change at runtime between 1 and MaxQueues.
	// Pairs beyond the enabled count have neither rings nor device queues
	// and hand their Tx to an enabled pair. 0 means the device's maximum
	// (MAX_QUEUES, LLQ queues and, with interrupts, the I/O vectors), so
	// channels can go up to what the device offers, as with ethtool -L.
	MaxQueues int
	// TxDepth and RxDepth are ring sizes, powers of two no larger than the
	// device maxima; 0 means 1024 for Tx and 4096 for Rx, capped at the
	// maxima.
	TxDepth, RxDepth int
	// LLQ is the Tx placement policy (§8.1).
	LLQ LLQPolicy
	// MTU is the L3 MTU; 0 means 1500 (or max_mtu if that is smaller).
	// A value above the device's max_mtu is an error.
	MTU int
	// RxBufSize is the Rx buffer size: RxBuf2K, RxBuf4K or RxBuf9K; 0
	// (RxBufAuto) picks the smallest that holds a whole frame of the MTU.
	// With larger buffers the default Rx depth shrinks to keep the ring's
	// memory near 8 MiB (4 KiB: 2048 entries, 9 KiB: 1024).
	RxBufSize int
	// TxBufSize is the size of each pre-mapped Tx buffer the driver copies
	// frames into; a frame longer than one buffer spans several, one
	// descriptor each. 0 (TxBufAuto) picks, whenever rings are built, the
	// smallest of 2, 4 and 9 KiB that holds a whole frame of the MTU, as
	// for Rx buffers: an MTU 9001 frame then takes one buffer and one
	// descriptor instead of five. Larger buffers are fewer: the Tx pool
	// stays depth × 2 KiB (2 MiB per queue at the default depth), which
	// holds as many frame bytes in flight as before.
	TxBufSize int
	// RSSKey is the 40-byte Toeplitz key (§10); nil means a random key.
	RSSKey []byte
	// PollMode disables I/O interrupts: WaitRx sleeps briefly instead.
	// Forced when the backend has no interrupt vectors.
	PollMode bool
	// AdminPolling keeps the admin queue in polling mode (INTR_MASK = 1)
	// instead of switching to the management interrupt (§6 step 24).
	AdminPolling bool
	// WatchdogInterval is the health-check period; 0 means 1 s (§9.1).
	WatchdogInterval time.Duration
	// KeepAliveTimeout is how long the device may stay silent before a
	// KEEP_ALIVE_TO reset; 0 means 6 s. The HW hint driver_watchdog_timeout
	// overrides it, and the hint value 0xFFFF disables the check (§5.3).
	KeepAliveTimeout time.Duration
	// MissingTxTimeout is the age at which an uncompleted Tx packet counts
	// as missing; 0 means 5 s (HW hint missing_tx_completion_timeout
	// overrides, §9.1). MissingTxThreshold is how many missing packets on
	// one queue trigger a MISS_TX_CMPL reset; 0 means 128 (hint
	// missed_tx_completion_count_threshold_to_reset overrides).
	MissingTxTimeout   time.Duration
	MissingTxThreshold int
	// Logger receives driver events; nil means slog.Default().
	Logger *slog.Logger
	// Trace, if set, receives one line per register access and admin
	// command (the register-trace debug mode).
	Trace io.Writer
}

// Driver defaults (§9.1, §10, FreeBSD/Linux values).
const (
	defaultDepth = 1024
	// defaultRxDepth is deeper than Linux's 1024: the Rx goroutine is
	// scheduled by Go, not by an interrupt, and a sender that puts a whole
	// TCP window on the wire at once overran 1024 buffers while it was
	// descheduled (seen in enabench: loss and slow SACK recovery; none at
	// 4096). 4096 × 2 KiB buffers is 8 MiB per queue.
	defaultRxDepth            = 4096
	defaultMTU                = 1500
	defaultWatchdogInterval   = time.Second
	defaultKeepAliveTimeout   = 6 * time.Second
	defaultMissingTxTimeout   = 5 * time.Second
	defaultMissingTxThreshold = 128
	minDepth                  = 64
	maxSGL                    = 19 // §7.9 driver cap on descriptors per packet
)

// withDefaults fills the device-independent defaults and checks the knobs
// that need no device knowledge.
func (c Config) withDefaults() (Config, error) {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.WatchdogInterval == 0 {
		c.WatchdogInterval = defaultWatchdogInterval
	}
	if c.KeepAliveTimeout == 0 {
		c.KeepAliveTimeout = defaultKeepAliveTimeout
	}
	if c.MissingTxTimeout == 0 {
		c.MissingTxTimeout = defaultMissingTxTimeout
	}
	if c.MissingTxThreshold == 0 {
		c.MissingTxThreshold = defaultMissingTxThreshold
	}
	switch {
	case c.Queues < 0 || c.MaxQueues < 0:
		return c, fmt.Errorf("ena: config: queue count %d (max %d) is negative", c.Queues, c.MaxQueues)
	case c.TxDepth < 0 || c.TxDepth != 0 && !isPow2(c.TxDepth):
		return c, fmt.Errorf("ena: config: Tx depth %d is not a power of two", c.TxDepth)
	case c.RxDepth < 0 || c.RxDepth != 0 && !isPow2(c.RxDepth):
		return c, fmt.Errorf("ena: config: Rx depth %d is not a power of two", c.RxDepth)
	case c.TxDepth != 0 && c.TxDepth < minDepth || c.RxDepth != 0 && c.RxDepth < minDepth:
		return c, fmt.Errorf("ena: config: ring depths below %d are not supported (Tx %d, Rx %d)", minDepth, c.TxDepth, c.RxDepth)
	case c.LLQ < LLQDefault || c.LLQ > LLQOff:
		return c, fmt.Errorf("ena: config: unknown LLQ policy %d (want LLQDefault, LLQNormal, LLQLarge or LLQOff)", int(c.LLQ))
	case c.RSSKey != nil && len(c.RSSKey) != spec.RSSKeySize:
		return c, fmt.Errorf("ena: config: RSS key is %d bytes, the device takes exactly %d (§10)", len(c.RSSKey), spec.RSSKeySize)
	case c.TxBufSize != 0 && (c.TxBufSize < 64 || c.TxBufSize > 0xFFFF):
		return c, fmt.Errorf("ena: config: Tx buffer size %d is not in [64, 65535] (16-bit descriptor length)", c.TxBufSize)
	case checkRxBufSize(c.RxBufSize) != nil:
		return c, fmt.Errorf("ena: config: %w", checkRxBufSize(c.RxBufSize))
	case c.MTU < 0 || c.MTU != 0 && c.MTU < 576:
		return c, fmt.Errorf("ena: config: MTU %d is below the minimum 576", c.MTU)
	case c.WatchdogInterval < 0 || c.KeepAliveTimeout < 0 || c.MissingTxTimeout < 0 || c.MissingTxThreshold < 0:
		return c, fmt.Errorf("ena: config: watchdog durations and thresholds must not be negative")
	}
	return c, nil
}

// sizeQueues applies the device maxima (MAX_QUEUES_EXT/NUM, LLQ depth) to
// the queue count and depths, with errors for values out of range.
func (c *Config) sizeQueues(maxQueues, maxTx, maxRx int) error {
	if maxQueues < 1 || maxTx < minDepth || maxRx < minDepth {
		return fmt.Errorf("ena: device limits too small: %d queues, Tx depth %d, Rx depth %d", maxQueues, maxTx, maxRx)
	}
	switch {
	case c.Queues == 0:
		c.Queues = min(maxQueues, runtime.GOMAXPROCS(0))
	case c.Queues > maxQueues:
		return fmt.Errorf("ena: config: %d queue pairs requested, the device offers %d", c.Queues, maxQueues)
	}
	switch {
	case c.MaxQueues == 0:
		c.MaxQueues = maxQueues
	case c.MaxQueues > maxQueues:
		return fmt.Errorf("ena: config: MaxQueues %d exceeds the %d queue pairs the device offers", c.MaxQueues, maxQueues)
	case c.MaxQueues < c.Queues:
		return fmt.Errorf("ena: config: MaxQueues %d is below Queues %d", c.MaxQueues, c.Queues)
	}
	if c.TxDepth == 0 {
		c.TxDepth = min(defaultDepth, floorPow2(maxTx))
	} else if c.TxDepth > maxTx {
		return fmt.Errorf("ena: config: Tx depth %d exceeds the device maximum %d", c.TxDepth, maxTx)
	}
	if c.RxDepth == 0 {
		c.RxDepth = min(defaultRxDepth, floorPow2(maxRx))
	} else if c.RxDepth > maxRx {
		return fmt.Errorf("ena: config: Rx depth %d exceeds the device maximum %d", c.RxDepth, maxRx)
	}
	return nil
}

func isPow2(n int) bool { return n > 0 && n&(n-1) == 0 }

// floorPow2 is the largest power of two <= n (n >= 1).
func floorPow2(n int) int {
	p := 1
	for p*2 <= n {
		p *= 2
	}
	return p
}
