package bench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"

	"github.com/enanet/enanet/ena"
	"github.com/enanet/enanet/ena/enasim"
	"github.com/enanet/enanet/link"
	"github.com/enanet/enanet/link/enanic"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// ENASettings choose the (b) configuration: the endpoint's GSO/GRO and the
// L3 MTU the driver programs (SET_FEATURE MTU).
type ENASettings struct {
	GSO, GRO bool
	MTU      int
	// BusyPoll runs one queue per side and busy-polls Rx for up to
	// busyPollSpin before waiting for the interrupt (busyPollNIC).
	BusyPoll bool
	// RxDepth and TxBufSize override the driver's automatic choices
	// (ena.Config); 0 keeps them.
	RxDepth, TxBufSize int
	// NoTxBypass sends every frame through the qdisc's goroutines
	// (link.StackOptions.NoTxBypass), for comparisons with the bypass.
	NoTxBypass bool
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// enaSide is one stack on one simulated device.
type enaSide struct {
	sim *enasim.Device
	dev *ena.Device
	st  *link.Stack
}

func (s *enaSide) close() error {
	var errs []error
	if s.st != nil {
		s.st.Close()
	}
	if s.dev != nil {
		errs = append(errs, s.dev.Close())
	}
	if s.sim != nil {
		errs = append(errs, s.sim.Close())
	}
	return errors.Join(errs...)
}

func openENASide(w enasim.Wire, addr netip.Prefix, s ENASettings) (*enaSide, error) {
	side := &enaSide{}
	var err error
	side.sim, err = enasim.New(enasim.Config{Wire: w, Logger: quiet})
	if err != nil {
		return nil, fmt.Errorf("bench: creating the enasim device: %w", err)
	}
	cfg := ena.Config{MTU: s.MTU, Logger: quiet, RxDepth: s.RxDepth, TxBufSize: s.TxBufSize}
	if s.BusyPoll {
		cfg.Queues = 1
	}
	side.dev, err = ena.Open(side.sim, cfg)
	if err != nil {
		side.close()
		return nil, fmt.Errorf("bench: opening the driver on enasim: %w", err)
	}
	var nic link.NIC = enanic.New(side.dev)
	if s.BusyPoll {
		nic = busyPollNIC{NIC: nic, Spin: busyPollSpin}
	}
	side.st, err = link.NewStack(nic, link.StackOptions{
		Addr:       addr,
		Endpoint:   link.Options{NoGSO: !s.GSO, NoGRO: !s.GRO, Logger: quiet},
		Logger:     quiet,
		NoTxBypass: s.NoTxBypass,
	})
	if err != nil {
		side.close()
		return nil, fmt.Errorf("bench: building the stack on the driver: %w", err)
	}
	return side, nil
}

// NewENAPair is link (b): two enasim devices on one simulated cable
// (enasim.NewPair), each opened by the ena driver and carrying a gVisor
// stack through link's endpoint (link.NewStack, the settings a user gets).
func NewENAPair(s ENASettings) (Pair, error) {
	wa, wb := enasim.NewPair()
	srv, err := openENASide(wa, netip.MustParsePrefix("10.99.0.1/24"), s)
	if err != nil {
		wa.Close()
		wb.Close()
		return nil, err
	}
	cli, err := openENASide(wb, netip.MustParsePrefix("10.99.0.2/24"), s)
	if err != nil {
		srv.close()
		wb.Close()
		return nil, err
	}
	return &enaPair{stackPair: stackPair{srv: srv.st.Stack, cli: cli.st.Stack, closeFn: func() error {
		return errors.Join(cli.close(), srv.close())
	}}, sims: [2]*enasim.Device{srv.sim, cli.sim}, links: [2]*link.Stack{srv.st, cli.st}}, nil
}

// enaPair is (b): a stack pair that can also count the frames its devices
// sent (both directions), for per-packet attribution.
type enaPair struct {
	stackPair
	sims  [2]*enasim.Device
	links [2]*link.Stack
}

// RxBatches is how often the link's Rx goroutines of both sides found
// frames to deliver: one wake-up each, by interrupt or poll.
func (p *enaPair) RxBatches() uint64 {
	var n uint64
	for _, st := range p.links {
		for _, q := range st.Endpoint.Stats().Rx {
			n += q.Batches
		}
	}
	return n
}

// RxOverruns is the frames both devices dropped for want of a posted Rx
// buffer.
func (p *enaPair) RxOverruns() uint64 {
	return p.sims[0].Stats().RxOverruns + p.sims[1].Stats().RxOverruns
}

// WirePackets is the frames both devices have put on the wire.
func (p *enaPair) WirePackets() uint64 {
	return p.sims[0].Stats().TxPkts + p.sims[1].Stats().TxPkts
}

// enaStackSettings opens one (b) side on an unplugged cable and reads
// back what its endpoint advertises to the stack, so that the (a) row
// compared with it runs with exactly the same stack settings.
func enaStackSettings(s ENASettings) (StackSettings, error) {
	side, err := openENASide(nil, netip.MustParsePrefix("10.99.0.1/24"), s)
	if err != nil {
		return StackSettings{}, err
	}
	defer side.close()
	ep := side.st.Endpoint
	caps := ep.Capabilities()
	return StackSettings{
		GSO:    ep.GSOEnabled(),
		GRO:    ep.GROEnabled(),
		TxCsum: caps&stack.CapabilityTXChecksumOffload != 0,
		RxCsum: caps&stack.CapabilityRXChecksumOffload != 0,
		MTU:    int(ep.MTU()),
	}, nil
}
