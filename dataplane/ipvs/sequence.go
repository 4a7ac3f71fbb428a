package ipvs

import (
	"fmt"
	"net/netip"
)

// SequenceCase is a scheduling experiment that can be run on the model and on a real
// kernel alike (the lab replays these through IPVS netlink and real TCP connections): a
// service with a scheduler and flags, real servers added in order, then a list of steps.
// JSON-friendly so the same file drives both.
type SequenceCase struct {
	Name      string    `json:"name"`
	Scheduler Scheduler `json:"scheduler"`
	Flags     Flags     `json:"flags,omitempty"`
	// Timeout is the persistence timeout in seconds (with FlagPersistent).
	Timeout uint32   `json:"timeout,omitempty"`
	Service string   `json:"service"` // "10.96.0.10:80"
	Proto   Protocol `json:"proto"`
	// Dests are "IP:PORT" with weights, added in this order (the kernel list is the reverse).
	Dests []SequenceDest `json:"dests"`
	Steps []SequenceStep `json:"steps"`
}

// SequenceDest is a real server of a SequenceCase.
type SequenceDest struct {
	Addr   string `json:"addr"`
	Weight int    `json:"weight"`
}

// SequenceStep is one step: a new connection from Src (kept open, so it counts as active
// once established), or Close of the Nth connection opened so far (0-based; it goes to
// FIN_WAIT and counts as inactive), or a weight change.
type SequenceStep struct {
	Src    string `json:"src,omitempty"` // "192.168.1.2:40000"
	Close  *int   `json:"close,omitempty"`
	Weight *struct {
		Addr   string `json:"addr"`
		Weight int    `json:"weight"`
	} `json:"weight,omitempty"`
	// Want is the real server the connection must reach ("" = no server), for connect steps.
	Want string `json:"want,omitempty"`
}

// RunSequence runs a case on a fresh model and returns the real server each connect step
// reached ("" when none).
func RunSequence(c SequenceCase) ([]string, error) {
	vip, err := netip.ParseAddrPort(c.Service)
	if err != nil {
		return nil, fmt.Errorf("case %s: service: %w", c.Name, err)
	}
	st := New()
	svc := &Service{Protocol: c.Proto, Addr: vip.Addr(), Port: vip.Port(), Scheduler: c.Scheduler, Flags: c.Flags, Timeout: c.Timeout}
	if err := st.AddService(svc); err != nil {
		return nil, fmt.Errorf("case %s: %w", c.Name, err)
	}
	for _, d := range c.Dests {
		ap, err := netip.ParseAddrPort(d.Addr)
		if err != nil {
			return nil, fmt.Errorf("case %s: dest: %w", c.Name, err)
		}
		if err := st.AddDest(svc, &Dest{Addr: ap.Addr(), Port: ap.Port(), Weight: d.Weight}); err != nil {
			return nil, fmt.Errorf("case %s: %w", c.Name, err)
		}
	}
	var conns []*Conn
	var got []string
	for i, s := range c.Steps {
		switch {
		case s.Close != nil:
			if *s.Close < 0 || *s.Close >= len(conns) || conns[*s.Close] == nil {
				return nil, fmt.Errorf("case %s step %d: no connection %d to close", c.Name, i, *s.Close)
			}
			st.Close(conns[*s.Close])
		case s.Weight != nil:
			ap, err := netip.ParseAddrPort(s.Weight.Addr)
			if err != nil {
				return nil, fmt.Errorf("case %s step %d: %w", c.Name, i, err)
			}
			d := svc.Dest(ap.Addr(), ap.Port())
			if d == nil {
				return nil, fmt.Errorf("case %s step %d: no real server %s", c.Name, i, ap)
			}
			if err := st.EditDest(svc, d, s.Weight.Weight, d.UpperThreshold, d.LowerThreshold); err != nil {
				return nil, err
			}
		default:
			src, err := netip.ParseAddrPort(s.Src)
			if err != nil {
				return nil, fmt.Errorf("case %s step %d: src: %w", c.Name, i, err)
			}
			conn, err := st.ScheduleOn(svc, Packet{Proto: c.Proto, Src: src.Addr(), SrcPort: src.Port(), Dst: vip.Addr(), DstPort: vip.Port()}, ConnectOptions{})
			if err != nil {
				conns = append(conns, nil)
				got = append(got, "")
				continue
			}
			conns = append(conns, conn)
			got = append(got, conn.Dest().AddrPort().String())
		}
	}
	return got, nil
}
