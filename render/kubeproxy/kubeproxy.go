// Package kubeproxy holds what kube-proxy's iptables, IPVS and nftables modes share, mirroring
// kubernetes/kubernetes pkg/proxy (serviceport.go, endpointslicecache.go, topology.go,
// util/localdetector.go) at v1.35: the per-family view of Services as service ports, the
// endpoints of each service port, CategorizeEndpoints, the local-traffic detector, and the
// family/IP handling (ParseIPSloppy-compatible).
//
// Everything here is pure data: no OS access, no printing.
package kubeproxy

import (
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/knet-dev/knet/cluster"
)

// DefaultVersion is the kube-proxy release the renderers follow by default.
const DefaultVersion = "1.35"

// Family is an IP family, spelled as in Service.spec.ipFamilies (the CLI token too).
type Family string

// IP families.
const (
	IPv4 Family = "IPv4"
	IPv6 Family = "IPv6"
)

// FamilyOf returns a's family.
func FamilyOf(a netip.Addr) Family {
	if a.Is4() || a.Is4In6() {
		return IPv4
	}
	return IPv6
}

// ServicePortName is kube-proxy's proxy.ServicePortName.
type ServicePortName struct {
	Namespace, Name, Port string
	Protocol              corev1.Protocol
}

// String is `ns/name` plus `:port` when the port is named: the text hashed into chain names
// and written into comments.
func (n ServicePortName) String() string {
	s := n.Namespace + "/" + n.Name
	if n.Port != "" {
		s += ":" + n.Port
	}
	return s
}

// ServicePort is what kube-proxy keeps of one port of one Service for one family
// (BaseServicePortInfo).
type ServicePort struct {
	Name       ServicePortName
	NameString string // Name.String(), cached
	// Protocol is the lower-case protocol ("tcp", "udp", "sctp").
	Protocol            string
	ClusterIP           netip.Addr
	Port                int
	NodePort            int
	HealthCheckNodePort int
	ExternalIPs         []netip.Addr
	LoadBalancerVIPs    []netip.Addr
	SourceRanges        []netip.Prefix
	AffinityClientIP    bool
	StickySeconds       int
	ExternalPolicyLocal bool
	InternalPolicyLocal bool
	// Service is the object the port comes from.
	Service *corev1.Service
}

// ExternallyAccessible reports whether the port has NodePort, LoadBalancer or external IPs.
func (s *ServicePort) ExternallyAccessible() bool {
	return s.NodePort != 0 || len(s.LoadBalancerVIPs) > 0 || len(s.ExternalIPs) > 0
}

// UsesClusterEndpoints reports whether the port ever sends traffic by the Cluster policy.
func (s *ServicePort) UsesClusterEndpoints() bool {
	return !s.InternalPolicyLocal || s.ExternallyAccessible()
}

// UsesLocalEndpoints reports whether the port ever sends traffic by the Local policy.
func (s *ServicePort) UsesLocalEndpoints() bool {
	return s.InternalPolicyLocal || (s.ExternalPolicyLocal && s.ExternallyAccessible())
}

// Endpoint is kube-proxy's BaseEndpointInfo.
type Endpoint struct {
	IP                          netip.Addr
	Port                        int
	Local                       bool
	Ready, Serving, Terminating bool
	ZoneHints, NodeHints        []string
	// NodeName and TargetRef name the endpoint's node and pod when the slice says so.
	NodeName string
	Pod      string
	// Chain is a renderer's per-endpoint chain name, set by the renderer that uses it.
	Chain string
	str   string
}

// String is `IP:port` (`[IP]:port` for IPv6), as net.JoinHostPort.
func (e *Endpoint) String() string {
	if e.str == "" {
		e.str = joinHostPort(e.IP, e.Port)
	}
	return e.str
}

func joinHostPort(ip netip.Addr, port int) string {
	if ip.Is6() {
		return "[" + ip.String() + "]:" + strconv.Itoa(port)
	}
	return ip.String() + ":" + strconv.Itoa(port)
}

// ParseAddrSloppy parses an IP like k8s.io/utils/net.ParseIPSloppy: IPv4 octets with leading
// zeros are decimal ("172.30.0.041" is 172.30.0.41). IPv4-mapped IPv6 is unmapped.
func ParseAddrSloppy(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.Addr{}, false
		}
		return a.Unmap(), true
	}
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return netip.Addr{}, false
	}
	var b [4]byte
	for i, p := range parts {
		if p == "" || len(p) > 3 {
			return netip.Addr{}, false
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 255 {
			return netip.Addr{}, false
		}
		b[i] = byte(n)
	}
	return netip.AddrFrom4(b), true
}

// ParsePrefixSloppy parses a CIDR like ParseCIDRSloppy and returns it masked (the network),
// as net.ParseCIDR does: "203.0.113.000/025" is 203.0.113.0/25.
func ParsePrefixSloppy(s string) (netip.Prefix, bool) {
	i := strings.IndexByte(s, '/')
	if i < 0 {
		return netip.Prefix{}, false
	}
	a, ok := ParseAddrSloppy(s[:i])
	if !ok {
		return netip.Prefix{}, false
	}
	bits, err := strconv.Atoi(s[i+1:])
	if err != nil {
		return netip.Prefix{}, false
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}, false
	}
	return p, true
}

// clusterIPByFamily mirrors proxyutil.GetClusterIPByFamily.
func clusterIPByFamily(fam Family, svc *corev1.Service) string {
	if len(svc.Spec.IPFamilies) == 0 {
		if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
			return ""
		}
		a, ok := ParseAddrSloppy(svc.Spec.ClusterIP)
		if ok && FamilyOf(a) == fam {
			return svc.Spec.ClusterIP
		}
		return ""
	}
	for i, f := range svc.Spec.IPFamilies {
		if Family(f) == fam && i < len(svc.Spec.ClusterIPs) {
			return svc.Spec.ClusterIPs[i]
		}
	}
	return ""
}

// ServicePorts returns the service ports kube-proxy of family fam builds from services
// (ServiceChangeTracker.serviceToServiceMap + newBaseServiceInfo), sorted by their name
// string then protocol: kube-proxy iterates a Go map, knet uses this order so output is
// deterministic. Services without a ClusterIP of the family, headless ones and ExternalName
// ones are skipped, as upstream.
func ServicePorts(services []*corev1.Service, fam Family) []*ServicePort {
	var out []*ServicePort
	for _, svc := range services {
		if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone || svc.Spec.Type == corev1.ServiceTypeExternalName {
			continue
		}
		cip := clusterIPByFamily(fam, svc)
		if cip == "" {
			continue
		}
		clusterIP, ok := ParseAddrSloppy(cip)
		if !ok {
			continue
		}
		externallyAccessible := svc.Spec.Type == corev1.ServiceTypeLoadBalancer || svc.Spec.Type == corev1.ServiceTypeNodePort ||
			(svc.Spec.Type == corev1.ServiceTypeClusterIP && len(svc.Spec.ExternalIPs) > 0)
		etpLocal := externallyAccessible && svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
		itpLocal := svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal
		sticky := 0
		affinity := svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP
		if affinity {
			sticky = int(corev1.DefaultClientIPServiceAffinitySeconds)
			if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
				sticky = int(*c.ClientIP.TimeoutSeconds)
			}
		}
		var eips []netip.Addr
		for _, s := range svc.Spec.ExternalIPs {
			if a, ok := ParseAddrSloppy(s); ok && FamilyOf(a) == fam {
				eips = append(eips, a)
			}
		}
		var ranges []netip.Prefix
		zero := false
		for _, s := range svc.Spec.LoadBalancerSourceRanges {
			p, ok := ParsePrefixSloppy(strings.TrimSpace(s))
			if !ok || FamilyOf(p.Addr()) != fam {
				continue
			}
			if p.Bits() == 0 {
				zero = true
			}
			ranges = append(ranges, p)
		}
		if zero {
			ranges = nil
		}
		var vips []netip.Addr
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			if ing.IP == "" || (ing.IPMode != nil && *ing.IPMode != corev1.LoadBalancerIPModeVIP) {
				continue
			}
			if a, ok := ParseAddrSloppy(ing.IP); ok && FamilyOf(a) == fam {
				vips = append(vips, a)
			}
		}
		hcnp := 0
		if svc.Spec.Type == corev1.ServiceTypeLoadBalancer && etpLocal {
			hcnp = int(svc.Spec.HealthCheckNodePort)
		}
		for _, p := range svc.Spec.Ports {
			proto := p.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			name := ServicePortName{Namespace: svc.Namespace, Name: svc.Name, Port: p.Name, Protocol: proto}
			out = append(out, &ServicePort{
				Name: name, NameString: name.String(), Protocol: strings.ToLower(string(proto)),
				ClusterIP: clusterIP, Port: int(p.Port), NodePort: int(p.NodePort), HealthCheckNodePort: hcnp,
				ExternalIPs: eips, LoadBalancerVIPs: vips, SourceRanges: ranges,
				AffinityClientIP: affinity, StickySeconds: sticky,
				ExternalPolicyLocal: etpLocal, InternalPolicyLocal: itpLocal, Service: svc,
			})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].NameString != out[j].NameString {
			return out[i].NameString < out[j].NameString
		}
		return out[i].Protocol < out[j].Protocol
	})
	return out
}

// Endpoints returns, for each service port, its endpoints as kube-proxy's EndpointSliceCache
// builds them for family fam on node nodeName: slices are tied to their Service by the
// kubernetes.io/service-name label and must have the family's addressType; slice ports match
// service ports by name and protocol; the first address of each endpoint is used; duplicates
// (same IP:port in two slices) keep a local copy if there is one; the list is sorted by
// `IP:port` string, which drives probabilities.
func Endpoints(slices []*discoveryv1.EndpointSlice, ports []*ServicePort, fam Family, nodeName string) map[*ServicePort][]*Endpoint {
	byName := make(map[ServicePortName]*ServicePort, len(ports))
	for _, sp := range ports {
		byName[sp.Name] = sp
	}
	addrType := discoveryv1.AddressTypeIPv4
	if fam == IPv6 {
		addrType = discoveryv1.AddressTypeIPv6
	}
	lists := map[*ServicePort][]*Endpoint{}
	for _, es := range slices {
		svcName := es.Labels[discoveryv1.LabelServiceName]
		if svcName == "" || es.AddressType != addrType {
			continue
		}
		for _, port := range es.Ports {
			if port.Name == nil || port.Port == nil || *port.Port == 0 {
				continue
			}
			proto := corev1.ProtocolTCP
			if port.Protocol != nil {
				proto = *port.Protocol
			}
			sp := byName[ServicePortName{Namespace: es.Namespace, Name: svcName, Port: *port.Name, Protocol: proto}]
			if sp == nil {
				continue
			}
			list := lists[sp]
			for _, ep := range es.Endpoints {
				if len(ep.Addresses) == 0 {
					continue
				}
				ip, ok := ParseAddrSloppy(ep.Addresses[0])
				if !ok || FamilyOf(ip) != fam {
					continue
				}
				e := &Endpoint{
					IP: ip, Port: int(*port.Port),
					Local:       ep.NodeName != nil && nodeName != "" && *ep.NodeName == nodeName,
					Ready:       ep.Conditions.Ready == nil || *ep.Conditions.Ready,
					Serving:     ep.Conditions.Serving == nil || *ep.Conditions.Serving,
					Terminating: ep.Conditions.Terminating != nil && *ep.Conditions.Terminating,
				}
				if ep.NodeName != nil {
					e.NodeName = *ep.NodeName
				}
				if ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" {
					e.Pod = ep.TargetRef.Namespace + "/" + ep.TargetRef.Name
					if ep.TargetRef.Namespace == "" {
						e.Pod = es.Namespace + "/" + ep.TargetRef.Name
					}
				}
				if ep.Hints != nil {
					for _, z := range ep.Hints.ForZones {
						e.ZoneHints = append(e.ZoneHints, z.Name)
					}
					for _, n := range ep.Hints.ForNodes {
						e.NodeHints = append(e.NodeHints, n.Name)
					}
				}
				e.str = joinHostPort(e.IP, e.Port)
				list = append(list, e)
			}
			lists[sp] = list
		}
	}
	out := make(map[*ServicePort][]*Endpoint, len(lists))
	for sp, list := range lists {
		// Sort by IP:port; among duplicates (the same IP:port in two slices) v1.35's
		// EndpointSliceCache keeps the first copy unless a later one is local ("we favor a
		// true value [of isLocal]"; 1.36 changed this to favour non-terminating copies).
		sort.SliceStable(list, func(i, j int) bool { return list[i].str < list[j].str })
		dedup := list[:0]
		for i := 0; i < len(list); {
			j := i + 1
			for j < len(list) && list[j].str == list[i].str {
				j++
			}
			keep := list[i]
			for k := i + 1; k < j; k++ {
				if list[k].Local {
					keep = list[k]
				}
			}
			dedup = append(dedup, keep)
			i = j
		}
		out[sp] = dedup
	}
	return out
}

// CategorizeEndpoints mirrors pkg/proxy/topology.go CategorizeEndpoints: the endpoints for the
// Cluster policy (ready, topology-filtered, else serving+terminating), for the Local policy
// (local ready, else local serving+terminating), all endpoints reachable from this node
// (sorted by string; upstream builds them from a map) and whether any usable endpoint exists.
// zone is this node's topology.kubernetes.io/zone label.
func CategorizeEndpoints(eps []*Endpoint, sp *ServicePort, nodeName, zone string) (clusterEPs, localEPs, allReachable []*Endpoint, hasAny bool) {
	if len(eps) == 0 {
		return
	}
	topologyMode := ""
	useServingTerminating := false
	if sp.UsesClusterEndpoints() {
		topologyMode = topologyModeFromHints(eps, nodeName, zone)
		for _, ep := range eps {
			if ep.Ready && availableForTopology(ep, topologyMode, nodeName, zone) {
				clusterEPs = append(clusterEPs, ep)
			}
		}
		if len(clusterEPs) == 0 {
			for _, ep := range eps {
				if ep.Serving && ep.Terminating {
					clusterEPs = append(clusterEPs, ep)
				}
			}
		}
		if len(clusterEPs) > 0 {
			hasAny = true
		}
	}
	if !sp.UsesLocalEndpoints() {
		allReachable = clusterEPs
		return
	}
	var localReady, localST bool
	for _, ep := range eps {
		if ep.Ready {
			hasAny = true
			if ep.Local {
				localReady = true
			}
		} else if ep.Serving && ep.Terminating {
			hasAny = true
			if ep.Local {
				localST = true
			}
		}
	}
	if localReady {
		for _, ep := range eps {
			if ep.Local && ep.Ready {
				localEPs = append(localEPs, ep)
			}
		}
	} else if localST {
		useServingTerminating = true
		for _, ep := range eps {
			if ep.Local && ep.Serving && ep.Terminating {
				localEPs = append(localEPs, ep)
			}
		}
	}
	if !sp.UsesClusterEndpoints() {
		allReachable = localEPs
		return
	}
	if topologyMode == "" && !useServingTerminating {
		allReachable = clusterEPs
		return
	}
	seen := map[string]*Endpoint{}
	for _, ep := range clusterEPs {
		seen[ep.String()] = ep
	}
	for _, ep := range localEPs {
		seen[ep.String()] = ep
	}
	for _, ep := range seen {
		allReachable = append(allReachable, ep)
	}
	sort.Slice(allReachable, func(i, j int) bool { return allReachable[i].String() < allReachable[j].String() })
	return
}

func topologyModeFromHints(eps []*Endpoint, nodeName, zone string) string {
	hasReady, forNode, allNode, forZone, allZone := false, false, true, false, true
	for _, ep := range eps {
		if !ep.Ready {
			continue
		}
		hasReady = true
		if len(ep.NodeHints) == 0 {
			allNode = false
		} else if slices.Contains(ep.NodeHints, nodeName) {
			forNode = true
		}
		if len(ep.ZoneHints) == 0 {
			allZone = false
		} else if slices.Contains(ep.ZoneHints, zone) {
			forZone = true
		}
	}
	if !hasReady {
		return ""
	}
	if allNode && forNode {
		return "PreferSameNode"
	}
	if allZone && forZone {
		return "PreferSameZone"
	}
	return ""
}

func availableForTopology(ep *Endpoint, mode, nodeName, zone string) bool {
	switch mode {
	case "":
		return true
	case "PreferSameNode":
		return slices.Contains(ep.NodeHints, nodeName)
	case "PreferSameZone":
		return slices.Contains(ep.ZoneHints, zone)
	}
	return false
}

// NodeZone returns the topology.kubernetes.io/zone label of node nodeName in objs.
func NodeZone(objs cluster.Objects, nodeName string) string {
	for _, n := range objs.Nodes {
		if n.Name == nodeName {
			return n.Labels[corev1.LabelTopologyZone]
		}
	}
	return ""
}

// NodeIPs returns node nodeName's addresses from its status (InternalIP first, then
// ExternalIP), as kube-proxy's node IP detection prefers them, parsed.
func NodeIPs(objs cluster.Objects, nodeName string) []netip.Addr {
	var out []netip.Addr
	for _, n := range objs.Nodes {
		if n.Name != nodeName {
			continue
		}
		for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP} {
			for _, a := range n.Status.Addresses {
				if a.Type != t {
					continue
				}
				if ip, ok := ParseAddrSloppy(a.Address); ok && !slices.Contains(out, ip) {
					out = append(out, ip)
				}
			}
		}
	}
	return out
}
