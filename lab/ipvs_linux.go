//go:build linux

package lab

import (
	"fmt"
	"net/netip"

	"github.com/knet-dev/knet/dataplane/ipvs"
	"github.com/knet-dev/knet/render"
)

// ipvsShadow mirrors, connection by connection, the IPVS scheduling the kernel does on one
// node: a fresh rendering of the node's IPVS state (package dataplane/ipvs's schedulers)
// fed the same connections in the same order, so for deterministic schedulers (rr, wrr, sh,
// dh, mh, lc, ...) the model predicts the exact real server of every connection.
type ipvsShadow struct {
	st *ipvs.State
}

// shadow returns node's shadow state, nil when the node has no IPVS.
func (l *Lab) shadow(node string) (*ipvsShadow, error) {
	if l.shadows == nil {
		l.shadows = map[string]*ipvsShadow{}
	}
	if s, ok := l.shadows[node]; ok {
		return s, nil
	}
	if n := l.Nodes[node]; n == nil || n.IPVS == nil {
		l.shadows[node] = nil
		return nil, nil
	}
	n, err := render.Node(l.Cluster, node)
	if err != nil {
		return nil, fmt.Errorf("ipvs shadow of %s: %w", node, err)
	}
	s := &ipvsShadow{st: n.IPVS}
	l.shadows[node] = s
	return s, nil
}

// pick schedules one connection in the model and returns the real server it chose and the
// service's scheduler; ok is false when no virtual service matches (the connection does not
// go through IPVS on this node).
func (s *ipvsShadow) pick(kind string, client, dst netip.AddrPort) (netip.AddrPort, ipvs.Scheduler, bool, error) {
	proto := ipvs.TCP
	if kind == "udp" || kind == "dns" {
		proto = ipvs.UDP
	}
	svc := s.st.Lookup(proto, dst.Addr(), dst.Port(), 0)
	if svc == nil {
		return netip.AddrPort{}, "", false, nil
	}
	c, err := s.st.ScheduleOn(svc, ipvs.Packet{Proto: proto, Src: client.Addr(), SrcPort: client.Port(), Dst: dst.Addr(), DstPort: dst.Port()}, ipvs.ConnectOptions{})
	if err != nil {
		return netip.AddrPort{}, svc.Scheduler, true, err
	}
	d := c.Dest()
	// The kernel's connection ends right after the exchange.
	s.st.Close(c)
	return netip.AddrPortFrom(d.Addr, d.Port), svc.Scheduler, true, nil
}
