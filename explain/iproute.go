package explain

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane/route"
	"github.com/knet-dev/knet/format/iproute"
	corev1 "k8s.io/api/core/v1"
)

// Kinds of `ip route`, `ip addr` and `ip link` lines.
const (
	KindDefaultRoute     Kind = "default-route"
	KindNodeSubnet       Kind = "node-subnet"
	KindLocalPodBlock    Kind = "local-pod-block"
	KindRemotePodBlock   Kind = "remote-pod-block"
	KindPodRoute         Kind = "pod-route"
	KindTunnelPeer       Kind = "tunnel-peer"
	KindLocalAddress     Kind = "local-address"
	KindBroadcast        Kind = "broadcast"
	KindServiceAddress   Kind = "service-address"
	KindLoopback         Kind = "loopback"
	KindIPv6LinkLocal    Kind = "ipv6-link-local"
	KindRouteNexthop     Kind = "nexthop"
	KindLinkDevice       Kind = "link"
	KindLinkLayer        Kind = "link-layer"
	KindLinkDetails      Kind = "link-details"
	KindNodeAddress      Kind = "node-address"
	KindTunnelAddress    Kind = "tunnel-address"
	KindPodGateway       Kind = "pod-gateway-address"
	KindPodAddress       Kind = "pod-address"
	KindAddressLifetime  Kind = "address-lifetime"
	KindRejectRoute      Kind = "reject-route"
	KindOtherRoute       Kind = "route"
	KindPolicyRoutingTbl Kind = "policy-routing"
)

// CalicoVethName is the host-side veth name Calico's CNI plugin gives a pod
// (cni-plugin VethNameForWorkload): "cali" + the first 11 hex digits of
// sha1("<namespace>.<pod>").
func CalicoVethName(namespace, pod string) string {
	h := sha1.Sum([]byte(namespace + "." + pod))
	return "cali" + hex.EncodeToString(h[:])[:11]
}

// KubeRouterTunnelName is kube-router's (v2.0+) tunnel name for a peer node IP
// (pkg/tunnels GenerateTunnelName): "tun-" + the first 11 hex digits of sha256 of the IP with
// dots and colons removed.
func KubeRouterTunnelName(ip netip.Addr) string {
	s := strings.ReplaceAll(strings.ReplaceAll(ip.String(), ".", ""), ":", "")
	h := sha256.Sum256([]byte(s))
	return "tun-" + hex.EncodeToString(h[:])[:11]
}

// kubeRouterTunnelNameV1 is kube-router v1.x's name: the IP without dots, "tun-" prefixed
// when shorter than 12 characters, else "tun".
func kubeRouterTunnelNameV1(ip netip.Addr) string {
	s := strings.ReplaceAll(ip.String(), ".", "")
	if len(s) < 12 {
		return "tun-" + s
	}
	return "tun" + s
}

// netIndex is what the explainers look addresses and names up in.
type netIndex struct {
	c         *cluster.Cluster
	self      *cluster.Node
	podByIP   map[netip.Addr]*corev1.Pod
	podByVeth map[string]*corev1.Pod
	svcByIP   map[netip.Addr]*corev1.Service
	nodeByIP  map[netip.Addr]*cluster.Node
	nodeByTun map[string]*cluster.Node
	// nodeByBlock indexes nodes by pod CIDR; blockLens are the CIDR lengths present.
	nodeByBlock  map[netip.Prefix]*cluster.Node
	blockLens    []int
	nodeByTunnel map[netip.Addr]*cluster.Node
}

func newNetIndex(c *cluster.Cluster) *netIndex {
	x := &netIndex{c: c, podByIP: map[netip.Addr]*corev1.Pod{}, podByVeth: map[string]*corev1.Pod{},
		svcByIP: map[netip.Addr]*corev1.Service{}, nodeByIP: map[netip.Addr]*cluster.Node{}, nodeByTun: map[string]*cluster.Node{},
		nodeByBlock: map[netip.Prefix]*cluster.Node{}, nodeByTunnel: map[netip.Addr]*cluster.Node{}}
	if c == nil {
		return x
	}
	for _, p := range c.Objects.Pods {
		for _, pip := range p.Status.PodIPs {
			if a, err := netip.ParseAddr(pip.IP); err == nil {
				x.podByIP[a] = p
			}
		}
		if a, err := netip.ParseAddr(p.Status.PodIP); err == nil {
			x.podByIP[a] = p
		}
		if !p.Spec.HostNetwork {
			x.podByVeth[CalicoVethName(p.Namespace, p.Name)] = p
		}
	}
	for _, s := range c.Objects.Services {
		ips := append([]string{s.Spec.ClusterIP}, s.Spec.ClusterIPs...)
		ips = append(ips, s.Spec.ExternalIPs...)
		for _, ing := range s.Status.LoadBalancer.Ingress {
			ips = append(ips, ing.IP)
		}
		for _, ip := range ips {
			if a, err := netip.ParseAddr(ip); err == nil {
				x.svcByIP[a] = s
			}
		}
	}
	for i := range c.Nodes {
		n := &c.Nodes[i]
		x.nodeByIP[n.IP] = n
		x.nodeByTun[KubeRouterTunnelName(n.IP)] = n
		x.nodeByTun[kubeRouterTunnelNameV1(n.IP)] = n
		if n.PodCIDR.IsValid() {
			if _, dup := x.nodeByBlock[n.PodCIDR.Masked()]; !dup {
				x.nodeByBlock[n.PodCIDR.Masked()] = n
			}
			if !slices.Contains(x.blockLens, n.PodCIDR.Bits()) {
				x.blockLens = append(x.blockLens, n.PodCIDR.Bits())
			}
		}
		if n.TunnelIP.IsValid() {
			x.nodeByTunnel[n.TunnelIP] = n
		}
	}
	slices.Sort(x.blockLens)
	return x
}

// nodeOfPodIP returns the node whose pod block holds a.
func (x *netIndex) nodeOfPodIP(a netip.Addr) *cluster.Node {
	return x.nodeOfBlock(netip.PrefixFrom(a, a.BitLen()))
}

// nodeOfBlock returns the node whose pod CIDR contains p (p at least as long).
func (x *netIndex) nodeOfBlock(p netip.Prefix) *cluster.Node {
	for _, l := range x.blockLens {
		if l > p.Bits() {
			break
		}
		if q, err := p.Addr().Prefix(l); err == nil {
			if n, ok := x.nodeByBlock[q]; ok {
				return n
			}
		}
	}
	return nil
}

func (x *netIndex) nodeOfTunnelIP(a netip.Addr) *cluster.Node { return x.nodeByTunnel[a] }

func podRef(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }

func svcRef(s *corev1.Service) string { return s.Namespace + "/" + s.Name }

// guessSelf finds which node a dump comes from: the node whose IP is a route's src, a local
// route or an address in the dump.
func (x *netIndex) guessSelf(addrs []netip.Addr) {
	for _, a := range addrs {
		if n, ok := x.nodeByIP[a]; ok {
			x.self = n
			return
		}
	}
}

func (x *netIndex) selfName() string {
	if x.self == nil {
		return ""
	}
	return x.self.Name
}

// IPRoute explains `ip route` output (plain, `show table all|local`, `-d`; any iproute2
// version) line by line: pod blocks of this and other nodes with the encapsulation their
// device implies, pod /32 routes on Calico veths, Service addresses on kube-ipvs0 /
// kube-dummy-if, kube-router's table 77, the default route, and the kernel's automatic
// local/broadcast/connected routes. c may be nil (then only structural meaning is given).
func IPRoute(file string, data []byte, c *cluster.Cluster) ([]Record, error) {
	x := newNetIndex(c)
	type parsed struct {
		r     *route.Route
		probs iproute.Problems
	}
	lines := splitLines(data)
	rs := make([]parsed, len(lines))
	var srcs []netip.Addr
	for i, ln := range lines {
		f := strings.Fields(ln)
		if len(f) == 0 || f[0] == "nexthop" {
			continue
		}
		s := &route.Stack{}
		probs := iproute.ParseRoutes(s, file, []byte(ln), iproute.Options{Table: "all"})
		for j := range probs {
			probs[j].Line = i + 1
		}
		rs[i].probs = probs
		if len(s.Routes) == 1 {
			rs[i].r = s.Routes[0]
			if s.Routes[0].Src.IsValid() {
				srcs = append(srcs, s.Routes[0].Src)
			}
			if s.Routes[0].Type == route.TypeLocal {
				srcs = append(srcs, s.Routes[0].Dst.Addr())
			}
		}
	}
	x.guessSelf(srcs)
	out := make([]Record, 0, len(lines))
	for i, ln := range lines {
		rec := Record{File: file, Line: i + 1, Text: ln, Kind: Unknown}
		f := strings.Fields(ln)
		switch {
		case len(f) == 0:
			rec.Meaning = "empty line"
		case f[0] == "nexthop":
			rec.Kind, rec.Meaning = KindRouteNexthop, "one path of the multipath (ECMP) route above"
		case rs[i].r == nil:
			rec.Meaning = "not understood as a route: " + rs[i].probs.Error()
		default:
			x.explainRoute(&rec, rs[i].r)
			if len(rs[i].probs) > 0 {
				rec.Meaning += " (not understood: " + rs[i].probs.Error() + ")"
			}
		}
		out = append(out, rec)
	}
	return out, nil
}

func splitLines(data []byte) []string {
	s := strings.TrimSuffix(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func tableWord(t route.TableID) string {
	switch t {
	case route.TableMain:
		return "main table"
	case route.TableLocal:
		return "local table"
	case 77:
		return "kube-router's policy table 77"
	}
	return fmt.Sprintf("table %d", t)
}

func protoOwner(p route.Protocol) string {
	switch p {
	case route.ProtoBird:
		return "BIRD (Calico BGP, proto bird = 12)"
	case route.ProtoFelix:
		return "Calico felix (proto 80)"
	case route.ProtoKubeRouter:
		return "kube-router (proto 17 = its GoBGP ZebraOriginator)"
	case route.ProtoKernel:
		return "the kernel"
	case route.ProtoDHCP:
		return "DHCP"
	case route.ProtoBoot:
		return "a netlink client with the default protocol (boot: CNI plugin, felix or flanneld)"
	case route.ProtoStatic:
		return "an administrator (static)"
	}
	return "protocol " + p.String()
}

func (x *netIndex) explainRoute(rec *Record, r *route.Route) {
	dst := r.Dst
	owner := protoOwner(r.Protocol)
	dev := r.Dev
	rec.Refs.Node = ""
	switch {
	case !dst.Addr().Is4() && (dst.Addr().IsLinkLocalUnicast() || dst.Addr().IsMulticast() || dst.Addr() == netip.IPv6Loopback() || dst == netip.MustParsePrefix("fe80::/64")):
		rec.Kind = KindIPv6LinkLocal
		rec.Meaning = fmt.Sprintf("IPv6 %s route for %s that the kernel adds for every device with IPv6 enabled", r.Type, dev)
		return
	case r.Type == route.TypeLocal && dst.Addr().IsLoopback() || dev == "lo" && r.Type != route.TypeBlackhole:
		rec.Kind, rec.Meaning = KindLoopback, "loopback range, kernel-added when lo came up"
		return
	case r.Type == route.TypeBroadcast:
		rec.Kind = KindBroadcast
		rec.Meaning = fmt.Sprintf("broadcast address of %s's subnet, added by the kernel with the address (table local)", dev)
		x.nodeRef(rec)
		return
	case r.Type == route.TypeLocal:
		a := dst.Addr()
		if s, ok := x.svcByIP[a]; ok {
			rec.Kind, rec.Refs.Service = KindServiceAddress, svcRef(s)
			rec.Meaning = fmt.Sprintf("Service %s address %s bound to %s so the node accepts it locally (%s); the kernel added this local route with the address", svcRef(s), a, dev, serviceDevOwner(dev))
			x.nodeRef(rec)
			return
		}
		if dev == "kube-ipvs0" || dev == "kube-dummy-if" {
			rec.Kind = KindServiceAddress
			rec.Meaning = fmt.Sprintf("a Service address (%s) bound to %s; not a Service of the given objects", a, dev)
			x.nodeRef(rec)
			return
		}
		rec.Kind = KindLocalAddress
		switch {
		case x.self != nil && a == x.self.IP:
			rec.Meaning = fmt.Sprintf("node %s's own address %s: packets to it are delivered locally (kernel-added with the address)", x.self.Name, a)
		case x.self != nil && a == x.self.TunnelIP:
			rec.Meaning = fmt.Sprintf("node %s's tunnel address %s on %s (kernel-added with the address)", x.self.Name, a, dev)
		case x.self != nil && a == cluster.BridgeGateway(x.self.PodCIDR) && x.self.PodCIDR.IsValid():
			rec.Meaning = fmt.Sprintf("node %s's pod gateway %s on the bridge %s (kernel-added with the address)", x.self.Name, a, dev)
		default:
			rec.Meaning = fmt.Sprintf("local address %s on %s, added by the kernel with the address", a, dev)
		}
		x.nodeRef(rec)
		return
	case r.Type == route.TypeUnreachable || r.Type == route.TypeProhibit || r.Type == route.TypeThrow:
		rec.Kind = KindRejectRoute
		rec.Meaning = fmt.Sprintf("%s route: packets to %s get an ICMP error (or, for throw, the lookup continues with the next rule)", r.Type, dst)
		return
	case r.IsDefault():
		rec.Kind = KindDefaultRoute
		gw := ""
		if x.self != nil && r.Gw == x.self.Gateway {
			gw = fmt.Sprintf(" (node %s's subnet gateway)", x.self.Name)
		}
		if r.Table == 77 {
			rec.Kind = KindPolicyRoutingTbl
		}
		rec.Meaning = fmt.Sprintf("default route in the %s: everything not matched elsewhere leaves via %s on %s%s, set by %s", tableWord(r.Table), r.Gw, dev, gw, owner)
		x.nodeRef(rec)
		return
	}
	// Pod blocks: blackhole for this node's block, remote blocks by device.
	if n := x.nodeOfBlock(dst); n != nil && (dst.Bits() < 32 || r.Type == route.TypeBlackhole) {
		rec.Refs.Node = n.Name
		if r.Type == route.TypeBlackhole {
			rec.Kind = KindLocalPodBlock
			rec.Meaning = fmt.Sprintf("this node's (%s) pod block %s: addresses in it without a pod route are dropped (blackhole), so they never leave the node; installed by %s", n.Name, dst, owner)
			if x.self == nil {
				x.self = n
			}
			return
		}
		if x.self != nil && n == x.self {
			rec.Kind = KindLocalPodBlock
			rec.Meaning = fmt.Sprintf("this node's pod CIDR %s on %s: pods are reached directly on the bridge (connected route, %s)", dst, dev, owner)
			return
		}
		rec.Kind = KindRemotePodBlock
		rec.Meaning = fmt.Sprintf("pod block %s of node %s (%s) reached %s; installed by %s", dst, n.Name, n.IP, x.encapWords(r, n), owner)
		return
	}
	if r.Type == route.TypeBlackhole {
		rec.Kind = KindLocalPodBlock
		rec.Meaning = fmt.Sprintf("blackhole for %s: a pod block owned by this node (not in the cluster's node blocks); traffic to unassigned addresses is dropped, installed by %s", dst, owner)
		return
	}
	if dst.IsSingleIP() {
		a := dst.Addr()
		if p, ok := x.podByIP[a]; ok {
			rec.Kind, rec.Refs.Pod = KindPodRoute, podRef(p)
			rec.Refs.Node = p.Spec.NodeName
			m := fmt.Sprintf("pod %s (%s) is behind %s on this node", podRef(p), a, dev)
			if strings.HasPrefix(dev, "cali") {
				if want := CalicoVethName(p.Namespace, p.Name); want == dev {
					m += fmt.Sprintf(" (Calico veth: cali + sha1(%q)[:11])", p.Namespace+"."+p.Name)
				} else {
					m += fmt.Sprintf(" (but Calico would name its veth %s)", want)
				}
			}
			rec.Meaning = m + "; route installed by " + owner
			return
		}
		if p, ok := x.podByVeth[dev]; ok {
			rec.Kind, rec.Refs.Pod, rec.Refs.Node = KindPodRoute, podRef(p), p.Spec.NodeName
			rec.Meaning = fmt.Sprintf("%s is pod %s's Calico veth (name from sha1(%q)); the pod has address %s", dev, podRef(p), p.Namespace+"."+p.Name, a)
			return
		}
		if n, ok := x.nodeByIP[a]; ok {
			rec.Kind, rec.Refs.Node = KindTunnelPeer, n.Name
			if r.Table != route.TableMain {
				rec.Meaning = fmt.Sprintf("in %s: node %s's address %s is reached over %s, so kube-router's overlay rules send pod traffic through the tunnel", tableWord(r.Table), n.Name, a, dev)
			} else {
				rec.Meaning = fmt.Sprintf("host route to node %s (%s) via %s", n.Name, a, dev)
			}
			return
		}
		if n := x.nodeOfTunnelIP(a); n != nil {
			rec.Kind, rec.Refs.Node = KindTunnelPeer, n.Name
			rec.Meaning = fmt.Sprintf("route to node %s's tunnel/VTEP address %s %s; installed by %s", n.Name, a, x.encapWords(r, n), owner)
			return
		}
		if strings.HasPrefix(dev, "cali") {
			rec.Kind = KindPodRoute
			rec.Meaning = fmt.Sprintf("a workload (pod) address %s behind the Calico veth %s; no pod of the given objects has this address", a, dev)
			return
		}
	}
	if r.Protocol == route.ProtoKernel && r.Scope == route.ScopeLink {
		if x.c != nil {
			for i := range x.c.Nodes {
				if x.c.Nodes[i].Subnet == dst {
					rec.Kind, rec.Refs.Node = KindNodeSubnet, x.selfName()
					rec.Meaning = fmt.Sprintf("the node subnet %s (zone %s) is directly connected on %s; the kernel added this route with the address %s", dst, x.c.Nodes[i].Zone, dev, r.Src)
					return
				}
			}
		}
		rec.Kind = KindNodeSubnet
		rec.Meaning = fmt.Sprintf("%s is directly connected on %s (kernel-added with the address %s)", dst, dev, r.Src)
		return
	}
	if x.c != nil && x.c.PodCIDR.IsValid() && x.c.PodCIDR.Overlaps(dst) {
		rec.Kind = KindRemotePodBlock
		rec.Meaning = fmt.Sprintf("pod addresses %s (inside the cluster pod CIDR %s) reached via %s %s; not a node's block in the given cluster", dst, x.c.PodCIDR, dev, r.Gw)
		return
	}
	rec.Kind = KindOtherRoute
	rec.Meaning = fmt.Sprintf("route to %s via %s %s, not part of the cluster's networks", dst, dev, r.Gw)
	if x.c == nil {
		rec.Kind = Unknown
		rec.Meaning = "no cluster given to place " + dst.String()
	}
}

func (x *netIndex) nodeRef(rec *Record) {
	if x.self != nil {
		rec.Refs.Node = x.self.Name
	}
}

func serviceDevOwner(dev string) string {
	switch dev {
	case "kube-ipvs0":
		return "kube-proxy IPVS mode's dummy device"
	case "kube-dummy-if":
		return "kube-router's service proxy dummy device"
	}
	return "device " + dev
}

// encapWords describes how a route reaches node n from its device.
func (x *netIndex) encapWords(r *route.Route, n *cluster.Node) string {
	dev := r.Dev
	switch {
	case dev == "tunl0":
		return fmt.Sprintf("through the IPIP tunnel tunl0 (outer packet %s → %s, +20 bytes; onlink gateway = the node's IP)", x.selfIPString(), r.Gw)
	case dev == "vxlan.calico":
		return fmt.Sprintf("through Calico VXLAN vxlan.calico (VNI 4096, UDP 4789, +50 bytes) to VTEP %s", r.Gw)
	case strings.HasPrefix(dev, "flannel."):
		return fmt.Sprintf("through Flannel VXLAN %s (VNI %s, UDP 8472, +50 bytes) to VTEP %s", dev, strings.TrimPrefix(dev, "flannel."), r.Gw)
	case strings.HasPrefix(dev, "tun-") || strings.HasPrefix(dev, "tun"):
		tn := x.nodeByTun[dev]
		w := fmt.Sprintf("through kube-router's IPIP tunnel %s (+20 bytes)", dev)
		if tn != nil && tn == n {
			w += fmt.Sprintf(" whose name is tun- + sha256(%q)[:11], the tunnel to %s", strings.ReplaceAll(n.IP.String(), ".", ""), n.Name)
		}
		return w
	case r.Gw == n.IP:
		same := ""
		if x.self != nil && x.self.Subnet.Contains(n.IP) {
			same = ", same subnet"
		}
		return fmt.Sprintf("directly via %s without encapsulation (next hop = the node's IP%s)", dev, same)
	}
	return fmt.Sprintf("via %s %s", dev, r.Gw)
}

func (x *netIndex) selfIPString() string {
	if x.self == nil {
		return "this node"
	}
	return x.self.IP.String()
}
