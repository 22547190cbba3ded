package link

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/enanet/enanet/ena/spec"
	"github.com/enanet/enanet/internal/frame"
	"github.com/enanet/enanet/rings"
)

// Transmit, in the order a packet takes: WritePackets picks each packet's
// queue, send gathers the frame's bytes, txChecksum prepares the device's
// checksum offload, and the queue's Send copies the frame into the ring;
// the doorbell rings once per batch (Queue.Flush).

// txRetries bounds how often WritePackets yields and retries a full Tx ring
// before it reports back-pressure. fifo drops whatever a WritePackets call
// did not write, so waiting a little for completions beats failing at once.
const txRetries = 256

// txQueue serialises senders on one Tx ring and owns the reusable segment
// list, so the Tx copy path allocates nothing.
type txQueue struct {
	mu   sync.Mutex
	q    Queue
	segs [][]byte

	packets, bytes, noSpace, dropped, swCsum atomic.Uint64
}

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
	tq.segs = segs[:0]               // keep the grown backing array
	var complete *stack.PacketBuffer // a held first fragment, now summed
	if e.txFrags != nil {
		var hold bool
		if hold, complete = e.txFrags.note(pkt, segs, size); hold {
			return nil // sent once the datagram's last fragment went
		}
	}
	if complete != nil {
		defer func() {
			_ = e.send(tq, complete) // lost like any frame on a full ring
			complete.DecRef()
		}()
	}
	var off rings.TxOffload
	if e.caps&stack.CapabilityTXChecksumOffload != 0 {
		var first []byte
		if len(segs) > 0 {
			first = segs[0]
		}
		off = e.txChecksum(tq, pkt, first)
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
			addOwned(&tq.packets, 1) // tq.mu is held
			addOwned(&tq.bytes, uint64(size))
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

// txChecksum prepares pkt's TCP/UDP checksum, which the stack left zero
// because the endpoint advertised CapabilityTXChecksumOffload. Where the
// device offloads the packet's IP family it seeds the checksum field with
// the pseudo-header sum and returns the partial-mode request (§7.2, §7.3);
// otherwise it computes the checksum here and returns no request. IP
// fragments (the stack fragments only UDP, whose zero checksum over IPv4
// means "none") and other protocols get no request either.
//
// first is the frame's first segment. The stack builds all headers in one
// view, so they are normally read straight from it, which is cheaper than
// going through the packet's header views; the views are the fallback when
// the headers are not all there (a forwarded packet, for instance).
func (e *Endpoint) txChecksum(tq *txQueue, pkt *stack.PacketBuffer, first []byte) rings.TxOffload {
	var none rings.TxOffload
	l3, ip, ok := txNetworkHeader(pkt, first)
	if !ok || ip.Fragment {
		return none
	}
	csumOff, ok := frame.L4ChecksumOffset(ip.Proto)
	if !ok {
		return none
	}
	th := l3[ip.HeaderLen:]
	thLen, ok := frame.L4HeaderLen(ip.Proto, th)
	if !ok {
		th = pkt.TransportHeader().Slice()
		thLen, ok = frame.L4HeaderLen(ip.Proto, th)
	}
	l4Len := ip.L4Len()
	if !ok || l4Len < thLen || l4Len > 0xffff {
		return none
	}
	th = th[:thLen]
	pseudo := frame.PseudoHeaderSum(ip.Src, ip.Dst, ip.Proto, l4Len)
	v4 := pkt.NetworkProtocolNumber == header.IPv4ProtocolNumber
	if v4 && !e.txOffV4 || !v4 && !e.txOffV6 {
		finishChecksum(pkt, th, csumOff, ip.Proto, pseudo)
		tq.swCsum.Add(1)
		return none
	}
	th[csumOff] = byte(pseudo >> 8)
	th[csumOff+1] = byte(pseudo)
	off := rings.TxOffload{
		L3:        spec.L3ProtoIPv6,
		L4:        spec.L4ProtoUDP,
		DF:        ip.DontFragment,
		L3HdrLen:  uint8(ip.HeaderLen),
		L3HdrOff:  header.EthernetMinimumSize,
		L4HdrLen:  uint8(thLen / 4),
		L4Csum:    true,
		L4Partial: true,
	}
	if v4 {
		off.L3 = spec.L3ProtoIPv4
	}
	if ip.Proto == frame.ProtoTCP {
		off.L4 = spec.L4ProtoTCP
	}
	return off
}

// txNetworkHeader finds pkt's IPv4 or IPv6 header, behind the Ethernet
// header in first or else in the packet's network header view. The slice
// returned starts at the IP header and runs to the end of the buffer it
// was found in.
func txNetworkHeader(pkt *stack.PacketBuffer, first []byte) ([]byte, frame.IP, bool) {
	parse := frame.ParseIPv4
	switch pkt.NetworkProtocolNumber {
	case header.IPv4ProtocolNumber:
	case header.IPv6ProtocolNumber:
		parse = frame.ParseIPv6
	default:
		return nil, frame.IP{}, false
	}
	if len(first) > header.EthernetMinimumSize && header.Ethernet(first).Type() == pkt.NetworkProtocolNumber {
		l3 := first[header.EthernetMinimumSize:]
		if ip, ok := parse(l3); ok {
			return l3, ip, true
		}
	}
	l3 := pkt.NetworkHeader().Slice()
	ip, ok := parse(l3)
	return l3, ip, ok
}

// finishChecksum computes a TCP/UDP checksum in software for a packet the
// device cannot offload although the endpoint told the stack it would. th
// is the transport header; the payload is pkt.Data().
func finishChecksum(pkt *stack.PacketBuffer, th []byte, csumOff int, proto uint8, pseudo uint16) {
	th[csumOff], th[csumOff+1] = 0, 0
	sum := checksum.Combine(pseudo, pkt.Data().Checksum())
	sum = checksum.Checksum(th, sum)
	c := ^sum
	if proto == frame.ProtoUDP && c == 0 {
		c = 0xffff // zero means "no checksum" for UDP
	}
	th[csumOff] = byte(c >> 8)
	th[csumOff+1] = byte(c)
}
