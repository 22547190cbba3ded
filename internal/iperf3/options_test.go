package iperf3

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runPair runs one test of ours against ours on loopback kernel sockets.
func runPair(t *testing.T, cfg ClientConfig) (client, server *Report) {
	t.Helper()
	addr, reports := ourServer(t)
	cfg.Addr = addr
	if cfg.Interval == 0 {
		cfg.Interval = 100 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := Run(ctx, cfg)
	require.NoError(t, err)
	srep := nextReport(t, reports)
	require.Empty(t, srep.Error)
	return rep, srep
}

func TestBidir(t *testing.T) {
	rep, srep := runPair(t, ClientConfig{Bidir: true, Parallel: 2, Duration: 400 * time.Millisecond})
	require.Len(t, rep.Start.Connected, 4)
	require.NotNil(t, rep.End.SumSentBidirReverse)
	require.NotNil(t, rep.End.SumReceivedBidirReverse)
	assert.NotZero(t, rep.End.SumReceived.Bytes, "client to server")
	assert.NotZero(t, rep.End.SumReceivedBidirReverse.Bytes, "server to client")
	// Both sides agree on each direction.
	assert.Equal(t, rep.End.SumReceived.Bytes, srep.End.SumReceived.Bytes)
	assert.Equal(t, rep.End.SumReceivedBidirReverse.Bytes, srep.End.SumReceivedBidirReverse.Bytes)
	require.NotEmpty(t, rep.Intervals)
	require.NotNil(t, rep.Intervals[0].SumBidirReverse)
	senders := 0
	for _, s := range rep.Intervals[0].Streams {
		if s.Sender {
			senders++
		}
	}
	assert.Equal(t, 2, senders, "the first half of the streams send")
}

func TestOmit(t *testing.T) {
	rep, srep := runPair(t, ClientConfig{Omit: time.Second, Duration: 300 * time.Millisecond, Interval: 250 * time.Millisecond})
	for _, r := range []*Report{rep, srep} {
		require.NotEmpty(t, r.Intervals)
		assert.True(t, *r.Intervals[0].Sum.Omitted, "the first interval is omitted")
		last := r.Intervals[len(r.Intervals)-1].Sum
		assert.False(t, *last.Omitted)
		// The clock restarts after the omitted period.
		assert.Less(t, last.End, 0.5)
		assert.InDelta(t, 0.3, r.End.SumSent.Seconds, 0.2)
	}
	assert.Equal(t, 1, rep.Start.TestStart.Omit)
}

func TestByteAndBlockCounts(t *testing.T) {
	rep, _ := runPair(t, ClientConfig{Bytes: 3 << 20})
	assert.GreaterOrEqual(t, rep.End.SumSent.Bytes, uint64(3<<20))
	assert.Less(t, rep.End.SumSent.Bytes, uint64(3<<20+2*DefaultTCPBlockSize))
	assert.Equal(t, uint64(3<<20), rep.Start.TestStart.Bytes)

	rep, _ = runPair(t, ClientConfig{Blocks: 10, BlockLen: 1000, Reverse: true})
	assert.GreaterOrEqual(t, rep.End.SumReceived.Bytes, uint64(10*1000))
	assert.LessOrEqual(t, rep.End.SumSent.Bytes, uint64(11*1000))

	_, err := Run(context.Background(), ClientConfig{Addr: "127.0.0.1:1", Bytes: 1, Duration: time.Second})
	require.ErrorContains(t, err, "replaces the duration")
}

func TestRetransmitsAndTCPInfo(t *testing.T) {
	rep, _ := runPair(t, ClientConfig{Duration: 300 * time.Millisecond})
	require.NotNil(t, rep.End.SumSent.Retransmits, "kernel TCP_INFO gives retransmits")
	s := rep.End.Streams[0].Sender
	require.NotNil(t, s.MaxSndCwnd)
	assert.Positive(t, *s.MaxSndCwnd)
	iv := rep.Intervals[0].Streams[0]
	require.NotNil(t, iv.RTT)
	require.NotNil(t, iv.SndCwnd)
	assert.NotEmpty(t, rep.End.SenderTCPCongestion)
}

func TestServerOutput(t *testing.T) {
	rep, _ := runPair(t, ClientConfig{Duration: 200 * time.Millisecond, GetServerOutput: true, Title: "t1"})
	assert.Contains(t, rep.ServerOutputText, "receiver", "the server's text report")
	assert.Equal(t, "t1", rep.Title)
}

func TestUnit(t *testing.T) {
	for _, c := range []struct {
		n    float64
		f    byte
		want string
	}{
		{141557760, 'A', " 135 MByte"},
		{1.13e9 / 8, 'a', "1.13 Gbit"},
		{2841e6 / 8, 'm', "2841 Mbit"},
		{96e6 / 8, 'a', "96.0 Mbit"},
		{0, 'a', "0.00 bit"},
		{1 << 30, 'K', "1048576 KByte"},
	} {
		assert.Equal(t, c.want, Unit(c.n, c.f), "%v %c", c.n, c.f)
	}
}

func TestTextLayout(t *testing.T) {
	rep, _ := runPair(t, ClientConfig{Duration: 300 * time.Millisecond, Parallel: 2, Interval: -1})
	var b bytes.Buffer
	rep.WriteText(&b, TextOptions{}, true)
	out := b.String()
	assert.Contains(t, out, "[ ID] Interval           Transfer     Bitrate         Retr\n")
	// "[  5]" and "[  7]", as stock iperf3 3.12's client shows.
	assert.Regexp(t, `\[  5\]   0\.00-0\.\d\d   sec .* sender\n`, out)
	assert.Regexp(t, `\[  7\]   0\.00-0\.\d\d   sec .* sender\n`, out)
	assert.NotContains(t, out, "[  1]")
	assert.Regexp(t, `\[SUM\]   0\.00-0\.\d\d   sec .* receiver\n`, out)
	assert.False(t, strings.Contains(out, "error"), out)

	b.Reset()
	rep.WriteText(&b, TextOptions{Verbose: true}, true)
	out = b.String()
	assert.Contains(t, out, "      Cookie: "+rep.Start.Cookie+"\n")
	assert.Contains(t, out, "Starting Test: protocol: TCP, 2 streams, 131072 byte blocks, omitting 0 seconds, 1 second test, tos 0\n")
	assert.Contains(t, out, "- - - - - - - - - - - - - - - - - - - - - - - - -\nTest Complete. Summary Results:\n[ ID]")
}
