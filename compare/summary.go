package compare

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/dataplane/netfilter"
	dpnft "github.com/knet-dev/knet/dataplane/nftables"
	"github.com/knet-dev/knet/dataplane/route"
	"github.com/knet-dev/knet/render"
	"github.com/knet-dev/knet/trace"
)

// ClusterSummary is one cluster's column of WriteSummary.
type ClusterSummary struct {
	Cluster     string            `json:"cluster"`
	Mode        cluster.ProxyMode `json:"mode"`
	Network     Network           `json:"network"`
	Worker      string            `json:"worker"`
	SameSubnet  Path              `json:"sameSubnet"`
	CrossSubnet Path              `json:"crossSubnet"`
	PodMTU      int               `json:"podMTU"`
	Measure     Measure           `json:"measure"`
	// Service is the Service the first packet was traced to ("ns/name ip:port"), FirstPacket
	// the rules it examined on the client's node.
	Service     string `json:"service"`
	FirstPacket int    `json:"firstPacket"`
}

// Summarize renders a worker of every cluster and measures it.
func Summarize(clusters []*cluster.Cluster) ([]ClusterSummary, error) {
	var out []ClusterSummary
	for _, c := range clusters {
		s, err := summarize(c)
		if err != nil {
			return nil, fmt.Errorf("compare: cluster %s: %w", c.Name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func summarize(c *cluster.Cluster) (ClusterSummary, error) {
	s := ClusterSummary{Cluster: c.Name, Mode: c.Proxy.Mode, Network: Network{c.CNI.Plugin, c.CNI.Mode}}
	// The worker: the first worker with a non-hostNetwork pod on it (the client).
	var worker *cluster.Node
	var client *corev1.Pod
	for i := range c.Nodes {
		n := &c.Nodes[i]
		if n.Role != cluster.RoleWorker {
			continue
		}
		for _, p := range c.PodsOn(n.Name) {
			if !p.Spec.HostNetwork && p.Status.PodIP != "" {
				worker, client = n, p
				break
			}
		}
		if worker != nil {
			break
		}
	}
	if worker == nil {
		return s, errors.New("no worker with a pod")
	}
	s.Worker = worker.Name
	node, err := render.Node(c, worker.Name)
	if err != nil {
		return s, err
	}
	countNode(node, &s.Measure)
	// Peers: another node in the same subnet and one in another.
	for _, n := range c.Nodes {
		if n.Name == worker.Name || !n.PodCIDR.IsValid() {
			continue
		}
		p := &s.CrossSubnet
		if n.Subnet == worker.Subnet {
			p = &s.SameSubnet
		}
		if p.Dev == "" {
			*p = lookPath(node, n)
		}
	}
	if pod := node.Pods[client.Namespace+"/"+client.Name]; pod != nil && pod.Net != nil {
		for _, l := range pod.Net.Links {
			if l.Name == "eth0" {
				s.PodMTU = l.MTU
			}
		}
	}
	// The first packet: to the first Service with endpoints that is not `kubernetes`.
	for _, svc := range c.Objects.Services {
		if svc.Name == "kubernetes" || svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone || len(svc.Spec.Ports) == 0 {
			continue
		}
		ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
		if err != nil {
			continue
		}
		port := uint16(svc.Spec.Ports[0].Port)
		src := netip.MustParseAddr(client.Status.PodIP)
		n, err := firstPacketTo(c.Proxy.Mode, node, src, ip, port, strings.ToLower(string(svc.Spec.Ports[0].Protocol)))
		if err != nil {
			return s, err
		}
		s.Service = fmt.Sprintf("%s/%s %s", svc.Namespace, svc.Name, netip.AddrPortFrom(ip, port))
		s.FirstPacket = n
		break
	}
	return s, nil
}

func lookPath(node *dataplane.Node, peer cluster.Node) Path {
	dst := peer.PodCIDR.Masked().Addr().Next().Next()
	res, err := node.Net.Lookup(dst, route.LookupOptions{})
	if err != nil {
		return Path{Dev: "unreachable", Route: err.Error()}
	}
	p := Path{Dev: res.Dev}
	if res.Route != nil {
		p.Route = res.Route.Dst.String()
		p.ViaDefault = res.Route.Dst.Bits() == 0
	}
	p.ViaRouter = res.Gateway.IsValid() && res.Gateway != peer.IP
	for _, l := range node.Net.Links {
		if l.Name == res.Dev {
			switch l.Kind {
			case route.KindIPIP:
				p.Encap, p.Overhead, p.TunnelMTU = "ipip", trace.IPIPOverhead, l.MTU
			case route.KindVXLAN:
				p.Encap, p.Overhead, p.TunnelMTU = "vxlan", trace.VXLANOverhead, l.MTU
			}
		}
	}
	return p
}

// firstPacketTo counts the rules a first packet from src (a local pod) to ip:port examines.
func firstPacketTo(mode cluster.ProxyMode, node *dataplane.Node, src, ip netip.Addr, port uint16, proto string) (int, error) {
	if proto == "" {
		proto = "tcp"
	}
	veth := ""
	if r, err := node.Net.Lookup(src, route.LookupOptions{}); err == nil {
		veth = r.Dev
	}
	if mode == cluster.ProxyNFTables {
		local := trace.LocalAddrsFromStack(node.Net)
		outs, err := node.NFTables.Trace(dpnft.Packet{Src: src, Dst: ip, Proto: proto, SPort: trace.DefaultSPort, DPort: port, IIF: veth}, local.IsLocal, dpnft.TraceOptions{})
		if err != nil || len(outs) == 0 {
			return 0, fmt.Errorf("nftables trace to %s: %w", ip, err)
		}
		return examinedNFT(outs[len(outs)-1].Path, node.NFTables), nil
	}
	idx := ruleIndex(node.IPTables)
	tn, err := trace.NewNode(node.Name, node.IPTables, nil, nil)
	if err != nil {
		return 0, err
	}
	tn.Net = node.Net
	if node.IPSets != nil {
		tn.Sets = trace.SetMatcher{Sets: node.IPSets}
	}
	tn.FormatRule = func(chain string, r *netfilter.Rule) string { return idx[r] }
	res, err := trace.Trace(tn, trace.Request{Src: src, Dst: ip, Proto: trace.Protocol(proto), DPort: port, InIface: veth})
	if err != nil {
		return 0, err
	}
	path := res.Path
	if len(res.Branches) > 0 {
		path = res.Branches[len(res.Branches)-1].Path
	}
	n := examinedNetfilter(path, node.IPTables)
	if mode == cluster.ProxyIPVS {
		n++
	}
	return n, nil
}

func rulesCell(s *ClusterSummary) string {
	m := &s.Measure
	switch s.Mode {
	case cluster.ProxyIPVS:
		return fmt.Sprintf("%.0f IPVS services, %.0f real servers, %.0f iptables rules, %.0f ipset entries", m.IPVSServices, m.IPVSDests, m.IPTablesRules, m.IPSetMembers)
	case cluster.ProxyNFTables:
		return fmt.Sprintf("%.0f nft objects (%.0f chains, %.0f rules, %.0f elements)", m.NFTChains+m.NFTRules+m.NFTElements, m.NFTChains, m.NFTRules, m.NFTElements)
	}
	return fmt.Sprintf("%.0f iptables rules", m.IPTablesRules)
}

// WriteSummary prints a compact side-by-side table of the clusters (proxy mode, pod network,
// same- and cross-subnet device, encapsulation overhead, pod MTU, kube-proxy state on a
// worker, rules a first packet to a Service examines) and a recommendation paragraph. It
// is what `knet tour` shows for the seed's clusters A, B and C.
func WriteSummary(w io.Writer, clusters []*cluster.Cluster) error {
	sums, err := Summarize(clusters)
	if err != nil {
		return err
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	row := func(label string, f func(s *ClusterSummary) string) {
		cells := []string{label}
		for i := range sums {
			cells = append(cells, f(&sums[i]))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	row("", func(s *ClusterSummary) string { return s.Cluster })
	row("kube-proxy mode", func(s *ClusterSummary) string {
		if s.Mode == cluster.ProxyIPVS {
			return "ipvs (deprecated 1.35)"
		}
		return string(s.Mode)
	})
	row("pod network", func(s *ClusterSummary) string { return s.Network.String() })
	row("worker", func(s *ClusterSummary) string { return s.Worker })
	row("same-subnet pod traffic", func(s *ClusterSummary) string { return pathStr(s.SameSubnet) })
	row("cross-subnet pod traffic", func(s *ClusterSummary) string { return pathStr(s.CrossSubnet) })
	row("encapsulation overhead", func(s *ClusterSummary) string {
		return fmt.Sprintf("%d B same / %d B cross", s.SameSubnet.Overhead, s.CrossSubnet.Overhead)
	})
	row("pod MTU", func(s *ClusterSummary) string { return fmt.Sprint(s.PodMTU) })
	row("kube-proxy state on the worker", rulesCell)
	row("first packet to a Service", func(s *ClusterSummary) string {
		return fmt.Sprintf("%d rules examined (%s)", s.FirstPacket, s.Service)
	})
	if err := tw.Flush(); err != nil {
		return err
	}
	b.WriteString("\n" + summaryAdvice(sums) + "\n")
	_, err = io.WriteString(w, b.String())
	return err
}

func summaryAdvice(sums []ClusterSummary) string {
	var parts []string
	for _, s := range sums {
		var why []string
		switch s.Mode {
		case cluster.ProxyIPVS:
			why = append(why, "IPVS mode is deprecated since Kubernetes 1.35: plan the move to nftables (`knet diff --from ipvs --to nftables`)")
		case cluster.ProxyIPTables:
			why = append(why, "iptables mode examines one KUBE-SERVICES rule per Service for every new connection: fine at this size, nftables keeps it flat as Services grow")
		case cluster.ProxyNFTables:
			why = append(why, "nftables mode dispatches through one verdict map: keep it")
		}
		switch {
		case s.SameSubnet.Encap != "" && s.CrossSubnet.Encap != "":
			why = append(why, fmt.Sprintf("every pod packet is encapsulated (%s, %d bytes): a CrossSubnet mode keeps same-subnet traffic native", s.SameSubnet.Encap, s.SameSubnet.Overhead))
		case s.SameSubnet.Encap == "" && s.CrossSubnet.Encap != "":
			why = append(why, "only cross-subnet traffic is encapsulated: the usual best choice across AZs")
		case s.CrossSubnet.ViaDefault || s.CrossSubnet.ViaRouter:
			why = append(why, "cross-subnet pod traffic relies on the underlay routing pod addresses")
		}
		if t := max(s.SameSubnet.TunnelMTU, s.CrossSubnet.TunnelMTU); t > 0 && s.PodMTU > t {
			why = append(why, fmt.Sprintf("pods get MTU %d but the tunnel carries %d: full-size packets to other subnets depend on path MTU discovery (ICMP must get through)", s.PodMTU, t))
		}
		parts = append(parts, fmt.Sprintf("%s (%s + %s): %s.", s.Cluster, s.Mode, s.Network, strings.Join(why, "; ")))
	}
	return "Recommendation: kube-proxy in nftables mode with encapsulation only across subnets (Calico IPIPCrossSubnet or VXLANCrossSubnet). " + strings.Join(parts, " ")
}
