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

// ApplyOptions say how model names map to the real system.
type ApplyOptions struct {
	// PeerNS resolves the namespace a veth's remote peer lives in (route.Veth.PeerNetNS,
	// e.g. Calico's "cni-<uuid>") to a namespace made by the caller. Nil when no veth has
	// a remote peer.
	PeerNS func(name string) (*NS, error)
}

// Apply programs node n (not its Pods) into namespace ns: links, addresses, routes, rules,
// neighbours and fdb through netlink, sysctls through /proc/sys, ipsets through the real
// `ipset restore`, IPVS through its netlink family (moby/ipvs), iptables through the real
// iptables-restore. Physical devices (route.KindDevice) must already exist (the lab
// provides them as veths); a veth whose peer already exists (made from the other side) is
// configured rather than created. Apply is additive: it does not remove what is there.
func Apply(ctx context.Context, ns *NS, n *dataplane.Node, o ApplyOptions) error {
	if n == nil {
		return errors.New("apply: nil node")
	}
	if n.Net != nil {
		if err := applyNet(ns, n.Net, o); err != nil {
			return fmt.Errorf("apply %s to %s: %w", n.Name, ns, err)
		}
	}
	if err := applySysctls(ns, n.Sysctls); err != nil {
		return fmt.Errorf("apply %s to %s: %w", n.Name, ns, err)
	}
	// Sets before the rules that match them; IPVS services after the links (kube-ipvs0).
	if err := ApplyIPSets(ctx, ns, n.IPSets); err != nil {
		return fmt.Errorf("apply %s to %s: %w", n.Name, ns, err)
	}
	if err := ApplyIPVS(ns, n.IPVS); err != nil {
		return fmt.Errorf("apply %s to %s: %w", n.Name, ns, err)
	}
	for _, rs := range []*netfilter.Ruleset{n.IPTables, n.IP6Tables} {
		if rs == nil {
			continue
		}
		if err := ApplyIPTables(ctx, ns, rs); err != nil {
			return fmt.Errorf("apply %s to %s: %w", n.Name, ns, err)
		}
	}
	if n.NFTables != nil && len(n.NFTables.Tables) > 0 {
		if err := ApplyNFT(ctx, ns, n.NFTables); err != nil {
			return fmt.Errorf("apply %s to %s: %w", n.Name, ns, err)
		}
	}
	return nil
}

// ApplyIPTables loads rs into the namespace with the real iptables-restore (or
// ip6tables-restore): the model is printed in iptables-save format and restored without
// --noflush, so the tables it names are replaced.
//
// Equivalent to: `ip netns exec NS iptables-restore < RULES`.
func ApplyIPTables(ctx context.Context, ns *NS, rs *netfilter.Ruleset) error {
	var buf bytes.Buffer
	if err := iptablessave.Write(&buf, rs, iptablessave.WriteOptions{}); err != nil {
		return fmt.Errorf("print iptables rules: %w", err)
	}
	return RestoreIPTables(ctx, ns, buf.Bytes(), rs.Family)
}

// RestoreIPTables feeds iptables-restore input to the real iptables-restore inside ns.
//
// Equivalent to: `ip netns exec NS iptables-restore -w < INPUT`.
func RestoreIPTables(ctx context.Context, ns *NS, input []byte, fam netfilter.Family) error {
	bin, _, err := iptablesTools(fam)
	if err != nil {
		return err
	}
	// kube-proxy creates its nfacct counters before the first sync; the rules name them.
	if names := nfacctNames([][]byte{input}); len(names) > 0 {
		if err := ns.Do(func() error {
			for _, n := range names {
				if err := createNFAcct(n); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("iptables: %w", err)
		}
	}
	if _, err := ns.Run(ctx, input, bin, "-w"); err != nil {
		return err
	}
	return nil
}

func applySysctls(ns *NS, sysctls map[string]string) error {
	if len(sysctls) == 0 {
		return nil
	}
	keys := make([]string, 0, len(sysctls))
	for k := range sysctls {
		keys = append(keys, k)
	}
	// "all" before per-device entries, then sorted: deterministic and kernel-friendly.
	sort.Slice(keys, func(i, j int) bool {
		ai, aj := strings.Contains(keys[i], "/all/"), strings.Contains(keys[j], "/all/")
		if ai != aj {
			return ai
		}
		return keys[i] < keys[j]
	})
	return ns.Do(func() error {
		for _, k := range keys {
			if strings.Contains(k, "..") {
				return fmt.Errorf("sysctl %q: invalid name", k)
			}
			p := filepath.Join("/proc/sys/net", k)
			if err := os.WriteFile(p, []byte(sysctls[k]), 0o644); err != nil {
				// A per-device sysctl of a device that does not exist here is a model
				// error worth reporting, not ignoring.
				return fmt.Errorf("sysctl net/%s=%s: %w", k, sysctls[k], err)
			}
		}
		return nil
	})
}

func applyNet(ns *NS, s *route.Stack, o ApplyOptions) error {
	h, err := netlink.NewHandleAt(ns.Handle(), unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink handle: %w", err)
	}
	defer h.Close()

	// Bridges first (ports need their master), then everything else in model order.
	links := append([]*route.Link(nil), s.Links...)
	sort.SliceStable(links, func(i, j int) bool {
		return links[i].Kind == route.KindBridge && links[j].Kind != route.KindBridge
	})
	for _, l := range links {
		if err := ensureLink(h, ns, s, l, o); err != nil {
			return fmt.Errorf("link %s: %w", l.Name, err)
		}
	}
	for _, l := range links {
		if err := configureLink(h, l); err != nil {
			return fmt.Errorf("link %s: %w", l.Name, err)
		}
	}
	for _, a := range s.Addrs {
		if err := addAddr(h, a); err != nil {
			return fmt.Errorf("address %s dev %s: %w", a.Prefix, a.Dev, err)
		}
	}
	// Routes whose gateway needs another route come later: retry until no progress.
	pending := programmable(s.Routes)
	for len(pending) > 0 {
		var failed []*route.Route
		var lastErr error
		for _, r := range pending {
			if err := addRoute(h, r); err != nil {
				failed = append(failed, r)
				lastErr = fmt.Errorf("route %s: %w", routeString(r), err)
			}
		}
		if len(failed) == len(pending) {
			return lastErr
		}
		pending = failed
	}
	for _, r := range s.Rules {
		if isDefaultRule(r) {
			continue
		}
		if err := addRule(h, r); err != nil {
			return fmt.Errorf("rule pref %d: %w", r.Priority, err)
		}
	}
	for _, n := range s.Neighs {
		if err := addNeigh(h, n); err != nil {
			return fmt.Errorf("neighbour %s dev %s: %w", n.IP, n.Dev, err)
		}
	}
	for _, f := range s.FDB {
		if err := addFDB(h, f); err != nil {
			return fmt.Errorf("fdb %s dev %s: %w", f.MAC, f.Dev, err)
		}
	}
	return nil
}

func ensureLink(h *netlink.Handle, ns *NS, s *route.Stack, l *route.Link, o ApplyOptions) error {
	if _, err := h.LinkByName(l.Name); err == nil {
		return nil // made by the peer side, by the kernel (lo, tunl0) or by the lab (eth0)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = l.Name
	if l.MTU > 0 {
		attrs.MTU = l.MTU
	}
	if l.TxQLen > 0 {
		attrs.TxQLen = l.TxQLen
	}
	if len(l.HardwareAddr) == 6 {
		attrs.HardwareAddr = l.HardwareAddr
	}
	var link netlink.Link
	switch l.Kind {
	case route.KindLoopback:
		return errors.New("no loopback device in the namespace")
	case route.KindDevice:
		return errors.New("physical device missing: the caller must provide it (the lab makes it a veth)")
	case route.KindBridge:
		br := &netlink.Bridge{LinkAttrs: attrs}
		if l.Bridge != nil && l.Bridge.VlanFiltering != 0 {
			t := true
			br.VlanFiltering = &t
		}
		link = br
	case route.KindDummy:
		link = &netlink.Dummy{LinkAttrs: attrs}
	case route.KindIPIP:
		t := &netlink.Iptun{LinkAttrs: attrs}
		if l.IPIP != nil {
			t.Local, t.Remote = ipOrNil(l.IPIP.Local), ipOrNil(l.IPIP.Remote)
			t.Ttl = uint8(l.IPIP.TTL)
			t.PMtuDisc = boolByte(l.IPIP.PMTUDisc)
		}
		link = t
	case route.KindVXLAN:
		if l.VXLAN == nil {
			return errors.New("vxlan link without vxlan parameters")
		}
		v := &netlink.Vxlan{LinkAttrs: attrs, VxlanId: l.VXLAN.VNI, SrcAddr: ipOrNil(l.VXLAN.Local),
			Port: l.VXLAN.Port, Learning: l.VXLAN.Learning, TTL: l.VXLAN.TTL, Age: l.VXLAN.Ageing}
		if l.VXLAN.Dev != "" {
			parent, err := h.LinkByName(l.VXLAN.Dev)
			if err != nil {
				return fmt.Errorf("vxlan underlay %s: %w", l.VXLAN.Dev, err)
			}
			v.VtepDevIndex = parent.Attrs().Index
		}
		link = v
	case route.KindVeth:
		if l.Veth == nil {
			return errors.New("veth without a peer")
		}
		v := &netlink.Veth{LinkAttrs: attrs, PeerName: l.Veth.PeerName}
		if l.Veth.PeerRemote {
			if o.PeerNS == nil {
				return fmt.Errorf("peer %s lives in namespace %q and no PeerNS resolver was given", l.Veth.PeerName, l.Veth.PeerNetNS)
			}
			peer, err := o.PeerNS(l.Veth.PeerNetNS)
			if err != nil {
				return fmt.Errorf("peer namespace %q: %w", l.Veth.PeerNetNS, err)
			}
			v.PeerNamespace = netlink.NsFd(int(peer.Handle()))
		} else if s.LinkByName(l.Veth.PeerName) == nil {
			return fmt.Errorf("local peer %s is not in the model", l.Veth.PeerName)
		}
		link = v
	default:
		return fmt.Errorf("link kind %q is not supported", l.Kind)
	}
	if err := h.LinkAdd(link); err != nil {
		if l.Kind == route.KindIPIP && l.Name == "tunl0" && errors.Is(err, unix.EEXIST) {
			return nil // loading ipip made the fallback device
		}
		return fmt.Errorf("ip link add type %s: %w", l.Kind, err)
	}
	return nil
}

func configureLink(h *netlink.Handle, l *route.Link) error {
	link, err := h.LinkByName(l.Name)
	if err != nil {
		return err
	}
	a := link.Attrs()
	if l.MTU > 0 && a.MTU != l.MTU {
		if err := h.LinkSetMTU(link, l.MTU); err != nil {
			return fmt.Errorf("set mtu %d: %w", l.MTU, err)
		}
	}
	if len(l.HardwareAddr) == 6 && l.Kind != route.KindLoopback && !bytes.Equal(a.HardwareAddr, l.HardwareAddr) {
		if err := h.LinkSetHardwareAddr(link, l.HardwareAddr); err != nil {
			return fmt.Errorf("set address %s: %w", l.HardwareAddr, err)
		}
	}
	if l.Master != "" {
		m, err := h.LinkByName(l.Master)
		if err != nil {
			return fmt.Errorf("master %s: %w", l.Master, err)
		}
		if err := h.LinkSetMasterByIndex(link, m.Attrs().Index); err != nil {
			return fmt.Errorf("set master %s: %w", l.Master, err)
		}
		if l.BridgePort != nil && l.BridgePort.Hairpin {
			if err := h.LinkSetHairpin(link, true); err != nil {
				return fmt.Errorf("set hairpin: %w", err)
			}
		}
	}
	if l.Up() {
		if err := h.LinkSetUp(link); err != nil {
			return fmt.Errorf("set up: %w", err)
		}
	}
	return nil
}

func addAddr(h *netlink.Handle, a *route.Addr) error {
	// The kernel makes IPv6 link-local addresses itself, and 127.0.0.1 with lo.
	if a.Prefix.Addr().Is6() && a.Prefix.Addr().IsLinkLocalUnicast() {
		return nil
	}
	link, err := h.LinkByName(a.Dev)
	if err != nil {
		return err
	}
	na := &netlink.Addr{IPNet: prefixNet(a.Prefix), Scope: int(a.Scope)}
	if a.Label != "" && a.Label != a.Dev {
		na.Label = a.Label
	}
	if a.Peer.IsValid() {
		na.Peer = prefixNet(a.Peer)
	}
	if a.Broadcast.IsValid() {
		na.Broadcast = a.Broadcast.AsSlice()
	}
	// A prefix-route metric (`ip addr add ... metric 100`, as DHCP clients set it) is
	// IFA_RT_PRIORITY, which netlink v1.3.1 cannot send: the address goes in with
	// noprefixroute and the prefix route the kernel would make is added by hand.
	prefixRoute := a.Metric != 0 && a.Prefix.Addr().Is4() && a.Prefix.Bits() < 32
	if prefixRoute {
		na.Flags |= unix.IFA_F_NOPREFIXROUTE
	}
	if err := h.AddrReplace(link, na); err != nil {
		return fmt.Errorf("ip addr add: %w", err)
	}
	if prefixRoute {
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: prefixNet(a.Prefix.Masked()), Src: a.Prefix.Addr().AsSlice(),
			Protocol: unix.RTPROT_KERNEL, Scope: netlink.SCOPE_LINK, Priority: a.Metric, Table: unix.RT_TABLE_MAIN}
		if err := h.RouteReplace(r); err != nil {
			return fmt.Errorf("prefix route metric %d: %w", a.Metric, err)
		}
	}
	return nil
}

// programmable drops the routes the kernel makes by itself: the local table's local and
// broadcast routes and the prefix routes of addresses (proto kernel), and IPv6 link-local
// and multicast routes.
func programmable(rs []*route.Route) []*route.Route {
	var out []*route.Route
	for _, r := range rs {
		if r.Protocol == route.ProtoKernel {
			continue
		}
		if r.Table == route.TableLocal && (r.Type == route.TypeLocal || r.Type == route.TypeBroadcast || r.Type == route.TypeMulticast) {
			continue
		}
		if r.Dst.Addr().Is6() && (r.Dst.Addr().IsLinkLocalUnicast() || r.Dst.Addr().IsMulticast()) {
			continue
		}
		out = append(out, r)
	}
	return out
}

var routeTypes = map[route.RouteType]int{
	"": unix.RTN_UNICAST, route.TypeUnicast: unix.RTN_UNICAST, route.TypeLocal: unix.RTN_LOCAL,
	route.TypeBroadcast: unix.RTN_BROADCAST, route.TypeAnycast: unix.RTN_ANYCAST,
	route.TypeMulticast: unix.RTN_MULTICAST, route.TypeBlackhole: unix.RTN_BLACKHOLE,
	route.TypeUnreachable: unix.RTN_UNREACHABLE, route.TypeProhibit: unix.RTN_PROHIBIT,
	route.TypeThrow: unix.RTN_THROW, route.TypeNAT: unix.RTN_NAT,
}

func addRoute(h *netlink.Handle, r *route.Route) error {
	nr, err := toNetlinkRoute(h, r)
	if err != nil {
		return err
	}
	if err := h.RouteReplace(nr); err != nil {
		return fmt.Errorf("ip route replace: %w", err)
	}
	return nil
}

func toNetlinkRoute(h *netlink.Handle, r *route.Route) (*netlink.Route, error) {
	t, ok := routeTypes[r.Type]
	if !ok {
		return nil, fmt.Errorf("route type %q is not supported", r.Type)
	}
	nr := &netlink.Route{Dst: prefixNet(r.Dst), Table: int(r.Table), Type: t,
		Protocol: netlink.RouteProtocol(r.Protocol), Scope: netlink.Scope(r.Scope), Priority: r.Metric,
		MTU: r.MTU, AdvMSS: r.AdvMSS}
	if r.Table == route.TableUnspec {
		nr.Table = unix.RT_TABLE_MAIN
	}
	if r.Src.IsValid() {
		nr.Src = r.Src.AsSlice()
	}
	if r.Gw.IsValid() {
		nr.Gw = r.Gw.AsSlice()
	}
	if r.Flags&route.FlagOnlink != 0 {
		nr.Flags |= int(netlink.FLAG_ONLINK)
	}
	if r.Dev != "" {
		l, err := h.LinkByName(r.Dev)
		if err != nil {
			return nil, fmt.Errorf("dev %s: %w", r.Dev, err)
		}
		nr.LinkIndex = l.Attrs().Index
	}
	for _, nh := range r.MultiPath {
		nnh := &netlink.NexthopInfo{Hops: max(nh.Weight-1, 0)}
		if nh.Gw.IsValid() {
			nnh.Gw = nh.Gw.AsSlice()
		}
		if nh.Flags&route.FlagOnlink != 0 {
			nnh.Flags |= int(netlink.FLAG_ONLINK)
		}
		if nh.Dev != "" {
			l, err := h.LinkByName(nh.Dev)
			if err != nil {
				return nil, fmt.Errorf("nexthop dev %s: %w", nh.Dev, err)
			}
			nnh.LinkIndex = l.Attrs().Index
		}
		nr.MultiPath = append(nr.MultiPath, nnh)
	}
	return nr, nil
}

func isDefaultRule(r *route.Rule) bool {
	if r.Not || r.Src.IsValid() || r.Dst.IsValid() || r.HasMark || r.IIF != "" || r.OIF != "" || r.Action != route.ActionLookup {
		return false
	}
	return (r.Priority == 0 && r.Table == route.TableLocal) || (r.Priority == 32766 && r.Table == route.TableMain) || (r.Priority == 32767 && r.Table == route.TableDefault)
}

func addRule(h *netlink.Handle, r *route.Rule) error {
	nr := netlink.NewRule()
	nr.Priority = r.Priority
	nr.Invert = r.Not
	if r.Src.IsValid() {
		nr.Src = prefixNet(r.Src)
		nr.Family = familyOf(r.Src.Addr())
	}
	if r.Dst.IsValid() {
		nr.Dst = prefixNet(r.Dst)
		nr.Family = familyOf(r.Dst.Addr())
	}
	if nr.Family == 0 {
		nr.Family = unix.AF_INET
	}
	if r.HasMark {
		nr.Mark = r.Mark
		m := r.Mask
		nr.Mask = &m
	}
	nr.IifName, nr.OifName = r.IIF, r.OIF
	switch r.Action {
	case route.ActionLookup, "":
		nr.Table = int(r.Table)
	case route.ActionGoto:
		nr.Goto = r.Goto
	case route.ActionNop:
		nr.Type = unix.FR_ACT_NOP
	case route.ActionBlackhole:
		nr.Type = unix.FR_ACT_BLACKHOLE
	case route.ActionUnreachable:
		nr.Type = unix.FR_ACT_UNREACHABLE
	case route.ActionProhibit:
		nr.Type = unix.FR_ACT_PROHIBIT
	default:
		return fmt.Errorf("rule action %q is not supported", r.Action)
	}
	if err := h.RuleAdd(nr); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("ip rule add: %w", err)
	}
	return nil
}

var neighStates = map[route.NeighState]int{
	route.NeighIncomplete: netlink.NUD_INCOMPLETE, route.NeighReachable: netlink.NUD_REACHABLE,
	route.NeighStale: netlink.NUD_STALE, route.NeighDelay: netlink.NUD_DELAY,
	route.NeighProbe: netlink.NUD_PROBE, route.NeighFailed: netlink.NUD_FAILED,
	route.NeighNoARP: netlink.NUD_NOARP, route.NeighPermanent: netlink.NUD_PERMANENT,
	route.NeighNone: netlink.NUD_NONE,
}

func addNeigh(h *netlink.Handle, n *route.Neigh) error {
	l, err := h.LinkByName(n.Dev)
	if err != nil {
		return err
	}
	st, ok := neighStates[n.State]
	if !ok {
		st = netlink.NUD_PERMANENT
	}
	nn := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: familyOf(n.IP), State: st,
		IP: n.IP.AsSlice(), HardwareAddr: n.LLAddr}
	if n.Router {
		nn.Flags |= netlink.NTF_ROUTER
	}
	if n.Proxy {
		nn.Flags |= netlink.NTF_PROXY
	}
	if err := h.NeighSet(nn); err != nil {
		return fmt.Errorf("ip neigh replace: %w", err)
	}
	return nil
}

func addFDB(h *netlink.Handle, f *route.FDB) error {
	l, err := h.LinkByName(f.Dev)
	if err != nil {
		return err
	}
	st := netlink.NUD_PERMANENT
	if f.State == route.FDBStatic {
		st = netlink.NUD_NOARP
	}
	nn := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_BRIDGE, State: st,
		HardwareAddr: f.MAC, Vlan: f.VLAN}
	if f.Self {
		nn.Flags |= netlink.NTF_SELF
	}
	if f.Master != "" {
		nn.Flags |= netlink.NTF_MASTER
	}
	if f.Dst.IsValid() {
		nn.IP = f.Dst.AsSlice()
	}
	if err := h.NeighAppend(nn); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("bridge fdb append: %w", err)
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	if !p.IsValid() {
		return nil
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func ipOrNil(a netip.Addr) net.IP {
	if !a.IsValid() || a.IsUnspecified() {
		return nil
	}
	return a.AsSlice()
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func familyOf(a netip.Addr) int {
	if a.Is6() && !a.Is4In6() {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

func routeString(r *route.Route) string {
	var b strings.Builder
	if r.Type != "" && r.Type != route.TypeUnicast {
		b.WriteString(string(r.Type) + " ")
	}
	if r.Dst.IsValid() {
		b.WriteString(r.Dst.String())
	} else {
		b.WriteString("default")
	}
	if r.Gw.IsValid() {
		b.WriteString(" via " + r.Gw.String())
	}
	if r.Dev != "" {
		b.WriteString(" dev " + r.Dev)
	}
	if r.Table != route.TableMain && r.Table != route.TableUnspec {
		fmt.Fprintf(&b, " table %d", r.Table)
	}
	return b.String()
}

// MakeUplink stands in for a physical device: it creates link l (by name, MAC and MTU) in
// ns as one end of a veth pair whose other end, peerName, is put in namespace far (a lab
// fabric namespace, where it is attached to a subnet bridge) and brought up there.
//
// Equivalent to: `ip link add NAME netns NS address MAC mtu MTU type veth peer name PEER netns FAR`.
func MakeUplink(ns, far *NS, l *route.Link, peerName string) error {
	if l == nil {
		return errors.New("make uplink: no link")
	}
	h, err := netlink.NewHandleAt(ns.Handle(), unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("make uplink %s: %w", l.Name, err)
	}
	defer h.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = l.Name
	if l.MTU > 0 {
		attrs.MTU = l.MTU
	}
	if len(l.HardwareAddr) == 6 {
		attrs.HardwareAddr = l.HardwareAddr
	}
	v := &netlink.Veth{LinkAttrs: attrs, PeerName: peerName, PeerNamespace: netlink.NsFd(int(far.Handle()))}
	if err := h.LinkAdd(v); err != nil {
		return fmt.Errorf("make uplink %s (peer %s in %s): %w", l.Name, peerName, far, err)
	}
	fh, err := netlink.NewHandleAt(far.Handle(), unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("make uplink %s: %w", l.Name, err)
	}
	defer fh.Close()
	peer, err := fh.LinkByName(peerName)
	if err != nil {
		return fmt.Errorf("make uplink %s: peer %s: %w", l.Name, peerName, err)
	}
	if err := fh.LinkSetUp(peer); err != nil {
		return fmt.Errorf("make uplink %s: peer %s up: %w", l.Name, peerName, err)
	}
	return nil
}
