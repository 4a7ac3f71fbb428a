package trace

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/dataplane/ipvs"
	"github.com/knet-dev/knet/dataplane/netfilter"
	"github.com/knet-dev/knet/dataplane/route"
	"github.com/knet-dev/knet/format/iproute"
)

// Encapsulation overheads (outer headers) the kernel adds.
const (
	IPIPOverhead  = 20 // outer IPv4 header
	VXLANOverhead = 50 // outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
)

// ClusterRequest is a cross-node trace request as `knet trace --from --to` takes it.
type ClusterRequest struct {
	// From is "namespace/pod", a pod name in "default", a node name, or an IP.
	From string
	// To is "[namespace/]service[:port]", "namespace/pod:port", or "IP:port".
	To    string
	Proto Protocol
	// Port is the destination port when To does not give one.
	Port uint16
}

// Encap describes an encapsulation hop's outer packet.
type Encap struct {
	Kind     string `json:"kind"` // "ipip" or "vxlan"
	Src      string `json:"src"`
	Dst      string `json:"dst"`
	DstPort  int    `json:"dstPort,omitempty"`
	VNI      int    `json:"vni,omitempty"`
	Overhead int    `json:"overhead"`
	// MTU is the tunnel device's MTU (the inner packet's limit).
	MTU int `json:"mtu,omitempty"`
}

// ClusterHop is one step of a packet across the cluster; every hop names its node and,
// where a device is involved, the interface.
type ClusterHop struct {
	Node string `json:"node"`
	// Netns is "namespace/pod" for a hop inside a pod's network namespace.
	Netns string `json:"netns,omitempty"`
	// Step is route, veth, netfilter, encap, wire, decap, conntrack, deliver or drop.
	Step  string `json:"step"`
	Dev   string `json:"dev,omitempty"`
	Src   string `json:"src,omitempty"`
	Dst   string `json:"dst,omitempty"`
	Route string `json:"route,omitempty"`
	Table string `json:"table,omitempty"`
	Chain string `json:"chain,omitempty"`
	Rule  string `json:"rule,omitempty"`
	Line  int    `json:"line,omitempty"`
	Outer *Encap `json:"outer,omitempty"`
	Note  string `json:"note,omitempty"`
}

// ClusterPath is one possible path (one DNAT destination) with its reply.
type ClusterPath struct {
	Probability float64            `json:"probability"`
	Verdict     netfilter.Decision `json:"verdict"`
	// Endpoint is the destination after DNAT ("IP:port"), EndpointPod the pod holding it.
	Endpoint    string       `json:"endpoint"`
	EndpointPod string       `json:"endpointPod,omitempty"`
	Masquerade  bool         `json:"masquerade"`
	Request     []ClusterHop `json:"request"`
	Reply       []ClusterHop `json:"reply,omitempty"`
}

// ClusterResult is a cross-node trace.
type ClusterResult struct {
	From   string        `json:"from"`
	To     string        `json:"to"`
	Packet PacketInfo    `json:"packet"`
	Paths  []ClusterPath `json:"paths"`
}

// place is where a packet is: a node and optionally a pod namespace on it.
type place struct {
	node string
	pod  string // "ns/name" or ""
	ip   netip.Addr
}

type clusterTracer struct {
	c     *cluster.Cluster
	nodes map[string]*dataplane.Node
	tn    map[string]*Node
}

// TraceCluster follows the first packet of a connection from req.From to req.To across the
// cluster's nodes (each a host namespace with its pods' namespaces in Pods, as the CNI and
// kube-proxy renderers build them): pod eth0 → host veth → the host's netfilter (every DNAT
// destination and its probability, via Trace) → the FIB → IPIP (+20 bytes, outer src/dst =
// node IPs) or VXLAN (+50 bytes, UDP to the VTEP found through the neighbour and fdb
// entries) or direct → the remote node's decapsulation, netfilter and FIB → veth → pod; then
// the reply back, with conntrack's reverse NAT on the node that did the DNAT.
func TraceCluster(c *cluster.Cluster, nodes map[string]*dataplane.Node, req ClusterRequest) (*ClusterResult, error) {
	if c == nil {
		return nil, errors.New("trace cluster: no cluster")
	}
	t := &clusterTracer{c: c, nodes: nodes, tn: map[string]*Node{}}
	if req.Proto == "" {
		req.Proto = TCP
	}
	src, err := t.resolveFrom(req.From)
	if err != nil {
		return nil, err
	}
	dst, dport, err := t.resolveTo(req.To, req.Port, req.Proto)
	if err != nil {
		return nil, err
	}
	res := &ClusterResult{From: req.From, To: req.To, Packet: PacketInfo{Proto: req.Proto,
		Src: netip.AddrPortFrom(src.ip, DefaultSPort).String(), Dst: netip.AddrPortFrom(dst, dport).String()}}

	var pre []ClusterHop
	host := t.nodes[src.node]
	if host == nil || host.Net == nil {
		return nil, fmt.Errorf("trace cluster: node %s has no network state", src.node)
	}
	iif := ""
	if src.pod != "" {
		hops, veth, err := t.leavePod(src, dst)
		pre = append(pre, hops...)
		if err != nil {
			res.Paths = append(res.Paths, ClusterPath{Probability: 1, Verdict: netfilter.DecisionDrop, Request: pre})
			return res, nil
		}
		iif = veth
	}
	tnode, err := t.traceNode(src.node)
	if err != nil {
		return nil, err
	}
	nf, err := t.nodeTrace(src.node, tnode, Request{Src: src.ip, Dst: dst, Proto: req.Proto, DPort: dport, InIface: iif})
	if err != nil {
		return nil, fmt.Errorf("trace cluster: node %s: %w", src.node, err)
	}
	var branches []clusterBranch
	for _, b := range nf.Branches {
		branches = append(branches, clusterBranch{BranchResult: b})
	}
	if len(branches) == 0 {
		branches = []clusterBranch{{BranchResult: BranchResult{Probability: 1, Verdict: nf.Verdict, DecidedBy: nf.DecidedBy, Masquerade: nf.Masquerade, Path: nf.Path}}}
	}
	branches = t.ipvsBranches(src, host, branches, dst, dport, req.Proto)
	for _, b := range branches {
		p := ClusterPath{Probability: b.Probability, Verdict: b.Verdict, Masquerade: b.Masquerade, Request: slices.Clone(pre)}
		p.Request = append(p.Request, nfHops(src.node, b.Path)...)
		toIP, toPort := dst, dport
		if b.ipvs != nil {
			p.Request = append(p.Request, *b.ipvs)
		}
		if b.DNAT != "" {
			ap, err := netip.ParseAddrPort(b.DNAT)
			if err != nil {
				return nil, fmt.Errorf("trace cluster: bad DNAT %q: %w", b.DNAT, err)
			}
			toIP, toPort = ap.Addr(), ap.Port()
			if b.ipvs == nil {
				p.Request = append(p.Request, ClusterHop{Node: src.node, Step: "conntrack", Src: src.ip.String(), Dst: b.DNAT,
					Note: fmt.Sprintf("DNAT %s → %s recorded in this node's conntrack", netip.AddrPortFrom(dst, dport), b.DNAT)})
			}
		}
		p.Endpoint = netip.AddrPortFrom(toIP, toPort).String()
		if b.Verdict != netfilter.DecisionAccept {
			res.Paths = append(res.Paths, p)
			continue
		}
		fromIP := src.ip
		if b.Masquerade {
			if r, err := host.Net.Lookup(toIP, route.LookupOptions{}); err == nil && r.Src.IsValid() {
				fromIP = r.Src
				p.Request = append(p.Request, ClusterHop{Node: src.node, Step: "conntrack", Dev: r.Dev,
					Note: fmt.Sprintf("MASQUERADE: source %s → %s (the output device's address)", src.ip, fromIP)})
			}
		}
		end, hops := t.forward(place{node: src.node, ip: fromIP}, fromIP, toIP, iif, req.Proto, toPort, true, nil)
		p.Request = append(p.Request, hops...)
		if end.pod != "" {
			p.EndpointPod = end.pod
		}
		if end.node == "" {
			p.Verdict = netfilter.DecisionDrop
			res.Paths = append(res.Paths, p)
			continue
		}
		// The reply: from the endpoint back to the (possibly masqueraded) source; conntrack on
		// the DNAT node restores the Service address as source.
		p.Reply = t.reply(end, toIP, toPort, fromIP, src, dst, dport, b.DNAT != "", b.Masquerade, b.ipvs != nil)
		res.Paths = append(res.Paths, p)
	}
	return res, nil
}

// clusterBranch is one netfilter branch, possibly split further by IPVS scheduling.
type clusterBranch struct {
	BranchResult
	ipvs *ClusterHop
}

// ipvsBranches splits the branches whose destination is an IPVS virtual service of the
// node (kube-proxy IPVS mode, kube-router's proxy): the packet to the Service address is
// delivered locally (kube-ipvs0 holds it), IPVS's LOCAL_IN hook picks a real server
// (dataplane/ipvs Candidates: what a new connection would get now, with its probability)
// and rewrites the destination (Masq forwarding).
func (t *clusterTracer) ipvsBranches(src place, host *dataplane.Node, in []clusterBranch, dst netip.Addr, dport uint16, proto Protocol) []clusterBranch {
	if host.IPVS == nil {
		return in
	}
	svc := host.IPVS.Lookup(ipvs.Protocol(proto), dst, dport, 0)
	if svc == nil {
		return in
	}
	var out []clusterBranch
	for _, b := range in {
		if b.Verdict != netfilter.DecisionAccept || b.DNAT != "" {
			out = append(out, b)
			continue
		}
		choices := host.IPVS.Candidates(svc, ipvs.Packet{Proto: ipvs.Protocol(proto), Src: src.ip, SrcPort: DefaultSPort, Dst: dst, DstPort: dport})
		if len(choices) == 0 {
			nb := b
			nb.Verdict = netfilter.DecisionDrop
			nb.ipvs = &ClusterHop{Node: src.node, Step: "ipvs", Dst: netip.AddrPortFrom(dst, dport).String(), Note: "IPVS virtual service without an available real server: the packet is dropped"}
			out = append(out, nb)
			continue
		}
		for _, ch := range choices {
			nb := b
			nb.Path = slices.Clone(b.Path)
			nb.Probability = b.Probability * ch.Probability
			to := netip.AddrPortFrom(ch.Dest.Addr, ch.Dest.Port)
			nb.DNAT = to.String()
			nb.ipvs = &ClusterHop{Node: src.node, Step: "ipvs", Dev: "kube-ipvs0", Dst: to.String(),
				Note: fmt.Sprintf("IPVS %s %s %s → %s (%s, %s; IPVS rewrites the destination in LOCAL_IN)", strings.ToUpper(string(proto)), netip.AddrPortFrom(dst, dport), svc.Scheduler, to, ch.Dest.Forward, ch.Reason)}
			out = append(out, nb)
		}
	}
	return out
}

func nfHops(node string, path []Hop) []ClusterHop {
	var out []ClusterHop
	for _, h := range path {
		if h.Rule == "" && h.Chain == "" {
			continue // routing decisions are shown by the cluster tracer's own route hops
		}
		out = append(out, ClusterHop{Node: node, Step: "netfilter", Table: h.Table, Chain: h.Chain, Rule: h.Rule, Line: h.Line})
	}
	return out
}

// nodeTrace traces req through a node's packet filter: kube-proxy's nftables table when the
// node runs kube-proxy in nftables mode (the iptables left there are kubelet's few
// KUBE-FIREWALL rules, which a Service packet does not hit), else its iptables.
func (t *clusterTracer) nodeTrace(name string, tn *Node, req Request) (*Result, error) {
	if dn := t.nodes[name]; dn != nil && dn.NFTables != nil && dn.NFTables.Table("ip", "kube-proxy") != nil {
		local := func(a netip.Addr) bool {
			if dn.Net == nil {
				return false
			}
			for _, x := range dn.Net.Addrs {
				if x.Prefix.Addr() == a {
					return true
				}
			}
			return a.IsLoopback()
		}
		return TraceNFT(name, dn.NFTables, local, req)
	}
	return Trace(tn, req)
}

func (t *clusterTracer) traceNode(name string) (*Node, error) {
	if n, ok := t.tn[name]; ok {
		return n, nil
	}
	dn := t.nodes[name]
	if dn == nil {
		return nil, fmt.Errorf("trace cluster: no state for node %s", name)
	}
	v4 := dn.IPTables
	if v4 == nil {
		v4 = &netfilter.Ruleset{}
	}
	n, err := NewNode(name, v4, dn.IP6Tables, nil)
	if err != nil {
		return nil, fmt.Errorf("trace cluster: node %s: %w", name, err)
	}
	n.Net = dn.Net
	if dn.IPSets != nil {
		// IPVS mode's iptables rules match ipsets (KUBE-LOOP-BACK, KUBE-CLUSTER-IP, ...):
		// evaluate them against the node's sets, not "assumed".
		n.Sets = SetMatcher{Sets: dn.IPSets}
	}
	t.tn[name] = n
	return n, nil
}

func (t *clusterTracer) resolveFrom(s string) (place, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		if p := t.podByIP(a); p != nil {
			return place{node: p.Spec.NodeName, pod: p.Namespace + "/" + p.Name, ip: a}, nil
		}
		for _, n := range t.c.Nodes {
			if n.IP == a {
				return place{node: n.Name, ip: a}, nil
			}
		}
		return place{}, fmt.Errorf("trace cluster: --from %s is neither a pod nor a node address", s)
	}
	if n := t.c.NodeByName(s); n != nil {
		return place{node: n.Name, ip: n.IP}, nil
	}
	p := t.podByName(s)
	if p == nil {
		return place{}, fmt.Errorf("trace cluster: --from %q: no such pod or node", s)
	}
	a, err := netip.ParseAddr(p.Status.PodIP)
	if err != nil {
		return place{}, fmt.Errorf("trace cluster: pod %s/%s has no IP", p.Namespace, p.Name)
	}
	pl := place{node: p.Spec.NodeName, ip: a}
	if !p.Spec.HostNetwork {
		pl.pod = p.Namespace + "/" + p.Name
	}
	return pl, nil
}

func (t *clusterTracer) podByName(s string) *corev1.Pod {
	ns, name, ok := strings.Cut(s, "/")
	if !ok {
		ns, name = "default", s
	}
	for _, p := range t.c.Objects.Pods {
		if p.Namespace == ns && p.Name == name {
			return p
		}
	}
	return nil
}

func (t *clusterTracer) podByIP(a netip.Addr) *corev1.Pod {
	for _, p := range t.c.Objects.Pods {
		if p.Status.PodIP == a.String() && !p.Spec.HostNetwork {
			return p
		}
	}
	return nil
}

func (t *clusterTracer) resolveTo(s string, port uint16, proto Protocol) (netip.Addr, uint16, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr(), ap.Port(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if port == 0 {
			return netip.Addr{}, 0, fmt.Errorf("trace cluster: --to %s needs a port", s)
		}
		return a, port, nil
	}
	name, portStr := s, ""
	if i := strings.LastIndex(s, ":"); i >= 0 {
		name, portStr = s[:i], s[i+1:]
	}
	ns, svcName, ok := strings.Cut(name, "/")
	if !ok {
		ns, svcName = "default", name
	}
	for _, svc := range t.c.Objects.Services {
		if svc.Namespace != ns || svc.Name != svcName {
			continue
		}
		a, err := netip.ParseAddr(svc.Spec.ClusterIP)
		if err != nil {
			return netip.Addr{}, 0, fmt.Errorf("trace cluster: service %s has no ClusterIP", name)
		}
		for _, sp := range svc.Spec.Ports {
			if !strings.EqualFold(string(sp.Protocol), string(proto)) && sp.Protocol != "" {
				continue
			}
			if portStr == "" && (port == 0 || int32(port) == sp.Port) || portStr == sp.Name || portStr == strconv.Itoa(int(sp.Port)) {
				return a, uint16(sp.Port), nil
			}
		}
		return netip.Addr{}, 0, fmt.Errorf("trace cluster: service %s has no %s port %q", name, proto, portStr)
	}
	if p := t.podByName(name); p != nil && portStr != "" {
		a, err := netip.ParseAddr(p.Status.PodIP)
		n, err2 := strconv.Atoi(portStr)
		if err == nil && err2 == nil {
			return a, uint16(n), nil
		}
	}
	return netip.Addr{}, 0, fmt.Errorf("trace cluster: --to %q: no such service, pod:port or IP:port", s)
}

// leavePod is the pod-side part: the pod's FIB, then the veth to the host.
func (t *clusterTracer) leavePod(src place, dst netip.Addr) ([]ClusterHop, string, error) {
	pn := t.nodes[src.node].Pods[src.pod]
	if pn == nil || pn.Net == nil {
		return nil, "", fmt.Errorf("no namespace for pod %s", src.pod)
	}
	var hops []ClusterHop
	r, err := pn.Net.Lookup(dst, route.LookupOptions{})
	if err != nil {
		return []ClusterHop{{Node: src.node, Netns: src.pod, Step: "drop", Note: err.Error()}}, "", err
	}
	hops = append(hops, ClusterHop{Node: src.node, Netns: src.pod, Step: "route", Dev: r.Dev, Src: r.Src.String(), Dst: dst.String(),
		Route: strings.TrimSpace(iproute.FormatRoute(pn.Net, r.Route, iproute.Options{}, true))})
	veth := t.hostVeth(src.node, src.ip)
	hops = append(hops, ClusterHop{Node: src.node, Netns: src.pod, Step: "veth", Dev: r.Dev,
		Note: fmt.Sprintf("pod %s %s → host %s", src.pod, r.Dev, veth)})
	return hops, veth, nil
}

// hostVeth is the host device the node routes a local pod IP to.
func (t *clusterTracer) hostVeth(node string, podIP netip.Addr) string {
	h := t.nodes[node]
	if r, err := h.Net.Lookup(podIP, route.LookupOptions{}); err == nil {
		return r.Dev
	}
	return ""
}

// podAt returns the pod namespace on node holding address a.
func (t *clusterTracer) podAt(node string, a netip.Addr) (string, *dataplane.Node) {
	h := t.nodes[node]
	keys := make([]string, 0, len(h.Pods))
	for k := range h.Pods {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		pn := h.Pods[k]
		if pn.Net == nil {
			continue
		}
		for _, ad := range pn.Net.Addrs {
			if ad.Prefix.Addr() == a {
				return k, pn
			}
		}
	}
	return "", nil
}

func (t *clusterTracer) nodeByIP(a netip.Addr) string {
	for _, n := range t.c.Nodes {
		if n.IP == a {
			return n.Name
		}
	}
	return ""
}

// forward routes (src → dst) from node `at` (arriving on iif) until it is delivered to a pod
// or the host, dropped, or leaves the cluster. It returns where it ended (node "" when not
// delivered) and the hops. runNF runs the receiving nodes' netfilter.
//
// arrive, when set, is called as the packet enters each node (before its routing decision,
// where conntrack's PREROUTING NAT runs) and may rewrite the destination.
func (t *clusterTracer) forward(at place, src, dst netip.Addr, iif string, proto Protocol, dport uint16, runNF bool, arrive func(node string, dst netip.Addr) (netip.Addr, []ClusterHop)) (place, []ClusterHop) {
	var hops []ClusterHop
	node := at.node
	for range 8 {
		if arrive != nil {
			var extra []ClusterHop
			dst, extra = arrive(node, dst)
			hops = append(hops, extra...)
		}
		h := t.nodes[node]
		if h == nil || h.Net == nil {
			return place{}, append(hops, ClusterHop{Node: node, Step: "drop", Note: "no network state for node " + node})
		}
		r, err := h.Net.Lookup(dst, route.LookupOptions{Src: src, IIF: iif})
		if err != nil {
			return place{}, append(hops, ClusterHop{Node: node, Step: "drop", Dst: dst.String(), Note: err.Error()})
		}
		hops = append(hops, ClusterHop{Node: node, Step: "route", Dev: r.Dev, Src: src.String(), Dst: dst.String(),
			Route: strings.TrimSpace(iproute.FormatRoute(h.Net, r.Route, iproute.Options{}, true))})
		switch r.Type {
		case route.TypeLocal:
			return place{node: node, ip: dst}, append(hops, ClusterHop{Node: node, Step: "deliver", Dev: "lo", Dst: dst.String(), Note: "delivered to a socket on node " + node})
		case route.TypeBlackhole:
			return place{}, append(hops, ClusterHop{Node: node, Step: "drop", Dst: dst.String(), Note: "blackhole route: no pod has this address"})
		}
		if pod, _ := t.podAt(node, dst); pod != "" && r.Gateway == (netip.Addr{}) {
			hops = append(hops, ClusterHop{Node: node, Step: "veth", Dev: r.Dev, Note: fmt.Sprintf("host %s → pod %s eth0", r.Dev, pod)},
				ClusterHop{Node: node, Netns: pod, Step: "deliver", Dev: "eth0", Dst: dst.String(), Note: "delivered to pod " + pod})
			return place{node: node, pod: pod, ip: dst}, hops
		}
		link := h.Net.LinkByName(r.Dev)
		var next string
		var nextIIF string
		encapped := false
		switch {
		case link != nil && link.Kind == route.KindIPIP:
			outerDst := r.Gateway
			outerSrc := netip.Addr{}
			if link.IPIP != nil && link.IPIP.Remote.IsValid() {
				outerDst = link.IPIP.Remote
			}
			if link.IPIP != nil && link.IPIP.Local.IsValid() {
				outerSrc = link.IPIP.Local
			}
			o, err := h.Net.Lookup(outerDst, route.LookupOptions{})
			if err != nil {
				return place{}, append(hops, ClusterHop{Node: node, Step: "drop", Note: "outer packet: " + err.Error()})
			}
			if !outerSrc.IsValid() {
				outerSrc = o.Src
			}
			hops = append(hops, ClusterHop{Node: node, Step: "encap", Dev: r.Dev, Src: src.String(), Dst: dst.String(),
				Outer: &Encap{Kind: "ipip", Src: outerSrc.String(), Dst: outerDst.String(), Overhead: IPIPOverhead, MTU: link.MTU}},
				ClusterHop{Node: node, Step: "route", Dev: o.Dev, Src: outerSrc.String(), Dst: outerDst.String(),
					Route: strings.TrimSpace(iproute.FormatRoute(h.Net, o.Route, iproute.Options{}, true)), Note: "outer packet"})
			next = t.nodeByIP(outerDst)
			nextIIF, encapped = "tunl0", true
			if next != "" {
				if rn := t.nodes[next]; rn != nil && rn.Net != nil {
					for _, l := range rn.Net.Links {
						if l.Kind == route.KindIPIP && l.IPIP != nil && l.IPIP.Remote == outerSrc {
							nextIIF = l.Name
						}
					}
				}
			}
			hops = append(hops, ClusterHop{Node: node, Step: "wire", Dev: o.Dev, Src: outerSrc.String(), Dst: outerDst.String(), Note: "IP-in-IP (protocol 4) to node " + orUnknown(next)})
		case link != nil && link.Kind == route.KindVXLAN:
			vtep, err := vxlanRemote(h.Net, link, r.Gateway)
			if err != nil {
				return place{}, append(hops, ClusterHop{Node: node, Step: "drop", Dev: r.Dev, Note: err.Error()})
			}
			o, err := h.Net.Lookup(vtep, route.LookupOptions{})
			if err != nil {
				return place{}, append(hops, ClusterHop{Node: node, Step: "drop", Note: "outer packet: " + err.Error()})
			}
			outerSrc := o.Src
			if link.VXLAN != nil && link.VXLAN.Local.IsValid() {
				outerSrc = link.VXLAN.Local
			}
			port := 8472
			vni := 0
			if link.VXLAN != nil {
				port, vni = link.VXLAN.Port, link.VXLAN.VNI
			}
			hops = append(hops, ClusterHop{Node: node, Step: "encap", Dev: r.Dev, Src: src.String(), Dst: dst.String(),
				Outer: &Encap{Kind: "vxlan", Src: outerSrc.String(), Dst: vtep.String(), DstPort: port, VNI: vni, Overhead: VXLANOverhead, MTU: link.MTU}},
				ClusterHop{Node: node, Step: "route", Dev: o.Dev, Src: outerSrc.String(), Dst: vtep.String(),
					Route: strings.TrimSpace(iproute.FormatRoute(h.Net, o.Route, iproute.Options{}, true)), Note: "outer packet"})
			next, nextIIF, encapped = t.nodeByIP(vtep), link.Name, true
			hops = append(hops, ClusterHop{Node: node, Step: "wire", Dev: o.Dev, Src: outerSrc.String(), Dst: vtep.String(),
				Note: fmt.Sprintf("VXLAN in UDP to port %d (VNI %d) to node %s", port, vni, orUnknown(next))})
		default:
			gw := r.Gateway
			if gw.IsValid() {
				next = t.nodeByIP(gw)
			} else {
				next = t.nodeByIP(dst)
			}
			note := "directly, no encapsulation"
			if next == "" {
				// Through the subnet's router: the node owning dst, if any, receives it.
				for _, n := range t.c.Nodes {
					if n.PodCIDR.Contains(dst) || n.IP == dst {
						next = n.Name
						note = fmt.Sprintf("via the router %s, no encapsulation (the network must route the pod CIDR)", gw)
					}
				}
				if next == "" {
					return place{}, append(hops, ClusterHop{Node: node, Step: "wire", Dev: r.Dev, Src: src.String(), Dst: dst.String(), Note: "leaves the cluster via " + gw.String()})
				}
			}
			if n := t.c.NodeByName(next); n != nil {
				nextIIF = n.Interface
			}
			if nextIIF == "" {
				nextIIF = "eth0"
			}
			hops = append(hops, ClusterHop{Node: node, Step: "wire", Dev: r.Dev, Src: src.String(), Dst: dst.String(), Note: note + " to node " + next})
		}
		if next == "" {
			return place{}, append(hops, ClusterHop{Node: node, Step: "drop", Note: "the outer destination is not a node of the cluster"})
		}
		if encapped {
			hops = append(hops, ClusterHop{Node: next, Step: "decap", Dev: nextIIF, Src: src.String(), Dst: dst.String(),
				Note: fmt.Sprintf("%s strips the outer header", nextIIF)})
		}
		if runNF {
			if tn, err := t.traceNode(next); err == nil {
				if nf, err := t.nodeTrace(next, tn, Request{Src: src, Dst: dst, Proto: proto, DPort: dport, InIface: nextIIF}); err == nil {
					hops = append(hops, nfHops(next, nf.Path)...)
					if nf.Verdict != netfilter.DecisionAccept {
						return place{}, append(hops, ClusterHop{Node: next, Step: "drop", Note: fmt.Sprintf("netfilter verdict %s", nf.Verdict)})
					}
				}
			}
		}
		node, iif = next, nextIIF
	}
	return place{}, append(hops, ClusterHop{Node: node, Step: "drop", Note: "routing loop (more than 8 nodes)"})
}

func orUnknown(s string) string {
	if s == "" {
		return "(not a cluster node)"
	}
	return s
}

// vxlanRemote finds the VTEP behind a VXLAN next hop: the neighbour entry gives the MAC,
// the fdb entry for that MAC on the device gives the remote VTEP address.
func vxlanRemote(s *route.Stack, link *route.Link, gw netip.Addr) (netip.Addr, error) {
	var mac string
	for _, n := range s.Neighs {
		if n.Dev == link.Name && n.IP == gw {
			mac = n.LLAddr.String()
		}
	}
	if mac == "" {
		return netip.Addr{}, fmt.Errorf("no neighbour entry for VXLAN next hop %s on %s", gw, link.Name)
	}
	for _, f := range s.FDB {
		if f.Dev == link.Name && f.MAC.String() == mac && f.Dst.IsValid() {
			return f.Dst, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no fdb entry for %s on %s", mac, link.Name)
}

// reply walks the response from the endpoint back to the client.
func (t *clusterTracer) reply(end place, epIP netip.Addr, epPort uint16, to netip.Addr, client place, svc netip.Addr, svcPort uint16, dnat, masq, byIPVS bool) []ClusterHop {
	var hops []ClusterHop
	iif := ""
	if end.pod != "" {
		pn := t.nodes[end.node].Pods[end.pod]
		if pn != nil && pn.Net != nil {
			if r, err := pn.Net.Lookup(to, route.LookupOptions{}); err == nil {
				hops = append(hops, ClusterHop{Node: end.node, Netns: end.pod, Step: "route", Dev: r.Dev, Src: epIP.String(), Dst: to.String(),
					Route: strings.TrimSpace(iproute.FormatRoute(pn.Net, r.Route, iproute.Options{}, true))})
			}
		}
		iif = t.hostVeth(end.node, epIP)
		hops = append(hops, ClusterHop{Node: end.node, Netns: end.pod, Step: "veth", Dev: "eth0", Note: fmt.Sprintf("pod %s eth0 → host %s", end.pod, iif)})
	}
	done := false
	arrive := func(node string, dst netip.Addr) (netip.Addr, []ClusterHop) {
		if node != client.node || done || !dnat && !masq {
			return dst, nil
		}
		done = true
		who := "conntrack, PREROUTING"
		if byIPVS {
			who = "the IPVS connection entry"
		}
		note := fmt.Sprintf("reverse NAT (%s): source %s → %s", who, netip.AddrPortFrom(epIP, epPort), netip.AddrPortFrom(svc, svcPort))
		if masq {
			note += fmt.Sprintf(", destination %s → %s (un-MASQUERADE)", to, client.ip)
			dst = client.ip
		}
		return dst, []ClusterHop{{Node: client.node, Step: "conntrack", Src: netip.AddrPortFrom(svc, svcPort).String(), Dst: client.ip.String(), Note: note}}
	}
	_, more := t.forward(place{node: end.node, ip: epIP}, epIP, to, iif, "", 0, false, arrive)
	return append(hops, more...)
}
