//go:build linux

package kernel

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"

	dpipset "github.com/knet-dev/knet/dataplane/ipset"
	"github.com/knet-dev/knet/dataplane/ipvs"
	fmtipset "github.com/knet-dev/knet/format/ipset"
	mobyipvs "github.com/moby/ipvs"
	"golang.org/x/sys/unix"
)

var forwardFlags = map[ipvs.Forward]uint32{
	ipvs.Masq: mobyipvs.ConnectionFlagMasq, ipvs.Local: mobyipvs.ConnectionFlagLocalNode,
	ipvs.Route: mobyipvs.ConnectionFlagDirectRoute, ipvs.Tunnel: mobyipvs.ConnectionFlagTunnel,
}

// ApplyIPVS programs the virtual services and real servers of st into ns through the
// kernel's IPVS generic netlink family (github.com/moby/ipvs). Real servers are added in
// reverse of the model's list, which holds them in kernel order (most recently added
// first), so the kernel ends with the same order.
//
// Equivalent to: `ipvsadm -A -t VIP:PORT -s SCHED` and `ipvsadm -a -t VIP:PORT -r RIP:PORT -m -w W`.
func ApplyIPVS(ns *NS, st *ipvs.State) error {
	if st == nil || len(st.Services) == 0 {
		return nil
	}
	h, err := mobyipvs.New(ns.Path())
	if err != nil {
		return fmt.Errorf("ipvs: open in %s: %w", ns, err)
	}
	defer h.Close()
	for _, s := range st.Services {
		ms := toMobyService(s)
		if err := h.NewService(ms); err != nil {
			return fmt.Errorf("ipvs: add service %s %s:%d: %w", s.Protocol, s.Addr, s.Port, err)
		}
		for i := len(s.Dests) - 1; i >= 0; i-- {
			d := s.Dests[i]
			fl, ok := forwardFlags[d.Forward]
			if !ok && d.Forward != "" {
				return fmt.Errorf("ipvs: real server %s: forwarding %q not supported", d.Addr, d.Forward)
			}
			md := &mobyipvs.Destination{Address: d.Addr.AsSlice(), Port: d.Port, Weight: d.Weight,
				ConnectionFlags: fl, AddressFamily: family16(d.Addr), UpperThreshold: d.UpperThreshold, LowerThreshold: d.LowerThreshold}
			if err := h.NewDestination(ms, md); err != nil {
				return fmt.Errorf("ipvs: add real server %s:%d to %s:%d: %w", d.Addr, d.Port, s.Addr, s.Port, err)
			}
		}
	}
	return nil
}

func toMobyService(s *ipvs.Service) *mobyipvs.Service {
	ms := &mobyipvs.Service{Protocol: uint16(s.Protocol.Number()), Port: s.Port, FWMark: s.FWMark,
		SchedName: string(s.Scheduler), Flags: uint32(s.Flags), Timeout: s.Timeout, PEName: s.PEName}
	if s.Addr.IsValid() {
		ms.Address = s.Addr.AsSlice()
		ms.AddressFamily = family16(s.Addr)
	} else if s.Family == 6 {
		ms.AddressFamily = unix.AF_INET6
	} else {
		ms.AddressFamily = unix.AF_INET
	}
	bits := s.NetmaskBits
	if bits == 0 {
		bits = 32
		if ms.AddressFamily == unix.AF_INET6 {
			bits = 128
		}
	}
	if ms.AddressFamily == unix.AF_INET6 {
		ms.Netmask = uint32(bits)
	} else {
		m := net.CIDRMask(bits, 32)
		ms.Netmask = uint32(m[0])<<24 | uint32(m[1])<<16 | uint32(m[2])<<8 | uint32(m[3])
	}
	return ms
}

func family16(a netip.Addr) uint16 {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// ReadIPVS reads the IPVS table of ns back into the model (services in kernel order, real
// servers in kernel list order).
//
// Equivalent to: `ipvsadm -Ln`.
func ReadIPVS(ns *NS) (*ipvs.State, error) {
	h, err := mobyipvs.New(ns.Path())
	if err != nil {
		return nil, fmt.Errorf("ipvs: open in %s: %w", ns, err)
	}
	defer h.Close()
	svcs, err := h.GetServices()
	if err != nil {
		return nil, fmt.Errorf("ipvs: list services in %s: %w", ns, err)
	}
	st := ipvs.New()
	for _, ms := range svcs {
		s := &ipvs.Service{Port: ms.Port, FWMark: ms.FWMark, Scheduler: ipvs.Scheduler(ms.SchedName),
			Flags: ipvs.Flags(ms.Flags) &^ ipvs.FlagHashed, Timeout: ms.Timeout, PEName: ms.PEName}
		switch ms.Protocol {
		case unix.IPPROTO_TCP:
			s.Protocol = ipvs.TCP
		case unix.IPPROTO_UDP:
			s.Protocol = ipvs.UDP
		case unix.IPPROTO_SCTP:
			s.Protocol = ipvs.SCTP
		}
		if a, ok := netip.AddrFromSlice(ms.Address); ok && ms.FWMark == 0 {
			s.Addr = a.Unmap()
		}
		dests, err := h.GetDestinations(ms)
		if err != nil {
			return nil, fmt.Errorf("ipvs: list real servers of %s:%d: %w", s.Addr, s.Port, err)
		}
		for _, md := range dests {
			d := &ipvs.Dest{Port: md.Port, Weight: md.Weight, UpperThreshold: md.UpperThreshold, LowerThreshold: md.LowerThreshold,
				ActiveConns: uint32(md.ActiveConnections), InactConns: uint32(md.InactiveConnections)}
			if a, ok := netip.AddrFromSlice(md.Address); ok {
				d.Addr = a.Unmap()
			}
			for f, v := range forwardFlags {
				if md.ConnectionFlags&mobyipvs.ConnectionFlagFwdMask == v {
					d.Forward = f
				}
			}
			s.Dests = append(s.Dests, d)
		}
		st.Services = append(st.Services, s)
	}
	return st, nil
}

// ApplyIPSets loads the sets into ns with the real `ipset restore`, fed the model printed
// as `ipset save` does.
//
// Equivalent to: `ip netns exec NS ipset restore < SETS`.
func ApplyIPSets(ctx context.Context, ns *NS, ss *dpipset.Sets) error {
	if ss == nil {
		return nil
	}
	var buf bytes.Buffer
	if err := fmtipset.WriteSave(&buf, ss, fmtipset.Options{}); err != nil {
		return fmt.Errorf("print ipsets: %w", err)
	}
	if buf.Len() == 0 {
		return nil
	}
	if _, err := ns.Run(ctx, buf.Bytes(), "ipset", "restore", "-exist"); err != nil {
		return fmt.Errorf("ipset restore: %w", err)
	}
	return nil
}
