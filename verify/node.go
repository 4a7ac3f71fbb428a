package verify

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane/route"
	"github.com/knet-dev/knet/format/iproute"
	"github.com/knet-dev/knet/render/kubeproxy/iptables"
)

// checkLeftovers: state another kube-proxy mode programmed that the configured mode does not
// clean (kube-proxy's --cleanup is needed when switching modes).
func checkLeftovers(v *verifier) {
	if v.c == nil {
		return
	}
	mode := v.c.Proxy.Mode
	if mode != cluster.ProxyIPTables {
		if at := natTable(v.actual); at != nil {
			var ev []string
			n := 0
			for _, c := range at.Chains {
				if strings.HasPrefix(c.Name, iptables.PrefixSVC) || strings.HasPrefix(c.Name, iptables.PrefixSEP) {
					if it := natTable(v.intent); it != nil && it.Chain(c.Name) != nil {
						continue
					}
					n++
					if len(ev) < maxEvidence {
						ev = append(ev, ":"+c.Name+" - [0:0]")
					}
				}
			}
			if n > 0 {
				v.add(Finding{Severity: SeverityWarning, Check: CheckLeftoverIPTables, Object: v.nodeObject(),
					Message:  fmt.Sprintf("%d KUBE-SVC/KUBE-SEP chains of kube-proxy's iptables mode remain on a %s-mode node", n, mode),
					Evidence: ev,
					Fix:      "run kube-proxy --cleanup once (or iptables -t nat -F and -X the KUBE-* chains), then restart kube-proxy"})
			}
		}
	}
	if mode != cluster.ProxyIPVS {
		var ev []string
		sev := SeverityWarning
		if v.actual.Net != nil && v.actual.Net.LinkByName(ipvsDummy) != nil {
			l := v.actual.Net.LinkByName(ipvsDummy)
			ev = append(ev, linkHeader(v.actual.Net, l.Name))
			for _, a := range linkAddrs(v.actual, ipvsDummy) {
				ev = append(ev, addrLine(a))
				sev = SeverityError // Service addresses are local: the node swallows their traffic
			}
		}
		svcs := ipvsServices(v.actual)
		for _, s := range svcs {
			if len(ev) >= maxEvidence {
				break
			}
			ev = append(ev, saveLines(s, nil, "")...)
		}
		if len(ev) > 0 {
			v.add(Finding{Severity: sev, Check: CheckLeftoverIPVS, Object: v.nodeObject(),
				Message:  fmt.Sprintf("IPVS mode leftovers on a %s-mode node (kube-ipvs0 and %d virtual services)", mode, len(svcs)),
				Evidence: ev,
				Fix:      "ip link del kube-ipvs0 && ipvsadm -C (or kube-proxy --cleanup), then restart kube-proxy"})
		}
	}
	if mode != cluster.ProxyNFTables && v.actual.NFTables != nil {
		for _, t := range kubeProxyTables(v.actual) {
			v.add(Finding{Severity: SeverityWarning, Check: CheckLeftoverNFTables, Object: v.nodeObject(),
				Message:  fmt.Sprintf("table %s %s of kube-proxy's nftables mode remains on a %s-mode node", t.Family, t.Name, mode),
				Evidence: []string{fmt.Sprintf("table %s %s {", t.Family, t.Name)},
				Fix:      fmt.Sprintf("nft delete table %s %s (or kube-proxy --cleanup)", t.Family, t.Name)})
		}
	}
}

func routeLine(s *route.Stack, r *route.Route) string {
	// as `ip route` prints it, trailing space included, without the newline
	return strings.TrimSuffix(iproute.FormatRoute(s, r, iproute.Options{}, r.Table != route.TableMain), "\n")
}

// ownerOf names the node whose pod block holds p.
func (v *verifier) ownerOf(p netip.Prefix) string {
	if v.c != nil {
		for _, n := range v.c.Nodes {
			if n.PodCIDR.IsValid() && n.PodCIDR.Overlaps(p) {
				return "Node " + n.Name
			}
		}
	}
	return v.nodeObject()
}

// checkPodRoutes: every pod block route of the intent (remote blocks via the tunnel or the
// peer, the local block's blackhole) is in the snapshot, through the same device and gateway.
func checkPodRoutes(v *verifier) {
	if v.c == nil || !v.c.PodCIDR.IsValid() || v.intent.Net == nil {
		return
	}
	actual := v.actual.Net
	for _, ir := range v.intent.Net.Routes {
		d := ir.Dst
		if !d.IsValid() || d.Bits() < v.c.PodCIDR.Bits() || !v.c.PodCIDR.Contains(d.Addr()) {
			continue
		}
		if d.IsSingleIP() {
			v.checkPodRoute(ir)
			continue
		}
		var ar *route.Route
		if actual != nil {
			for _, r := range actual.Routes {
				if r.Table == ir.Table && r.Dst == d && r.Type == ir.Type {
					ar = r
					break
				}
			}
		}
		want := routeLine(v.intent.Net, ir)
		if ar == nil {
			if ir.Type == route.RouteType("blackhole") {
				v.add(Finding{Severity: SeverityError, Check: CheckRouteMissingBlackhole, Object: v.nodeObject(),
					Message:  fmt.Sprintf("the local block %s has no blackhole route: traffic to unallocated pod IPs of this node leaks to the default route", d),
					Evidence: []string{"expected: " + want},
					Fix:      "ip route add " + strings.TrimSpace(want) + " (the CNI agent, e.g. calico-node's BIRD, programs it: check it runs)"})
				continue
			}
			v.add(Finding{Severity: SeverityError, Check: CheckRouteMissingPodBlock, Object: v.ownerOf(d),
				Message:  fmt.Sprintf("no route to the pod block %s: pods there are unreachable from this node", d),
				Evidence: []string{"expected: " + want},
				Fix:      "ip route add " + strings.TrimSpace(want) + " (the CNI's routing agent programs it: check its BGP/overlay sessions)"})
			continue
		}
		if ar.Dev != ir.Dev || ar.Gw != ir.Gw || !slices.EqualFunc(ar.MultiPath, ir.MultiPath, func(a, b route.NextHop) bool { return a.Dev == b.Dev && a.Gw == b.Gw }) {
			v.add(Finding{Severity: SeverityError, Check: CheckRouteWrongDevice, Object: v.ownerOf(d),
				Message:  fmt.Sprintf("pod block %s is routed via %s %s, the %s mode needs %s %s", d, ar.Gw, ar.Dev, v.c.CNI.Plugin+" "+cluster.CNIPlugin(v.c.CNI.Mode), ir.Gw, ir.Dev),
				Evidence: []string{routeLine(actual, ar), "expected: " + want},
				Fix:      "ip route replace " + strings.TrimSpace(want)})
		}
	}
}

// linkHeader is the first line `ip link show dev NAME` prints for a link of s.
func linkHeader(s *route.Stack, name string) string {
	var b bytes.Buffer
	if err := iproute.PrintLinks(&b, s, iproute.Options{Dev: name}); err != nil {
		return name
	}
	first, _, _ := strings.Cut(b.String(), "\n")
	return first
}

// checkPodRoute: a local pod's host route (`10.0.7.1 dev caliXXXX scope link`) is in the
// snapshot through the same device; without it the pod is unreachable from outside.
func (v *verifier) checkPodRoute(ir *route.Route) {
	if v.actual.Net == nil {
		return
	}
	var ar *route.Route
	for _, r := range v.actual.Net.Routes {
		if r.Table == ir.Table && r.Dst == ir.Dst && r.Type == ir.Type {
			ar = r
			break
		}
	}
	obj := v.podObject(ir.Dst.Addr())
	want := routeLine(v.intent.Net, ir)
	switch {
	case ar == nil:
		v.add(Finding{Severity: SeverityError, Check: CheckRouteMissingPodRoute, Object: obj,
			Message:  fmt.Sprintf("no host route to the local pod %s: traffic to it from other nodes and Services is not delivered", ir.Dst.Addr()),
			Evidence: []string{"expected: " + want},
			Fix:      "ip route add " + strings.TrimSpace(want) + " (the CNI plugin adds it at pod creation: recreate the pod)"})
	case ar.Dev != ir.Dev || ar.Gw != ir.Gw:
		v.add(Finding{Severity: SeverityError, Check: CheckRouteWrongDevice, Object: obj,
			Message:  fmt.Sprintf("the local pod %s is routed via %s, its interface is %s", ir.Dst.Addr(), ar.Dev, ir.Dev),
			Evidence: []string{routeLine(v.actual.Net, ar), "expected: " + want},
			Fix:      "ip route replace " + strings.TrimSpace(want)})
	}
}

// podObject names the pod with IP a on this node.
func (v *verifier) podObject(a netip.Addr) string {
	for _, p := range v.c.PodsOn(v.node) {
		for _, ip := range p.Status.PodIPs {
			if ip.IP == a.String() {
				return "Pod " + p.Namespace + "/" + p.Name
			}
		}
		if p.Status.PodIP == a.String() {
			return "Pod " + p.Namespace + "/" + p.Name
		}
	}
	return v.nodeObject()
}

func isTunnel(l *route.Link) bool { return l.IPIP != nil || l.VXLAN != nil }

// checkTunnelMTU: every tunnel device of the intent (tunl0, vxlan.calico, flannel.1, ...)
// exists with the intent's MTU; a bigger MTU fragments or black-holes full-size packets.
func checkTunnelMTU(v *verifier) {
	if v.intent.Net == nil {
		return
	}
	for _, il := range v.intent.Net.Links {
		if !isTunnel(il) {
			continue
		}
		var al *route.Link
		if v.actual.Net != nil {
			al = v.actual.Net.LinkByName(il.Name)
		}
		if al == nil {
			v.add(Finding{Severity: SeverityError, Check: CheckLinkMissingTunnel, Object: v.nodeObject(),
				Message:  fmt.Sprintf("tunnel device %s is missing", il.Name),
				Evidence: []string{fmt.Sprintf("expected: %s: mtu %d", iproute.LinkName(il), il.MTU)},
				Fix:      "restart the CNI agent; it creates the tunnel device"})
			continue
		}
		if al.MTU != il.MTU {
			v.add(Finding{Severity: SeverityError, Check: CheckMTUMismatch, Object: v.nodeObject(),
				Message:  fmt.Sprintf("%s has MTU %d, the CNI sets %d (uplink MTU %d minus the encapsulation overhead)", il.Name, al.MTU, il.MTU, v.uplinkMTU()),
				Evidence: []string{linkHeader(v.actual.Net, al.Name), "expected: mtu " + strconv.Itoa(il.MTU)},
				Fix:      fmt.Sprintf("ip link set dev %s mtu %d", il.Name, il.MTU)})
		}
	}
}

func (v *verifier) uplinkMTU() int {
	if v.c != nil && v.c.CNI.MTU != 0 {
		return v.c.CNI.MTU
	}
	return 1500
}

func sysctlLine(k, val string) string {
	return "net." + strings.ReplaceAll(k, "/", ".") + " = " + val
}

// checkSysctls: ip_forward must be 1 (error); strict rp_filter (1) on all, a tunnel or a pod
// interface drops the asymmetric paths tunnels and Service NAT create (warning).
func checkSysctls(v *verifier) {
	sc := v.actual.Sysctls
	if sc == nil {
		return
	}
	if val, ok := sc["ipv4/ip_forward"]; ok && val == "0" {
		v.add(Finding{Severity: SeverityError, Check: CheckSysctlIPForward, Object: v.nodeObject(),
			Message:  "IPv4 forwarding is off: the node routes no pod or Service traffic",
			Evidence: []string{sysctlLine("ipv4/ip_forward", val)},
			Fix:      "sysctl -w net.ipv4.ip_forward=1 (and persist it in /etc/sysctl.d)"})
	}
	keys := make([]string, 0, len(sc))
	for k := range sc {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		dev, ok := strings.CutPrefix(k, "ipv4/conf/")
		if !ok {
			continue
		}
		dev, ok = strings.CutSuffix(dev, "/rp_filter")
		if !ok || sc[k] != "1" || !v.asymmetric(dev) {
			continue
		}
		v.add(Finding{Severity: SeverityWarning, Check: CheckSysctlRPFilter, Object: v.nodeObject(),
			Message:  fmt.Sprintf("strict reverse-path filtering on %s: replies over a tunnel or a different interface than the request are dropped", dev),
			Evidence: []string{sysctlLine(k, "1")},
			Fix:      fmt.Sprintf("sysctl -w net.ipv4.conf.%s.rp_filter=2 (loose), as kubeadm and the CNIs expect", dev)})
	}
}

// asymmetric reports whether strict rp_filter on dev matters: "all", a tunnel or a pod link.
func (v *verifier) asymmetric(dev string) bool {
	if dev == "all" {
		return true
	}
	if v.actual.Net == nil {
		return false
	}
	l := v.actual.Net.LinkByName(dev)
	if l == nil {
		return false
	}
	return isTunnel(l) || l.Veth != nil || strings.HasPrefix(dev, "cali") || strings.HasPrefix(dev, "veth") || l.Bridge != nil
}

// checkConntrack: nf_conntrack_count above 90% of nf_conntrack_max (new flows get dropped at
// 100%: "nf_conntrack: table full, dropping packet").
func checkConntrack(v *verifier) {
	cs, ok1 := v.actual.Sysctls["netfilter/nf_conntrack_count"]
	ms, ok2 := v.actual.Sysctls["netfilter/nf_conntrack_max"]
	if !ok1 || !ok2 {
		return
	}
	count, err1 := strconv.Atoi(cs)
	maxv, err2 := strconv.Atoi(ms)
	if err1 != nil || err2 != nil || maxv <= 0 || count*10 <= maxv*9 {
		return
	}
	v.add(Finding{Severity: SeverityWarning, Check: CheckConntrackNearFull, Object: v.nodeObject(),
		Message:  fmt.Sprintf("conntrack table is %d%% full (%d of %d): new connections will be dropped when it fills", count*100/maxv, count, maxv),
		Evidence: []string{sysctlLine("netfilter/nf_conntrack_count", cs), sysctlLine("netfilter/nf_conntrack_max", ms)},
		Fix:      "raise net.netfilter.nf_conntrack_max (kube-proxy's conntrack.maxPerCore) or find the connection leak"})
}
