package explain

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane/route"
	"github.com/knet-dev/knet/format/iproute"
)

// IPAddr explains `ip addr` and `ip link` output (`-d`, `-4`, `-o`, `show dev X`) line by
// line: each device in cluster terms (uplink, Calico veth of pod X, tunl0, vxlan.calico,
// flannel.N, the pod bridge, kube-router tunnels, kube-ipvs0 / kube-dummy-if), each address
// (node IP, tunnel IP, pod gateway, Service ClusterIP, pod IP), and the link-layer, detail and
// lifetime lines. c may be nil.
func IPAddr(file string, data []byte, c *cluster.Cluster) ([]Record, error) {
	x := newNetIndex(c)
	s := &route.Stack{}
	probs := iproute.ParseAddrs(s, file, data)
	bad := map[int]string{}
	for _, p := range probs {
		bad[p.Line] = p.Msg
	}
	var addrs []netip.Addr
	for _, a := range s.Addrs {
		addrs = append(addrs, a.Prefix.Addr())
	}
	x.guessSelf(addrs)
	var out []Record
	var cur *route.Link
	for i, raw := range splitLines(data) {
		// `-o` puts a whole record on one line, inner lines joined by "\": the line is
		// explained by its first segment (the link or the address), one record per line.
		for k, ln := range strings.Split(raw, "\\") {
			if k > 0 {
				continue
			}
			rec := Record{File: file, Line: i + 1, Text: raw, Kind: Unknown}
			if len(ln) > 0 && ln[0] >= '0' && ln[0] <= '9' {
				idx, _, _ := strings.Cut(ln, ":")
				n, _ := strconv.Atoi(idx)
				cur = s.LinkByIndex(n)
				if j := strings.Index(ln, "    inet"); j >= 0 && cur != nil && !strings.Contains(ln[:j], "<") {
					x.explainAddrLine(&rec, cur, strings.Fields(ln[j:]))
				} else if cur != nil {
					x.explainLink(&rec, cur, s)
				}
			} else if cur != nil {
				f := strings.Fields(ln)
				switch {
				case len(f) == 0:
					rec.Meaning = "empty line"
				case strings.HasPrefix(f[0], "link/"):
					rec.Kind = KindLinkLayer
					rec.Meaning = linkLayerWords(cur)
				case f[0] == "inet" || f[0] == "inet6":
					x.explainAddrLine(&rec, cur, f)
				case f[0] == "valid_lft":
					rec.Kind = KindAddressLifetime
					rec.Meaning = "lifetime of the address above (forever = static; seconds = DHCP/SLAAC lease)"
				case f[0] == "altname":
					rec.Kind, rec.Meaning = KindLinkDetails, "alternative (predictable) name of "+cur.Name
				default:
					rec.Kind = KindLinkDetails
					rec.Meaning = fmt.Sprintf("`ip -d` details of %s: %s", cur.Name, kindWords(cur))
				}
			}
			if m, ok := bad[i+1]; ok && rec.Kind == Unknown {
				rec.Meaning = "not understood: " + m
			} else if ok && rec.Meaning != "" {
				rec.Meaning += " (not understood: " + m + ")"
			}
			out = append(out, rec)
		}
	}
	return out, nil
}

func linkLayerWords(l *route.Link) string {
	switch l.LinkType {
	case "ipip":
		if l.Flags&route.FlagPointToPoint != 0 && l.IPIP != nil {
			return fmt.Sprintf("IPIP point-to-point tunnel from %s to %s", l.IPIP.Local, l.IPIP.Remote)
		}
		return "IPIP tunnel with no fixed endpoints (the fallback device: any local, any remote)"
	case "loopback":
		return "loopback"
	}
	w := fmt.Sprintf("Ethernet address %s", l.HardwareAddr)
	if l.HardwareAddr.String() == "ee:ee:ee:ee:ee:ee" {
		w += " (Calico forces ee:ee:ee:ee:ee:ee on every host-side veth and answers the pod's ARP by proxy-ARP)"
	}
	if l.Veth != nil && l.Veth.PeerRemote {
		if l.Veth.PeerNetNS != "" {
			w += fmt.Sprintf("; the peer is in network namespace %s", l.Veth.PeerNetNS)
			if strings.HasPrefix(l.Veth.PeerNetNS, "cni-") {
				w += " (containerd names pod namespaces cni-<uuid>)"
			}
		} else {
			w += fmt.Sprintf("; the peer is in the namespace with id %d (for a pod: the host)", l.Veth.PeerNetNSID)
		}
	}
	return w
}

func kindWords(l *route.Link) string {
	switch l.Kind {
	case route.KindVXLAN:
		if l.VXLAN != nil {
			return fmt.Sprintf("VXLAN VNI %d, UDP port %d, underlay %s %s, learning %v", l.VXLAN.VNI, l.VXLAN.Port, l.VXLAN.Dev, l.VXLAN.Local, l.VXLAN.Learning)
		}
	case route.KindIPIP:
		return "IPIP tunnel parameters (ttl inherit, nopmtudisc are netlink's defaults)"
	case route.KindBridge:
		return "Linux bridge parameters"
	case route.KindVeth:
		if l.BridgePort != nil {
			return fmt.Sprintf("veth, port of bridge %s (hairpin %v: a pod can reach itself through its Service)", l.Master, l.BridgePort.Hairpin)
		}
		return "veth pair end"
	case route.KindDummy:
		return "dummy device (holds addresses, never sends)"
	}
	return string(l.Kind)
}

func (x *netIndex) explainLink(rec *Record, l *route.Link, s *route.Stack) {
	rec.Kind = KindLinkDevice
	name := l.Name
	up := "up"
	if !l.Up() {
		up = "down"
	}
	x.nodeRef(rec)
	switch {
	case l.Kind == route.KindLoopback || name == "lo":
		rec.Meaning = "loopback device"
	case x.self != nil && (name == x.self.Interface || x.self.Interface == "" && name == "eth0") && (l.Veth == nil || l.Veth.PeerName == ""):
		rec.Meaning = fmt.Sprintf("node %s's uplink (holds the node IP %s), MTU %d", x.self.Name, x.self.IP, l.MTU)
	case strings.HasPrefix(name, "cali"):
		if p, ok := x.podByVeth[name]; ok {
			rec.Refs.Pod = podRef(p)
			rec.Meaning = fmt.Sprintf("host end of pod %s's veth (Calico names it cali + sha1(%q)[:11]); the pod's eth0 is ifindex %d in its namespace; MTU %d", podRef(p), p.Namespace+"."+p.Name, vethPeer(l), l.MTU)
		} else {
			rec.Meaning = fmt.Sprintf("host end of a Calico pod veth (no pod of the given objects hashes to %s); MTU %d", name, l.MTU)
		}
	case name == "tunl0":
		if l.Up() {
			rec.Meaning = fmt.Sprintf("Calico's IPIP tunnel device (the ipip module's fallback tunl0, %s, MTU %d = uplink - 20)", up, l.MTU)
		} else {
			rec.Meaning = "the ipip module's fallback tunnel, present in every namespace once ipip is loaded; unused (down)"
		}
	case name == "vxlan.calico":
		rec.Meaning = fmt.Sprintf("Calico's VXLAN device (VNI 4096, UDP 4789), MTU %d = uplink - 50", l.MTU)
	case strings.HasPrefix(name, "flannel."):
		rec.Meaning = fmt.Sprintf("Flannel's VXLAN device (VNI %s, UDP 8472), MTU %d = uplink - 50", strings.TrimPrefix(name, "flannel."), l.MTU)
	case name == "cni0" || name == "kube-bridge":
		owner := "Flannel's CNI bridge plugin"
		if name == "kube-bridge" {
			owner = "kube-router"
		}
		rec.Meaning = fmt.Sprintf("the pod bridge of %s: every pod veth on this node is a port of it", owner)
	case name == "kube-ipvs0":
		rec.Meaning = "kube-proxy IPVS mode's dummy device: it holds every Service address so the node accepts them; kept down and NOARP so it never answers ARP"
	case name == "kube-dummy-if":
		rec.Meaning = "kube-router's dummy device holding the Service addresses for its IPVS proxy"
	case name == "nodelocaldns":
		rec.Meaning = "NodeLocal DNSCache's dummy device (169.254.25.10)"
	case strings.HasPrefix(name, "tun"):
		if n, ok := x.nodeByTun[name]; ok {
			rec.Refs.Node = n.Name
			rec.Meaning = fmt.Sprintf("kube-router's IPIP tunnel to node %s (%s); name = tun- + sha256 of the IP without dots", n.Name, n.IP)
		} else {
			rec.Meaning = "a kube-router IPIP tunnel to a node not in the given cluster"
		}
	case strings.HasPrefix(name, "veth"):
		m := "host end of a pod veth (bridge CNI: veth + 8 random hex)"
		if l.Master != "" {
			m += ", port of " + l.Master
		}
		rec.Meaning = m
	case name == "eth0" && l.Veth != nil && l.Veth.PeerRemote:
		rec.Meaning = fmt.Sprintf("a pod's eth0: one end of the veth whose host end is ifindex %d in the host namespace", l.Veth.PeerIndex)
	case name == "docker0":
		rec.Meaning = "Docker's default bridge (not used by Kubernetes pods)"
	default:
		rec.Kind = Unknown
		rec.Meaning = fmt.Sprintf("device %s (%s) not placed in cluster terms", name, l.Kind)
	}
}

func vethPeer(l *route.Link) int {
	if l.Veth == nil {
		return 0
	}
	return l.Veth.PeerIndex
}

func (x *netIndex) explainAddrLine(rec *Record, l *route.Link, f []string) {
	if len(f) < 2 {
		return
	}
	pf, err := netip.ParsePrefix(f[1])
	if err != nil {
		if a, err2 := netip.ParseAddr(f[1]); err2 == nil {
			pf = netip.PrefixFrom(a, a.BitLen())
		} else {
			rec.Meaning = "not understood: bad address " + f[1]
			return
		}
	}
	a := pf.Addr()
	x.nodeRef(rec)
	switch {
	case a.IsLoopback():
		rec.Kind, rec.Meaning = KindLoopback, "loopback address"
	case a.Is6() && a.IsLinkLocalUnicast():
		rec.Kind = KindIPv6LinkLocal
		rec.Meaning = "IPv6 link-local address the kernel derives from the MAC"
		if a == netip.MustParseAddr("fe80::ecee:eeff:feee:eeee") {
			rec.Meaning += " (ee:ee:ee:ee:ee:ee: a Calico host veth)"
		}
	case x.svcByIP[a] != nil:
		s := x.svcByIP[a]
		rec.Kind, rec.Refs.Service = KindServiceAddress, svcRef(s)
		rec.Meaning = fmt.Sprintf("Service %s's address bound to %s (%s)", svcRef(s), l.Name, serviceDevOwner(l.Name))
	case l.Name == "kube-ipvs0" || l.Name == "kube-dummy-if":
		rec.Kind = KindServiceAddress
		rec.Meaning = fmt.Sprintf("a Service address on %s, not a Service of the given objects", l.Name)
	case x.nodeByIP[a] != nil:
		n := x.nodeByIP[a]
		rec.Kind, rec.Refs.Node = KindNodeAddress, n.Name
		rec.Meaning = fmt.Sprintf("node %s's IP (InternalIP) in subnet %s", n.Name, n.Subnet)
	case x.nodeOfTunnelIP(a) != nil:
		n := x.nodeOfTunnelIP(a)
		rec.Kind, rec.Refs.Node = KindTunnelAddress, n.Name
		rec.Meaning = fmt.Sprintf("node %s's tunnel address on %s (from its pod block %s, /32 so no connected route)", n.Name, l.Name, n.PodCIDR)
	case x.podByIP[a] != nil:
		p := x.podByIP[a]
		rec.Kind, rec.Refs.Pod, rec.Refs.Node = KindPodAddress, podRef(p), p.Spec.NodeName
		rec.Meaning = fmt.Sprintf("pod %s's IP on its %s", podRef(p), l.Name)
	case x.nodeOfPodIP(a) != nil && a == cluster.BridgeGateway(x.nodeOfPodIP(a).PodCIDR):
		n := x.nodeOfPodIP(a)
		rec.Kind, rec.Refs.Node = KindPodGateway, n.Name
		rec.Meaning = fmt.Sprintf("node %s's pod gateway: first address of its pod CIDR %s, the pods' default gateway on the bridge %s", n.Name, n.PodCIDR, l.Name)
	case x.nodeOfPodIP(a) != nil && (strings.HasPrefix(l.Name, "flannel.") || l.Name == "tunl0" || l.Name == "vxlan.calico"):
		n := x.nodeOfPodIP(a)
		rec.Kind, rec.Refs.Node = KindTunnelAddress, n.Name
		rec.Meaning = fmt.Sprintf("node %s's tunnel address on %s, taken from its pod block %s", n.Name, l.Name, n.PodCIDR)
	default:
		rec.Kind = Unknown
		rec.Meaning = fmt.Sprintf("address %s on %s not placed in cluster terms", pf, l.Name)
		if x.c == nil {
			rec.Meaning = "no cluster given to place " + pf.String()
		}
	}
}
