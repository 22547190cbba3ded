package vpc

import (
	"maps"
	"net/netip"
	"sync"
)

// leasePool hands out the addresses first, first+1, … (count of them), one
// per client, and keeps each client's address for the pool's life, as EC2
// keeps an ENI's address for the ENI's life. The DHCP and DHCPv6 servers
// share it; only the key they name a client by differs.
type leasePool struct {
	first netip.Addr
	count int

	mu     sync.Mutex
	leases map[string]netip.Addr // by client key
	next   netip.Addr            // the next address to hand out
}

func newLeasePool(first netip.Addr, count int) *leasePool {
	return &leasePool{first: first, count: count, leases: map[string]netip.Addr{}, next: first}
}

// lease returns key's address, assigning the next free one; false when the
// pool is used up.
func (p *leasePool) lease(key string) (netip.Addr, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.leases[key]; ok {
		return a, true
	}
	if len(p.leases) >= p.count {
		return netip.Addr{}, false
	}
	a := p.next
	p.next = a.Next()
	p.leases[key] = a
	return a, true
}

// all returns a copy of the leases by client key.
func (p *leasePool) all() map[string]netip.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.leases)
}
