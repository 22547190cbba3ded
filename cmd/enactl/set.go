package main

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/enanet/enanet/ena/control"
)

const setHelp = `
Changes settings of a device a running process holds, without closing it:
open TCP connections survive every change. Like ethtool -L/-G/-X/-C:

  --channels N        queue pairs in use, 1 up to the device's maximum
  --tx-ring N         Tx ring size, a power of two up to the device maximum
  --rx-ring N         Rx ring size, likewise
  --rx-buf SIZE       Rx buffer size: 2048, 4096, 9216, or auto (from the MTU)
  --rss-key HEX       40-byte RSS hash key, 80 hex digits (colons allowed)
  --rss-func NAME     RSS hash function: toeplitz or crc32
  --rss-table Q,Q,..  the whole indirection table, one queue per entry
  --rss-entry I:Q     one indirection entry (repeatable)
  --rx-usecs N        static Rx interrupt delay in µs (0 = off)
  --tx-usecs N        static Tx interrupt delay in µs
  --adaptive on|off   adaptive Rx interrupt moderation (net_dim style)

As with ethtool -C, a moderation setting left out keeps its current value.

Channels, rings and Rx buffers rebuild the queues (a few milliseconds
without traffic); RSS and moderation apply at once. Settings are applied
in the order above and the first refused one stops the command, naming
what was already applied.

The device must be held by a running process that serves the control
socket (enahttp, enaperf, or a service that calls control.Serve); see
enactl list.`

// cmdSet implements `enactl set`.
func cmdSet(e *env, args []string) int {
	fs := flagSet("set", "enactl set --device ADDRESS|sim [--socket PATH] SETTING...", setHelp)
	device := fs.String("device", "", "the device to change: a PCI address, or sim for a simulated one")
	socket := fs.String("socket", "", "use this control socket instead of looking for one")
	_ = fs.MarkHidden("sysfs") // the command talks to a socket, never to sysfs
	channels := fs.Int("channels", 0, "queue pairs in use")
	txRing := fs.Int("tx-ring", 0, "Tx ring size (power of two)")
	rxRing := fs.Int("rx-ring", 0, "Rx ring size (power of two)")
	rxBuf := fs.String("rx-buf", "", "Rx buffer size: 2048, 4096, 9216 or auto")
	rssKey := fs.String("rss-key", "", "RSS key, 80 hex digits")
	rssFunc := fs.String("rss-func", "", "RSS hash function: toeplitz or crc32")
	rssTable := fs.String("rss-table", "", "whole RSS indirection table: comma-separated queues")
	rssEntries := fs.StringArray("rss-entry", nil, "RSS indirection entry INDEX:QUEUE (repeatable)")
	rxUsecs := fs.Int("rx-usecs", 0, "static Rx interrupt delay, µs")
	txUsecs := fs.Int("tx-usecs", 0, "static Tx interrupt delay, µs")
	adaptive := fs.String("adaptive", "", "adaptive Rx moderation: on or off")
	if ok, code := parse(e, fs, args); !ok {
		return code
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(e.stderr, "enactl set: "+format+"\n", a...)
		return exitUsage
	}
	if fs.NArg() != 0 {
		return usage("unexpected argument %q (settings are flags, e.g. --channels 2)", fs.Arg(0))
	}
	if *socket == "" {
		if err := checkDevice(*device); err != nil {
			return usage("%v", err)
		}
	}
	var s control.Settings
	if fs.Changed("channels") {
		s.Channels = channels
	}
	if fs.Changed("tx-ring") {
		s.TxDepth = txRing
	}
	if fs.Changed("rx-ring") {
		s.RxDepth = rxRing
	}
	if fs.Changed("rx-buf") {
		n := 0
		if *rxBuf != "auto" {
			v, err := strconv.Atoi(*rxBuf)
			if err != nil {
				return usage("--rx-buf %q: want 2048, 4096, 9216 or auto", *rxBuf)
			}
			n = v
		}
		s.RxBufSize = &n
	}
	if *rssKey != "" {
		if _, err := control.ParseRSSKey(*rssKey); err != nil {
			return usage("--rss-key: %v", err)
		}
	}
	for _, u := range []struct {
		name string
		v    *int
	}{{"rx-usecs", rxUsecs}, {"tx-usecs", txUsecs}} {
		if *u.v < 0 {
			return usage("--%s %d: want 0 (off) or a delay in microseconds", u.name, *u.v)
		}
	}
	s.RSSKey, s.RSSFunction = *rssKey, *rssFunc
	if *rssTable != "" {
		for _, f := range strings.Split(*rssTable, ",") {
			q, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				return usage("--rss-table: %q is not a queue number (want e.g. 0,1,0,1)", f)
			}
			s.RSSTable = append(s.RSSTable, q)
		}
	}
	for _, ent := range *rssEntries {
		i, q, ok := strings.Cut(ent, ":")
		ii, err1 := strconv.Atoi(i)
		qq, err2 := strconv.Atoi(q)
		if !ok || err1 != nil || err2 != nil {
			return usage("--rss-entry %q: want INDEX:QUEUE, e.g. 5:1", ent)
		}
		s.RSSEntries = append(s.RSSEntries, [2]int{ii, qq})
	}
	if fs.Changed("rx-usecs") {
		s.RxUsecs = rxUsecs
	}
	if fs.Changed("tx-usecs") {
		s.TxUsecs = txUsecs
	}
	if fs.Changed("adaptive") {
		var on bool
		switch *adaptive {
		case "on":
			on = true
		case "off":
		default:
			return usage("--adaptive %q: want on or off", *adaptive)
		}
		s.Adaptive = &on
	}
	if reflect.ValueOf(s).IsZero() {
		return usage("give at least one setting, e.g. --channels 2 (enactl set --help lists them)")
	}
	ctx, cancel := interruptible()
	defer cancel()
	c, err := findHolder(ctx, e, "set", *device, *socket)
	if err != nil {
		return fail(e, "set", err)
	}
	if c == nil {
		return fail(e, "set", fmt.Errorf("no running process serves %s: enactl set acts on a device a process is using (enahttp, enaperf, or a service that serves the control socket); see enactl list", *device))
	}
	defer c.Close()
	h, err := c.Hello(ctx)
	if err != nil {
		return fail(e, "set", err)
	}
	r, err := c.Set(ctx, s)
	if err != nil {
		return fail(e, "set", fmt.Errorf("%s (%s): %w", h.Device, holderName(h), err))
	}
	fmt.Fprintf(e.stdout, "%s (held by %s): changed %s\n", h.Device, holderName(h), strings.Join(r.Applied, ", "))
	return exitOK
}
