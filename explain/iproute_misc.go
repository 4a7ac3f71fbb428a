package explain

import (
	"crypto/sha1"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane/route"
	"github.com/knet-dev/knet/format/iproute"
)

// Kinds of `ip rule`, `ip neigh` and `bridge fdb` lines.
const (
	KindRuleDefault   Kind = "rule-default"
	KindRuleOverlay   Kind = "rule-overlay"
	KindRule          Kind = "rule"
	KindNeighVTEP     Kind = "neigh-vtep"
	KindNeighPod      Kind = "neigh-pod"
	KindNeighNode     Kind = "neigh-node"
	KindNeighGateway  Kind = "neigh-gateway"
	KindFDBVTEP       Kind = "fdb-vtep"
	KindFDBKernel     Kind = "fdb-kernel"
	KindFDBBridgePort Kind = "fdb-bridge-port"
)

// CalicoVTEPMAC is the VTEP MAC felix computes for a node without a stored one
// (felix/calc/vxlan_resolver.go): 0x66 followed by the first 5 bytes of sha1(nodename).
func CalicoVTEPMAC(node string) net.HardwareAddr {
	h := sha1.Sum([]byte(node))
	return net.HardwareAddr{0x66, h[0], h[1], h[2], h[3], h[4]}
}

// IPRule explains `ip rule` output: the kernel's three default rules and kube-router's
// overlay rule sending this node's pod traffic to table 77 (kube-router).
func IPRule(file string, data []byte, c *cluster.Cluster) ([]Record, error) {
	x := newNetIndex(c)
	var out []Record
	for i, ln := range splitLines(data) {
		rec := Record{File: file, Line: i + 1, Text: ln, Kind: Unknown}
		s := &route.Stack{}
		probs := iproute.ParseRules(s, file, []byte(ln))
		switch {
		case strings.TrimSpace(ln) == "":
			rec.Meaning = "empty line"
		case len(probs) > 0 || len(s.Rules) != 1:
			rec.Meaning = "not understood: " + probs.Error()
		default:
			r := s.Rules[0]
			plain := !r.Not && !r.Src.IsValid() && !r.Dst.IsValid() && !r.HasMark && r.IIF == "" && r.OIF == ""
			switch {
			case plain && r.Priority == 0 && r.Table == route.TableLocal:
				rec.Kind, rec.Meaning = KindRuleDefault, "kernel default rule: the local table (own addresses, broadcasts) is consulted first"
			case plain && r.Priority == 32766 && r.Table == route.TableMain:
				rec.Kind, rec.Meaning = KindRuleDefault, "kernel default rule: the main table, where the CNI's routes live"
			case plain && r.Priority == 32767 && r.Table == route.TableDefault:
				rec.Kind, rec.Meaning = KindRuleDefault, "kernel default rule: the (normally empty) default table"
			case r.Src.IsValid() && r.Table == 77:
				rec.Kind = KindRuleOverlay
				if n := x.nodeOfBlock(r.Src); n != nil {
					rec.Refs.Node = n.Name
					rec.Meaning = fmt.Sprintf("kube-router overlay: traffic from node %s's pods (%s) is looked up in table 77 first, where each peer node's IP is routed over its tun- tunnel", n.Name, r.Src)
				} else {
					rec.Meaning = fmt.Sprintf("kube-router overlay: traffic from %s is looked up in table 77 (kube-router) first", r.Src)
				}
			default:
				rec.Kind = KindRule
				rec.Meaning = fmt.Sprintf("policy rule %d: matching packets use %s", r.Priority, tableWord(r.Table))
			}
		}
		out = append(out, rec)
	}
	return out, nil
}

// IPNeigh explains `ip neigh` output: VXLAN VTEP entries (Calico vxlan.calico, Flannel
// flannel.N) naming the remote node, Calico's static ARP for pods, neighbour nodes and the
// subnet gateway.
func IPNeigh(file string, data []byte, c *cluster.Cluster) ([]Record, error) {
	x := newNetIndex(c)
	var out []Record
	for i, ln := range splitLines(data) {
		rec := Record{File: file, Line: i + 1, Text: ln, Kind: Unknown}
		s := &route.Stack{}
		probs := iproute.ParseNeighs(s, file, []byte(ln))
		if strings.TrimSpace(ln) == "" {
			rec.Meaning = "empty line"
			out = append(out, rec)
			continue
		}
		if len(probs) > 0 || len(s.Neighs) != 1 {
			rec.Meaning = "not understood: " + probs.Error()
			out = append(out, rec)
			continue
		}
		n := s.Neighs[0]
		a := n.IP
		switch {
		case n.Dev == "vxlan.calico" || strings.HasPrefix(n.Dev, "flannel."):
			rec.Kind = KindNeighVTEP
			node := x.nodeOfTunnelIP(a)
			if node == nil {
				if nb := x.nodeOfPodIP(a); nb != nil && nb.PodCIDR.Masked().Addr() == a {
					node = nb
				}
			}
			if node != nil {
				rec.Refs.Node = node.Name
				m := fmt.Sprintf("VTEP of node %s: its tunnel address %s has the VXLAN MAC %s (static, written by the CNI)", node.Name, a, n.LLAddr)
				if n.Dev == "vxlan.calico" && n.LLAddr.String() == CalicoVTEPMAC(node.Name).String() {
					m += fmt.Sprintf(" = 66 + sha1(%q)[:5], felix's computed VTEP MAC", node.Name)
				}
				rec.Meaning = m
			} else {
				rec.Meaning = fmt.Sprintf("VTEP entry %s → %s on %s for a node not in the given cluster", a, n.LLAddr, n.Dev)
			}
		case x.podByIP[a] != nil:
			p := x.podByIP[a]
			rec.Kind, rec.Refs.Pod, rec.Refs.Node = KindNeighPod, podRef(p), p.Spec.NodeName
			rec.Meaning = fmt.Sprintf("pod %s's MAC on %s (Calico felix writes a permanent ARP entry per workload)", podRef(p), n.Dev)
		case x.nodeByIP[a] != nil:
			nd := x.nodeByIP[a]
			rec.Kind, rec.Refs.Node = KindNeighNode, nd.Name
			rec.Meaning = fmt.Sprintf("node %s (%s) resolved on %s, %s", nd.Name, a, n.Dev, n.State)
		case x.self != nil && a == x.self.Gateway || x.isGateway(a):
			rec.Kind = KindNeighGateway
			rec.Meaning = fmt.Sprintf("the subnet gateway %s resolved on %s, %s", a, n.Dev, n.State)
		case a == netip.MustParseAddr("169.254.1.1"):
			rec.Kind = KindNeighGateway
			rec.Meaning = "inside a Calico pod: the fake gateway 169.254.1.1, answered by proxy-ARP on the host veth with ee:ee:ee:ee:ee:ee"
		default:
			rec.Meaning = fmt.Sprintf("neighbour %s on %s not placed in cluster terms", a, n.Dev)
		}
		out = append(out, rec)
	}
	return out, nil
}

func (x *netIndex) isGateway(a netip.Addr) bool {
	if x.c == nil {
		return false
	}
	for _, n := range x.c.Nodes {
		if n.Gateway == a {
			return true
		}
	}
	return false
}

// BridgeFDB explains `bridge fdb show` output: VXLAN entries sending a VTEP MAC to a node's
// IP, the kernel's multicast entries, and MACs learned on bridge ports.
func BridgeFDB(file string, data []byte, c *cluster.Cluster) ([]Record, error) {
	x := newNetIndex(c)
	var out []Record
	for i, ln := range splitLines(data) {
		rec := Record{File: file, Line: i + 1, Text: ln, Kind: Unknown}
		s := &route.Stack{}
		probs := iproute.ParseFDB(s, file, []byte(ln), "")
		if strings.TrimSpace(ln) == "" {
			rec.Meaning = "empty line"
			out = append(out, rec)
			continue
		}
		if len(probs) > 0 || len(s.FDB) != 1 {
			rec.Meaning = "not understood: " + probs.Error()
			out = append(out, rec)
			continue
		}
		f := s.FDB[0]
		switch {
		case f.Dst.IsValid():
			rec.Kind = KindFDBVTEP
			if n, ok := x.nodeByIP[f.Dst]; ok {
				rec.Refs.Node = n.Name
				rec.Meaning = fmt.Sprintf("VXLAN forwarding: frames for VTEP MAC %s on %s are sent in UDP to node %s (%s)", f.MAC, f.Dev, n.Name, f.Dst)
			} else {
				rec.Meaning = fmt.Sprintf("VXLAN forwarding: frames for %s on %s go to %s (not a node of the given cluster)", f.MAC, f.Dev, f.Dst)
			}
		case f.MAC[0]&1 == 1:
			rec.Kind = KindFDBKernel
			rec.Meaning = fmt.Sprintf("multicast address %s the kernel subscribes %s to (IPv4/IPv6 all-nodes, solicited-node)", f.MAC, f.Dev)
		case f.Master != "":
			rec.Kind = KindFDBBridgePort
			if f.State == route.FDBPermanent {
				rec.Meaning = fmt.Sprintf("the bridge %s's own address on port %s", f.Master, f.Dev)
			} else {
				rec.Meaning = fmt.Sprintf("MAC %s learned by bridge %s behind port %s (a pod's eth0)", f.MAC, f.Master, f.Dev)
			}
		default:
			rec.Meaning = fmt.Sprintf("fdb entry %s on %s not placed in cluster terms", f.MAC, f.Dev)
		}
		out = append(out, rec)
	}
	return out, nil
}
