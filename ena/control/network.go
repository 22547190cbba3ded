package control

import (
	"fmt"
	"io"
	"strings"
)

// Network is the addressing of the TCP/IP stack a serving process runs on
// the device, as op "info" reports it next to the device's attributes
// (key "network" of the response). The keys are those of enahttp's
// /api/v1/status "network" object. Empty fields are left out: a server
// that has no stack, or does not say (Options.Network nil, or a server
// from before this field), answers info without "network" at all.
type Network struct {
	// Address is the IPv4 address with its prefix (172.31.0.10/20);
	// Gateway the IPv4 default router; DHCP whether they came from a
	// DHCP lease.
	Address string `json:"address,omitempty"`
	Gateway string `json:"gateway,omitempty"`
	DHCP    bool   `json:"dhcp,omitempty"`
	// Address6 is the global IPv6 address with its prefix (a DHCPv6
	// /128, or a static one), Gateway6 the IPv6 default router,
	// LinkLocal the fe80:: address from the MAC; DHCP6 whether Address6
	// is a DHCPv6 lease.
	Address6  string `json:"address6,omitempty"`
	Gateway6  string `json:"gateway6,omitempty"`
	LinkLocal string `json:"link_local,omitempty"`
	DHCP6     bool   `json:"dhcp6,omitempty"`
	// DNS are the servers the stack's resolver queries.
	DNS []string `json:"dns,omitempty"`
}

// WriteNetwork prints n as rows aligned with observe.WriteInfo's
// ("ipv4:", "ipv6:", ...), each address with where it came from.
func WriteNetwork(w io.Writer, n Network) error {
	var err error
	row := func(k, v string) {
		if err == nil {
			_, err = fmt.Fprintf(w, "%-20s %s\n", k+":", v)
		}
	}
	row("ipv4", orNone(n.Address, n.DHCP, "DHCP", "static"))
	row("ipv4 gateway", orNone(n.Gateway, false, "", ""))
	row("ipv6", orNone(n.Address6, n.DHCP6, "DHCPv6", "static"))
	row("ipv6 gateway", orNone(n.Gateway6, false, "", ""))
	row("ipv6 link-local", orNone(n.LinkLocal, false, "", ""))
	row("dns", orNone(strings.Join(n.DNS, ", "), false, "", ""))
	return err
}

// orNone is v with its origin in parentheses, or "none" when empty.
func orNone(v string, dynamic bool, yes, no string) string {
	switch {
	case v == "":
		return "none"
	case yes == "":
		return v
	case dynamic:
		return v + " (" + yes + ")"
	}
	return v + " (" + no + ")"
}
