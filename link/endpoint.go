package link

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/stack/gro"

	"github.com/enanet/enanet/ena/spec"
	"github.com/enanet/enanet/rings"
)

// RxBudget is how many frames one Rx goroutine takes from its queue per
// Poll. 64 matches the usual NAPI weight: large enough that one doorbell and
// one GRO flush cover many frames, small enough that the ring is re-posted
// well before it runs dry.
const RxBudget = 64

// txRetries bounds how often WritePackets yields and retries a full Tx ring
// before it reports back-pressure. fifo drops whatever a WritePackets call
// did not write, so waiting a little for completions beats failing at once.
const txRetries = 256

// Options tune an Endpoint. The zero value is the recommended setting:
// gVisor GSO on, GRO on, checksum offloads used where the device has them.
type Options struct {
	// NoGSO turns off gVisor GSO. With GSO, TCP hands the stack 64 KiB
	// segments and splits them just before the link, which saves most of
	// the per-segment TCP work on send.
	NoGSO bool
	// NoGRO turns off receive coalescing. GRO merges consecutive segments
	// of a flow from one Rx batch before they enter the stack; it needs Rx
	// checksum offload, so NoRxChecksumOffload also disables it.
	NoGRO bool
	// NoTxChecksumOffload makes the stack compute TCP/UDP checksums in
	// software instead of handing them to the device (§7.2 partial mode).
	NoTxChecksumOffload bool
	// NoRxChecksumOffload makes the stack verify every checksum itself.
	// Otherwise the endpoint advertises Rx checksum offload and guarantees
	// it: it drops frames the device flags as bad, verifies in software
	// what the device did not check, and drops IP fragments, whose L4
	// checksum can only be checked after reassembly.
	NoRxChecksumOffload bool
	// Pcap, when set, receives a pcap capture (LINKTYPE_ETHERNET) of every
	// frame sent and received, exactly as it crossed the device.
	Pcap io.Writer
	// PcapSnapLen caps the bytes captured per frame; 0 means 65535.
	PcapSnapLen int
	// OnLinkChange is called after the endpoint has recorded a link change.
	OnLinkChange func(up bool)
	// OnFatal is called once, after the endpoint has started removing its
	// NIC from the stack, when the device has failed for good.
	OnFatal func(err error)
	// Logger receives link changes, fatal errors and unexpected queue
	// errors; nil means slog.Default().
	Logger *slog.Logger
}

// Endpoint is a stack.LinkEndpoint and stack.GSOEndpoint over a NIC, with
// the Ethernet header built in. Create it with New and give it to
// stack.CreateNICWithOptions, ideally with a fifo qdisc of NumQueues()
// queues so that each Tx ring is fed by one goroutine.
type Endpoint struct {
	nic  NIC
	log  *slog.Logger
	opts Options

	// caps is read for every received packet, so it is a plain field fixed
	// at New.
	caps      stack.LinkEndpointCapabilities
	gso       bool
	gro       bool
	txOffV4   bool // seed + offload TCP/UDP over IPv4
	txOffV6   bool // seed + offload TCP/UDP over IPv6
	rxOffload bool // we promised the stack verified checksums
	devL3OK   bool // device validates IPv4 header checksums
	devL4OK   bool // device validates TCP/UDP checksums
	// frags holds IPv4 fragments until their datagram's TCP/UDP checksum
	// is verified (see fragVerifier); nil without Rx checksum offload.
	frags *fragVerifier

	mtu    atomic.Uint32
	addr   atomic.Pointer[tcpip.LinkAddress]
	linkUp atomic.Bool

	tx []*txQueue
	rx []*rxQueue

	pcap *pcapWriter

	// disp is the attached dispatcher, read once per Rx batch.
	disp atomic.Pointer[dispatcherBox]

	mu      sync.Mutex
	gen     *rxGen // running Rx goroutines, nil if none
	lastGen *rxGen // most recently started, possibly still exiting
	onClose func()
	closed  bool

	fatalErr atomic.Pointer[error]
	stats    epCounters
}

type dispatcherBox struct{ d stack.NetworkDispatcher }

// rxGen is one set of Rx goroutines, started by Attach(d) and stopped by
// Attach(nil) or Close.
type rxGen struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	prev   *rxGen // must have exited before this one polls
}

// txQueue serialises senders on one Tx ring and owns the reusable segment
// list, so the Tx copy path allocates nothing.
type txQueue struct {
	mu   sync.Mutex
	q    Queue
	segs [][]byte

	packets, bytes, noSpace, dropped, swCsum atomic.Uint64
}

// rxQueue is one Rx ring's goroutine state.
type rxQueue struct {
	e    *Endpoint
	idx  int
	q    Queue
	fn   func(*rings.RxPacket) // e.receive bound once: no closure per Poll
	gro  gro.GRO
	pkts [RxBudget]*stack.PacketBuffer
	n    int
	// fragReady are verified IPv4 fragments waiting for the next deliver.
	fragReady []*buffer.View

	// state is rxRunning, rxDelivering while the goroutine is inside the
	// stack (where it may wait for the stack's lock, so Wait must not wait
	// for it) or rxExited.
	state atomic.Int32
	c     rxCounters
}

type epCounters struct {
	txLinkDown atomic.Uint64
	fatal      atomic.Uint64
	linkChange atomic.Uint64
}

type rxCounters struct {
	packets, bytes atomic.Uint64
	devVerified    atomic.Uint64
	swVerified     atomic.Uint64
	csumBad        atomic.Uint64
	fragDropped    atomic.Uint64 // dropped: bad checksum, overlap, limits, expiry, IPv6
	fragVerified   atomic.Uint64 // delivered after the datagram's checksum was verified
	malformed      atomic.Uint64
	foreignMAC     atomic.Uint64
	noDispatcher   atomic.Uint64
	pollErrors     atomic.Uint64
	batches        atomic.Uint64
}

// New makes an endpoint over nic. It installs the NIC's link and fatal
// handlers; goroutines start only when the stack attaches the endpoint.
func New(nic NIC, opts Options) (*Endpoint, error) {
	n := nic.NumQueues()
	if n <= 0 {
		return nil, fmt.Errorf("link: device has %d queues", n)
	}
	e := &Endpoint{nic: nic, opts: opts, log: opts.Logger}
	if e.log == nil {
		e.log = slog.Default()
	}
	off := nic.Offloads()
	e.caps = stack.CapabilityResolutionRequired
	if !opts.NoTxChecksumOffload && (off.TxL4CsumIPv4Partial || off.TxL4CsumIPv6Partial) {
		// The stack skips TCP/UDP checksums for every packet once this bit
		// is set, so a family the device cannot offload gets its checksum
		// computed here instead (see finishChecksum).
		e.caps |= stack.CapabilityTXChecksumOffload
		e.txOffV4 = off.TxL4CsumIPv4Partial
		e.txOffV6 = off.TxL4CsumIPv6Partial
	}
	if !opts.NoRxChecksumOffload {
		e.caps |= stack.CapabilityRXChecksumOffload
		e.rxOffload = true
		e.devL3OK = off.RxCsumIPv4
		e.devL4OK = off.RxCsumL4
		e.frags = newFragVerifier()
	}
	e.gso = !opts.NoGSO
	e.gro = !opts.NoGRO && e.rxOffload
	e.mtu.Store(uint32(nic.MTU()))
	mac := nic.MAC()
	addr := tcpip.LinkAddress(mac[:])
	e.addr.Store(&addr)
	e.linkUp.Store(nic.LinkUp())
	if opts.Pcap != nil {
		pw, err := newPcapWriter(opts.Pcap, opts.PcapSnapLen)
		if err != nil {
			return nil, fmt.Errorf("link: writing the pcap header: %w", err)
		}
		e.pcap = pw
	}
	for i := 0; i < n; i++ {
		q := nic.Queue(i)
		e.tx = append(e.tx, &txQueue{q: q, segs: make([][]byte, 0, 16)})
		r := &rxQueue{e: e, idx: i, q: q}
		r.fn = r.receive
		r.gro.Init(e.gro)
		e.rx = append(e.rx, r)
	}
	nic.SetLinkHandler(e.linkChanged)
	nic.SetFatalHandler(e.fatal)
	return e, nil
}

// NumQueues is the number of queue pairs; size the fifo qdisc with it.
func (e *Endpoint) NumQueues() int { return len(e.tx) }

// NIC returns the device under the endpoint.
func (e *Endpoint) NIC() NIC { return e.nic }

// LinkUp reports the device link state as the endpoint last saw it.
func (e *Endpoint) LinkUp() bool { return e.linkUp.Load() }

// Err returns the fatal device error, if the device has failed for good.
func (e *Endpoint) Err() error {
	if p := e.fatalErr.Load(); p != nil {
		return *p
	}
	return nil
}

// GSOEnabled and GROEnabled report the effective settings.
func (e *Endpoint) GSOEnabled() bool { return e.gso }

// GROEnabled reports whether Rx coalescing is in use.
func (e *Endpoint) GROEnabled() bool { return e.gro }

func (e *Endpoint) linkChanged(up bool) {
	old := e.linkUp.Swap(up)
	e.stats.linkChange.Add(1)
	if old != up {
		e.log.Info("link: link state changed", "up", up)
	}
	if e.opts.OnLinkChange != nil {
		e.opts.OnLinkChange(up)
	}
}

// fatal runs when the device has failed and cannot be reset. The stack's
// close action (RemoveNIC) takes the stack lock and calls Attach(nil) and
// Close, so it runs on its own short-lived goroutine rather than on the
// driver's, which may hold driver locks.
func (e *Endpoint) fatal(err error) {
	if err == nil {
		err = errors.New("link: device failed")
	}
	if !e.fatalErr.CompareAndSwap(nil, &err) {
		return
	}
	e.stats.fatal.Add(1)
	e.linkUp.Store(false)
	e.log.Error("link: device failed for good; removing the NIC from the stack", "err", err)
	e.mu.Lock()
	f := e.onClose
	e.mu.Unlock()
	if f != nil {
		go f() // exits when RemoveNIC returns; RemoveNIC stops everything else
	}
	if e.opts.OnFatal != nil {
		e.opts.OnFatal(err)
	}
}

// ---- stack.NetworkLinkEndpoint ----

// MTU implements stack.LinkEndpoint: the IP MTU, without the Ethernet header.
func (e *Endpoint) MTU() uint32 { return e.mtu.Load() }

// SetMTU implements stack.LinkEndpoint by asking the device (SET_FEATURE
// MTU, §5). A refused change is logged and the old MTU kept, since the
// interface has no way to report the error.
func (e *Endpoint) SetMTU(mtu uint32) {
	if err := e.nic.SetMTU(int(mtu)); err != nil {
		e.log.Warn("link: device refused the MTU", "mtu", mtu, "err", err)
		return
	}
	e.mtu.Store(uint32(e.nic.MTU()))
}

// SetMTUErr is SetMTU with the device's error returned.
func (e *Endpoint) SetMTUErr(mtu int) error {
	if err := e.nic.SetMTU(mtu); err != nil {
		return fmt.Errorf("link: setting MTU %d: %w", mtu, err)
	}
	e.mtu.Store(uint32(e.nic.MTU()))
	return nil
}

// MaxHeaderLength implements stack.LinkEndpoint: the Ethernet header.
func (e *Endpoint) MaxHeaderLength() uint16 { return header.EthernetMinimumSize }

// LinkAddress implements stack.LinkEndpoint.
func (e *Endpoint) LinkAddress() tcpip.LinkAddress { return *e.addr.Load() }

// SetLinkAddress implements stack.LinkEndpoint. The device filters on its
// own MAC, so this only changes the source address of frames we build.
func (e *Endpoint) SetLinkAddress(addr tcpip.LinkAddress) { e.addr.Store(&addr) }

// Capabilities implements stack.LinkEndpoint.
func (e *Endpoint) Capabilities() stack.LinkEndpointCapabilities { return e.caps }

// ARPHardwareType implements stack.LinkEndpoint.
func (e *Endpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareEther }

// AddHeader implements stack.LinkEndpoint: push the Ethernet header.
func (e *Endpoint) AddHeader(pkt *stack.PacketBuffer) {
	eth := header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize))
	eth.Encode(&header.EthernetFields{
		SrcAddr: pkt.EgressRoute.LocalLinkAddress,
		DstAddr: pkt.EgressRoute.RemoteLinkAddress,
		Type:    pkt.NetworkProtocolNumber,
	})
}

// ParseHeader implements stack.LinkEndpoint: consume the Ethernet header.
func (e *Endpoint) ParseHeader(pkt *stack.PacketBuffer) bool {
	_, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	return ok
}

// GSOMaxSize implements stack.GSOEndpoint.
func (e *Endpoint) GSOMaxSize() uint32 {
	if e.gso {
		return stack.GVisorGSOMaxSize
	}
	return 0
}

// SupportedGSO implements stack.GSOEndpoint. Only gVisor GSO: the stack
// splits segments itself, because ENA has no TSO.
func (e *Endpoint) SupportedGSO() stack.SupportedGSO {
	if e.gso {
		return stack.GVisorGSOSupported
	}
	return stack.GSONotSupported
}

// IsAttached implements stack.LinkEndpoint.
func (e *Endpoint) IsAttached() bool { return e.disp.Load() != nil }

// Attach implements stack.LinkEndpoint. The stack calls it with its lock
// held, so it never waits: Attach(d) starts one Rx goroutine per queue,
// Attach(nil) clears the dispatcher, cancels them and wakes their queues.
// Joining happens in Wait and Close.
func (e *Endpoint) Attach(d stack.NetworkDispatcher) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if d == nil {
		e.disp.Store(nil)
		e.stopLocked()
		return
	}
	e.disp.Store(&dispatcherBox{d: d})
	if e.gen != nil || e.closed {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &rxGen{ctx: ctx, cancel: cancel, prev: e.lastGen}
	e.gen = g
	e.lastGen = g
	for _, r := range e.rx {
		g.wg.Add(1)
		r.state.Store(rxRunning)
		go r.loop(g)
	}
}

// stopLocked cancels the running Rx goroutines without waiting for them.
func (e *Endpoint) stopLocked() {
	g := e.gen
	if g == nil {
		return
	}
	e.gen = nil
	g.cancel()
	for _, r := range e.rx {
		r.q.Wake()
	}
}

// Wait implements stack.LinkEndpoint. The stack calls it holding its lock,
// while an Rx goroutine may be inside DeliverNetworkPacket waiting for that
// very lock (ICMP echo replies look up routes). So Wait returns once every
// goroutine has either exited or is parked in such a delivery; Close, which
// runs without the lock, joins them for good.
func (e *Endpoint) Wait() {
	e.mu.Lock()
	g := e.lastGen
	e.mu.Unlock()
	if g == nil {
		return
	}
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		stopped := g.ctx.Err() != nil
		done := true
		for _, r := range e.rx {
			switch r.state.Load() {
			case rxExited:
			case rxDelivering:
				done = done && stopped
			default:
				done = false
			}
		}
		if done {
			return
		}
		<-t.C
	}
}

// Close implements stack.LinkEndpoint. It runs after the stack released its
// lock: stop and join the Rx goroutines. The NIC itself belongs to the
// caller (or to the Stack helper) and is not closed here.
func (e *Endpoint) Close() {
	e.mu.Lock()
	e.disp.Store(nil)
	e.stopLocked()
	e.closed = true
	g := e.lastGen
	e.mu.Unlock()
	if g != nil {
		g.wg.Wait()
	}
	for _, r := range e.rx {
		r.release()
	}
	if e.frags != nil {
		e.frags.close()
	}
}

// SetOnCloseAction implements stack.LinkEndpoint: f removes the NIC from the
// stack; the endpoint calls it when the device fails for good.
func (e *Endpoint) SetOnCloseAction(f func()) {
	e.mu.Lock()
	e.onClose = f
	e.mu.Unlock()
	if f != nil && e.Err() != nil {
		go f()
	}
}

// ---- Tx ----

// WritePackets implements stack.LinkWriter. Each packet goes to Tx queue
// pkt.Hash % NumQueues, the rule fifo uses, so with a fifo of NumQueues
// queues every ring has one feeder. Frames are gather-copied into the
// device's buffers (the stack's views are Go memory the device cannot
// reach), so nothing is kept after return and nothing is DecRef'd here.
func (e *Endpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	n := pkts.Len()
	if !e.linkUp.Load() {
		// No carrier: the frames are lost on the wire, as on a NIC whose
		// cable is out; TCP retransmits once the link returns.
		e.stats.txLinkDown.Add(uint64(n))
		return n, nil
	}
	var cur *txQueue
	written := 0
	for _, pkt := range pkts.AsSlice() {
		tq := e.tx[int(pkt.Hash%uint32(len(e.tx)))]
		if tq != cur {
			if cur != nil {
				cur.q.Flush()
				cur.mu.Unlock()
			}
			cur = tq
			cur.mu.Lock()
		}
		if err := e.send(cur, pkt); err != nil {
			cur.q.Flush()
			cur.mu.Unlock()
			return written, &tcpip.ErrNoBufferSpace{}
		}
		written++
	}
	if cur != nil {
		cur.q.Flush()
		cur.mu.Unlock()
	}
	return written, nil
}

// send queues one packet on tq (tq.mu held). It returns an error only for
// back-pressure; frames the device cannot carry are counted and dropped.
func (e *Endpoint) send(tq *txQueue, pkt *stack.PacketBuffer) error {
	// Step 1: the frame's bytes as a list of slices of the stack's views,
	// skipping the unused front of the header reserve.
	segs := tq.segs[:0]
	views, skip := pkt.AsViewList()
	size := 0
	for v := views.Front(); v != nil; v = v.Next() {
		b := v.AsSlice()
		if skip >= len(b) {
			skip -= len(b)
			continue
		}
		b = b[skip:]
		skip = 0
		segs = append(segs, b)
		size += len(b)
	}
	tq.segs = segs[:0] // keep the grown backing array
	var off rings.TxOffload
	if e.caps&stack.CapabilityTXChecksumOffload != 0 {
		ok := false
		if len(segs) > 0 {
			off, ok = e.txOffloadIPv4(pkt, segs[0])
		}
		if !ok {
			off = e.txOffload(pkt, tq)
		}
	}
	if e.pcap != nil {
		e.pcap.write(segs, size)
	}
	// Step 2: copy into the ring. A full ring is reclaimed by Send itself;
	// ring the doorbell for what is queued so completions can come, yield,
	// and retry for a while before reporting back-pressure.
	for try := 0; ; try++ {
		err := tq.q.Send(segs, off)
		switch {
		case err == nil:
			tq.packets.Add(1)
			tq.bytes.Add(uint64(size))
			return nil
		case errors.Is(err, rings.ErrNoSpace) && try < txRetries:
			tq.q.Flush()
			runtime.Gosched()
		case errors.Is(err, rings.ErrNoSpace):
			tq.noSpace.Add(1)
			return err
		default:
			// Too long, or the device is resetting: drop this frame only.
			tq.dropped.Add(1)
			return nil
		}
	}
}

// TxQueueStats are the endpoint's counters for one Tx queue.
type TxQueueStats struct {
	Packets      uint64 `json:"packets"`
	Bytes        uint64 `json:"bytes"`
	NoSpace      uint64 `json:"no_space"`      // packets refused for lack of ring room after retries
	Dropped      uint64 `json:"dropped"`       // packets the queue refused for another reason
	SoftwareCsum uint64 `json:"software_csum"` // TCP/UDP checksums computed here for lack of device support
}

// RxQueueStats are the endpoint's counters for one Rx queue.
type RxQueueStats struct {
	Packets           uint64 `json:"packets"`
	Bytes             uint64 `json:"bytes"`
	Batches           uint64 `json:"batches"`
	DeviceVerified    uint64 `json:"device_verified"`    // L4 checksum checked by the device
	SoftwareVerified  uint64 `json:"software_verified"`  // L4 checksum checked here
	ChecksumBad       uint64 `json:"checksum_bad"`       // dropped: bad IPv4 or L4 checksum
	FragmentsDropped  uint64 `json:"fragments_dropped"`  // dropped: bad datagram checksum, overlap, limits, timeout, IPv6 fragments
	FragmentsVerified uint64 `json:"fragments_verified"` // IPv4 fragments delivered after their datagram's checksum was verified
	Malformed         uint64 `json:"malformed"`
	ForeignMAC        uint64 `json:"foreign_mac"`
	NoDispatcher      uint64 `json:"no_dispatcher"` // received while detached
	PollErrors        uint64 `json:"poll_errors"`
}

// Stats is a snapshot of the endpoint's state and counters.
type Stats struct {
	LinkUp        bool           `json:"link_up"`
	Fatal         string         `json:"fatal,omitempty"`
	MTU           int            `json:"mtu"`
	GSO           bool           `json:"gso"`
	GRO           bool           `json:"gro"`
	TxCsumOffload bool           `json:"tx_csum_offload"`
	RxCsumOffload bool           `json:"rx_csum_offload"`
	LinkChanges   uint64         `json:"link_changes"`
	TxLinkDown    uint64         `json:"tx_link_down"` // frames dropped while the link was down
	Tx            []TxQueueStats `json:"tx"`
	Rx            []RxQueueStats `json:"rx"`
}

// Stats returns the endpoint's counters.
func (e *Endpoint) Stats() Stats {
	st := Stats{
		LinkUp:        e.linkUp.Load(),
		MTU:           int(e.mtu.Load()),
		GSO:           e.gso,
		GRO:           e.gro,
		TxCsumOffload: e.caps&stack.CapabilityTXChecksumOffload != 0,
		RxCsumOffload: e.rxOffload,
		LinkChanges:   e.stats.linkChange.Load(),
		TxLinkDown:    e.stats.txLinkDown.Load(),
	}
	if err := e.Err(); err != nil {
		st.Fatal = err.Error()
	}
	for _, q := range e.tx {
		st.Tx = append(st.Tx, TxQueueStats{
			Packets: q.packets.Load(), Bytes: q.bytes.Load(), NoSpace: q.noSpace.Load(),
			Dropped: q.dropped.Load(), SoftwareCsum: q.swCsum.Load(),
		})
	}
	for _, r := range e.rx {
		c := &r.c
		st.Rx = append(st.Rx, RxQueueStats{
			Packets: c.packets.Load(), Bytes: c.bytes.Load(), Batches: c.batches.Load(),
			DeviceVerified: c.devVerified.Load(), SoftwareVerified: c.swVerified.Load(),
			ChecksumBad: c.csumBad.Load(), FragmentsDropped: c.fragDropped.Load(), FragmentsVerified: c.fragVerified.Load(),
			Malformed: c.malformed.Load(), ForeignMAC: c.foreignMAC.Load(),
			NoDispatcher: c.noDispatcher.Load(), PollErrors: c.pollErrors.Load(),
		})
	}
	return st
}

// txOffloadIPv4 is txOffload for the common case, read straight from the
// frame's first segment instead of through the packet's header views (which
// the profile shows are not free): TCP or UDP over IPv4, the Ethernet, IPv4
// and L4 headers contiguous at the start of b, and a device that offloads
// IPv4. It reports false when it cannot decide; txOffload then handles the
// packet. b aliases the stack's header bytes, so the checksum seed lands
// exactly where txOffload would write it.
func (e *Endpoint) txOffloadIPv4(pkt *stack.PacketBuffer, b []byte) (rings.TxOffload, bool) {
	const eth = header.EthernetMinimumSize
	var off rings.TxOffload
	if !e.txOffV4 || pkt.NetworkProtocolNumber != header.IPv4ProtocolNumber ||
		len(b) < eth+header.IPv4MinimumSize || header.Ethernet(b).Type() != header.IPv4ProtocolNumber {
		return off, false
	}
	h := header.IPv4(b[eth:])
	hl := int(h.HeaderLength())
	if hl < header.IPv4MinimumSize || len(h) < hl {
		return off, false
	}
	if h.More() || h.FragmentOffset() != 0 {
		return off, true // as txOffload: no offload for fragments
	}
	l4 := h[hl:]
	l4len := int(h.TotalLength()) - hl
	var thLen, csumOff int
	switch l4proto := tcpip.TransportProtocolNumber(h.Protocol()); l4proto {
	case header.TCPProtocolNumber:
		if len(l4) < header.TCPMinimumSize {
			return off, false
		}
		thLen = int(header.TCP(l4).DataOffset())
		if thLen < header.TCPMinimumSize || len(l4) < thLen {
			return off, false
		}
		off.L4 = spec.L4ProtoTCP
		off.L4HdrLen = uint8(thLen / 4)
		csumOff = header.TCPChecksumOffset
	case header.UDPProtocolNumber:
		thLen = header.UDPMinimumSize
		if len(l4) < thLen {
			return off, false
		}
		off.L4 = spec.L4ProtoUDP
		off.L4HdrLen = header.UDPMinimumSize / 4
		csumOff = udpChecksumOffset
	default:
		return off, false
	}
	if l4len < thLen || l4len > 0xffff {
		return rings.TxOffload{}, true
	}
	pseudo := header.PseudoHeaderChecksum(tcpip.TransportProtocolNumber(h.Protocol()), h.SourceAddress(), h.DestinationAddress(), uint16(l4len))
	l4[csumOff] = byte(pseudo >> 8)
	l4[csumOff+1] = byte(pseudo)
	off.L3 = spec.L3ProtoIPv4
	off.DF = h.Flags()&header.IPv4FlagDontFragment != 0
	off.L3HdrLen = uint8(hl)
	off.L3HdrOff = eth
	off.L4Csum = true
	off.L4Partial = true
	return off, true
}

// txOffload fills the device checksum request for pkt and seeds its TCP/UDP
// checksum field with the pseudo-header sum, as partial mode requires
// (§7.2, §7.3). The stack left the field zero because we advertised
// CapabilityTXChecksumOffload.
func (e *Endpoint) txOffload(pkt *stack.PacketBuffer, tq *txQueue) rings.TxOffload {
	var off rings.TxOffload
	th := pkt.TransportHeader().Slice()
	nh := pkt.NetworkHeader().Slice()
	var l4proto tcpip.TransportProtocolNumber
	var src, dst tcpip.Address
	var l4len int
	switch pkt.NetworkProtocolNumber {
	case header.IPv4ProtocolNumber:
		if len(nh) < header.IPv4MinimumSize {
			return off
		}
		h := header.IPv4(nh)
		if h.More() || h.FragmentOffset() != 0 {
			// The stack fragmented this datagram; a UDP checksum left zero
			// means "none" over IPv4, which is legal, and TCP is never
			// fragmented by the stack (it sets DF).
			return off
		}
		l4proto = tcpip.TransportProtocolNumber(h.Protocol())
		src, dst = h.SourceAddress(), h.DestinationAddress()
		l4len = int(h.TotalLength()) - int(h.HeaderLength())
		off.L3 = spec.L3ProtoIPv4
		off.DF = h.Flags()&header.IPv4FlagDontFragment != 0
		off.L3HdrLen = uint8(h.HeaderLength())
	case header.IPv6ProtocolNumber:
		if len(nh) < header.IPv6MinimumSize {
			return off
		}
		h := header.IPv6(nh)
		l4proto = tcpip.TransportProtocolNumber(h.NextHeader())
		src, dst = h.SourceAddress(), h.DestinationAddress()
		l4len = int(h.PayloadLength())
		off.L3 = spec.L3ProtoIPv6
		off.DF = true
		off.L3HdrLen = uint8(len(nh))
	default:
		return off
	}
	var csumOff int
	switch l4proto {
	case header.TCPProtocolNumber:
		if len(th) < header.TCPMinimumSize {
			return rings.TxOffload{}
		}
		off.L4 = spec.L4ProtoTCP
		off.L4HdrLen = uint8(header.TCP(th).DataOffset() / 4)
		csumOff = header.TCPChecksumOffset
	case header.UDPProtocolNumber:
		if len(th) < header.UDPMinimumSize {
			return rings.TxOffload{}
		}
		off.L4 = spec.L4ProtoUDP
		off.L4HdrLen = header.UDPMinimumSize / 4
		csumOff = udpChecksumOffset
	default:
		return rings.TxOffload{}
	}
	if l4len < len(th) || l4len > 0xffff {
		return rings.TxOffload{}
	}
	pseudo := header.PseudoHeaderChecksum(l4proto, src, dst, uint16(l4len))
	device := (off.L3 == spec.L3ProtoIPv4 && e.txOffV4) || (off.L3 == spec.L3ProtoIPv6 && e.txOffV6)
	if !device {
		finishChecksum(pkt, th, csumOff, l4proto, pseudo)
		tq.swCsum.Add(1)
		return rings.TxOffload{}
	}
	th[csumOff] = byte(pseudo >> 8)
	th[csumOff+1] = byte(pseudo)
	off.L4Csum = true
	off.L4Partial = true
	off.L3HdrOff = header.EthernetMinimumSize
	return off
}
