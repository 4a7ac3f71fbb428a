package cluster

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// clusterFile builds a small cluster file for IPAM tests.
func clusterFile(plugin, mode string, blockSize int, nodes []string, pods string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: knet.dev/v1alpha1\nkind: Cluster\nmetadata: {name: t}\npodCIDR: 10.0.0.0/16\nserviceCIDR: 10.1.0.0/16\n")
	fmt.Fprintf(&b, "cni: {plugin: %s, mode: %s, blockSize: %d}\nnodes:\n", plugin, mode, blockSize)
	for _, n := range nodes {
		b.WriteString(n + "\n")
	}
	if pods != "" {
		b.WriteString("objects:\n" + pods)
	}
	return []byte(b.String())
}

func pod(name, node, ip string) string {
	s := fmt.Sprintf("- {apiVersion: v1, kind: Pod, metadata: {name: %s, namespace: default}, spec: {nodeName: %s, containers: [{name: c, image: i}]}", name, node)
	if ip != "" {
		s += fmt.Sprintf(", status: {podIP: %s}", ip)
	}
	return s + "}\n"
}

func TestIPAMPodOrder(t *testing.T) {
	nodes := []string{"- {name: a, ip: 172.31.1.1, subnet: 172.31.0.0/20, podCIDR: 10.0.7.0/24}"}
	pods := pod("zeta", "a", "") + pod("alpha", "a", "") + pod("fixed", "a", "10.0.7.2") + pod("beta", "a", "")
	tests := []struct {
		plugin, mode, tunnel string
		want                 map[string]string
	}{
		// Calico: tunl0 takes ordinal 0, pods the next free ordinals in name order.
		{"calico", "IPIPAlways", "10.0.7.0", map[string]string{"alpha": "10.0.7.1", "beta": "10.0.7.3", "fixed": "10.0.7.2", "zeta": "10.0.7.4"}},
		// Calico without encapsulation has no tunnel address: pods start at ordinal 0.
		{"calico", "Never", "invalid IP", map[string]string{"alpha": "10.0.7.0", "beta": "10.0.7.1", "fixed": "10.0.7.2", "zeta": "10.0.7.3"}},
		// Bridge + host-local: .1 is the gateway, pods from .2.
		{"kube-router", "overlay-subnet", "invalid IP", map[string]string{"alpha": "10.0.7.3", "beta": "10.0.7.4", "fixed": "10.0.7.2", "zeta": "10.0.7.5"}},
		{"flannel", "vxlan", "10.0.7.0", map[string]string{"alpha": "10.0.7.3", "beta": "10.0.7.4", "fixed": "10.0.7.2", "zeta": "10.0.7.5"}},
	}
	for _, tt := range tests {
		t.Run(tt.plugin+"/"+tt.mode, func(t *testing.T) {
			c, err := ParseCluster(clusterFile(tt.plugin, tt.mode, 24, nodes, pods), "t.yaml", nil)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, p := range c.Objects.Pods {
				got[p.Name] = p.Status.PodIP
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("pod IPs (-want +got):\n%s", d)
			}
			if g := c.Nodes[0].TunnelIP.String(); g != tt.tunnel {
				t.Errorf("tunnel address %s, want %s", g, tt.tunnel)
			}
		})
	}
}

func TestIPAMBlocks(t *testing.T) {
	nodes := []string{
		"- {name: n1, ip: 172.31.1.1, subnet: 172.31.0.0/20}",
		"- {name: n2, ip: 172.31.1.2, subnet: 172.31.0.0/20, podCIDR: 10.0.0.0/24}",
		"- {name: n3, ip: 172.31.1.3, subnet: 172.31.0.0/20}",
	}
	// kube-controller-manager's range allocator: lowest free block, explicit blocks taken first.
	c, err := ParseCluster(clusterFile("flannel", "vxlan", 24, nodes, ""), "t.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range c.Nodes {
		got = append(got, n.PodCIDR.String())
	}
	if d := cmp.Diff([]string{"10.0.1.0/24", "10.0.0.0/24", "10.0.2.0/24"}, got); d != "" {
		t.Errorf("flannel blocks (-want +got):\n%s", d)
	}

	// Calico: blocks walked from the hostname-seeded start; distinct, inside the pool, /26.
	c, err = ParseCluster(clusterFile("calico", "IPIPAlways", 26, nodes[:1], ""), "t.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	start := CalicoBlockStart("n1", 1024)
	want := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(start * 64 >> 8), byte(start * 64 & 0xff)}), 26)
	if c.Nodes[0].PodCIDR != want {
		t.Errorf("calico block of n1 = %s, want %s (start index %d)", c.Nodes[0].PodCIDR, want, start)
	}
	if CalicoBlockStart("n1", 1024) != start || CalicoBlockStart("n1", 1024) >= 1024 {
		t.Errorf("CalicoBlockStart is not deterministic or out of range")
	}
}

func TestIPAMErrors(t *testing.T) {
	nodes := []string{"- {name: a, ip: 172.31.1.1, subnet: 172.31.0.0/20, podCIDR: 10.0.7.0/30}"}
	tests := []struct {
		name string
		src  []byte
		want string
	}{
		{"full block", clusterFile("kube-router", "overlay-subnet", 30, nodes, pod("p1", "a", "")+pod("p2", "a", "")), "pod default/p2 on node a: pod block 10.0.7.0/30 is full"},
		{"duplicate IP", clusterFile("calico", "Never", 30, nodes, pod("p1", "a", "10.0.7.1")+pod("p2", "a", "10.0.7.1")), "pods default/p1 and default/p2 both have IP 10.0.7.1"},
		{"IP outside pool", clusterFile("calico", "Never", 30, nodes, pod("p1", "a", "192.168.0.1")), "outside the cluster podCIDR"},
		{"gateway taken", clusterFile("flannel", "vxlan", 30, nodes, pod("p1", "a", "10.0.7.1")), "is node a's bridge gateway"},
		{"block size", clusterFile("calico", "Never", 24, nodes, ""), "is not a /24 block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCluster(tt.src, "t.yaml", nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
