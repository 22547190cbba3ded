package iperf3

import (
	"fmt"
	"io"
	"strings"
)

// TextOptions shape text reports as iperf3's -f does.
type TextOptions struct {
	// Format is iperf3's -f letter for rates: k, m, g, t (bits), K, M,
	// G, T (bytes), a or A adaptive; 0 means a.
	Format byte
	// Verbose adds what iperf3 -V prints: the test's time, cookie, MSS
	// and "Starting Test" line, and "Test Complete. Summary Results:".
	Verbose bool
}

func (o TextOptions) format() byte {
	if o.Format == 0 {
		return 'a'
	}
	return o.Format
}

// Unit formats n bytes the way iperf3's unit_snprintf does: four places
// and a unit, bits in powers of 1000 (lower-case format letters, value
// times 8), bytes in powers of 1024 (upper case).
func Unit(n float64, format byte) string {
	bits := format >= 'a' && format <= 'z'
	if bits {
		n *= 8
	}
	base := 1024.0
	labels := []string{"Byte", "KByte", "MByte", "GByte", "TByte"}
	if bits {
		base = 1000
		labels = []string{"bit", "Kbit", "Mbit", "Gbit", "Tbit"}
	}
	conv := 0
	switch format | 0x20 {
	case 'b':
	case 'k':
		conv = 1
	case 'm':
		conv = 2
	case 'g':
		conv = 3
	case 't':
		conv = 4
	default:
		for v := n; v >= base && conv < 4; conv++ {
			v /= base
		}
	}
	for i := 0; i < conv; i++ {
		n /= base
	}
	f := "%4.0f %s"
	switch {
	case n < 9.995:
		f = "%4.2f %s"
	case n < 99.95:
		f = "%4.1f %s"
	}
	return fmt.Sprintf(f, n, labels[conv])
}

const textSeparator = "- - - - - - - - - - - - - - - - - - - - - - - - -\n"

// textHeader is the column header for intervals: which one depends on
// the protocol and on whether this side sends with TCP statistics.
func textHeader(udp, bidir, sender, retr, cwnd bool) string {
	id := "[ ID]"
	if bidir {
		id = "[ ID][Role]"
	}
	cols := "Interval           Transfer     Bitrate"
	switch {
	case udp && sender && !bidir:
		cols += "         Total Datagrams"
	case udp:
		cols += "         Jitter    Lost/Total Datagrams"
	case retr && cwnd:
		cols += "         Retr  Cwnd"
	case retr:
		cols += "         Retr"
	}
	return id + " " + cols + "\n"
}

// role is the [TX-C]-style tag --bidir adds.
func role(bidir, sender, client bool) string {
	if !bidir {
		return ""
	}
	r := "RX"
	if sender {
		r = "TX"
	}
	if client {
		return "[" + r + "-C]"
	}
	return "[" + r + "-S]"
}

// TextStart writes the lines iperf3 prints once the streams are up.
func (r *Report) TextStart(w io.Writer, o TextOptions, client bool) {
	st := r.Start
	if o.Verbose && !client {
		fmt.Fprintf(w, "Time: %s\n", st.Timestamp.Time)
	}
	if st.AcceptedConnection != nil {
		fmt.Fprintf(w, "Accepted connection from %s, port %d\n", st.AcceptedConnection.Host, st.AcceptedConnection.Port)
	}
	if o.Verbose {
		fmt.Fprintf(w, "      Cookie: %s\n", st.Cookie)
		switch {
		case st.TCPMSS != nil:
			fmt.Fprintf(w, "      TCP MSS: %d\n", *st.TCPMSS)
		case st.TCPMSSDefault != nil:
			fmt.Fprintf(w, "      TCP MSS: %d (default)\n", *st.TCPMSSDefault)
		}
	}
	if client && st.TestStart.Reverse != 0 && st.ConnectingTo != nil {
		fmt.Fprintf(w, "Reverse mode, remote host %s is sending\n", st.ConnectingTo.Host)
	}
	for _, c := range st.Connected {
		fmt.Fprintf(w, "[%3d] local %s port %d connected to %s port %d\n", c.Socket, c.LocalHost, c.LocalPort, c.RemoteHost, c.RemotePort)
	}
	if o.Verbose {
		io.WriteString(w, st.TestStart.startingLine())
	}
}

// startingLine is iperf3 -V's "Starting Test" line.
func (t TestStart) startingLine() string {
	end := fmt.Sprintf("%d second test", t.Duration)
	switch {
	case t.Bytes > 0:
		end = fmt.Sprintf("%d bytes to send", t.Bytes)
	case t.Blocks > 0:
		end = fmt.Sprintf("%d blocks to send", t.Blocks)
	}
	return fmt.Sprintf("Starting Test: protocol: %s, %d streams, %d byte blocks, omitting %d seconds, %s, tos %d\n",
		t.Protocol, t.NumStreams, t.BlkSize, t.Omit, end, t.TOS)
}

// TextInterval writes one interval as iperf3 does; first says it is the
// first one (the column header goes first).
func TextInterval(w io.Writer, iv Interval, o TextOptions, client, bidir, first bool) {
	if len(iv.Streams) == 0 {
		return
	}
	s0 := iv.Streams[0]
	udp := s0.Packets != nil
	retr := false
	for _, s := range iv.Streams {
		retr = retr || s.Retransmits != nil
	}
	if first {
		io.WriteString(w, textHeader(udp, bidir, s0.Sender, retr, true))
	} else if len(iv.Streams) > 1 && !bidir {
		io.WriteString(w, textSeparator)
	}
	for _, s := range iv.Streams {
		io.WriteString(w, textLine(fmt.Sprintf("[%3d]", s.Socket), role(bidir, s.Sender, client), s, o, "", true))
	}
	if len(iv.Streams) > 1 && !bidir {
		io.WriteString(w, textLine("[SUM]", "", iv.Sum, o, "", false))
	}
	if bidir && len(iv.Streams) > 2 {
		io.WriteString(w, textLine("[SUM]", role(true, iv.Sum.Sender, client), iv.Sum, o, "", false))
		if iv.SumBidirReverse != nil {
			io.WriteString(w, textLine("[SUM]", role(true, iv.SumBidirReverse.Sender, client), *iv.SumBidirReverse, o, "", false))
		}
	}
}

// textLine formats one interval or summary line; tail is "sender",
// "receiver" or "" and cwnd says whether an interval line shows the
// congestion window.
func textLine(id, role string, s Sum, o TextOptions, tail string, cwnd bool) string {
	head := fmt.Sprintf("%s%s %6.2f-%-6.2f sec  %ss  %ss/sec", id, role, s.Start, s.End, Unit(float64(s.Bytes), 'A'), Unit(s.BitsPerSecond/8, o.format()))
	omitted := ""
	if s.Omitted != nil && *s.Omitted {
		omitted = "(omitted)"
	}
	if tail != "" {
		omitted = tail
	}
	switch {
	case s.Packets != nil && s.JitterMS != nil && s.LostPackets != nil && s.LostPercent != nil:
		return fmt.Sprintf("%s  %5.3f ms  %d/%d (%.2g%%)  %s\n", head, *s.JitterMS, *s.LostPackets, *s.Packets, *s.LostPercent, omitted)
	case s.Packets != nil:
		return fmt.Sprintf("%s  %d  %s\n", head, *s.Packets, omitted)
	case s.Retransmits != nil && s.SndCwnd != nil && cwnd:
		return fmt.Sprintf("%s  %3d   %ss       %s\n", head, *s.Retransmits, Unit(float64(*s.SndCwnd), 'A'), omitted)
	case s.Retransmits != nil:
		return fmt.Sprintf("%s  %3d             %s\n", head, *s.Retransmits, omitted)
	}
	return fmt.Sprintf("%s                  %s\n", head, omitted)
}

// TextEnd writes the summary iperf3 prints after the test.
func (r *Report) TextEnd(w io.Writer, o TextOptions, client bool) {
	e := r.End
	bidir := e.SumSentBidirReverse != nil
	io.WriteString(w, textSeparator)
	if o.Verbose {
		io.WriteString(w, "Test Complete. Summary Results:\n")
	}
	udp := e.Sum != nil
	retr := e.SumSent != nil && e.SumSent.Retransmits != nil
	if bidir && e.SumSentBidirReverse.Retransmits != nil {
		retr = true
	}
	localSends := e.SumSent != nil && e.SumSent.Sender
	if udp {
		io.WriteString(w, textHeader(true, bidir, false, false, false))
	} else {
		io.WriteString(w, textHeader(false, bidir, false, retr && (client || localSends || bidir), false))
	}
	if udp && client && len(e.Streams) == 1 && e.SumSent != nil && e.SumReceived != nil && !bidir {
		// One UDP stream: iperf3 prints the sender's and the receiver's
		// view of it, which the sums carry.
		id := fmt.Sprintf("[%3d]", e.Streams[0].UDP.Socket)
		io.WriteString(w, textLine(id, "", *e.SumSent, o, "sender", false))
		io.WriteString(w, textLine(id, "", *e.SumReceived, o, "receiver", false))
		return
	}
	for _, s := range e.Streams {
		switch {
		case s.UDP != nil:
			tail := "receiver"
			if s.UDP.Sender {
				tail = "sender"
			}
			io.WriteString(w, textLine(fmt.Sprintf("[%3d]", s.UDP.Socket), role(bidir, s.UDP.Sender, client), *s.UDP, o, tail, false))
		case s.Sender != nil && s.Receiver != nil:
			if client || s.Sender.Sender {
				io.WriteString(w, textLine(fmt.Sprintf("[%3d]", s.Sender.Socket), role(bidir, s.Sender.Sender, client), *s.Sender, o, "sender", false))
			}
			if client || !s.Receiver.Sender {
				io.WriteString(w, textLine(fmt.Sprintf("[%3d]", s.Receiver.Socket), role(bidir, s.Receiver.Sender, client), *s.Receiver, o, "receiver", false))
			}
		}
	}
	if len(e.Streams) > 1 && !bidir || len(e.Streams) > 2 {
		sums := []*Sum{e.SumSent, e.SumReceived}
		if bidir {
			sums = append(sums, e.SumSentBidirReverse, e.SumReceivedBidirReverse)
		}
		for i, s := range sums {
			if s == nil {
				continue
			}
			tail := "sender"
			if i%2 == 1 {
				tail = "receiver"
			}
			if !client && (tail == "sender") != s.Sender {
				continue
			}
			io.WriteString(w, textLine("[SUM]", role(bidir, s.Sender, client), *s, o, tail, false))
		}
	}
	if !udp && e.SumSent != nil && e.SumReceived != nil && e.SumReceived.Bytes > 0 &&
		float64(e.SumSent.Bytes) > 1.1*float64(e.SumReceived.Bytes) {
		fmt.Fprintf(w, "note: the sender counted %s more than arrived: data still in socket buffers when the test ended; the receiver line is the figure to trust\n",
			strings.TrimSpace(Unit(float64(e.SumSent.Bytes-e.SumReceived.Bytes), 'A'))+"s")
	}
	if !client {
		// A client prints what it ignores before the test.
		for _, ig := range r.Ignored {
			fmt.Fprintf(w, "enaperf: ignored %s\n", ig)
		}
	}
	if r.Error != "" {
		fmt.Fprintf(w, "iperf3: error - %s\n", strings.TrimPrefix(r.Error, "iperf3: "))
	}
}

// WriteText writes the whole report as iperf3's text output.
func (r *Report) WriteText(w io.Writer, o TextOptions, client bool) {
	r.TextStart(w, o, client)
	bidir := r.End.SumSentBidirReverse != nil || r.Start.TestStart.Bidir()
	for i, iv := range r.Intervals {
		TextInterval(w, iv, o, client, bidir, i == 0)
	}
	r.TextEnd(w, o, client)
}
