package qemurig

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
)

// Device is what sits behind the proxy: the modelled function's BARs. Offsets
// are relative to the BAR. Values are in the low size bytes.
type Device interface {
	ReadBAR(bar int, off uint32, size int) uint64
	WriteBAR(bar int, off uint32, size int, val uint64)
	// Reset is called on DEVICE_RESET (every machine reset, including the
	// first one at start-up).
	Reset()
}

// Access is one BAR access the guest made, as the proxy forwarded it.
type Access struct {
	Write bool
	BAR   int
	Off   uint32
	Size  int
	Val   uint64
}

func (a Access) String() string {
	dir := "read "
	if a.Write {
		dir = "write"
	}
	return fmt.Sprintf("%s BAR%d+%#05x/%d = %#x", dir, a.BAR, a.Off, a.Size, a.Val)
}

// Stats counts the messages served.
type Stats struct {
	SyncSysmem, CfgRead, CfgWrite, BarRead, BarWrite, Resets, Unmapped int
	// MSIXAccesses counts BAR accesses to the MSI-X table and PBA (not in
	// BarRead/BarWrite or the access log).
	MSIXAccesses int
}

// Server speaks QEMU 7.2's multi-process proxy protocol (mpqemu) on
// one socket and serves a device model behind it.
type Server struct {
	conn   *conn
	config *configSpace
	dev    Device
	mem    *GuestMemory
	log    *slog.Logger

	mu       sync.Mutex
	stats    Stats
	accesses []Access // bounded: see maxAccessLog
	irqfds   []int
}

// maxAccessLog bounds the access log; a TCG boot with traffic makes many
// thousands of accesses and only the register-read check needs them.
const maxAccessLog = 1 << 20

// ServerConfig describes the PCI function the server presents.
type ServerConfig struct {
	Vendor, DeviceID uint16
	Revision         uint8
	Class            uint32 // 24-bit class code, e.g. 0x020000 Ethernet
	BARs             map[int]BAR
	// MSIX, if set, is offered as an MSI-X capability; its table and PBA
	// must lie in one of BARs and are served by the Server, not the Device.
	MSIX   *MSIX
	Logger *slog.Logger
}

// NewServer serves dev on f (the remote's end of the socket pair). mem is the
// guest memory the model should use for DMA; it is filled by SYNC_SYSMEM.
func NewServer(f *os.File, cfg ServerConfig, dev Device, mem *GuestMemory) *Server {
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	config := newConfigSpace(cfg.Vendor, cfg.DeviceID, cfg.Revision, cfg.Class, cfg.BARs)
	if cfg.MSIX != nil {
		config.addMSIX(msixCapOffset, cfg.MSIX)
	}
	return &Server{
		conn:   newConn(f),
		config: config,
		dev:    dev,
		mem:    mem,
		log:    lg,
	}
}

// Serve handles messages until QEMU closes the socket (returns nil) or the
// protocol breaks.
func (s *Server) Serve() error {
	defer func() {
		s.mu.Lock()
		closeFDs(s.irqfds)
		s.irqfds = nil
		s.mu.Unlock()
	}()
	for {
		m, err := s.conn.read()
		if errors.Is(err, errPeerClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.handle(m); err != nil {
			return err
		}
	}
}

func (s *Server) handle(m message) error {
	le := binary.LittleEndian
	switch m.cmd {
	case cmdSyncSysmem:
		s.count(func(st *Stats) { st.SyncSysmem++ })
		// No reply: the memory listener sends it without waiting.
		return s.mem.sync(m.payload, m.fds)
	case cmdSetIRQFD:
		// INTx through irqfd does not reach a TCG guest;
		// keep the fds so they are closed with the server.
		s.mu.Lock()
		s.irqfds = append(s.irqfds, m.fds...)
		s.mu.Unlock()
		return nil
	}
	closeFDs(m.fds)
	switch m.cmd {
	case cmdCfgRead, cmdCfgWrite:
		if len(m.payload) < 12 {
			return fmt.Errorf("qemurig: config message with %d-byte payload", len(m.payload))
		}
		addr, val, n := le.Uint32(m.payload[0:]), le.Uint32(m.payload[4:]), int(int32(le.Uint32(m.payload[8:])))
		if m.cmd == cmdCfgRead {
			s.count(func(st *Stats) { st.CfgRead++ })
			return s.conn.reply(uint64(s.config.read(addr, n)))
		}
		s.count(func(st *Stats) { st.CfgWrite++ })
		s.config.write(addr, n, val)
		return s.conn.reply(0)
	case cmdBarRead, cmdBarWrite:
		if len(m.payload) < 21 {
			return fmt.Errorf("qemurig: BAR message with %d-byte payload", len(m.payload))
		}
		addr, val, size, memory := le.Uint64(m.payload[0:]), le.Uint64(m.payload[8:]), int(le.Uint32(m.payload[16:])), m.payload[20] != 0
		write := m.cmd == cmdBarWrite
		bar, off, ok := s.config.decode(addr, size)
		if !memory || !ok || size < 1 || size > 8 {
			s.count(func(st *Stats) { st.Unmapped++ })
			s.log.Warn("qemurig: access outside the device's BARs", "addr", fmt.Sprintf("%#x", addr), "size", size, "write", write)
			if write {
				return s.conn.reply(0)
			}
			return s.conn.reply(^uint64(0))
		}
		msix := s.config.msix
		if msix != nil && msix.Contains(bar, off) {
			s.count(func(st *Stats) { st.MSIXAccesses++ })
			if write {
				msix.Write(off, size, val)
				return s.conn.reply(0)
			}
			return s.conn.reply(msix.Read(off, size))
		}
		if write {
			s.record(Access{Write: true, BAR: bar, Off: off, Size: size, Val: val})
			s.dev.WriteBAR(bar, off, size, val)
			return s.conn.reply(0)
		}
		v := s.dev.ReadBAR(bar, off, size)
		s.record(Access{BAR: bar, Off: off, Size: size, Val: v})
		return s.conn.reply(v)
	case cmdDeviceReset:
		s.count(func(st *Stats) { st.Resets++ })
		s.config.resetMSIX()
		s.dev.Reset()
		return s.conn.reply(0)
	default:
		return fmt.Errorf("qemurig: unknown proxy command %d", m.cmd)
	}
}

func (s *Server) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

func (s *Server) record(a Access) {
	s.mu.Lock()
	if a.Write {
		s.stats.BarWrite++
	} else {
		s.stats.BarRead++
	}
	if len(s.accesses) < maxAccessLog {
		s.accesses = append(s.accesses, a)
	}
	s.mu.Unlock()
}

// Stats returns the message counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Accesses returns a copy of the BAR access log.
func (s *Server) Accesses() []Access {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Access(nil), s.accesses...)
}

// BusMaster reports whether the guest has enabled DMA for the device.
func (s *Server) BusMaster() bool { return s.config.busMaster() }
