package oracle

import (
	"fmt"
	"math/rand/v2"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Scenario is one random test case: a proxier configuration and a sequence of states,
// each of which is synced in turn (the first sync is full, the others partial).
type Scenario struct {
	Seed   uint64
	Config Config
	States []State
}

// Generator makes random but valid Services and EndpointSlices, following the
// conventions of upstream's proxier tests: node "test-node" at 192.168.0.2, pod IPs in
// 10.0.0.0/8, ClusterIPs in 172.30.0.0/16, external IPs in 192.168.99.0/24, LoadBalancer
// IPs in 1.2.3.0/24 and 5.6.7.0/24, clients in 203.0.113.0/24; for IPv6 node 2001:db8::2,
// pods fd00:10::/64, ClusterIPs fd00:172:30::/112, external IPs 2001:db8:99::/64,
// LoadBalancer IPs 2001:db8:1:2::/64, clients 2001:db8:113::/64.
type Generator struct {
	r    *rand.Rand
	v6   bool
	opts GenOptions
	used map[string]bool // allocated ClusterIPs, node ports, etc.
	// Large makes the scenario exceed kube-proxy's large-cluster threshold (1000 endpoints).
	Large bool
}

// GenOptions narrow what the generator makes, to explore past a known disagreement.
// The zero value generates everything.
type GenOptions struct {
	// NoZeroOrForeignNodePortCIDRs leaves out nodePortAddresses 0.0.0.0/0 and lists
	// without a CIDR of the proxier's family.
	NoZeroOrForeignNodePortCIDRs bool
	// OnlyVisibleSliceChanges makes every EndpointSlice carry all of its Service's ports
	// and at least one endpoint, so that adding, removing or replacing one always changes
	// the endpoints kube-proxy derives.
	OnlyVisibleSliceChanges bool
	// NoTopology leaves out the node zone and all topology hints.
	NoTopology bool
}

// NewScenario returns scenario seed: a configuration and syncs states.
func NewScenario(seed uint64, syncs int, opts GenOptions) Scenario {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	g := &Generator{r: r, used: map[string]bool{}, Large: r.IntN(12) == 0, opts: opts, v6: r.IntN(4) == 0}
	sc := Scenario{Seed: seed, Config: g.config()}
	st := g.state(1 + r.IntN(10))
	sc.States = append(sc.States, st)
	for i := 1; i < syncs; i++ {
		st = g.mutate(st)
		sc.States = append(sc.States, st)
	}
	return sc
}

func (g *Generator) pick(n int) int        { return g.r.IntN(n) }
func (g *Generator) chance(p float64) bool { return g.r.Float64() < p }

func (g *Generator) config() Config {
	c := Config{
		NodeName: "test-node",
		NodeIP:   netip.MustParseAddr("192.168.0.2"),
		Family:   corev1.IPv4Protocol,
		HostAddrs: []netip.Prefix{
			netip.MustParsePrefix("192.168.0.2/24"),
			netip.MustParsePrefix("192.168.1.2/24"),
			netip.MustParsePrefix("127.0.0.1/8"),
		},
		MasqueradeBit:      14,
		LocalhostNodePorts: g.chance(0.7),
		MasqueradeAll:      g.chance(0.2),
	}
	switch g.pick(5) {
	case 0:
		c.Detector = DetectNone
	case 1:
		c.Detector, c.DetectorValue = DetectBridgeInterface, "cbr0"
	case 2:
		c.Detector, c.DetectorValue = DetectInterfacePrefix, "veth"
	default:
		c.Detector, c.DetectorValue = DetectClusterCIDR, "10.0.0.0/8"
		if g.v6 {
			c.DetectorValue = "fd00:10::/64"
		}
	}
	if g.v6 {
		c.Family = corev1.IPv6Protocol
		c.NodeIP = netip.MustParseAddr("2001:db8::2")
		c.HostAddrs = []netip.Prefix{
			netip.MustParsePrefix("2001:db8::2/64"),
			netip.MustParsePrefix("2001:db8:1::2/64"),
			netip.MustParsePrefix("::1/128"),
			netip.MustParsePrefix("192.168.0.2/24"),
		}
	}
	if g.chance(0.6) && !g.opts.NoTopology {
		c.NodeZone = "zone-a"
	}
	if g.chance(0.2) {
		c.MasqueradeBit = int32(g.pick(31) + 1)
	}
	switch g.pick(10) {
	case 0:
		c.NodePortAddresses = []string{"192.168.0.0/24"}
	case 1:
		c.NodePortAddresses = []string{"192.168.0.0/16", "127.0.0.0/8"}
	case 2:
		c.NodePortAddresses = []string{"0.0.0.0/0"}
	case 3:
		c.NodePortAddresses = []string{"2001:db8::/64"} // no CIDR of the family
	case 4:
		c.NodePortAddresses = []string{"192.168.1.0/24", "2001:db8::/64"}
	}
	if g.v6 && len(c.NodePortAddresses) > 0 {
		c.NodePortAddresses = [][]string{{"2001:db8::/64"}, {"2001:db8::/32", "::1/128"}, {"::/0"}, {"192.168.0.0/24"}, {"2001:db8:1::/64", "192.168.0.0/24"}}[g.pick(5)]
	}
	if g.opts.NoZeroOrForeignNodePortCIDRs && len(c.NodePortAddresses) > 0 && (c.NodePortAddresses[0] == "0.0.0.0/0" || c.NodePortAddresses[0] == "::/0" ||
		(!g.v6 && c.NodePortAddresses[0] == "2001:db8::/64") || (g.v6 && c.NodePortAddresses[0] == "192.168.0.0/24")) {
		c.NodePortAddresses = nil
	}
	c.ConntrackTCPLiberal = g.chance(0.2)
	c.NFAcct = g.chance(0.5)
	return c
}

func (g *Generator) unique(kind string, f func() string) string {
	for range 100000 {
		v := f()
		if !g.used[kind+v] {
			g.used[kind+v] = true
			return v
		}
	}
	panic(fmt.Sprintf("oracle generator: no unused %q value left (scenario too large)", kind))
}

func (g *Generator) clusterIP() string {
	if g.v6 {
		return g.unique("cip", func() string { return fmt.Sprintf("fd00:172:30::%x", 1+g.pick(0xfffe)) })
	}
	return g.unique("cip", func() string { return fmt.Sprintf("172.30.%d.%d", g.pick(256), 1+g.pick(254)) })
}

func (g *Generator) nodePort() int32 {
	var p int32
	g.unique("np", func() string { p = int32(30000 + g.pick(2768)); return fmt.Sprint(p) })
	return p
}

var protocols = []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}

// state makes n services with their slices.
func (g *Generator) state(n int) State {
	var st State
	for i := 0; i < n; i++ {
		svc := g.service()
		st.Services = append(st.Services, svc)
		st.EndpointSlices = append(st.EndpointSlices, g.slices(svc)...)
	}
	if g.Large {
		svc := g.service()
		for svc.Spec.Type == corev1.ServiceTypeExternalName || svc.Spec.ClusterIP == corev1.ClusterIPNone {
			svc = g.service()
		}
		svc.Spec.Type = corev1.ServiceTypeClusterIP
		svc.Spec.ClusterIP, svc.Spec.ClusterIPs = g.clusterIP(), nil
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
		svc.Spec.Ports = svc.Spec.Ports[:1]
		svc.Spec.Ports[0].NodePort = 0
		svc.Spec.ExternalIPs, svc.Spec.ExternalTrafficPolicy = nil, ""
		svc.Spec.HealthCheckNodePort = 0
		svc.Status = corev1.ServiceStatus{}
		st.Services = append(st.Services, svc)
		st.EndpointSlices = append(st.EndpointSlices, g.bigSlices(svc, 1001+g.pick(200))...)
	}
	return st
}

func (g *Generator) service() *corev1.Service {
	ns := []string{"ns1", "ns2", "default"}[g.pick(3)]
	name := g.unique("svc/"+ns, func() string { return fmt.Sprintf("svc%d", g.pick(1000)) })
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{Kind: "Service", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
	}
	s := &svc.Spec
	switch k := g.pick(20); {
	case k < 1:
		s.Type = corev1.ServiceTypeExternalName
		s.ExternalName = "example.com"
		s.Ports = []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(80)}}
		return svc
	case k < 8:
		s.Type = corev1.ServiceTypeClusterIP
	case k < 13:
		s.Type = corev1.ServiceTypeNodePort
	default:
		s.Type = corev1.ServiceTypeLoadBalancer
	}
	if s.Type == corev1.ServiceTypeClusterIP && g.chance(0.1) {
		s.ClusterIP = corev1.ClusterIPNone
	} else {
		s.ClusterIP = g.clusterIP()
	}
	s.ClusterIPs = []string{s.ClusterIP}
	s.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
	if g.v6 {
		s.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
	}
	single := corev1.IPFamilyPolicySingleStack
	s.IPFamilyPolicy = &single

	nports := 1 + g.pick(3)
	used := map[string]bool{}
	for i := 0; i < nports; i++ {
		p := corev1.ServicePort{Protocol: protocols[g.pick(len(protocols))]}
		if nports > 1 || g.chance(0.5) {
			p.Name = fmt.Sprintf("p%d", i)
		}
		for {
			p.Port = int32([]int{80, 443, 53, 8080, 9000 + g.pick(100)}[g.pick(5)])
			if k := fmt.Sprint(p.Protocol, p.Port); !used[k] {
				used[k] = true
				break
			}
		}
		p.TargetPort = intstr.FromInt32(p.Port + int32(g.pick(2))*1000)
		if s.Type == corev1.ServiceTypeNodePort || s.Type == corev1.ServiceTypeLoadBalancer {
			p.NodePort = g.nodePort()
		}
		s.Ports = append(s.Ports, p)
	}
	if s.ClusterIP != corev1.ClusterIPNone && g.chance(0.2) {
		for i := 0; i <= g.pick(2); i++ {
			s.ExternalIPs = append(s.ExternalIPs, g.unique("eip", func() string {
				if g.v6 {
					return fmt.Sprintf("2001:db8:99::%x", 1+g.pick(254))
				}
				return fmt.Sprintf("192.168.99.%d", 1+g.pick(254))
			}))
		}
	}
	external := s.Type == corev1.ServiceTypeNodePort || s.Type == corev1.ServiceTypeLoadBalancer
	if external {
		s.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
		if g.chance(0.4) {
			s.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		}
	}
	if g.chance(0.2) {
		l := corev1.ServiceInternalTrafficPolicyLocal
		s.InternalTrafficPolicy = &l
	} else {
		c := corev1.ServiceInternalTrafficPolicyCluster
		s.InternalTrafficPolicy = &c
	}
	if g.chance(0.25) {
		s.SessionAffinity = corev1.ServiceAffinityClientIP
		t := int32(10800)
		if g.chance(0.5) {
			t = int32(1 + g.pick(86400))
		}
		s.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: &t}}
	} else {
		s.SessionAffinity = corev1.ServiceAffinityNone
	}
	if s.Type == corev1.ServiceTypeLoadBalancer {
		if s.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
			s.HealthCheckNodePort = g.nodePort()
		}
		if g.chance(0.4) {
			s.LoadBalancerSourceRanges = []string{"203.0.113.0/25"}
			if g.chance(0.5) {
				s.LoadBalancerSourceRanges = append(s.LoadBalancerSourceRanges, "192.168.0.0/16")
			}
			if g.v6 {
				s.LoadBalancerSourceRanges = []string{"2001:db8:113::/64"}
				if g.chance(0.5) {
					s.LoadBalancerSourceRanges = append(s.LoadBalancerSourceRanges, "2001:db8::/48")
				}
			}
		}
		for i := 0; i < g.pick(3); i++ {
			ip := g.unique("lb", func() string {
				if g.v6 {
					return fmt.Sprintf("2001:db8:1:2::%x", 1+g.pick(0xfffe))
				}
				return fmt.Sprintf("%d.%d.%d.%d", []int{1, 5}[g.pick(2)], []int{2, 6}[g.pick(2)], 3+g.pick(2), 1+g.pick(254))
			})
			ing := corev1.LoadBalancerIngress{IP: ip}
			switch g.pick(3) {
			case 1:
				m := corev1.LoadBalancerIPModeVIP
				ing.IPMode = &m
			case 2:
				m := corev1.LoadBalancerIPModeProxy
				ing.IPMode = &m
			}
			svc.Status.LoadBalancer.Ingress = append(svc.Status.LoadBalancer.Ingress, ing)
		}
	}
	return svc
}

func boolp(b bool) *bool { return &b }

// slices makes 0..2 EndpointSlices for svc.
func (g *Generator) slices(svc *corev1.Service) []*discoveryv1.EndpointSlice {
	var out []*discoveryv1.EndpointSlice
	n := g.pick(3)
	if g.chance(0.15) {
		n = 0
	}
	for i := 0; i < n; i++ {
		out = append(out, g.slice(svc, i, 1+g.pick(5)))
	}
	return out
}

func (g *Generator) bigSlices(svc *corev1.Service, n int) []*discoveryv1.EndpointSlice {
	var out []*discoveryv1.EndpointSlice
	for i := 0; n > 0; i++ {
		k := min(n, 100)
		out = append(out, g.slice(svc, i, k))
		n -= k
	}
	return out
}

func (g *Generator) slice(svc *corev1.Service, idx, neps int) *discoveryv1.EndpointSlice {
	eps := &discoveryv1.EndpointSlice{
		TypeMeta: metav1.TypeMeta{Kind: "EndpointSlice", APIVersion: "discovery.k8s.io/v1"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: svc.Namespace,
			Name:      g.unique("eps/"+svc.Namespace, func() string { return fmt.Sprintf("%s-%c%d", svc.Name, 'a'+rune(g.pick(26)), idx) }),
			Labels:    map[string]string{discoveryv1.LabelServiceName: svc.Name},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	if g.v6 {
		eps.AddressType = discoveryv1.AddressTypeIPv6
	}
	for _, sp := range svc.Spec.Ports {
		if g.chance(0.05) && !g.opts.OnlyVisibleSliceChanges {
			continue // a port the slice does not carry
		}
		name, proto := sp.Name, sp.Protocol
		port := sp.TargetPort.IntVal
		eps.Ports = append(eps.Ports, discoveryv1.EndpointPort{Name: &name, Protocol: &proto, Port: &port})
	}
	zoneHints, nodeHints := g.chance(0.25), g.chance(0.15)
	if g.opts.NoTopology {
		zoneHints, nodeHints = false, false
	}
	for i := 0; i < neps; i++ {
		ip := g.unique("ep", func() string {
			if g.v6 {
				return fmt.Sprintf("fd00:10::%x:%x", g.pick(4), 1+g.pick(0xfffe))
			}
			return fmt.Sprintf("10.%d.%d.%d", g.pick(4), g.pick(256), 1+g.pick(254))
		})
		ep := discoveryv1.Endpoint{Addresses: []string{ip}}
		switch g.pick(6) {
		case 0: // ready, conditions unset beyond ready
			ep.Conditions = discoveryv1.EndpointConditions{Ready: boolp(true)}
		case 1: // terminating but serving
			ep.Conditions = discoveryv1.EndpointConditions{Ready: boolp(false), Serving: boolp(true), Terminating: boolp(true)}
		case 2: // terminating, not serving
			ep.Conditions = discoveryv1.EndpointConditions{Ready: boolp(false), Serving: boolp(false), Terminating: boolp(true)}
		case 3: // not ready
			ep.Conditions = discoveryv1.EndpointConditions{Ready: boolp(false), Serving: boolp(false), Terminating: boolp(false)}
		case 4: // nil conditions: ready by API convention
		default:
			ep.Conditions = discoveryv1.EndpointConditions{Ready: boolp(true), Serving: boolp(true), Terminating: boolp(false)}
		}
		switch g.pick(3) {
		case 0:
			n := "test-node"
			ep.NodeName = &n
		case 1:
			n := fmt.Sprintf("node%d", 1+g.pick(3))
			ep.NodeName = &n
		}
		if g.chance(0.5) {
			z := []string{"zone-a", "zone-b"}[g.pick(2)]
			ep.Zone = &z
		}
		if zoneHints || nodeHints {
			ep.Hints = &discoveryv1.EndpointHints{}
			if zoneHints && g.chance(0.95) {
				ep.Hints.ForZones = []discoveryv1.ForZone{{Name: []string{"zone-a", "zone-b"}[g.pick(2)]}}
			}
			if nodeHints && g.chance(0.95) {
				ep.Hints.ForNodes = []discoveryv1.ForNode{{Name: []string{"test-node", "node1"}[g.pick(2)]}}
			}
		}
		eps.Endpoints = append(eps.Endpoints, ep)
	}
	return eps
}

// mutate returns a new state derived from st: services and slices added, removed or
// changed. Objects are copied before changing so that earlier states stay intact.
func (g *Generator) mutate(st State) State {
	next := State{
		Services:       append([]*corev1.Service(nil), st.Services...),
		EndpointSlices: append([]*discoveryv1.EndpointSlice(nil), st.EndpointSlices...),
	}
	for k := 0; k <= g.pick(3); k++ {
		switch g.pick(6) {
		case 0: // add a service with endpoints
			svc := g.service()
			next.Services = append(next.Services, svc)
			next.EndpointSlices = append(next.EndpointSlices, g.slices(svc)...)
		case 1: // remove a service (its slices stay or go)
			if len(next.Services) > 0 {
				i := g.pick(len(next.Services))
				svc := next.Services[i]
				next.Services = append(next.Services[:i:i], next.Services[i+1:]...)
				if g.chance(0.7) {
					next.EndpointSlices = dropSlicesOf(next.EndpointSlices, svc)
				}
			}
		case 2: // remove a slice
			if len(next.EndpointSlices) > 0 {
				i := g.pick(len(next.EndpointSlices))
				next.EndpointSlices = append(next.EndpointSlices[:i:i], next.EndpointSlices[i+1:]...)
			}
		case 3: // replace a slice's endpoints
			if len(next.EndpointSlices) > 0 && len(next.Services) > 0 {
				i := g.pick(len(next.EndpointSlices))
				old := next.EndpointSlices[i]
				for _, svc := range next.Services {
					if svc.Namespace == old.Namespace && svc.Name == old.Labels[discoveryv1.LabelServiceName] && svc.Spec.Type != corev1.ServiceTypeExternalName {
						n := g.pick(5)
						if g.opts.OnlyVisibleSliceChanges {
							n++
						}
						ns := g.slice(svc, 0, n)
						ns.Name = old.Name
						next.EndpointSlices[i] = ns
						break
					}
				}
			}
		case 4: // add a slice to a service
			if len(next.Services) > 0 {
				svc := next.Services[g.pick(len(next.Services))]
				if svc.Spec.Type != corev1.ServiceTypeExternalName {
					next.EndpointSlices = append(next.EndpointSlices, g.slice(svc, 9, 1+g.pick(4)))
				}
			}
		case 5: // change a service's affinity or traffic policy
			if len(next.Services) > 0 {
				i := g.pick(len(next.Services))
				svc := next.Services[i].DeepCopy()
				if svc.Spec.Type == corev1.ServiceTypeExternalName {
					break
				}
				if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
					svc.Spec.SessionAffinity, svc.Spec.SessionAffinityConfig = corev1.ServiceAffinityNone, nil
				} else {
					t := int32(60)
					svc.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
					svc.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: &t}}
				}
				next.Services[i] = svc
			}
		}
	}
	return next
}

func dropSlicesOf(in []*discoveryv1.EndpointSlice, svc *corev1.Service) []*discoveryv1.EndpointSlice {
	var out []*discoveryv1.EndpointSlice
	for _, s := range in {
		if s.Namespace == svc.Namespace && s.Labels[discoveryv1.LabelServiceName] == svc.Name {
			continue
		}
		out = append(out, s)
	}
	return out
}
