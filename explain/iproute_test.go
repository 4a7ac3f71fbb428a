package explain

import (
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/knet-dev/knet/cluster"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// updateIPRoute is -update; registered only if no other test file of the package did.
var updateIPRoute = func() func() bool {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files")
	}
	return func() bool { return flag.Lookup("update").Value.String() == "true" }
}()

func testPod(ns, name, node, ip string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}}
}

func testSvc(ns, name, ip string) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{ClusterIP: ip, ClusterIPs: []string{ip}}}
}

// calicoCluster is cni.md §1.3's example: node A 172.31.1.1 (block 10.0.7.0/26), B
// 172.31.1.2 (10.0.8.0/26) in one subnet, C 172.31.17.3 (10.0.9.0/26) in another.
func calicoCluster() *cluster.Cluster {
	p, a := netip.MustParsePrefix, netip.MustParseAddr
	return &cluster.Cluster{
		Name: "calico-ipip", PodCIDR: p("10.0.0.0/16"), ServiceCIDR: p("10.96.0.0/12"),
		CNI: cluster.CNI{Plugin: cluster.CNICalico, Mode: "IPIPAlways"},
		Nodes: []cluster.Node{
			{Name: "node-a", IP: a("172.31.1.1"), Subnet: p("172.31.0.0/20"), Gateway: a("172.31.0.1"), PodCIDR: p("10.0.7.0/26"), TunnelIP: a("10.0.7.0"), Interface: "eth0", Zone: "z1"},
			{Name: "node-b", IP: a("172.31.1.2"), Subnet: p("172.31.0.0/20"), Gateway: a("172.31.0.1"), PodCIDR: p("10.0.8.0/26"), TunnelIP: a("10.0.8.0"), Interface: "eth0", Zone: "z1"},
			{Name: "node-c", IP: a("172.31.17.3"), Subnet: p("172.31.16.0/20"), Gateway: a("172.31.16.1"), PodCIDR: p("10.0.9.0/26"), TunnelIP: a("10.0.9.0"), Interface: "eth0", Zone: "z2"},
		},
		Objects: cluster.Objects{
			Pods: []*corev1.Pod{
				testPod("default", "busybox", "node-a", "10.0.7.1"),
				testPod("default", "nginx", "node-a", "10.0.7.2"),
				testPod("kube-system", "coredns-5dd5756b68-6n6lb", "node-b", "10.0.8.1"),
			},
			Services: []*corev1.Service{testSvc("default", "kubernetes", "10.96.0.1"), testSvc("kube-system", "kube-dns", "10.96.0.10")},
		},
	}
}

func kubeRouterCluster() *cluster.Cluster {
	p, a := netip.MustParsePrefix, netip.MustParseAddr
	return &cluster.Cluster{
		Name: "kube-router", PodCIDR: p("10.244.0.0/16"),
		CNI: cluster.CNI{Plugin: cluster.CNIKubeRouter, Mode: "overlay-subnet"},
		Nodes: []cluster.Node{
			{Name: "k1", IP: a("192.168.1.101"), Subnet: p("192.168.1.0/24"), Gateway: a("192.168.1.1"), PodCIDR: p("10.244.0.0/24"), Zone: "a"},
			{Name: "k2", IP: a("192.168.1.102"), Subnet: p("192.168.1.0/24"), Gateway: a("192.168.1.1"), PodCIDR: p("10.244.1.0/24"), Zone: "a"},
			{Name: "k3", IP: a("192.168.2.103"), Subnet: p("192.168.2.0/24"), Gateway: a("192.168.2.1"), PodCIDR: p("10.244.2.0/24"), Zone: "b"},
		},
	}
}

type kindRef struct {
	Kind Kind
	Refs Refs
}

func TestExplainIPRoute(t *testing.T) {
	for _, tc := range []struct {
		file    string
		c       *cluster.Cluster
		explain func(string, []byte, *cluster.Cluster) ([]Record, error)
		want    []kindRef
	}{
		{"iproute-calico-route.txt", calicoCluster(), IPRoute, []kindRef{
			{KindDefaultRoute, Refs{Node: "node-a"}},
			{KindLocalPodBlock, Refs{Node: "node-a"}},
			{KindPodRoute, Refs{Pod: "default/busybox", Node: "node-a"}},
			{KindPodRoute, Refs{Pod: "default/nginx", Node: "node-a"}},
			{KindRemotePodBlock, Refs{Node: "node-b"}},
			{KindRemotePodBlock, Refs{Node: "node-c"}},
			{KindNodeSubnet, Refs{Node: "node-a"}},
		}},
		{"iproute-vxlan-route.txt", calicoCluster(), IPRoute, []kindRef{
			{KindLocalPodBlock, Refs{Node: "node-a"}},
			{KindRemotePodBlock, Refs{Node: "node-b"}},
			{KindRemotePodBlock, Refs{Node: "node-c"}},
			{KindTunnelPeer, Refs{Node: "node-c"}},
			{KindRemotePodBlock, Refs{Node: "node-b"}},
			{KindServiceAddress, Refs{Service: "kube-system/kube-dns", Node: "node-a"}},
			{KindBroadcast, Refs{Node: "node-a"}},
			{KindLocalAddress, Refs{Node: "node-a"}},
		}},
		{"iproute-kuberouter-route.txt", kubeRouterCluster(), IPRoute, []kindRef{
			{KindDefaultRoute, Refs{Node: "k1"}},
			{KindLocalPodBlock, Refs{Node: "k1"}},
			{KindRemotePodBlock, Refs{Node: "k2"}},
			{KindRemotePodBlock, Refs{Node: "k3"}},
			{KindNodeSubnet, Refs{Node: "k1"}},
		}},
		{"iproute-calico-addr.txt", calicoCluster(), IPAddr, []kindRef{
			{KindLinkDevice, Refs{Node: "node-a"}}, {KindLinkLayer, Refs{}}, {KindLoopback, Refs{Node: "node-a"}}, {KindAddressLifetime, Refs{}},
			{KindLinkDevice, Refs{Node: "node-a"}}, {KindLinkLayer, Refs{}}, {KindLinkDetails, Refs{}}, {KindNodeAddress, Refs{Node: "node-a"}}, {KindAddressLifetime, Refs{}},
			{KindLinkDevice, Refs{Node: "node-a"}}, {KindLinkLayer, Refs{}}, {KindTunnelAddress, Refs{Node: "node-a"}}, {KindAddressLifetime, Refs{}},
			{KindLinkDevice, Refs{Node: "node-a"}}, {KindLinkLayer, Refs{}},
			{KindServiceAddress, Refs{Service: "default/kubernetes", Node: "node-a"}}, {KindAddressLifetime, Refs{}},
			{KindServiceAddress, Refs{Service: "kube-system/kube-dns", Node: "node-a"}}, {KindAddressLifetime, Refs{}},
			{KindLinkDevice, Refs{Pod: "default/nginx", Node: "node-a"}}, {KindLinkLayer, Refs{}}, {KindIPv6LinkLocal, Refs{Node: "node-a"}}, {KindAddressLifetime, Refs{}},
		}},
		{"iproute-kuberouter-rule.txt", kubeRouterCluster(), IPRule, []kindRef{
			{KindRuleDefault, Refs{}}, {KindRuleOverlay, Refs{Node: "k1"}}, {KindRuleDefault, Refs{}}, {KindRuleDefault, Refs{}},
		}},
		{"iproute-calico-vxlan-neigh.txt", calicoCluster(), IPNeigh, []kindRef{
			{KindNeighVTEP, Refs{Node: "node-b"}}, {KindNeighPod, Refs{Pod: "default/nginx", Node: "node-a"}},
			{KindNeighNode, Refs{Node: "node-b"}}, {KindNeighGateway, Refs{}},
		}},
		{"bridge-fdb.txt", calicoCluster(), BridgeFDB, []kindRef{
			{KindFDBVTEP, Refs{Node: "node-b"}}, {KindFDBKernel, Refs{}}, {KindFDBBridgePort, Refs{}}, {KindFDBBridgePort, Refs{}},
		}},
		{"iproute-addr-oneline.txt", nil, IPAddr, []kindRef{
			{KindLoopback, Refs{}}, {KindLoopback, Refs{}}, {Unknown, Refs{}}, {Unknown, Refs{}}, {KindIPv6LinkLocal, Refs{}},
			{Unknown, Refs{}}, {KindIPv6LinkLocal, Refs{}}, {KindIPv6LinkLocal, Refs{}}, {Unknown, Refs{}}, {KindIPv6LinkLocal, Refs{}},
			{Unknown, Refs{}}, {KindIPv6LinkLocal, Refs{}}, {KindIPv6LinkLocal, Refs{}},
		}},
		{"crictl-ps.txt", calicoCluster(), Crictl, []kindRef{
			{KindCRIHeader, Refs{}},
			{KindCRIContainer, Refs{Pod: "default/nginx", Node: "node-a"}},
			{KindCRIContainer, Refs{Pod: "kube-system/coredns-5dd5756b68-6n6lb", Node: "node-b"}},
			{KindCRIContainer, Refs{Pod: "default/busybox", Node: "node-a"}},
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			recs, err := tc.explain(tc.file, in, tc.c)
			if err != nil {
				t.Fatal(err)
			}
			var got []kindRef
			for _, r := range recs {
				got = append(got, kindRef{r.Kind, r.Refs})
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("kinds and refs (-want +got):\n%s", diff)
			}
			js, err := json.MarshalIndent(recs, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			js = append(js, '\n')
			gp := filepath.Join("testdata", tc.file+".golden.json")
			if updateIPRoute() {
				if err := os.WriteFile(gp, js, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(gp)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(js)); diff != "" {
				t.Errorf("golden records (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExplainUnknown(t *testing.T) {
	recs, err := IPRoute("r.txt", []byte("$ ip route\n203.0.113.0/24 via 172.31.0.9 dev eth0 \n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Kind != Unknown || recs[1].Kind != Unknown {
		t.Fatalf("records = %+v, want two unknown", recs)
	}
	if want := `not understood as a route: r.txt:1: bad route destination "$": "$ ip route"`; recs[0].Meaning != want {
		t.Errorf("meaning = %q, want %q", recs[0].Meaning, want)
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{CalicoVethName("default", "nginx"), "calic440f455693"},
		{CalicoVethName("default", "busybox"), "cali12d4a061371"},
		{CalicoVethName("kube-system", "coredns-5dd5756b68-6n6lb"), "cali5df6d324427"},
		{KubeRouterTunnelName(netip.MustParseAddr("10.0.0.1")), "tun-e443169117a"},
		{KubeRouterTunnelName(netip.MustParseAddr("192.168.1.102")), "tun-2368ad9b4a1"},
		{kubeRouterTunnelNameV1(netip.MustParseAddr("10.0.0.1")), "tun-10001"},
		{kubeRouterTunnelNameV1(netip.MustParseAddr("172.0.117.60")), "tun-172011760"},
		{CalicoVTEPMAC("node1").String(), "66:f9:37:c3:7e:94"},
		{CalicoVTEPMAC("ip-10-0-0-11").String(), "66:af:23:4e:91:de"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
}

// BenchmarkExplainIPRoute explains a Calico node's `ip route` in a 1,000-node cluster.
func BenchmarkExplainIPRoute(b *testing.B) {
	c := calicoCluster()
	var data []byte
	data = append(data, "default via 172.31.0.1 dev eth0 proto dhcp src 172.31.1.1 metric 100 \n"...)
	for n := range 1000 {
		ip := netip.AddrFrom4([4]byte{172, 31, 16 + byte(n/250), byte(n%250) + 1})
		block := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1 + byte(n/4), byte(n%4) * 64, 0}), 26)
		c.Nodes = append(c.Nodes, cluster.Node{Name: "n" + ip.String(), IP: ip, PodCIDR: block, Subnet: netip.MustParsePrefix("172.31.16.0/20")})
		data = append(data, block.String()+" via "+ip.String()+" dev tunl0 proto bird onlink \n"...)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := IPRoute("bench", data, c); err != nil {
			b.Fatal(err)
		}
	}
}
