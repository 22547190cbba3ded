package link_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"

	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/link"
	"github.com/enanet/enanet/link/simnic"
	"github.com/enanet/enanet/link/vpc"
)

// onVPC puts a userspace stack on a simulated VPC, dual stack: IPv4 by
// DHCP, IPv6 by DHCPv6 after the VPC's Router Advertisement, DNS from the
// leases. With hardware, the NIC is enanic.New(dev) and the VPC is EC2's.
func onVPC() (*vpc.VPC, *link.Stack) {
	quiet := slog.New(slog.DiscardHandler)
	near, far := enasim.NewPair()
	v, err := vpc.New(far, vpc.Config{Logger: quiet})
	if err != nil {
		panic(err)
	}
	st, err := link.NewStack(simnic.New(near, simnic.Config{MAC: [6]byte{2, 0, 0, 0, 0, 0x42}}),
		link.StackOptions{DHCP: true, DHCPv6: true, Logger: quiet})
	if err != nil {
		panic(err)
	}
	return v, st
}

// An HTTP client on the userspace stack fetches a page by name: the name
// is resolved by the VPC's DNS through the stack, and the connection goes
// through the stack too. Only the client changed from plain net/http.
func ExampleStack_HTTPClient() {
	v, st := onVPC()
	defer v.Close()
	defer st.Close()

	// A web server elsewhere in the VPC (here on the router's stack).
	ln, err := v.Stack.Listen("tcp", ":8080")
	if err != nil {
		panic(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		family := "IPv6"
		if netip.MustParseAddrPort(r.RemoteAddr).Addr().Unmap().Is4() {
			family = "IPv4"
		}
		fmt.Fprintf(w, "hello over %s\n", family)
	})}
	go srv.Serve(ln)
	defer srv.Close()

	resp, err := st.HTTPClient().Get("http://" + vpc.GatewayName + ":8080/")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(string(body))
	// Output: hello over IPv6
}

// A UDP echo server on the userspace stack, on both families at once
// (":7"), and a client elsewhere in the VPC sending to it by name.
func ExampleStack_ListenPacket() {
	v, st := onVPC()
	defer v.Close()
	defer st.Close()

	pc, err := st.ListenPacket("udp", ":7")
	if err != nil {
		panic(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()

	addr, _ := st.Addr()
	addr6, _ := st.Addr6()
	v.AddDNSName("app.vpc.internal", addr.Addr(), addr6.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, network := range []string{"udp4", "udp6"} {
		c, err := v.Stack.Dial(ctx, network, "app.vpc.internal:7")
		if err != nil {
			panic(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "echo over %s", network)
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			panic(err)
		}
		fmt.Println(string(buf[:n]))
		c.Close()
	}
	// Output:
	// echo over udp4
	// echo over udp6
}

// A server on IPv6 only ("tcp6"), at the address DHCPv6 gave the stack,
// as a service in an IPv6-only EC2 subnet would listen.
func ExampleStack_Listen_ipv6() {
	v, st := onVPC()
	defer v.Close()
	defer st.Close()

	ln, err := st.Listen("tcp6", ":8080")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "served on IPv6")
	}))

	addr6, _ := st.Addr6()
	fmt.Println("DHCPv6 address:", addr6)
	hc := &http.Client{Transport: &http.Transport{DialContext: v.Stack.DialContext}}
	resp, err := hc.Get("http://" + net.JoinHostPort(addr6.Addr().String(), "8080") + "/")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(string(body))
	// Output:
	// DHCPv6 address: fd00:ec2:0:1::10/128
	// served on IPv6
}

// A health check with a ping socket, as with wireguard-go's netstack: the
// program writes an ICMPv6 echo request (golang.org/x/net/icmp builds it)
// and reads the reply, here from the VPC router over IPv6. Stack.Ping does
// the same in one call.
func ExampleStack_DialPing() {
	v, st := onVPC()
	defer v.Close()
	defer st.Close()

	c, err := st.DialPing(nil, link.PingAddrFromAddr(v.Router6()))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	req, _ := (&icmp.Message{Type: ipv6.ICMPTypeEchoRequest, Body: &icmp.Echo{Seq: 1, Data: []byte("gopher burrow")}}).Marshal(nil)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		panic(err)
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		panic(err)
	}
	m, err := icmp.ParseMessage(58, buf[:n]) // 58: ICMPv6
	if err != nil {
		panic(err)
	}
	echo := m.Body.(*icmp.Echo)
	fmt.Printf("%v from %v: seq %d %q\n", m.Type, c.RemoteAddr(), echo.Seq, echo.Data)
	// Output:
	// echo reply from fd00:ec2:0:1::1: seq 1 "gopher burrow"
}
