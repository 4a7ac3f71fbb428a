package nftables

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/knet-dev/knet/cluster"
)

// servicePortName is kube-proxy's ServicePortName: "ns/name" plus ":port" when the port
// has a name.
type servicePortName struct {
	Namespace, Name, Port string
}

func (n servicePortName) String() string {
	s := n.Namespace + "/" + n.Name
	if n.Port != "" {
		s += ":" + n.Port
	}
	return s
}

// servicePort is what kube-proxy keeps of one port of one Service for one IP family
// (pkg/proxy/serviceport.go BaseServicePortInfo).
type servicePort struct {
	name          servicePortName
	protocol      string // lower case
	clusterIP     netip.Addr
	port          int
	nodePort      int
	externalIPs   []netip.Addr
	lbVIPs        []netip.Addr
	sourceRanges  []netip.Prefix
	affinity      bool
	stickySeconds int
	hcNodePort    int
	etpLocal      bool
	itpLocal      bool
	// fingerprint identifies the port's rendered state, to detect changes between syncs.
	fingerprint string
}

func (s *servicePort) externallyAccessible() bool {
	return s.nodePort != 0 || len(s.lbVIPs) > 0 || len(s.externalIPs) > 0
}
func (s *servicePort) usesClusterEndpoints() bool {
	return !s.itpLocal || s.externallyAccessible()
}
func (s *servicePort) usesLocalEndpoints() bool {
	return s.itpLocal || (s.etpLocal && s.externallyAccessible())
}

// endpoint is kube-proxy's BaseEndpointInfo.
type endpoint struct {
	// base is the endpoint's chain name base for its service port (computed once).
	base                        string
	ip                          netip.Addr
	port                        int
	local                       bool
	ready, serving, terminating bool
	zoneHints                   map[string]bool
}

// String is "IP:port" ("[v6]:port"), the key kube-proxy sorts endpoints by.
func (e endpoint) String() string {
	return netip.AddrPortFrom(e.ip, uint16(e.port)).String()
}

// parseIPSloppy parses an address the way kube-proxy's ParseIPSloppy does: IPv4 parts
// with leading zeros are read as decimal ("172.30.0.041" is 172.30.0.41).
func parseIPSloppy(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return netip.Addr{}, false
	}
	var b [4]byte
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 255 {
			return netip.Addr{}, false
		}
		b[i] = byte(n)
	}
	return netip.AddrFrom4(b), true
}

func parseCIDRSloppy(s string) (netip.Prefix, bool) {
	s = strings.TrimSpace(s)
	addr, bits, ok := strings.Cut(s, "/")
	if !ok {
		return netip.Prefix{}, false
	}
	a, ok := parseIPSloppy(addr)
	if !ok {
		return netip.Prefix{}, false
	}
	n, err := strconv.Atoi(bits)
	if err != nil {
		return netip.Prefix{}, false
	}
	p, err := a.Prefix(n)
	if err != nil {
		return netip.Prefix{}, false
	}
	return p, true
}

func familyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// buildServicePorts turns Services into kube-proxy's service ports for one family, in a
// deterministic order (by ServicePortName string, then protocol).
func buildServicePorts(services []*corev1.Service, fam Family) []*servicePort {
	var out []*servicePort
	for _, svc := range services {
		if svc.Spec.Type == corev1.ServiceTypeExternalName {
			continue
		}
		var cip netip.Addr
		ips := svc.Spec.ClusterIPs
		if len(ips) == 0 && svc.Spec.ClusterIP != "" {
			ips = []string{svc.Spec.ClusterIP}
		}
		for _, s := range ips {
			if s == "" || s == corev1.ClusterIPNone {
				continue
			}
			if a, ok := parseIPSloppy(s); ok && familyOf(a) == fam {
				cip = a
				break
			}
		}
		if !cip.IsValid() {
			continue
		}
		etpLocal := (svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer) &&
			svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
		itpLocal := svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal
		var extIPs, vips []netip.Addr
		for _, s := range svc.Spec.ExternalIPs {
			if a, ok := parseIPSloppy(s); ok && familyOf(a) == fam {
				extIPs = append(extIPs, a)
			}
		}
		if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
			for _, ing := range svc.Status.LoadBalancer.Ingress {
				if ing.IP == "" || (ing.IPMode != nil && *ing.IPMode == corev1.LoadBalancerIPModeProxy) {
					continue
				}
				if a, ok := parseIPSloppy(ing.IP); ok && familyOf(a) == fam {
					vips = append(vips, a)
				}
			}
		}
		var ranges []netip.Prefix
		if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
			for _, s := range svc.Spec.LoadBalancerSourceRanges {
				if p, ok := parseCIDRSloppy(s); ok && familyOf(p.Addr()) == fam {
					ranges = append(ranges, p)
				}
			}
		}
		affinity := svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP
		sticky := 0
		if affinity {
			sticky = 10800
			if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
				sticky = int(*c.ClientIP.TimeoutSeconds)
			}
		}
		for _, p := range svc.Spec.Ports {
			proto := strings.ToLower(string(p.Protocol))
			if proto == "" {
				proto = "tcp"
			}
			sp := &servicePort{
				name:          servicePortName{svc.Namespace, svc.Name, p.Name},
				protocol:      proto,
				clusterIP:     cip,
				port:          int(p.Port),
				nodePort:      int(p.NodePort),
				externalIPs:   extIPs,
				lbVIPs:        vips,
				sourceRanges:  ranges,
				affinity:      affinity,
				stickySeconds: sticky,
				etpLocal:      etpLocal,
				itpLocal:      itpLocal,
			}
			if svc.Spec.Type == corev1.ServiceTypeLoadBalancer && etpLocal {
				sp.hcNodePort = int(svc.Spec.HealthCheckNodePort)
			}
			sp.fingerprint = fmt.Sprintf("%v", *sp)
			out = append(out, sp)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].name.String(), out[j].name.String()
		if a != b {
			return a < b
		}
		return out[i].protocol < out[j].protocol
	})
	return out
}

// buildEndpoints returns each service port's endpoints (kube-proxy's EndpointSliceCache):
// matched by port name and protocol, one per address:port with a local copy winning, sorted
// by "IP:port" as strings.
func buildEndpoints(slices []*discoveryv1.EndpointSlice, ports []*servicePort, fam Family, nodeName string) map[*servicePort][]endpoint {
	type key struct {
		ns, svc, port, proto string
	}
	byKey := make(map[key]*servicePort, len(ports))
	for _, sp := range ports {
		byKey[key{sp.name.Namespace, sp.name.Name, sp.name.Port, sp.protocol}] = sp
	}
	sets := make(map[*servicePort]map[string]endpoint)
	wantType := discoveryv1.AddressTypeIPv4
	if fam == IPv6 {
		wantType = discoveryv1.AddressTypeIPv6
	}
	// Slices in a stable order, so a duplicate address resolves the same way every time.
	ordered := append([]*discoveryv1.EndpointSlice(nil), slices...)
	sort.SliceStable(ordered, func(i, j int) bool {
		if ordered[i].Namespace != ordered[j].Namespace {
			return ordered[i].Namespace < ordered[j].Namespace
		}
		return ordered[i].Name < ordered[j].Name
	})
	for _, sl := range ordered {
		if sl.AddressType != wantType {
			continue
		}
		svcName := sl.Labels[discoveryv1.LabelServiceName]
		if svcName == "" {
			continue
		}
		for _, p := range sl.Ports {
			if p.Port == nil {
				continue
			}
			name := ""
			if p.Name != nil {
				name = *p.Name
			}
			proto := "tcp"
			if p.Protocol != nil {
				proto = strings.ToLower(string(*p.Protocol))
			}
			sp := byKey[key{sl.Namespace, svcName, name, proto}]
			if sp == nil {
				continue
			}
			if sets[sp] == nil {
				sets[sp] = map[string]endpoint{}
			}
			for _, ep := range sl.Endpoints {
				if len(ep.Addresses) == 0 {
					continue
				}
				a, ok := parseIPSloppy(ep.Addresses[0])
				if !ok {
					continue
				}
				e := endpoint{
					ip:          a,
					port:        int(*p.Port),
					local:       ep.NodeName != nil && *ep.NodeName == nodeName,
					ready:       ep.Conditions.Ready == nil || *ep.Conditions.Ready,
					serving:     ep.Conditions.Serving == nil || *ep.Conditions.Serving,
					terminating: ep.Conditions.Terminating != nil && *ep.Conditions.Terminating,
				}
				if ep.Hints != nil && len(ep.Hints.ForZones) > 0 {
					e.zoneHints = map[string]bool{}
					for _, z := range ep.Hints.ForZones {
						e.zoneHints[z.Name] = true
					}
				}
				k := e.String()
				if _, exists := sets[sp][k]; !exists || e.local {
					sets[sp][k] = e
				}
			}
		}
	}
	out := make(map[*servicePort][]endpoint, len(sets))
	for sp, set := range sets {
		eps := make([]endpoint, 0, len(set))
		for _, e := range set {
			eps = append(eps, e)
		}
		sort.Slice(eps, func(i, j int) bool { return eps[i].String() < eps[j].String() })
		for i := range eps {
			eps[i].base = endpointBase(sp, eps[i])
		}
		out[sp] = eps
	}
	return out
}

// categorize is kube-proxy's CategorizeEndpoints (pkg/proxy/topology.go): which endpoints
// Cluster and Local policy use, all locally reachable ones, and whether any usable
// endpoint exists anywhere.
func categorize(eps []endpoint, sp *servicePort, zone string) (clusterEPs, localEPs, allReachable []endpoint, hasAny bool) {
	if len(eps) == 0 {
		return
	}
	if sp.usesClusterEndpoints() {
		useZone := topologyZone(eps, zone)
		for _, e := range eps {
			if e.ready && (!useZone || e.zoneHints[zone]) {
				clusterEPs = append(clusterEPs, e)
			}
		}
		if len(clusterEPs) == 0 {
			for _, e := range eps {
				if e.serving && e.terminating {
					clusterEPs = append(clusterEPs, e)
				}
			}
		}
		if len(clusterEPs) > 0 {
			hasAny = true
		}
	}
	if !sp.usesLocalEndpoints() {
		allReachable = clusterEPs
		return
	}
	var localReady, localST bool
	for _, e := range eps {
		if e.ready {
			hasAny = true
			if e.local {
				localReady = true
			}
		} else if e.serving && e.terminating {
			hasAny = true
			if e.local {
				localST = true
			}
		}
	}
	switch {
	case localReady:
		for _, e := range eps {
			if e.local && e.ready {
				localEPs = append(localEPs, e)
			}
		}
	case localST:
		for _, e := range eps {
			if e.local && e.serving && e.terminating {
				localEPs = append(localEPs, e)
			}
		}
	}
	if !sp.usesClusterEndpoints() {
		allReachable = localEPs
		return
	}
	seen := map[string]bool{}
	for _, e := range append(append([]endpoint(nil), clusterEPs...), localEPs...) {
		if !seen[e.String()] {
			seen[e.String()] = true
			allReachable = append(allReachable, e)
		}
	}
	sort.Slice(allReachable, func(i, j int) bool { return allReachable[i].String() < allReachable[j].String() })
	return
}

// topologyZone reports whether zone hints apply: every ready endpoint has zone hints and
// one of them is for this node's zone.
func topologyZone(eps []endpoint, zone string) bool {
	all, has := true, false
	for _, e := range eps {
		if !e.ready {
			continue
		}
		if len(e.zoneHints) == 0 {
			all = false
		} else if e.zoneHints[zone] {
			has = true
		}
	}
	return all && has
}

// objectsFamily picks the services and slices of the objects.
func objectsServices(objs cluster.Objects) []*corev1.Service { return objs.Services }
