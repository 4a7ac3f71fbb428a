package render

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/format/iptablessave"
)

func TestPresetsRender(t *testing.T) {
	for _, name := range cluster.PresetNames() {
		t.Run(name, func(t *testing.T) {
			c, err := cluster.Preset(name)
			if err != nil {
				t.Fatal(err)
			}
			nodes, err := Cluster(c)
			if err != nil {
				t.Fatal(err)
			}
			if len(nodes) != len(c.Nodes) {
				t.Fatalf("%d nodes rendered, want %d", len(nodes), len(c.Nodes))
			}
			for i, n := range nodes {
				if n.Name != c.Nodes[i].Name {
					t.Errorf("node %d is %s, want %s (node order)", i, n.Name, c.Nodes[i].Name)
				}
				if n.Net == nil || n.IPTables == nil || n.CRI == nil {
					t.Fatalf("node %s: missing state (net %v, iptables %v, cri %v)", n.Name, n.Net != nil, n.IPTables != nil, n.CRI != nil)
				}
				if err := n.Net.Validate(); err != nil {
					t.Errorf("node %s: %v", n.Name, err)
				}
				pods := c.PodsOn(n.Name)
				if len(n.Pods) != len(pods) || len(n.CRI.Sandboxes) != len(pods) {
					t.Errorf("node %s: %d pod namespaces, %d sandboxes, want %d", n.Name, len(n.Pods), len(n.CRI.Sandboxes), len(pods))
				}
				for _, p := range pods {
					sb := n.CRI.SandboxFor(p.Namespace, p.Name)
					if sb == nil || sb.IP != p.Status.PodIP || sb.ID != cluster.ContainerID(p.Namespace, p.Name, "") {
						t.Errorf("node %s: sandbox of %s/%s: %+v", n.Name, p.Namespace, p.Name, sb)
					}
				}
				switch c.Proxy.Mode {
				case cluster.ProxyIPVS:
					if n.IPVS == nil || n.IPSets == nil || n.Net.LinkByName("kube-ipvs0") == nil {
						t.Errorf("node %s: IPVS mode without IPVS, ipsets or kube-ipvs0", n.Name)
					}
				case cluster.ProxyIPTables:
					if n.IPVS != nil || n.Net.LinkByName("kube-ipvs0") != nil {
						t.Errorf("node %s: iptables mode with IPVS state", n.Name)
					}
					if n.IPTables.Table("nat").Chain("KUBE-SERVICES") == nil {
						t.Errorf("node %s: no KUBE-SERVICES chain", n.Name)
					}
				}
			}
		})
	}
}

func TestNodeWithNotes(t *testing.T) {
	c, err := cluster.Preset("cluster-a")
	if err != nil {
		t.Fatal(err)
	}
	_, notes, err := NodeWithNotes(c, "ip-172-31-5-31")
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) == 0 || !strings.Contains(notes[0], "deprecated") {
		t.Errorf("cluster-a (IPVS) notes %v lack the deprecation notice", notes)
	}
	if _, err := Node(c, "nope"); err == nil || !strings.Contains(err.Error(), `no node "nope" (have ip-172-31-2-10,`) {
		t.Errorf("unknown node error: %v", err)
	}
}

// TestIPVSAddresses: kube-ipvs0 holds every ClusterIP, and NodePort virtual servers exist on
// the node IP and on the tunl0 address (kube-proxy lists every local address).
func TestIPVSAddresses(t *testing.T) {
	c, err := cluster.Preset("cluster-a")
	if err != nil {
		t.Fatal(err)
	}
	n, err := Node(c, "ip-172-31-5-31")
	if err != nil {
		t.Fatal(err)
	}
	var dummy []string
	for _, a := range n.Net.Addrs {
		if a.Dev == "kube-ipvs0" {
			dummy = append(dummy, a.Prefix.String())
		}
	}
	want := []string{"10.1.0.1/32", "10.1.0.10/32", "10.1.120.34/32", "10.1.60.159/32", "10.1.84.17/32"} // string order
	if d := cmp.Diff(want, sortedCopy(dummy)); d != "" {
		t.Errorf("kube-ipvs0 addresses (-want +got):\n%s", d)
	}
	var nodePorts []string
	for _, s := range n.IPVS.Services {
		if s.Port == 30998 {
			nodePorts = append(nodePorts, s.Addr.String())
		}
	}
	if d := cmp.Diff([]string{"10.0.7.0", "172.31.5.31"}, sortedCopy(nodePorts)); d != "" {
		t.Errorf("NodePort 30998 virtual servers (-want +got):\n%s", d)
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// scaleCluster is a cluster file with nodes nodes in two subnets, podsPerNode pods each, and
// services Services of 10 pods each (plus kube-dns and kubernetes).
func scaleCluster(tb testing.TB, plugin, mode, proxy string, nodes, podsPerNode, services int) *cluster.Cluster {
	tb.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: knet.dev/v1alpha1\nkind: Cluster\nmetadata: {name: scale}\npodCIDR: 10.0.0.0/8\nserviceCIDR: 10.96.0.0/12\n")
	fmt.Fprintf(&b, "cni: {plugin: %s, mode: %s, blockSize: 24}\nkubeProxy: {mode: %s}\nnodes:\n", plugin, mode, proxy)
	for i := 0; i < nodes; i++ {
		subnet, base := "172.16.0.0/16", 0
		if i%2 == 1 {
			subnet, base = "172.17.0.0/16", 1
		}
		role := "worker"
		if i < 3 {
			role = "control-plane"
		}
		fmt.Fprintf(&b, "- {name: node-%04d, ip: 172.%d.%d.%d, subnet: %s, role: %s}\n", i, 16+base, 1+i/200, 1+i%200, subnet, role)
	}
	b.WriteString("objects:\n")
	for s := 0; s < services; s++ {
		fmt.Fprintf(&b, "- {apiVersion: v1, kind: Service, metadata: {name: svc-%d, namespace: default}, spec: {clusterIP: 10.96.%d.%d, selector: {app: app-%d}, ports: [{name: http, port: 80, targetPort: 8080}]}}\n", s, 1+s/250, 1+s%250, s)
	}
	pod := 0
	for i := 0; i < nodes; i++ {
		for j := 0; j < podsPerNode; j++ {
			app := "filler"
			if pod < services*10 {
				app = fmt.Sprintf("app-%d", pod/10)
			}
			fmt.Fprintf(&b, "- {apiVersion: v1, kind: Pod, metadata: {name: pod-%06d, namespace: default, labels: {app: %s}}, spec: {nodeName: node-%04d, containers: [{name: c, image: app:1, ports: [{containerPort: 8080}]}]}}\n", pod, app, i)
			pod++
		}
	}
	c, err := cluster.ParseCluster([]byte(b.String()), "scale.yaml", nil)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func TestScaleClusterSmall(t *testing.T) {
	c := scaleCluster(t, "calico", "IPIPCrossSubnet", "iptables", 20, 5, 4)
	nodes, err := Cluster(c)
	if err != nil {
		t.Fatal(err)
	}
	// Every node routes to the 19 other blocks and has a /32 per local pod.
	for _, n := range nodes {
		blocks, pods := 0, 0
		for _, r := range n.Net.Routes {
			if r.Table == 254 && r.Dst.Bits() == 24 && r.Protocol == 12 {
				blocks++
			}
			if r.Dst.Bits() == 32 && strings.HasPrefix(r.Dev, "cali") {
				pods++
			}
		}
		if blocks != 20 || pods != 5 { // 19 remote blocks + the local blackhole
			t.Errorf("node %s: %d bird /24 routes, %d pod routes", n.Name, blocks, pods)
		}
	}
}

// BenchmarkRenderCluster1000 renders every node of a 1,000-node, 30,000-pod cluster (Calico
// IPIP CrossSubnet, kube-proxy iptables, 200 Services of 10 endpoints each).
func BenchmarkRenderCluster1000(b *testing.B) {
	c := scaleCluster(b, "calico", "IPIPCrossSubnet", "iptables", 1000, 30, 200)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		nodes, err := Cluster(c)
		if err != nil {
			b.Fatal(err)
		}
		if len(nodes) != 1000 {
			b.Fatal(len(nodes))
		}
		_ = []*dataplane.Node(nodes)
	}
}

// BenchmarkRenderNode1000 renders one node of the same cluster.
func BenchmarkRenderNode1000(b *testing.B) {
	c := scaleCluster(b, "calico", "IPIPCrossSubnet", "iptables", 1000, 30, 200)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Node(c, "node-0500"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestClusterSharedProxyEqualsPerNode: render.Cluster's shared kube-proxy sync gives every
// node exactly what rendering it alone gives.
func TestClusterSharedProxyEqualsPerNode(t *testing.T) {
	small := scaleCluster(t, "calico", "IPIPAlways", "iptables", 12, 3, 5)
	local, err := cluster.Preset("cluster-b")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range local.Objects.Services {
		if s.Name == "ingress-nginx-controller" {
			s.Spec.ExternalTrafficPolicy = "Local"
		}
	}
	b, err := cluster.Preset("cluster-b")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name       string
		c          *cluster.Cluster
		wantShared bool
	}{{"cluster-b", b, true}, {"scale", small, true}, {"cluster-b with Local policy", local, false}} {
		t.Run(tt.name, func(t *testing.T) {
			shared, err := shareProxy(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			if (shared != nil) != tt.wantShared {
				t.Errorf("shared = %v, want %v", shared != nil, tt.wantShared)
			}
			all, err := Cluster(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			for i, n := range all {
				one, err := Node(tt.c, tt.c.Nodes[i].Name)
				if err != nil {
					t.Fatal(err)
				}
				var got, want bytes.Buffer
				if err := iptablessave.Write(&got, n.IPTables, iptablessave.WriteOptions{}); err != nil {
					t.Fatal(err)
				}
				if err := iptablessave.Write(&want, one.IPTables, iptablessave.WriteOptions{}); err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(want.String(), got.String()); d != "" {
					t.Fatalf("node %s iptables (-per-node +cluster):\n%s", n.Name, d)
				}
				if n.IPTables == all[0].IPTables && i > 0 {
					t.Fatalf("node %s shares its ruleset object with node %s", n.Name, all[0].Name)
				}
			}
		})
	}
}
