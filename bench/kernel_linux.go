package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
)

// kernelPair is Linux TCP over a veth pair between two namespaces: the
// server's sockets live in one, the client's in the other, both in this
// process (so the application side costs the same as for the gVisor rows).
type kernelPair struct {
	srv, cli *netns
}

// NewKernelPair creates two namespaces joined by a veth pair with the given
// MTU and addresses 10.99.1.1 and 10.99.1.2. Needs root.
func NewKernelPair(mtu int) (Pair, error) {
	if why := canUseNetns(); why != "" {
		return nil, errors.New("bench: kernel veth pair " + why)
	}
	p := &kernelPair{}
	var err error
	if p.srv, err = newNetns(); err != nil {
		return nil, err
	}
	if p.cli, err = newNetns(); err != nil {
		p.Close()
		return nil, err
	}
	m := strconv.Itoa(mtu)
	steps := []func() error{
		func() error {
			return p.srv.ip("link", "add", "kv0", "mtu", m, "type", "veth", "peer", "name", "kv1", "mtu", m, "netns", p.cli.name)
		},
		func() error { return p.srv.ip("addr", "add", "10.99.1.1/24", "dev", "kv0") },
		func() error { return p.cli.ip("addr", "add", "10.99.1.2/24", "dev", "kv1") },
		func() error { return p.srv.ip("link", "set", "kv0", "up") },
		func() error { return p.cli.ip("link", "set", "kv1", "up") },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

func (p *kernelPair) Listen(port uint16) (net.Listener, error) {
	var ln net.Listener
	err := p.srv.do(func() (err error) {
		ln, err = net.Listen("tcp4", net.JoinHostPort("10.99.1.1", strconv.Itoa(int(port))))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("bench: kernel listen: %w", err)
	}
	return ln, nil
}

func (p *kernelPair) Dial(ctx context.Context, port uint16) (net.Conn, error) {
	var c net.Conn
	err := p.cli.do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp4", net.JoinHostPort("10.99.1.1", strconv.Itoa(int(port))))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("bench: kernel dial: %w", err)
	}
	return c, nil
}

func (p *kernelPair) Close() error {
	var errs []error
	if p.cli != nil {
		errs = append(errs, p.cli.close())
	}
	if p.srv != nil {
		errs = append(errs, p.srv.close())
	}
	return errors.Join(errs...)
}
