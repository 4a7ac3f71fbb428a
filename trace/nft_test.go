package trace

import (
	"math"
	"net/netip"
	"testing"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/dataplane/netfilter"
	"github.com/knet-dev/knet/render"
)

// TestTraceNFTPreset: in Cluster B switched to kube-proxy's nftables mode, a pod's packet to
// the ingress controller's ClusterIP goes to each of the three pods with probability 1/3,
// unmasqueraded (pod source); a node's own packet is masqueraded; a wrong port of the
// ClusterIP is rejected (nftables mode rejects unknown ports of ClusterIPs).
func TestTraceNFTPreset(t *testing.T) {
	c, err := cluster.Preset("cluster-b")
	if err != nil {
		t.Fatal(err)
	}
	c.Proxy.Mode = cluster.ProxyNFTables
	if c.Objects.ProxyConfig != nil {
		c.Objects.ProxyConfig.Mode = "nftables"
	}
	worker := ""
	for _, n := range c.Nodes {
		if n.Role != "control-plane" {
			worker = n.Name
			break
		}
	}
	node, err := render.Node(c, worker)
	if err != nil {
		t.Fatal(err)
	}
	if node.NFTables == nil {
		t.Fatal("no nftables ruleset rendered")
	}
	local := func(a netip.Addr) bool {
		for _, x := range node.Net.Addrs {
			if x.Prefix.Addr() == a {
				return true
			}
		}
		return a.IsLoopback()
	}
	svc := netip.MustParseAddr("10.1.60.159")
	var nodeIP netip.Addr
	for _, n := range c.Nodes {
		if n.Name == worker {
			nodeIP = n.IP
		}
	}
	for _, tc := range []struct {
		name    string
		src     netip.Addr
		port    uint16
		verdict netfilter.Decision
		nDNAT   int
		masq    bool
	}{
		{"pod to ClusterIP", netip.MustParseAddr("10.0.99.9"), 80, netfilter.DecisionAccept, 3, false},
		{"node to ClusterIP", nodeIP, 80, netfilter.DecisionAccept, 3, true},
		{"pod to an undefined port of the ClusterIP", netip.MustParseAddr("10.0.99.9"), 81, netfilter.DecisionReject, 0, false},
	} {
		res, err := TraceNFT(worker, node.NFTables, local, Request{Src: tc.src, Dst: svc, Proto: TCP, DPort: tc.port})
		if err != nil {
			t.Fatal(err)
		}
		if res.Verdict != tc.verdict || len(res.DNAT) != tc.nDNAT || res.Masquerade != tc.masq {
			t.Errorf("%s: verdict %s, %d DNATs %v, masquerade %v; want %s, %d, %v", tc.name, res.Verdict, len(res.DNAT), res.DNAT, res.Masquerade, tc.verdict, tc.nDNAT, tc.masq)
		}
		for _, d := range res.DNAT {
			if math.Abs(d.Probability-1.0/3) > 1e-9 {
				t.Errorf("%s: %s has probability %v, want 1/3", tc.name, d.To, d.Probability)
			}
		}
	}
}

// TestTraceClusterNFT: the cross-node trace in Cluster B with kube-proxy in nftables mode
// reaches the three ingress pods, one third each, through tunl0.
func TestTraceClusterNFT(t *testing.T) {
	c, err := cluster.Preset("cluster-b")
	if err != nil {
		t.Fatal(err)
	}
	c.Proxy.Mode = cluster.ProxyNFTables
	if c.Objects.ProxyConfig != nil {
		c.Objects.ProxyConfig.Mode = "nftables"
	}
	nodes := map[string]*dataplane.Node{}
	for _, n := range c.Nodes {
		dn, err := render.Node(c, n.Name)
		if err != nil {
			t.Fatal(err)
		}
		nodes[n.Name] = dn
	}
	res, err := TraceCluster(c, nodes, ClusterRequest{From: "default/busybox", To: "ingress-nginx/ingress-nginx-controller:80", Proto: TCP})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Paths) != 3 {
		t.Fatalf("%d paths, want 3: %+v", len(res.Paths), res.Paths)
	}
	for _, p := range res.Paths {
		if p.Verdict != netfilter.DecisionAccept || p.EndpointPod == "" || math.Abs(p.Probability-1.0/3) > 1e-9 {
			t.Errorf("path to %s: verdict %s pod %q probability %v", p.Endpoint, p.Verdict, p.EndpointPod, p.Probability)
		}
		tunnel := false
		for _, h := range p.Request {
			if h.Step == "encap" && h.Dev == "tunl0" {
				tunnel = true
			}
			if h.Step == "netfilter" && h.Table != "ip kube-proxy" {
				t.Errorf("netfilter hop in table %q, want nftables table ip kube-proxy", h.Table)
			}
		}
		if !tunnel {
			t.Errorf("path to %s does not go through tunl0 (IPIP Always)", p.Endpoint)
		}
	}
}

// TestTraceClusterIPVSPodToPodNotMasqueraded is the regression test for a disagreement the
// lab found on a real kernel: in Cluster A (IPVS mode), a pod's packet to another pod
// across subnets is not masqueraded. The model used to assume every `-m set` match true,
// so KUBE-LOOP-BACK's MASQUERADE rule fired.
func TestTraceClusterIPVSPodToPodNotMasqueraded(t *testing.T) {
	c, err := cluster.Preset("cluster-a")
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]*dataplane.Node{}
	for _, n := range c.Nodes {
		dn, err := render.Node(c, n.Name)
		if err != nil {
			t.Fatal(err)
		}
		nodes[n.Name] = dn
	}
	res, err := TraceCluster(c, nodes, ClusterRequest{From: "default/busybox", To: "10.0.11.27:80", Proto: TCP})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Paths) != 1 || res.Paths[0].Masquerade || res.Paths[0].Verdict != netfilter.DecisionAccept {
		t.Fatalf("pod to pod in cluster-a: %+v, want one accepted unmasqueraded path", res.Paths)
	}
}
