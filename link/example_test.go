package link_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"

	"github.com/enanet/enanet/link"
	"github.com/enanet/enanet/link/simnic"
)

// Example serves HTTP from one userspace stack and fetches it from another.
// Here two software NICs joined by a pipe stand in for the devices; with
// hardware the first argument of NewStack is enanic.New(dev).
func Example() {
	w1, w2 := simnic.NewPipe()
	server, err := link.NewStack(simnic.New(w1, simnic.Config{MAC: [6]byte{2, 0, 0, 0, 0, 1}}),
		link.StackOptions{Addr: netip.MustParsePrefix("10.0.0.1/24"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer server.Close()
	client, err := link.NewStack(simnic.New(w2, simnic.Config{MAC: [6]byte{2, 0, 0, 0, 0, 2}}),
		link.StackOptions{Addr: netip.MustParsePrefix("10.0.0.2/24"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer client.Close()

	ln, err := server.ListenTCP(80)
	if err != nil {
		panic(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello from netstack")
	})}
	go srv.Serve(ln)
	defer srv.Close()

	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return client.DialTCP(ctx, netip.MustParseAddrPort(addr))
		},
	}}
	resp, err := hc.Get("http://10.0.0.1:80/")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(string(body))
	// Output: hello from netstack
}
