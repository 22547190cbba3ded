package link

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

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
	rxHash    bool // the device reports the RSS hash in Rx completions
	devL3OK   bool // device validates IPv4 header checksums
	devL4OK   bool // device validates TCP/UDP checksums
	// frags holds IPv4 fragments until their datagram's TCP/UDP checksum
	// is verified (see fragVerifier); nil without Rx checksum offload.
	frags *fragVerifier
	// txFrags fills in the UDP checksum of datagrams the stack fragmented
	// (see txFragSums); nil without Tx checksum offload.
	txFrags *txFragSums

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
		e.txFrags = newTxFragSums()
	}
	if !opts.NoRxChecksumOffload {
		e.caps |= stack.CapabilityRXChecksumOffload
		e.rxOffload = true
		e.devL3OK = off.RxCsumIPv4
		e.devL4OK = off.RxCsumL4
		e.frags = newFragVerifier()
	}
	e.rxHash = off.RxHash
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
		r.gro.Dispatcher = &r.groOut
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
// MTU, §4.8). A refused change is logged and the old MTU kept, since the
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
	if e.txFrags != nil {
		e.txFrags.close()
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
