package ipvs

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/knet-dev/knet/cluster"
	dpipvs "github.com/knet-dev/knet/dataplane/ipvs"
	"github.com/knet-dev/knet/dataplane/netfilter"
	"github.com/knet-dev/knet/dataplane/route"
	"github.com/knet-dev/knet/format/iptablessave"
	"github.com/knet-dev/knet/render/kubeproxy"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func ptr[T any](v T) *T { return &v }

func service(ns, name, clusterIP string, f func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: clusterIP, ClusterIPs: []string{clusterIP},
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}}}
	f(s)
	return s
}

func slice(ns, svc string, port int32, portName string, proto corev1.Protocol, eps ...[2]string) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc + "-abc",
		Labels: map[string]string{discoveryv1.LabelServiceName: svc}}, AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{{Name: ptr(portName), Port: ptr(port), Protocol: ptr(proto)}}}
	for _, e := range eps {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{e[0]}, NodeName: ptr(e[1]),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr(true), Serving: ptr(true), Terminating: ptr(false)}})
	}
	return es
}

// TestNodePortIPv4 is upstream's TestNodePortIPv4 case 1 (pkg/proxy/ipvs/proxier_test.go, via
// reference/kube-proxy.md §2): a NodePort Service gives a ClusterIP and a node-IP virtual
// server, both rr with the one endpoint at weight 1.
func TestNodePortIPv4(t *testing.T) {
	objs := cluster.Objects{
		Services: []*corev1.Service{service("ns1", "svc1", "10.20.30.41", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.Ports = []corev1.ServicePort{{Name: "p80", Port: 80, Protocol: corev1.ProtocolTCP, NodePort: 3001, TargetPort: intstr.FromInt(80)}}
		})},
		EndpointSlices: []*discoveryv1.EndpointSlice{slice("ns1", "svc1", 80, "p80", corev1.ProtocolTCP, [2]string{"10.180.0.1", "other"})},
	}
	res, err := Render(objs, DefaultOptions("test-node", netip.MustParseAddr("100.101.102.103")))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range res.IPVS.Services {
		for _, d := range s.Dests {
			got = append(got, fmt.Sprintf("%s %s -> %s w%d %s", s, s.Scheduler, d.AddrPort(), d.Weight, d.Forward))
		}
	}
	want := []string{
		"tcp 10.20.30.41:80 rr -> 10.180.0.1:80 w1 masq",
		"tcp 100.101.102.103:3001 rr -> 10.180.0.1:80 w1 masq",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("virtual servers (-want +got):\n%s", diff)
	}
	members := func(name string) []string {
		var out []string
		s := res.IPSets.Get(name)
		for _, m := range s.Members {
			out = append(out, s.Key(m))
		}
		return out
	}
	for name, want := range map[string][]string{
		"KUBE-CLUSTER-IP":    {"10.20.30.41,tcp:80"},
		"KUBE-NODE-PORT-TCP": {"3001"},
		"KUBE-IPVS-IPS":      {"10.20.30.41"},
		"KUBE-LOOP-BACK":     nil,
	} {
		if diff := cmp.Diff(want, members(name)); diff != "" {
			t.Errorf("ipset %s (-want +got):\n%s", name, diff)
		}
	}
	if diff := cmp.Diff("[10.20.30.41/32]", fmt.Sprint(res.DummyAddrs)); diff != "" {
		t.Errorf("kube-ipvs0 addresses (-want +got):\n%s", diff)
	}
	if !strings.Contains(res.Notes[0], "deprecated since v1.35") {
		t.Errorf("first note %q does not carry the deprecation", res.Notes[0])
	}
}

// TestRestoreText checks the whole iptables-restore input for one ClusterIP Service with the
// ClusterCIDR detector, worked line by line from writeIptablesRules.
func TestRestoreText(t *testing.T) {
	objs := cluster.Objects{
		Services: []*corev1.Service{service("default", "web", "10.96.0.20", func(s *corev1.Service) {
			s.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}
		})},
		EndpointSlices: []*discoveryv1.EndpointSlice{slice("default", "web", 8080, "http", corev1.ProtocolTCP,
			[2]string{"10.244.1.5", "node-1"}, [2]string{"10.244.2.5", "node-2"})},
	}
	o := DefaultOptions("node-1", netip.MustParseAddr("192.168.1.11"))
	det, err := kubeproxy.NewLocalDetector(kubeproxy.LocalClusterCIDR, netip.MustParsePrefix("10.244.0.0/16"), "")
	if err != nil {
		t.Fatal(err)
	}
	o.LocalDetector = det
	res, err := Render(objs, o)
	if err != nil {
		t.Fatal(err)
	}
	want := `*nat
:KUBE-SERVICES - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-LOAD-BALANCER - [0:0]
:KUBE-MARK-MASQ - [0:0]
-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN
-A KUBE-POSTROUTING -m comment --comment "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose" -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE
-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst ! -s 10.244.0.0/16 -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT
-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT
-A KUBE-POSTROUTING -m mark ! --mark 0x00004000/0x00004000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x00004000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000
COMMIT
*filter
:KUBE-FORWARD - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-SOURCE-RANGES-FIREWALL - [0:0]
:KUBE-IPVS-FILTER - [0:0]
:KUBE-IPVS-OUT-FILTER - [0:0]
-A KUBE-SOURCE-RANGES-FIREWALL -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x00004000/0x00004000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-NODE-PORT -m comment --comment "Kubernetes health check node port" -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j ACCEPT
-A KUBE-IPVS-FILTER -m set --match-set KUBE-LOAD-BALANCER dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-CLUSTER-IP dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-EXTERNAL-IP dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-EXTERNAL-IP-LOCAL dst,dst -j RETURN
-A KUBE-IPVS-FILTER -m set --match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j RETURN
-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -m set --match-set KUBE-IPVS-IPS dst -j REJECT
COMMIT
`
	if diff := cmp.Diff(want, string(res.Restore)); diff != "" {
		t.Errorf("restore (-want +got):\n%s", diff)
	}
	// The local endpoint is in KUBE-LOOP-BACK for hairpin masquerade.
	lb := res.IPSets.Get("KUBE-LOOP-BACK")
	if len(lb.Members) != 1 || lb.Key(lb.Members[0]) != "10.244.1.5,tcp:8080,10.244.1.5" {
		t.Errorf("KUBE-LOOP-BACK = %v", lb.Members)
	}
	// iptables-restore (the netfilter model's reading of it) accepts the input on top of
	// the jumps' built-in chains.
	rs := &netfilter.Ruleset{}
	if err := iptablessave.Restore(rs, bytes.NewReader(res.Restore), "restore", iptablessave.RestoreOptions{NoFlush: true}); err != nil {
		t.Fatalf("restore rejected: %v", err)
	}
}

func richObjects() cluster.Objects {
	return cluster.Objects{
		Services: []*corev1.Service{
			service("default", "kubernetes", "10.96.0.1", func(s *corev1.Service) {
				s.Spec.Ports = []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP}}
			}),
			service("kube-system", "kube-dns", "10.96.0.10", func(s *corev1.Service) {
				s.Spec.Ports = []corev1.ServicePort{{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}, {Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP}}
			}),
			service("shop", "front", "10.96.100.7", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeLoadBalancer
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
				s.Spec.HealthCheckNodePort = 32000
				s.Spec.LoadBalancerSourceRanges = []string{"203.0.113.0/24"}
				s.Spec.ExternalIPs = []string{"198.51.100.10"}
				s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
				s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr(int32(10800))}}
				s.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, NodePort: 30080}}
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.168.10.240"}}
			}),
			service("shop", "stats", "10.96.100.8", func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeNodePort
				s.Spec.Ports = []corev1.ServicePort{{Name: "sctp", Port: 9999, Protocol: corev1.ProtocolSCTP, NodePort: 31999}}
			}),
		},
		EndpointSlices: []*discoveryv1.EndpointSlice{
			slice("default", "kubernetes", 6443, "https", corev1.ProtocolTCP, [2]string{"192.168.1.10", "cp"}),
			func() *discoveryv1.EndpointSlice {
				s := slice("kube-system", "kube-dns", 53, "dns", corev1.ProtocolUDP, [2]string{"10.244.1.3", "node-1"}, [2]string{"10.244.0.2", "cp"})
				s.Ports = append(s.Ports, discoveryv1.EndpointPort{Name: ptr("dns-tcp"), Port: ptr(int32(53)), Protocol: ptr(corev1.ProtocolTCP)})
				return s
			}(),
			slice("shop", "front", 8080, "http", corev1.ProtocolTCP, [2]string{"10.244.1.20", "node-1"}, [2]string{"10.244.2.20", "node-2"}, [2]string{"10.244.2.21", "node-2"}),
			slice("shop", "stats", 9999, "sctp", corev1.ProtocolSCTP, [2]string{"10.244.2.30", "node-2"}),
		},
	}
}

// TestGoldenSections renders a node with every kind of Service port and compares all three
// sections with testdata/rich.sections (regenerate with -update after checking the diff).
func TestGoldenSections(t *testing.T) {
	o := DefaultOptions("node-1", netip.MustParseAddr("192.168.1.11"))
	o.LocalAddresses = []netip.Addr{netip.MustParseAddr("192.168.1.11"), netip.MustParseAddr("10.244.1.0"), netip.MustParseAddr("127.0.0.1")}
	o.StrictARP = true
	res, err := Render(richObjects(), o)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteSections(&b, res, SectionOptions{}); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("testdata/rich.sections", b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("testdata/rich.sections")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), b.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// Facts worked from syncProxyRules, independent of the golden file:
	front := res.IPVS.Service(dpipvs.TCP, netip.MustParseAddr("192.168.10.240"), 80)
	if front == nil || front.Flags&dpipvs.FlagPersistent == 0 || front.Timeout != 10800 {
		t.Fatalf("LB virtual server missing or not persistent: %+v", front)
	}
	// ETP=Local: external virtual servers only get the local endpoint.
	if len(front.Dests) != 1 || front.Dests[0].Addr != netip.MustParseAddr("10.244.1.20") {
		t.Errorf("LB real servers = %v, want only the local 10.244.1.20", front.Dests)
	}
	// The ClusterIP keeps every endpoint.
	if c := res.IPVS.Service(dpipvs.TCP, netip.MustParseAddr("10.96.100.7"), 80); c == nil || len(c.Dests) != 3 {
		t.Errorf("ClusterIP real servers = %v, want 3", c)
	}
	// NodePorts on every local address but loopback, including the CNI's tunl0 address.
	for _, a := range []string{"192.168.1.11", "10.244.1.0"} {
		if res.IPVS.Service(dpipvs.TCP, netip.MustParseAddr(a), 30080) == nil {
			t.Errorf("no NodePort virtual server on %s", a)
		}
	}
	if res.IPVS.Service(dpipvs.TCP, netip.MustParseAddr("127.0.0.1"), 30080) != nil {
		t.Error("NodePort virtual server on loopback")
	}
	// Node IP 192.168.1.11 is outside the source range: the node may not reach the LB IP.
	if !strings.Contains(string(res.Restore), "-A KUBE-IPVS-OUT-FILTER -s 192.168.10.240 -m ipvs --vaddr 192.168.10.240 --vproto tcp --vport 80 -j DROP\n") {
		t.Error("missing KUBE-IPVS-OUT-FILTER drop for the LB IP")
	}
	if diff := cmp.Diff(map[string]string{
		"ipv4/vs/conntrack": "1", "ipv4/vs/expire_nodest_conn": "1", "ipv4/vs/expire_quiescent_template": "1",
		"ipv4/ip_forward": "1", "ipv4/conf/all/arp_ignore": "1", "ipv4/conf/all/arp_announce": "2",
	}, res.Sysctls); diff != "" {
		t.Errorf("sysctls (-want +got):\n%s", diff)
	}
	// References count the restore rules per set (KUBE-CLUSTER-IP: masquerade, accept, filter).
	if n := res.IPSets.Get("KUBE-CLUSTER-IP").References; n != 3 {
		t.Errorf("KUBE-CLUSTER-IP references = %d, want 3", n)
	}
	if err := iptablessave.Restore(&netfilter.Ruleset{}, bytes.NewReader(res.Restore), "restore", iptablessave.RestoreOptions{NoFlush: true}); err != nil {
		t.Fatalf("restore rejected: %v", err)
	}
	// kube-ipvs0 on a routing stack: a DOWN dummy with local routes for each VIP.
	st := route.New()
	if err := ApplyDummy(st, res, "node-1"); err != nil {
		t.Fatal(err)
	}
	l := st.LinkByName(DummyDevice)
	if l == nil || l.Up() || l.Flags&route.FlagNoARP == 0 {
		t.Errorf("kube-ipvs0 = %+v, want a DOWN NOARP dummy", l)
	}
}

func TestPresetClusterA(t *testing.T) {
	c, err := cluster.Preset("cluster-a")
	if err != nil {
		t.Skipf("preset cluster-a not loadable: %v", err)
	}
	n := c.Nodes[len(c.Nodes)-1]
	o := DefaultOptions(n.Name, n.IP)
	res, err := Render(c.Objects, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IPVS.Services) == 0 || len(res.DummyAddrs) == 0 {
		t.Fatalf("cluster-a rendered %d virtual servers and %d kube-ipvs0 addresses", len(res.IPVS.Services), len(res.DummyAddrs))
	}
	// Every ClusterIP Service of the family is a bound address.
	for _, s := range c.Objects.Services {
		if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == "None" {
			continue
		}
		a := netip.MustParseAddr(s.Spec.ClusterIP)
		if !a.Is4() {
			continue
		}
		found := false
		for _, p := range res.DummyAddrs {
			found = found || p.Addr() == a
		}
		if !found {
			t.Errorf("ClusterIP %s of %s/%s not on kube-ipvs0", a, s.Namespace, s.Name)
		}
	}
}

func TestIPv6Names(t *testing.T) {
	objs := cluster.Objects{Services: []*corev1.Service{{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "v6"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "fd00::a", ClusterIPs: []string{"fd00::a"},
			IPFamilies: []corev1.IPFamily{corev1.IPv6Protocol}, Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP}}}}}}
	o := DefaultOptions("node-1", netip.MustParseAddr("fd00:1::11"))
	o.Family = kubeproxy.IPv6
	res, err := Render(objs, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"KUBE-6-CLUSTER-IP", "KUBE-6-IPVS-IPS", "KUBE-6-LOAD-BALANCER-SOURCE-CID"} {
		if res.IPSets.Get(name) == nil {
			t.Errorf("no IPv6 set %s (names are KUBE-6-..., cut at 31 characters)", name)
		}
	}
	if !strings.Contains(string(res.Restore), "-A KUBE-SERVICES -s ::1/128 -j RETURN\n") {
		t.Error("IPv6 restore lacks the ::1/128 RETURN rule")
	}
	if fmt.Sprint(res.DummyAddrs) != "[fd00::a/128]" {
		t.Errorf("kube-ipvs0 addresses %v, want [fd00::a/128]", res.DummyAddrs)
	}
}
