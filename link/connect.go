package link

import (
	"context"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/waiter"
)

// Connect starts a TCP handshake from ep (created on wq) to fa and waits
// for it to finish or for ctx to end, whichever comes first: a deadline is
// enforced by ctx rather than left to TCP's SYN retries. It returns ctx's
// error if ctx ended first, else the endpoint's result (nil when
// connected). The caller owns ep and closes it on failure; callers wrap the
// two kinds of error in their own words.
func Connect(ctx context.Context, ep tcpip.Endpoint, wq *waiter.Queue, fa tcpip.FullAddress) (ctxErr error, connErr tcpip.Error) {
	entry, ready := waiter.NewChannelEntry(waiter.WritableEvents)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)
	terr := ep.Connect(fa)
	if _, ok := terr.(*tcpip.ErrConnectStarted); ok {
		select {
		case <-ctx.Done():
			return ctx.Err(), nil
		case <-ready:
		}
		terr = ep.LastError()
	}
	return nil, terr
}
