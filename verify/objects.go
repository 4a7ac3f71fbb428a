package verify

import (
	"net/netip"
	"strings"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane/netfilter"
	"github.com/knet-dev/knet/render/kubeproxy"
	"github.com/knet-dev/knet/render/kubeproxy/iptables"
)

// objectIndex names the Kubernetes object behind kube-proxy's chains and addresses.
type objectIndex struct {
	chains map[string]string         // KUBE-SVC-/SVL-/EXT-/FW-/SEP- chain -> "Service ns/name:port"
	vips   map[netip.AddrPort]string // ClusterIP/external/LB ip:port -> "Service ns/name:port"
	ips    map[netip.Addr]string     // service IP -> "Service ns/name"
	eps    map[netip.AddrPort]string // endpoint ip:port -> "Service ns/name:port"
}

func newObjectIndex(c *cluster.Cluster, nodeName string) *objectIndex {
	ix := &objectIndex{chains: map[string]string{}, vips: map[netip.AddrPort]string{},
		ips: map[netip.Addr]string{}, eps: map[netip.AddrPort]string{}}
	if c == nil {
		return ix
	}
	for _, fam := range []kubeproxy.Family{kubeproxy.IPv4, kubeproxy.IPv6} {
		ports := kubeproxy.ServicePorts(c.Objects.Services, fam)
		if len(ports) == 0 {
			continue
		}
		for _, sp := range ports {
			obj := "Service " + sp.NameString
			h := iptables.PortProtoHash(sp.NameString, sp.Protocol)
			for _, p := range []string{iptables.PrefixSVC, iptables.PrefixSVL, iptables.PrefixEXT, iptables.PrefixFW} {
				ix.chains[p+h] = obj
			}
			for _, a := range append(append([]netip.Addr{sp.ClusterIP}, sp.ExternalIPs...), sp.LoadBalancerVIPs...) {
				if a.IsValid() {
					ix.vips[netip.AddrPortFrom(a, uint16(sp.Port))] = obj
					ix.ips[a] = "Service " + sp.Name.Namespace + "/" + sp.Name.Name
				}
			}
		}
		for sp, eps := range kubeproxy.Endpoints(c.Objects.EndpointSlices, ports, fam, nodeName) {
			obj := "Service " + sp.NameString
			for _, ep := range eps {
				ix.chains[iptables.EndpointChainName(sp.NameString, sp.Protocol, ep.String())] = obj
				ix.eps[netip.AddrPortFrom(ep.IP, uint16(ep.Port))] = obj
			}
		}
	}
	return ix
}

// chainObject names the object behind chain ch of table t: from the index, else from the
// chain's kube-proxy comment (`-m comment --comment "ns/name:port ..."`), else the node.
func (v *verifier) chainObject(t *netfilter.Table, ch string) string {
	if o, ok := v.names().chains[ch]; ok {
		return o
	}
	if t != nil {
		if c := t.Chain(ch); c != nil {
			for _, r := range c.Rules {
				for _, m := range r.Matches {
					if cm, ok := m.(*netfilter.Comment); ok && strings.Contains(cm.Text, "/") {
						return "Service " + strings.Fields(cm.Text)[0]
					}
				}
			}
		}
	}
	return v.nodeObject()
}
