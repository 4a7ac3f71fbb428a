package explain

import (
	"net"
	"net/netip"
	"strings"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane/route"
	corev1 "k8s.io/api/core/v1"
)

// firstLine returns the first non-blank line of data.
func firstLine(data []byte) string {
	for _, l := range splitLines(data) {
		if strings.TrimSpace(l) != "" {
			return l
		}
	}
	return ""
}

// LooksLikeIPAddr reports whether data is `ip addr` or `ip link` output ("N: NAME: <FLAGS>",
// or `-o` "N: NAME    inet ...").
func LooksLikeIPAddr(data []byte) bool {
	l := firstLine(data)
	idx, rest, ok := strings.Cut(l, ": ")
	if !ok || idx == "" || strings.Trim(idx, "0123456789") != "" {
		return false
	}
	return strings.Contains(rest, ": <") || strings.Contains(rest, "    inet") || strings.Contains(rest, "    link/")
}

// LooksLikeIPRule reports whether data is `ip rule` output ("PRIO:\tfrom ...").
func LooksLikeIPRule(data []byte) bool {
	l := firstLine(data)
	idx, rest, ok := strings.Cut(l, ":")
	if !ok || idx == "" || strings.Trim(idx, "0123456789") != "" {
		return false
	}
	rest = strings.TrimSpace(rest)
	return strings.HasPrefix(rest, "from ") || strings.HasPrefix(rest, "not ")
}

// LooksLikeCrictl reports whether data is `crictl ps` or `crictl pods` table output.
func LooksLikeCrictl(data []byte) bool {
	l := firstLine(data)
	return strings.HasPrefix(l, "CONTAINER ") || strings.HasPrefix(l, "POD ID ")
}

// LooksLikeBridgeFDB reports whether data is `bridge fdb show` output.
func LooksLikeBridgeFDB(data []byte) bool {
	f := strings.Fields(firstLine(data))
	if len(f) < 2 {
		return false
	}
	_, err := net.ParseMAC(f[0])
	return err == nil
}

// LooksLikeIPNeigh reports whether data is `ip neigh` output.
func LooksLikeIPNeigh(data []byte) bool {
	f := strings.Fields(firstLine(data))
	if len(f) < 3 {
		return false
	}
	if _, err := netip.ParseAddr(f[0]); err != nil {
		return false
	}
	return strings.Contains(firstLine(data), " lladdr ") || isNeighStateWord(f[len(f)-1])
}

func isNeighStateWord(s string) bool {
	switch route.NeighState(s) {
	case route.NeighIncomplete, route.NeighReachable, route.NeighStale, route.NeighDelay, route.NeighProbe,
		route.NeighFailed, route.NeighNoARP, route.NeighPermanent, route.NeighNone:
		return true
	}
	return false
}

// LooksLikeIPRoute reports whether data is `ip route` output: a first token that is a route
// type, "default", an address or a prefix, and not a neighbour line.
func LooksLikeIPRoute(data []byte) bool {
	if LooksLikeIPNeigh(data) {
		return false
	}
	f := strings.Fields(firstLine(data))
	if len(f) == 0 {
		return false
	}
	t := f[0]
	if _, ok := route.ParseRouteType(t); ok && len(f) > 1 {
		t = f[1]
	}
	if t == "default" {
		return true
	}
	if _, err := netip.ParsePrefix(t); err == nil {
		return true
	}
	_, err := netip.ParseAddr(t)
	return err == nil && len(f) > 1
}

// ClusterFromObjects builds the cluster view the iproute and crictl explainers need from
// loaded objects alone (`knet explain --objects`): nodes from the Node objects (InternalIP,
// spec.podCIDR), pods and Services as given. Subnets, gateways and tunnel addresses are then
// unknown. Nil objs gives nil.
func ClusterFromObjects(objs *cluster.Objects) *cluster.Cluster {
	if objs == nil {
		return nil
	}
	c := &cluster.Cluster{Objects: *objs}
	for _, n := range objs.Nodes {
		cn := cluster.Node{Name: n.Name, Interface: "eth0"}
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				if ip, err := netip.ParseAddr(a.Address); err == nil && !cn.IP.IsValid() {
					cn.IP = ip
				}
			}
		}
		if p, err := netip.ParsePrefix(n.Spec.PodCIDR); err == nil {
			cn.PodCIDR = p
		}
		c.Nodes = append(c.Nodes, cn)
	}
	return c
}
