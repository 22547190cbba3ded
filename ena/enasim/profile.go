package enasim

import (
	"fmt"
	"sort"
	"strings"

	"github.com/enanet/enanet/ena/spec"
)

// Profile describes one class of EC2 instance as its ENA presents itself:
// PCI identity, queue limits, LLQ geometry, offloads, and the per-ENI
// allowances EC2 enforces (protocol §4.6-§4.8, §8.1).
//
// The numbers are realistic rather than copied from one instance type: no
// source publishes a device's full capability set, so each value is the one
// drivers log or document for that class (see each field). Copy a profile and
// change fields to model something else; the zero Profile is invalid.
type Profile struct {
	// Name selects the profile in ProfileByName and appears in traces.
	Name string
	// Description is one line for humans.
	Description string

	// DeviceID is the PCI device id the model reports unless Config.DeviceID
	// overrides it (§1.1). EC2 guests normally see 0xEC20.
	DeviceID uint16
	// BAR0Size is the register BAR length (§1.2: 16 KiB on x86 Nitro).
	BAR0Size uint32
	// Vectors is the number of MSI-X vectors: 1 management + 1 per queue pair
	// (§1.2).
	Vectors int

	// MaxQueues is the number of Tx SQs, Tx CQs, Rx SQs and Rx CQs each
	// (MAX_QUEUES_EXT, §4.8). EC2 gives one queue pair per vCPU up to 32.
	MaxQueues int
	// MaxTxDepth and MaxRxDepth bound SQ and CQ depths (MAX_QUEUES_EXT);
	// ethtool -g on EC2 shows Tx 1024 and Rx 16384 on current hardware.
	MaxTxDepth, MaxRxDepth int
	// MaxTxHeader is max_tx_header_size (MAX_QUEUES_EXT), the host-mode
	// header_length cap (§7.9).
	MaxTxHeader int
	// MaxTxDescs and MaxRxDescs are the per-packet descriptor limits,
	// including the meta descriptor for Tx (§7.9).
	MaxTxDescs, MaxRxDescs int
	// MaxMTU is the L3 MTU limit reported in DEVICE_ATTRIBUTES (§4.8); EC2
	// supports 9001-byte jumbo frames, the device reports 9216.
	MaxMTU int

	// LLQ is the low-latency-queue geometry; LLQ.MaxQueues == 0 means no LLQ
	// and no BAR2 (§8).
	LLQ LLQProfile

	// TxOffloads and RxOffloads are the STATELESS_OFFLOAD_CONFIG bitmaps
	// (§4.8): tx bit 0 L3 IPv4 csum, 1 L4 IPv4 partial, 2 L4 IPv4 full,
	// 3 L4 IPv6 partial, 4 L4 IPv6 full; rx bit 0 L3 IPv4, 1 L4 IPv4,
	// 2 L4 IPv6, 3 hash.
	TxOffloads, RxOffloads uint32
	// Capabilities is the DEVICE_ATTRIBUTES capabilities bitmap (§4.6):
	// bit 0 ENI_STATS, 2 CUSTOMER_METRICS, 3 EXTENDED_RESET_REASONS,
	// 4 CDESC_MBZ.
	Capabilities uint32
	// AENQGroups is the supported_groups bitmap of AENQ_CONFIG (§5.2).
	AENQGroups uint32
	// RSSTableLogMin and RSSTableLogMax bound the indirection table size
	// (log2 entries, §4.8, §10). EC2 uses 128 entries (log 7).
	RSSTableLogMin, RSSTableLogMax int
	// IntrDelayResolution is INTERRUPT_MODERATION's µs per delay unit (§4.8).
	IntrDelayResolution uint16
	// Hints is the HW_HINTS answer and the payload of a hints notification
	// (§4.8; 0 = "keep the driver default").
	Hints spec.HWHints

	// PPSAllowance is the per-ENI packets-per-second allowance, counted per
	// direction; traffic above it is dropped and counted in
	// pps_allowance_exceeded (GET_STATS ENI, §4.7). 0 = unlimited.
	PPSAllowance uint64
	// BandwidthAllowance is the per-ENI bandwidth allowance in bits per
	// second per direction (bw_in/bw_out_allowance_exceeded). 0 = unlimited.
	BandwidthAllowance uint64
	// ConntrackAllowance is how many more connections the ENI could track;
	// CUSTOMER_METRICS reports it as conntrack_allowance_available (§4.7).
	// The model tracks no flows, so the gauge stays at this value. EC2
	// publishes no per-type figure; the profiles use round numbers.
	ConntrackAllowance uint64
	// ENAExpress makes the device offer ENA Express (SRD): it advertises
	// capability ENA_SRD_INFO and answers GET_STATS ENA_SRD with SRD and
	// SRD-for-UDP enabled (§4.7). Every packet on the simulated wire
	// counts as eligible and carried over SRD: the far end is in the same
	// subnet with no middlebox, which is what ENA Express needs.
	ENAExpress bool

	// RequireHostAttr makes CREATE_CQ fail with UNKNOWN_ERROR until
	// HOST_ATTR_CONFIG has been set, as some older firmware did (§4.8,
	// iPXE history).
	RequireHostAttr bool
}

// LLQProfile is the LLQ part of a Profile (§4.8 LLQ, §8.1).
type LLQProfile struct {
	// MaxQueues is max_llq_num; 0 = no LLQ and no BAR2.
	MaxQueues int
	// MaxDepth is max_llq_depth (entries).
	MaxDepth int
	// EntrySizes is the entry_size_ctrl_supported bitmask (1 = 128 B,
	// 2 = 192 B, 4 = 256 B).
	EntrySizes uint16
	// Recommended is entry_size_recommended (an entry-size code).
	Recommended uint16
	// WideDepthReported is max_wide_llq_depth as reported to the driver
	// (0 = not reported; drivers then halve the depth for 256 B entries).
	WideDepthReported uint16
	// WideDepthLimit is the largest depth CREATE_SQ accepts for entries
	// larger than 128 B; the Nitro v4 class rejects 256 B entries at depth
	// 1024 (illumos and Haiku driver reports). 0 = MaxDepth.
	WideDepthLimit int
	// DescsBeforeHeader is desc_num_before_header_supported: the OR of the
	// supported numbers (1, 2, 4, 8), each a power of two.
	DescsBeforeHeader uint16
	// Strides is descriptors_stride_ctrl_supported (1 single, 2 multiple).
	Strides uint16
	// HeaderLocations is header_location_ctrl_supported (1 inline,
	// 2 header ring).
	HeaderLocations uint16
	// AccelFlags is accel_mode supported_flags (bit 0 DISABLE_META_CACHING,
	// bit 1 LIMIT_TX_BURST).
	AccelFlags uint16
	// MaxTxBurst is max_tx_burst_size in bytes (meaningful with bit 1).
	MaxTxBurst uint16
	// Required makes CREATE_SQ refuse host-placement Tx SQs: newer EC2
	// generations need LLQ for Tx (§8.1, §8.4).
	Required bool
	// BAR2Size is the memory BAR length (§1.2: 1 MiB).
	BAR2Size uint32
}

// Supported-feature and capability constants shared by the profiles.
const (
	// aenqGroupsAll: LINK_CHANGE, FATAL_ERROR, WARNING, NOTIFICATION,
	// KEEP_ALIVE, CONF_NOTIFICATIONS, DEVICE_REQUEST_RESET (§5.2). Group 5
	// (REFRESH_CAPABILITIES) is not advertised: no driver but Linux handles it.
	aenqGroupsAll = 1<<0 | 1<<1 | 1<<2 | 1<<3 | 1<<4 | 1<<6 | 1<<7
	// capsDefault: ENI_STATS, CUSTOMER_METRICS, EXTENDED_RESET_REASONS,
	// CDESC_MBZ (§4.6).
	capsDefault = 1<<0 | 1<<2 | 1<<3 | 1<<4
	// txOffloadsDefault: L3 IPv4, L4 IPv4 partial, L4 IPv6 partial; no TSO
	// (EC2 ENA offers no TSO, §4.8).
	txOffloadsDefault = 1<<0 | 1<<1 | 1<<3
	// rxOffloadsDefault: L3 IPv4, L4 IPv4, L4 IPv6, hash.
	rxOffloadsDefault = 1<<0 | 1<<1 | 1<<2 | 1<<3
)

// defaultHints are the driver defaults of §9.1 stated explicitly, so a
// driver that applies hints ends up where one that ignores them does.
var defaultHints = spec.HWHints{
	DriverWatchdogTimeout:       6000,
	MissingTxCompletionTimeout:  5000,
	MissedTxCompletionThreshold: 128,
	AdminCompletionTxTimeout:    3000,
}

// ProfileNitroV3 is an x86 Nitro v3 class instance (c5/m5 .2xlarge): 8 queue
// pairs, optional LLQ with 128-byte entries only, 10 Gbps and 1 Mpps
// allowances. It is the default profile.
var ProfileNitroV3 = Profile{
	Name:        "nitro-v3",
	Description: "x86 Nitro v3 class (c5/m5): 8 queues, optional LLQ with 128 B entries",
	DeviceID:    0xEC20,
	BAR0Size:    16 << 10,
	Vectors:     9,
	MaxQueues:   8,
	MaxTxDepth:  1024, MaxRxDepth: 16384,
	MaxTxHeader: 128,
	MaxTxDescs:  19, MaxRxDescs: 19,
	MaxMTU: 9216,
	LLQ: LLQProfile{
		MaxQueues: 8, MaxDepth: 1024,
		EntrySizes: 1, Recommended: 1,
		DescsBeforeHeader: 1 | 2 | 4 | 8,
		Strides:           1 | 2, HeaderLocations: 1,
		AccelFlags: 1 << 1, MaxTxBurst: 4096,
		BAR2Size: 1 << 20,
	},
	TxOffloads: txOffloadsDefault, RxOffloads: rxOffloadsDefault,
	Capabilities:   capsDefault,
	AENQGroups:     aenqGroupsAll,
	RSSTableLogMin: 7, RSSTableLogMax: 7,
	IntrDelayResolution: 1,
	Hints:               defaultHints,
	PPSAllowance:        1_000_000,
	BandwidthAllowance:  10_000_000_000,
	ConntrackAllowance:  500_000,
}

// ProfileNitroV4 is a Graviton Nitro v4 class instance (c7g .2xlarge): LLQ
// is required for Tx, the device recommends 256-byte entries but rejects
// them at depth 1024 (it accepts at most 512) without reporting
// max_wide_llq_depth, meta caching is disabled and Tx bursts are limited.
var ProfileNitroV4 = Profile{
	Name:        "nitro-v4",
	Description: "Graviton Nitro v4 class (c7g): LLQ required, 256 B entries recommended (max depth 512)",
	DeviceID:    0xEC20,
	BAR0Size:    16 << 10,
	Vectors:     9,
	MaxQueues:   8,
	MaxTxDepth:  1024, MaxRxDepth: 16384,
	MaxTxHeader: 128,
	MaxTxDescs:  19, MaxRxDescs: 19,
	MaxMTU: 9216,
	LLQ: LLQProfile{
		MaxQueues: 8, MaxDepth: 1024,
		EntrySizes: 1 | 4, Recommended: 4,
		WideDepthReported: 0, WideDepthLimit: 512,
		DescsBeforeHeader: 1 | 2 | 4 | 8,
		Strides:           1 | 2, HeaderLocations: 1,
		AccelFlags: 1<<0 | 1<<1, MaxTxBurst: 4096,
		Required: true,
		BAR2Size: 1 << 20,
	},
	TxOffloads: txOffloadsDefault, RxOffloads: rxOffloadsDefault,
	Capabilities:   capsDefault,
	AENQGroups:     aenqGroupsAll,
	RSSTableLogMin: 7, RSSTableLogMax: 7,
	IntrDelayResolution: 1,
	Hints:               defaultHints,
	PPSAllowance:        1_500_000,
	BandwidthAllowance:  15_000_000_000,
	ConntrackAllowance:  1_000_000,
}

// ProfileNoLLQ is a small older instance without LLQ and without BAR2
// (t3 class): 2 queue pairs, host-placement Tx only.
var ProfileNoLLQ = Profile{
	Name:        "no-llq",
	Description: "small instance without LLQ (t3 class): 2 queues, host-mode Tx, no BAR2",
	DeviceID:    0xEC20,
	BAR0Size:    16 << 10,
	Vectors:     3,
	MaxQueues:   2,
	MaxTxDepth:  1024, MaxRxDepth: 8192,
	MaxTxHeader: 128,
	MaxTxDescs:  19, MaxRxDescs: 19,
	MaxMTU:     9216,
	TxOffloads: txOffloadsDefault, RxOffloads: rxOffloadsDefault,
	Capabilities:   capsDefault,
	AENQGroups:     aenqGroupsAll,
	RSSTableLogMin: 7, RSSTableLogMax: 7,
	IntrDelayResolution: 1,
	Hints:               defaultHints,
	PPSAllowance:        250_000,
	BandwidthAllowance:  5_000_000_000,
	ConntrackAllowance:  250_000,
}

var profiles = map[string]*Profile{
	ProfileNitroV3.Name: &ProfileNitroV3,
	ProfileNitroV4.Name: &ProfileNitroV4,
	ProfileNoLLQ.Name:   &ProfileNoLLQ,
}

// ProfileByName returns a copy of the named profile ("nitro-v3", "nitro-v4",
// "no-llq"; "" is the default nitro-v3).
//
// The suffix "+express" (e.g. "nitro-v4+express") turns ENA Express on
// (Profile.ENAExpress), so tools show the SRD counters.
func ProfileByName(name string) (Profile, error) {
	if name == "" {
		return ProfileNitroV3, nil
	}
	base, express := strings.CutSuffix(strings.ToLower(name), ExpressSuffix)
	p, ok := profiles[base]
	if !ok {
		return Profile{}, fmt.Errorf("enasim: unknown profile %q (known: %s, each with %s for ENA Express)", name, strings.Join(ProfileNames(), ", "), ExpressSuffix)
	}
	prof := *p
	if express {
		prof.ENAExpress = true
		prof.Name += ExpressSuffix
	}
	return prof, nil
}

// ExpressSuffix on a profile name turns ENA Express on (ProfileByName).
const ExpressSuffix = "+express"

// ProfileNames lists the built-in profile names, sorted.
func ProfileNames() []string {
	names := make([]string, 0, len(profiles))
	for n := range profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// HasLLQ reports whether the profile offers LLQ (and therefore BAR2).
func (p *Profile) HasLLQ() bool { return p.LLQ.MaxQueues > 0 }

// validate checks the profile is usable; a broken profile is a programming
// error in the caller, reported as an error from New.
func (p *Profile) validate() error {
	pow2 := func(n int) bool { return n > 0 && n&(n-1) == 0 }
	switch {
	case p.Name == "":
		return fmt.Errorf("enasim: profile has no name")
	case p.MaxQueues <= 0 || p.MaxQueues > 128:
		return fmt.Errorf("enasim: profile %s: MaxQueues %d out of range 1..128", p.Name, p.MaxQueues)
	case !pow2(p.MaxTxDepth) || !pow2(p.MaxRxDepth) || p.MaxTxDepth > 1<<15 || p.MaxRxDepth > 1<<15:
		return fmt.Errorf("enasim: profile %s: depths %d/%d must be powers of two up to 32768", p.Name, p.MaxTxDepth, p.MaxRxDepth)
	case p.MaxMTU < 576 || p.MaxMTU > 65535:
		return fmt.Errorf("enasim: profile %s: MaxMTU %d out of range", p.Name, p.MaxMTU)
	case p.BAR0Size < 0x1000 || !pow2(int(p.BAR0Size)):
		return fmt.Errorf("enasim: profile %s: BAR0Size %#x must be a power of two >= 4 KiB", p.Name, p.BAR0Size)
	case p.Vectors < 1:
		return fmt.Errorf("enasim: profile %s: needs at least the management vector", p.Name)
	case p.RSSTableLogMin < 0 || p.RSSTableLogMax > 16 || p.RSSTableLogMin > p.RSSTableLogMax:
		return fmt.Errorf("enasim: profile %s: RSS table log range %d..%d invalid", p.Name, p.RSSTableLogMin, p.RSSTableLogMax)
	}
	if p.HasLLQ() {
		l := &p.LLQ
		if !pow2(l.MaxDepth) || l.EntrySizes == 0 || l.BAR2Size == 0 || !pow2(int(l.BAR2Size)) {
			return fmt.Errorf("enasim: profile %s: LLQ geometry invalid", p.Name)
		}
	} else if p.LLQ.Required {
		return fmt.Errorf("enasim: profile %s: requires LLQ but offers none", p.Name)
	}
	return nil
}
