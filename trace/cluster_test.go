package trace

import (
	"encoding/json"

	"github.com/google/go-cmp/cmp"
	"net/netip"
	"testing"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/render/cni/calico"
	"github.com/knet-dev/knet/render/cni/flannel"
	"github.com/knet-dev/knet/render/cni/kuberouter"
	kpiptables "github.com/knet-dev/knet/render/kubeproxy/iptables"
	kpipvs "github.com/knet-dev/knet/render/kubeproxy/ipvs"
)

// clusterNodes renders every node of a preset with Calico (links, routes, pod namespaces)
// and kube-proxy's iptables rules — what the integrator's render.Node does.
func clusterNodes(t testing.TB, preset, mode string) (*cluster.Cluster, map[string]*dataplane.Node) {
	return clusterNodesWith(t, preset, "", mode)
}

// clusterNodesWith is clusterNodes with the pod network switched to plugin (a preset's IPAM
// is kept: cluster-c's bridge layout suits Flannel too).
func clusterNodesWith(t testing.TB, preset string, plugin cluster.CNIPlugin, mode string) (*cluster.Cluster, map[string]*dataplane.Node) {
	t.Helper()
	c, err := cluster.Preset(preset)
	if err != nil {
		t.Fatal(err)
	}
	if plugin != "" {
		c.CNI.Plugin = plugin
	}
	if mode != "" {
		c.CNI.Mode = mode
	}
	nodes := map[string]*dataplane.Node{}
	for _, n := range c.Nodes {
		var dn *dataplane.Node
		var err error
		switch c.CNI.Plugin {
		case cluster.CNICalico:
			dn, err = calico.Render(c, n.Name, calico.OptionsFor(c))
		case cluster.CNIKubeRouter:
			dn, _, err = kuberouter.Render(c, n.Name, kuberouter.OptionsFor(c))
		case cluster.CNIFlannel:
			dn, _, err = flannel.Render(c, n.Name, flannel.OptionsFor(c))
		}
		if err != nil {
			t.Fatal(err)
		}
		rs, err := kpiptables.RenderRuleset(c.Objects, kpiptables.DefaultOptions(n.Name, n.IP))
		if err != nil {
			t.Fatal(err)
		}
		dn.IPTables = rs
		nodes[n.Name] = dn
	}
	return c, nodes
}

// TestTraceCluster: in cluster-b (Calico, kube-proxy iptables) with each Calico mode, a pod
// reaches a Service whose endpoints live on several nodes: every DNAT destination is traced
// to the endpoint pod — through tunl0 (IPIP, +20 bytes) or vxlan.calico (VXLAN, UDP 4789,
// VNI 4096, +50 bytes) with outer node addresses, or directly within a subnet in the
// CrossSubnet modes — and back, with the reverse NAT on the client's node.
func TestTraceCluster(t *testing.T) {
	for _, tc := range []struct {
		preset string
		plugin cluster.CNIPlugin
		mode   string
	}{
		{"cluster-b", "", "IPIPAlways"}, {"cluster-b", "", "IPIPCrossSubnet"}, {"cluster-b", "", "VXLANAlways"},
		{"cluster-b", "", "VXLANCrossSubnet"}, {"cluster-b", "", "Never"},
		{"cluster-c", "", "overlay-subnet"}, {"cluster-c", "", "overlay-full"},
		{"cluster-c", cluster.CNIFlannel, "vxlan"}, {"cluster-c", cluster.CNIFlannel, "host-gw"},
	} {
		t.Run(tc.preset+"/"+string(tc.plugin)+"/"+tc.mode, func(t *testing.T) { testTraceCluster(t, tc.preset, tc.plugin, tc.mode) })
	}
}

func testTraceCluster(t *testing.T, preset string, plugin cluster.CNIPlugin, mode string) {
	c, nodes := clusterNodesWith(t, preset, plugin, mode)
	var client, svc string
	var svcIP netip.Addr
	// A client pod and a ClusterIP Service with pod endpoints on another node.
	for _, s := range c.Objects.Services {
		if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == "None" || len(s.Spec.Selector) == 0 {
			continue
		}
		svc = s.Namespace + "/" + s.Name
		svcIP = netip.MustParseAddr(s.Spec.ClusterIP)
		break
	}
	var sel map[string]string
	for _, s := range c.Objects.Services {
		if s.Namespace+"/"+s.Name == svc {
			sel = s.Spec.Selector
		}
	}
	for _, p := range c.Objects.Pods {
		selected := true
		for k, v := range sel {
			if p.Labels[k] != v {
				selected = false
			}
		}
		if !p.Spec.HostNetwork && p.Status.PodIP != "" && !selected {
			client = p.Namespace + "/" + p.Name
			break
		}
	}
	if svc == "" || client == "" {
		t.Skip("preset cluster-b has no pod-backed Service or client pod")
	}
	res, err := TraceCluster(c, nodes, ClusterRequest{From: client, To: svc})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Paths {
		t.Logf("path p=%.3f %s → %s (%s) masq=%v", p.Probability, client, p.Endpoint, p.EndpointPod, p.Masquerade)
		for _, h := range append(append([]ClusterHop{}, p.Request...), p.Reply...) {
			if h.Step == "netfilter" {
				continue
			}
			js, _ := json.Marshal(h)
			t.Logf("  %s", js)
		}
	}
	if len(res.Paths) == 0 {
		t.Fatal("no paths")
	}
	sum := 0.0
	for _, p := range res.Paths {
		sum += p.Probability
		if p.Verdict != "ACCEPT" {
			t.Errorf("path to %s: verdict %s", p.Endpoint, p.Verdict)
			continue
		}
		if p.EndpointPod == "" {
			t.Errorf("path to %s: not delivered to a pod: %+v", p.Endpoint, p.Request[len(p.Request)-1])
		}
		var encaps []*Encap
		for _, h := range p.Request {
			if h.Node == "" {
				t.Errorf("hop without node: %+v", h)
			}
			if h.Outer != nil {
				encaps = append(encaps, h.Outer)
			}
		}
		ep := netip.MustParseAddrPort(p.Endpoint).Addr()
		var epNode, clientNode *cluster.Node
		for i := range c.Nodes {
			if c.Nodes[i].PodCIDR.Contains(ep) {
				epNode = &c.Nodes[i]
			}
		}
		for _, pd := range c.Objects.Pods {
			if pd.Namespace+"/"+pd.Name == client {
				clientNode = c.NodeByName(pd.Spec.NodeName)
			}
		}
		if epNode == nil || clientNode == nil {
			t.Fatalf("cannot place endpoint %s or client", ep)
		}
		if epNode.Name == clientNode.Name {
			if len(encaps) != 0 {
				t.Errorf("same-node endpoint %s encapsulated: %+v", ep, encaps)
			}
			continue
		}
		same := clientNode.Subnet == epNode.Subnet
		wantEncap := ""
		switch {
		case mode == "IPIPAlways" || mode == "overlay-full" || (mode == "IPIPCrossSubnet" || mode == "overlay-subnet") && !same:
			wantEncap = "ipip"
		case mode == "VXLANAlways" || mode == "VXLANCrossSubnet" && !same:
			wantEncap = "vxlan"
		case c.CNI.Plugin == cluster.CNIFlannel && mode == "vxlan":
			wantEncap = "flannel"
		}
		if wantEncap == "" {
			if len(encaps) != 0 {
				t.Errorf("endpoint %s on %s (same subnet %v): want no encapsulation, got %+v", ep, epNode.Name, same, encaps)
			}
		} else if len(encaps) != 1 {
			t.Errorf("endpoint %s on %s: want one %s encapsulation, got %+v", ep, epNode.Name, wantEncap, encaps)
		} else {
			e := encaps[0]
			want := Encap{Kind: "ipip", Src: clientNode.IP.String(), Dst: epNode.IP.String(), Overhead: 20, MTU: 1480}
			switch wantEncap {
			case "vxlan":
				want = Encap{Kind: "vxlan", Src: clientNode.IP.String(), Dst: epNode.IP.String(), DstPort: 4789, VNI: 4096, Overhead: 50, MTU: 1450}
			case "flannel":
				want = Encap{Kind: "vxlan", Src: clientNode.IP.String(), Dst: epNode.IP.String(), DstPort: 8472, VNI: 1, Overhead: 50, MTU: 1450}
			}
			if c.CNI.Plugin == cluster.CNIKubeRouter {
				want.MTU = e.MTU // kube-router's tunnel MTU follows the node MTU (checked by its renderer)
			}
			if diff := cmp.Diff(want, *e); diff != "" {
				t.Errorf("endpoint %s: encapsulation (-want +got):\n%s", ep, diff)
			}
		}
		if len(p.Reply) == 0 || p.Reply[len(p.Reply)-1].Netns != client {
			t.Errorf("reply does not reach %s: %+v", client, p.Reply)
		}
		var ct bool
		for _, h := range p.Reply {
			if h.Step == "conntrack" && h.Node == clientNode.Name && h.Src == netip.AddrPortFrom(svcIP, netip.MustParseAddrPort(res.Packet.Dst).Port()).String() {
				ct = true
			}
		}
		if !ct {
			t.Errorf("reply to %s: no reverse NAT back to the Service address on %s", client, clientNode.Name)
		}
	}
	if sum < 0.999 || sum > 1.001 {
		t.Errorf("probabilities sum to %v, want 1", sum)
	}
}

// BenchmarkTraceCluster traces one pod → Service request across cluster-b (Calico IPIP,
// kube-proxy iptables): both DNAT branches, the tunnel and the reply.
func BenchmarkTraceCluster(b *testing.B) {
	c, nodes := clusterNodes(b, "cluster-b", "")
	req := ClusterRequest{From: "default/busybox", To: "default/api"}
	if _, err := TraceCluster(c, nodes, req); err != nil {
		b.Skip("preset changed: ", err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := TraceCluster(c, nodes, req); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTraceClusterHostEndpoint: pod → kubernetes Service, whose endpoints are the
// control-plane nodes' IPs (hostNetwork API servers). In IPIP Always the request to a node IP
// is routed by the main table without the tunnel (the node subnet is connected or reached via
// the default route), but the reply to the pod's address takes the remote pod block's route
// through tunl0: the path is asymmetric, as on a real Calico node.
func TestTraceClusterHostEndpoint(t *testing.T) {
	c, nodes := clusterNodes(t, "cluster-b", "")
	res, err := TraceCluster(c, nodes, ClusterRequest{From: "default/busybox", To: "default/kubernetes:443"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Paths) == 0 {
		t.Fatal("no paths")
	}
	for _, p := range res.Paths {
		last := p.Request[len(p.Request)-1]
		if last.Step != "deliver" || last.Dev != "lo" || last.Netns != "" {
			t.Errorf("to %s: request should end on the node's socket, got %+v", p.Endpoint, last)
		}
		for _, h := range p.Request {
			if h.Outer != nil {
				t.Errorf("to %s: request encapsulated: %+v", p.Endpoint, h)
			}
		}
		tunneled := false
		for _, h := range p.Reply {
			if h.Outer != nil && h.Outer.Kind == "ipip" {
				tunneled = true
			}
		}
		if !tunneled {
			t.Errorf("to %s: reply to the pod should go through tunl0", p.Endpoint)
		}
		if end := p.Reply[len(p.Reply)-1]; end.Netns != "default/busybox" {
			t.Errorf("to %s: reply ends at %+v", p.Endpoint, end)
		}
	}
}

// TestTraceClusterIPVS: cluster-a (Calico IPIP CrossSubnet, kube-proxy IPVS mode). The
// Service address is local (kube-ipvs0), IPVS picks the real server, and the packet is
// routed to the endpoint's node (eth0 within the subnet, tunl0 across) and back.
func TestTraceClusterIPVS(t *testing.T) {
	c, err := cluster.Preset("cluster-a")
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]*dataplane.Node{}
	for _, n := range c.Nodes {
		dn, err := calico.Render(c, n.Name, calico.OptionsFor(c))
		if err != nil {
			t.Fatal(err)
		}
		res, err := kpipvs.Render(c.Objects, kpipvs.DefaultOptions(n.Name, n.IP))
		if err != nil {
			t.Fatal(err)
		}
		if err := kpipvs.ApplyDummy(dn.Net, res, n.Name); err != nil {
			t.Fatal(err)
		}
		dn.IPVS = res.IPVS
		nodes[n.Name] = dn
	}
	res, err := TraceCluster(c, nodes, ClusterRequest{From: "default/busybox", To: "default/api"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Paths) == 0 {
		t.Fatal("no paths")
	}
	for _, p := range res.Paths {
		var sawIPVS bool
		for _, h := range p.Request {
			if h.Step == "ipvs" {
				sawIPVS = true
			}
		}
		if !sawIPVS {
			t.Errorf("path to %s: no IPVS hop", p.Endpoint)
		}
		if p.Verdict != "ACCEPT" || p.EndpointPod == "" {
			t.Errorf("path to %s: verdict %s, endpoint pod %q", p.Endpoint, p.Verdict, p.EndpointPod)
		}
		if len(p.Reply) == 0 || p.Reply[len(p.Reply)-1].Netns != "default/busybox" {
			t.Errorf("path to %s: reply does not reach the client", p.Endpoint)
		}
	}
}
