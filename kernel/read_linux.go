//go:build linux

package kernel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/dataplane/netfilter"
	"github.com/knet-dev/knet/dataplane/route"
	"github.com/knet-dev/knet/format/iptablessave"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ReadOptions choose what Read collects.
type ReadOptions struct {
	// IPTables reads the IPv4 ruleset with the real iptables-save (IPv6 likewise).
	IPTables, IP6Tables bool
	// NFTables reads the nftables ruleset (`nft -j list ruleset`, ReadNFT).
	NFTables bool
	// Sysctls are the sysctl keys (below /proc/sys/net) to read.
	Sysctls []string
}

// Notes are what Read saw but could not place in the model, one line each, sorted.
type Notes []string

// Read reads namespace ns back into a model: links, addresses, routes of every table,
// policy rules, neighbours and fdb through netlink dumps; iptables through the real
// iptables-save, parsed by format/iptablessave. It is the reader the snapshot collector
// uses on a real node. Notes list what the model could not hold (unknown link kinds,
// iptables-save lines the parser did not understand, with their line numbers).
func Read(ctx context.Context, ns *NS, o ReadOptions) (*dataplane.Node, Notes, error) {
	n := &dataplane.Node{Name: ns.String()}
	h, err := netlink.NewHandleAt(ns.Handle(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: netlink handle: %w", ns, err)
	}
	defer h.Close()
	var notes Notes
	n.Net, notes, err = readNet(h)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", ns, err)
	}
	for _, fam := range []netfilter.Family{netfilter.IPv4, netfilter.IPv6} {
		if (fam == netfilter.IPv4 && !o.IPTables) || (fam == netfilter.IPv6 && !o.IP6Tables) {
			continue
		}
		bin := "iptables-save"
		if fam == netfilter.IPv6 {
			bin = "ip6tables-save"
		}
		out, err := ns.Run(ctx, nil, bin)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", ns, err)
		}
		rs, diags, err := iptablessave.ParseFamily(bytes.NewReader(out), bin, fam)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", ns, err)
		}
		for _, d := range diags {
			notes = append(notes, fmt.Sprintf("%s:%d: %s", d.File, d.Line, d.Message))
		}
		if fam == netfilter.IPv4 {
			n.IPTables = rs
		} else {
			n.IP6Tables = rs
		}
	}
	if o.NFTables {
		if n.NFTables, err = ReadNFT(ctx, ns); err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", ns, err)
		}
	}
	if len(o.Sysctls) > 0 {
		n.Sysctls = map[string]string{}
		err := ns.Do(func() error {
			for _, k := range o.Sysctls {
				b, err := os.ReadFile(filepath.Join("/proc/sys/net", k))
				if err != nil {
					return fmt.Errorf("sysctl net/%s: %w", k, err)
				}
				n.Sysctls[k] = strings.TrimSpace(string(b))
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", ns, err)
		}
	}
	sort.Strings(notes)
	return n, notes, nil
}

func readNet(h *netlink.Handle) (*route.Stack, Notes, error) {
	s := route.New()
	// route.New may seed defaults (lo, default rules); Read reports what the kernel has.
	s.Links, s.Addrs, s.Routes, s.Rules, s.Neighs, s.FDB = nil, nil, nil, nil, nil, nil
	var notes Notes
	links, err := h.LinkList()
	if err != nil {
		return nil, nil, fmt.Errorf("ip link: %w", err)
	}
	byIndex := map[int]string{}
	for _, l := range links {
		byIndex[l.Attrs().Index] = l.Attrs().Name
	}
	// The root qdisc of each link (`ip link` prints it; a link without one shows "noop").
	rootQdisc := map[int]string{}
	if qs, err := h.QdiscList(nil); err == nil {
		for _, q := range qs {
			if a := q.Attrs(); a.Parent == netlink.HANDLE_ROOT {
				rootQdisc[a.LinkIndex] = q.Type()
			}
		}
	}
	for _, l := range links {
		rl, note := fromNetlinkLink(l, byIndex)
		rl.Qdisc = "noop"
		if q, ok := rootQdisc[l.Attrs().Index]; ok {
			rl.Qdisc = q
		}
		if rl.Master != "" {
			if pi, err := h.LinkGetProtinfo(l); err == nil {
				rl.BridgePort = &route.BridgePort{Hairpin: pi.Hairpin, Learning: pi.Learning, Flood: pi.Flood}
			}
		}
		if note != "" {
			notes = append(notes, note)
		}
		s.Links = append(s.Links, rl)
	}
	addrs, err := h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, nil, fmt.Errorf("ip addr: %w", err)
	}
	for _, a := range addrs {
		p, ok := netipPrefix(a.IPNet)
		if !ok {
			continue
		}
		ra := &route.Addr{Dev: byIndex[a.LinkIndex], Prefix: p, Scope: route.Scope(a.Scope), Label: a.Label,
			ValidLft: uint32(a.ValidLft), PreferredLft: uint32(a.PreferedLft), Flags: route.AddrFlags(a.Flags)}
		if pp, ok := netipPrefix(a.Peer); ok && pp != p {
			ra.Peer = pp
		}
		if b, ok := netip.AddrFromSlice(a.Broadcast); ok {
			ra.Broadcast = b.Unmap()
		}
		s.Addrs = append(s.Addrs, ra)
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, nil, fmt.Errorf("ip route show table all: %w", err)
	}
	for _, r := range routes {
		rr, note := fromNetlinkRoute(r, byIndex)
		if note != "" {
			notes = append(notes, note)
			continue
		}
		s.Routes = append(s.Routes, rr)
	}
	rules, err := h.RuleList(netlink.FAMILY_V4)
	if err != nil {
		return nil, nil, fmt.Errorf("ip rule: %w", err)
	}
	for _, r := range rules {
		s.Rules = append(s.Rules, fromNetlinkRule(r))
	}
	neighs, err := h.NeighList(0, unix.AF_INET)
	if err != nil {
		return nil, nil, fmt.Errorf("ip neigh: %w", err)
	}
	for _, nb := range neighs {
		ip, ok := netip.AddrFromSlice(nb.IP)
		if !ok {
			continue
		}
		s.Neighs = append(s.Neighs, &route.Neigh{IP: ip.Unmap(), Dev: byIndex[nb.LinkIndex], LLAddr: nb.HardwareAddr,
			State: neighStateName(nb.State), Router: nb.Flags&netlink.NTF_ROUTER != 0, Proxy: nb.Flags&netlink.NTF_PROXY != 0})
	}
	fdb, err := h.NeighList(0, unix.AF_BRIDGE)
	if err != nil {
		return nil, nil, fmt.Errorf("bridge fdb: %w", err)
	}
	for _, f := range fdb {
		e := &route.FDB{MAC: f.HardwareAddr, Dev: byIndex[f.LinkIndex], VLAN: f.Vlan, Self: f.Flags&netlink.NTF_SELF != 0}
		if f.MasterIndex != 0 {
			e.Master = byIndex[f.MasterIndex]
		}
		if ip, ok := netip.AddrFromSlice(f.IP); ok {
			e.Dst = ip.Unmap()
		}
		switch {
		case f.State&netlink.NUD_PERMANENT != 0:
			e.State = route.FDBPermanent
		case f.State&netlink.NUD_NOARP != 0:
			e.State = route.FDBStatic
		case f.State&netlink.NUD_STALE != 0:
			e.State = route.FDBStale
		}
		s.FDB = append(s.FDB, e)
	}
	s.Reindex()
	return s, notes, nil
}

func fromNetlinkLink(l netlink.Link, byIndex map[int]string) (*route.Link, string) {
	a := l.Attrs()
	// netlink spells operstates "lower-layer-down"; iproute2 prints "LOWERLAYERDOWN".
	oper := strings.ToUpper(strings.ReplaceAll(a.OperState.String(), "-", ""))
	rl := &route.Link{Index: a.Index, Name: a.Name, MTU: a.MTU, TxQLen: a.TxQLen,
		HardwareAddr: a.HardwareAddr, OperState: route.OperState(oper),
		Flags: linkFlags(a), Group: "default"}
	// IFLA_BROADCAST is not in netlink.LinkAttrs: Ethernet-like links broadcast to
	// ff:ff:ff:ff:ff:ff, loopback's address and broadcast are all zero.
	switch a.EncapType {
	case "ether":
		rl.Broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	case "loopback":
		if len(rl.HardwareAddr) == 0 {
			rl.HardwareAddr = make(net.HardwareAddr, 6)
		}
		rl.Broadcast = make(net.HardwareAddr, 6)
	default:
		rl.Broadcast = a.HardwareAddr
	}
	if a.Group != 0 {
		rl.Group = fmt.Sprint(a.Group)
	}
	if a.MasterIndex != 0 {
		rl.Master = byIndex[a.MasterIndex]
	}
	rl.LinkType = a.EncapType
	var note string
	switch t := l.(type) {
	case *netlink.Device:
		if a.Flags&net.FlagLoopback != 0 {
			rl.Kind = route.KindLoopback
		} else {
			rl.Kind = route.KindDevice
		}
	case *netlink.Veth:
		rl.Kind = route.KindVeth
		rl.Veth = &route.Veth{PeerIndex: a.ParentIndex}
		if a.NetNsID >= 0 {
			rl.Veth.PeerRemote = true
			rl.Veth.PeerNetNSID = a.NetNsID
		} else {
			rl.Veth.PeerName = byIndex[a.ParentIndex]
		}
	case *netlink.Bridge:
		rl.Kind = route.KindBridge
		rl.Bridge = route.DefaultBridge()
		if t.VlanFiltering != nil && *t.VlanFiltering {
			rl.Bridge.VlanFiltering = 1
		}
	case *netlink.Dummy:
		rl.Kind = route.KindDummy
	case *netlink.Iptun:
		rl.Kind = route.KindIPIP
		rl.IPIP = &route.IPIP{Local: addrOf(t.Local), Remote: addrOf(t.Remote), TTL: int(t.Ttl), PMTUDisc: t.PMtuDisc != 0}
		rl.ParentNone = a.ParentIndex == 0
	case *netlink.Vxlan:
		rl.Kind = route.KindVXLAN
		rl.VXLAN = &route.VXLAN{VNI: t.VxlanId, Local: addrOf(t.SrcAddr), Dev: byIndex[t.VtepDevIndex],
			Port: t.Port, Learning: t.Learning, TTL: t.TTL, Ageing: t.Age}
	default:
		rl.Kind = route.LinkKind(l.Type())
		note = fmt.Sprintf("link %s: kind %q is not modelled", a.Name, l.Type())
	}
	return rl, note
}

func linkFlags(a *netlink.LinkAttrs) route.LinkFlags {
	var f route.LinkFlags
	for _, n := range []struct {
		nf   net.Flags
		name string
	}{{net.FlagUp, "UP"}, {net.FlagBroadcast, "BROADCAST"}, {net.FlagLoopback, "LOOPBACK"},
		{net.FlagPointToPoint, "POINTOPOINT"}, {net.FlagMulticast, "MULTICAST"}} {
		if a.Flags&n.nf != 0 {
			if v, ok := route.ParseLinkFlag(n.name); ok {
				f |= v
			}
		}
	}
	if a.RawFlags&unix.IFF_NOARP != 0 {
		if v, ok := route.ParseLinkFlag("NOARP"); ok {
			f |= v
		}
	}
	if a.RawFlags&unix.IFF_LOWER_UP != 0 {
		if v, ok := route.ParseLinkFlag("LOWER_UP"); ok {
			f |= v
		}
	}
	return f
}

var routeTypeNames = func() map[int]route.RouteType {
	m := map[int]route.RouteType{}
	for k, v := range routeTypes {
		if k != "" {
			m[v] = k
		}
	}
	return m
}()

func fromNetlinkRoute(r netlink.Route, byIndex map[int]string) (*route.Route, string) {
	rr := &route.Route{Table: route.TableID(r.Table), Type: routeTypeNames[r.Type], Protocol: route.Protocol(r.Protocol),
		Scope: route.Scope(r.Scope), Metric: r.Priority, MTU: r.MTU, AdvMSS: r.AdvMSS, Dev: byIndex[r.LinkIndex]}
	if rr.Type == route.TypeUnicast {
		rr.Type = ""
	}
	if p, ok := netipPrefix(r.Dst); ok {
		rr.Dst = p
	} else if r.Family == unix.AF_INET6 {
		rr.Dst = netip.MustParsePrefix("::/0")
	} else {
		rr.Dst = netip.MustParsePrefix("0.0.0.0/0")
	}
	rr.Src = addrOf(r.Src)
	rr.Gw = addrOf(r.Gw)
	if r.Flags&int(netlink.FLAG_ONLINK) != 0 {
		rr.Flags |= route.FlagOnlink
	}
	for _, nh := range r.MultiPath {
		rnh := route.NextHop{Gw: addrOf(nh.Gw), Dev: byIndex[nh.LinkIndex], Weight: nh.Hops + 1}
		if nh.Flags&int(netlink.FLAG_ONLINK) != 0 {
			rnh.Flags |= route.FlagOnlink
		}
		rr.MultiPath = append(rr.MultiPath, rnh)
	}
	if rr.Dst.Addr().Is6() && rr.Dst.Addr().IsMulticast() {
		return rr, ""
	}
	return rr, ""
}

func fromNetlinkRule(r netlink.Rule) *route.Rule {
	rr := &route.Rule{Priority: r.Priority, Not: r.Invert, IIF: r.IifName, OIF: r.OifName, Action: route.ActionLookup, Table: route.TableID(r.Table)}
	if p, ok := netipPrefix(r.Src); ok {
		rr.Src = p
	}
	if p, ok := netipPrefix(r.Dst); ok {
		rr.Dst = p
	}
	if r.Mark != 0 || r.Mask != nil {
		rr.HasMark, rr.Mark = true, r.Mark
		if r.Mask != nil {
			rr.Mask = *r.Mask
		} else {
			rr.Mask = 0xffffffff
		}
	}
	switch r.Type {
	case unix.FR_ACT_GOTO:
		rr.Action, rr.Goto = route.ActionGoto, r.Goto
	case unix.FR_ACT_NOP:
		rr.Action = route.ActionNop
	case unix.FR_ACT_BLACKHOLE:
		rr.Action = route.ActionBlackhole
	case unix.FR_ACT_UNREACHABLE:
		rr.Action = route.ActionUnreachable
	case unix.FR_ACT_PROHIBIT:
		rr.Action = route.ActionProhibit
	}
	return rr
}

func neighStateName(st int) route.NeighState {
	for k, v := range neighStates {
		if v == st {
			return k
		}
	}
	return route.NeighNone
}

func netipPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

func addrOf(ip net.IP) netip.Addr {
	if len(ip) == 0 {
		return netip.Addr{}
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	return a.Unmap()
}

// Probe says whether the kernel behind ns supports a feature, by trying it in a throwaway
// namespace. The error says why not.
func Probe(feature Feature) error {
	ns, err := NewNS("")
	if err != nil {
		return fmt.Errorf("probe %s: %w", feature, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns.Handle(), unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("probe %s: %w", feature, err)
	}
	defer h.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "knetprobe0"
	switch feature {
	case FeatureVeth:
		err = h.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "knetprobe1"})
	case FeatureBridge:
		err = h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs})
	case FeatureDummy:
		err = h.LinkAdd(&netlink.Dummy{LinkAttrs: attrs})
	case FeatureIPIP:
		// A tunnel with no endpoints would clash with the fallback tunl0 (EEXIST).
		err = h.LinkAdd(&netlink.Iptun{LinkAttrs: attrs, Local: net.IPv4(192, 0, 2, 1), Remote: net.IPv4(192, 0, 2, 2)})
	case FeatureVXLAN:
		err = h.LinkAdd(&netlink.Vxlan{LinkAttrs: attrs, VxlanId: 1, Port: 4789})
	case FeatureIPTables:
		_, err = ns.Run(context.Background(), []byte("*nat\n:KNET-PROBE - [0:0]\n-A KNET-PROBE -m statistic --mode random --probability 0.5 -j MASQUERADE\nCOMMIT\n"), "iptables-restore", "-w")
	case FeatureIPVS:
		err = probeIPVS(ns)
	default:
		return fmt.Errorf("probe: unknown feature %q", feature)
	}
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("%s: tool missing: %w", feature, err)
		}
		return fmt.Errorf("%s is not available in this kernel: %w", feature, err)
	}
	return nil
}

// Feature is a kernel capability the lab needs.
type Feature string

// Features Probe knows.
const (
	FeatureVeth     Feature = "veth"
	FeatureBridge   Feature = "bridge"
	FeatureDummy    Feature = "dummy"
	FeatureIPIP     Feature = "ipip"
	FeatureVXLAN    Feature = "vxlan"
	FeatureIPTables Feature = "iptables"
	FeatureIPVS     Feature = "ipvs"
)

// probeIPVS asks the kernel for the IPVS table inside ns.
func probeIPVS(ns *NS) error {
	_, err := ns.Run(context.Background(), nil, "ipvsadm", "-Ln")
	return err
}
