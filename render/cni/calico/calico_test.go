package calico

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane/route"
	"github.com/knet-dev/knet/format/iproute"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// Vectors from reference/cni.md §1.1 and §1.4 (computed from the Calico source).
func TestNames(t *testing.T) {
	for _, tt := range []struct{ ns, pod, want string }{
		{"default", "nginx", "calic440f455693"},
		{"default", "busybox", "cali12d4a061371"},
		{"kube-system", "coredns-5dd5756b68-6n6lb", "cali5df6d324427"},
	} {
		if got := VethName("cali", tt.ns, tt.pod); got != tt.want {
			t.Errorf("VethName(%s/%s) = %s, want %s", tt.ns, tt.pod, got, tt.want)
		}
	}
	for _, tt := range []struct{ node, want string }{
		{"node1", "66:f9:37:c3:7e:94"},
		{"ip-10-0-0-11", "66:af:23:4e:91:de"},
	} {
		if got := VTEPMAC(tt.node).String(); got != tt.want {
			t.Errorf("VTEPMAC(%s) = %s, want %s", tt.node, got, tt.want)
		}
	}
}

func TestPodMTU(t *testing.T) {
	for _, tt := range []struct {
		version, mode string
		host, want    int
	}{
		{"v3.31.0", cluster.CalicoIPIPAlways, 1500, 1480},
		{"v3.31.0", cluster.CalicoVXLANAlways, 1500, 1450},
		{"v3.31.0", cluster.CalicoVXLANAlways, 9001, 8951},
		{"v3.31.0", cluster.CalicoNever, 1500, 1500},
		{"v3.16.0", cluster.CalicoIPIPAlways, 1500, 1440},
		{"v3.16.0", cluster.CalicoVXLANCrossSubnet, 1500, 1410},
	} {
		o := Options{Version: tt.version, Mode: tt.mode, HostMTU: tt.host}
		if got := o.PodMTU(); got != tt.want {
			t.Errorf("%s %s host %d: pod MTU %d, want %d", tt.version, tt.mode, tt.host, got, tt.want)
		}
	}
}

// routeLines prints the main table as `ip route` does, without the trailing spaces.
func routeLines(t *testing.T, s *route.Stack) []string {
	t.Helper()
	var b bytes.Buffer
	if err := iproute.PrintRoutes(&b, s, iproute.Options{}); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
		out = append(out, strings.TrimRight(l, " "))
	}
	return out
}

func routeTo(t *testing.T, lines []string, dst string) string {
	t.Helper()
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) > 1 && (f[0] == dst || f[0] == "blackhole" && f[1] == dst) {
			return l
		}
	}
	t.Fatalf("no route to %s in:\n%s", dst, strings.Join(lines, "\n"))
	return ""
}

// TestSeedFacts checks what the seed says about clusters A and B on a worker.
func TestSeedFacts(t *testing.T) {
	a, err := cluster.Preset("cluster-a")
	if err != nil {
		t.Fatal(err)
	}
	// Cluster A (CrossSubnet), worker ip-172-31-5-31 in 172.31.0.0/20 owning 10.0.7.0/24.
	n, err := Render(a, "ip-172-31-5-31", OptionsFor(a))
	if err != nil {
		t.Fatal(err)
	}
	lines := routeLines(t, n.Net)
	want := map[string]string{
		"10.0.7.0/24":   "blackhole 10.0.7.0/24 proto bird",                          // the local block
		"10.0.11.0/24":  "10.0.11.0/24 via 172.31.9.44 dev eth0 proto bird",          // same subnet: eth0
		"10.0.1.0/24":   "10.0.1.0/24 via 172.31.2.10 dev eth0 proto bird",           // same subnet: eth0
		"10.0.35.0/24":  "10.0.35.0/24 via 172.31.21.52 dev tunl0 proto bird onlink", // other subnet: tunl0
		"10.0.104.0/24": "10.0.104.0/24 via 172.31.27.63 dev tunl0 proto bird onlink",
	}
	for dst, w := range want {
		if got := routeTo(t, lines, dst); got != w {
			t.Errorf("cluster-a route to %s: %q, want %q", dst, got, w)
		}
	}
	// Cluster B (Always), worker ip-172-31-27-63 owning 10.0.104.0/24: only tunl0 between nodes.
	b, err := cluster.Preset("cluster-b")
	if err != nil {
		t.Fatal(err)
	}
	n, err = Render(b, "ip-172-31-27-63", OptionsFor(b))
	if err != nil {
		t.Fatal(err)
	}
	lines = routeLines(t, n.Net)
	if got := routeTo(t, lines, "10.0.104.0/24"); got != "blackhole 10.0.104.0/24 proto bird" {
		t.Errorf("cluster-b blackhole: %q", got)
	}
	for _, peer := range b.Nodes {
		if peer.Name == "ip-172-31-27-63" {
			continue
		}
		w := fmt.Sprintf("%s via %s dev tunl0 proto bird onlink", peer.PodCIDR, peer.IP)
		if got := routeTo(t, lines, peer.PodCIDR.String()); got != w {
			t.Errorf("cluster-b route to %s: %q, want %q", peer.PodCIDR, got, w)
		}
	}
	// Local pods: /32 scope link routes to cali interfaces, and the pod side's routes.
	pods := b.PodsOn("ip-172-31-27-63")
	if len(n.Pods) != len(pods) || len(pods) == 0 {
		t.Fatalf("%d pod namespaces for %d pods", len(n.Pods), len(pods))
	}
	for _, p := range pods {
		veth := VethName("cali", p.Namespace, p.Name)
		if got := routeTo(t, lines, p.Status.PodIP); got != p.Status.PodIP+" dev "+veth+" scope link" {
			t.Errorf("route to pod %s: %q", p.Name, got)
		}
		ps := n.Pods[p.Namespace+"/"+p.Name]
		if d := cmp.Diff([]string{"default via 169.254.1.1 dev eth0", "169.254.1.1 dev eth0 scope link"}, routeLines(t, ps.Net)); d != "" {
			t.Errorf("pod %s routes (-want +got):\n%s", p.Name, d)
		}
		if n.Sysctls["ipv4/conf/"+veth+"/proxy_arp"] != "1" {
			t.Errorf("no proxy_arp on %s", veth)
		}
		if l := n.Net.LinkByName(veth); l == nil || l.HardwareAddr.String() != "ee:ee:ee:ee:ee:ee" || l.MTU != 1480 || l.Veth == nil || !strings.HasPrefix(l.Veth.PeerNetNS, "cni-") {
			t.Errorf("host veth %s wrong: %+v", veth, l)
		}
	}
	tunl := n.Net.LinkByName("tunl0")
	if tunl == nil || tunl.MTU != 1480 {
		t.Fatalf("tunl0: %+v", tunl)
	}
	var tunAddr []string
	for _, a := range n.Net.Addrs {
		if a.Dev == "tunl0" {
			tunAddr = append(tunAddr, a.Prefix.String())
		}
	}
	if d := cmp.Diff([]string{"10.0.104.0/32"}, tunAddr); d != "" {
		t.Errorf("tunl0 addresses (-want +got):\n%s", d)
	}
}

// TestModesAndVersions checks the per-mode route shapes of reference/cni.md §1.3.
func TestModesAndVersions(t *testing.T) {
	tests := []struct {
		mode, version string
		want          map[string]string // dst → route line
	}{
		{cluster.CalicoVXLANAlways, "v3.31.0", map[string]string{
			"10.0.7.0/24":  "blackhole 10.0.7.0/24 proto 80",
			"10.0.11.0/24": "10.0.11.0/24 via 10.0.11.0 dev vxlan.calico onlink mtu 1450",
			"10.0.35.0/24": "10.0.35.0/24 via 10.0.35.0 dev vxlan.calico onlink mtu 1450",
		}},
		{cluster.CalicoVXLANCrossSubnet, "v3.30.3", map[string]string{
			"10.0.11.0/24": "10.0.11.0/24 via 172.31.9.44 dev eth0 proto 80 onlink",
			"10.0.11.0":    "10.0.11.0 via 172.31.9.44 dev eth0 proto 80 onlink",
			"10.0.35.0/24": "10.0.35.0/24 via 10.0.35.0 dev vxlan.calico onlink",
		}},
		{cluster.CalicoIPIPAlways, "v3.32.0", map[string]string{
			"10.0.7.0/24":  "blackhole 10.0.7.0/24 proto bird metric 1024",
			"10.0.11.0/24": "10.0.11.0/24 via 172.31.9.44 dev tunl0 proto bird metric 1024 onlink",
			"10.0.7.1":     "10.0.7.1 dev cali1769d6929fd scope link metric 1024",
		}},
		{cluster.CalicoIPIPAlways, "v3.34.0", map[string]string{
			"10.0.7.0/24":  "blackhole 10.0.7.0/24 proto 80",
			"10.0.11.0/24": "10.0.11.0/24 via 172.31.9.44 dev tunl0 proto 80 onlink mtu 1480",
		}},
		{cluster.CalicoNever, "v3.31.0", map[string]string{
			"10.0.7.0/24":  "blackhole 10.0.7.0/24 proto bird",
			"10.0.11.0/24": "10.0.11.0/24 via 172.31.9.44 dev eth0 proto bird",
			"10.0.35.0/24": "10.0.35.0/24 via 172.31.0.1 dev eth0 proto bird",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.mode+"/"+tt.version, func(t *testing.T) {
			c, err := cluster.Preset("cluster-b")
			if err != nil {
				t.Fatal(err)
			}
			c.CNI.Mode, c.CNI.Version = tt.mode, tt.version
			n, err := Render(c, "ip-172-31-5-31", OptionsFor(c))
			if err != nil {
				t.Fatal(err)
			}
			lines := routeLines(t, n.Net)
			for dst, w := range tt.want {
				if got := routeTo(t, lines, dst); got != w {
					t.Errorf("route to %s: %q, want %q", dst, got, w)
				}
			}
			if tt.mode == cluster.CalicoVXLANAlways {
				var neigh, fdb []string
				for _, x := range n.Net.Neighs {
					neigh = append(neigh, x.IP.String()+" "+x.LLAddr.String())
				}
				for _, x := range n.Net.FDB {
					fdb = append(fdb, x.MAC.String()+" "+x.Dst.String())
				}
				if len(neigh) != len(c.Nodes)-1+2 || len(fdb) != len(c.Nodes)-1 {
					// Two static ARP entries for the local pods plus one per remote VTEP.
					t.Errorf("neigh %v fdb %v: want one per remote node", neigh, fdb)
				}
				peer := c.NodeByName("ip-172-31-9-44")
				wantFDB := VTEPMAC(peer.Name).String() + " " + peer.IP.String()
				if !cmp.Equal(true, contains(fdb, wantFDB)) {
					t.Errorf("fdb %v lacks %s", fdb, wantFDB)
				}
				l := n.Net.LinkByName(VXLANDevice)
				if l == nil || l.VXLAN.VNI != 4096 || l.VXLAN.Port != 4789 || l.MTU != 1450 {
					t.Errorf("vxlan.calico: %+v", l)
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestGolden prints `ip route`, `ip addr`, `ip neigh` of preset workers and a pod.
func TestGolden(t *testing.T) {
	for _, tt := range []struct{ preset, node, pod string }{
		{"cluster-a", "ip-172-31-5-31", "default/web-7c5d8f6b9-hjx4t"},
		{"cluster-b", "ip-172-31-27-63", "default/busybox"},
	} {
		t.Run(tt.preset, func(t *testing.T) {
			c, err := cluster.Preset(tt.preset)
			if err != nil {
				t.Fatal(err)
			}
			n, err := Render(c, tt.node, OptionsFor(c))
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			for _, step := range []struct {
				title string
				f     func() error
			}{
				{"ip route", func() error { return iproute.PrintRoutes(&b, n.Net, iproute.Options{}) }},
				{"ip addr", func() error { return iproute.PrintAddrs(&b, n.Net, iproute.Options{}) }},
				{"ip neigh", func() error { return iproute.PrintNeighs(&b, n.Net, iproute.Options{}) }},
				{tt.pod + ": ip route", func() error { return iproute.PrintRoutes(&b, n.Pods[tt.pod].Net, iproute.Options{}) }},
				{tt.pod + ": ip addr", func() error { return iproute.PrintAddrs(&b, n.Pods[tt.pod].Net, iproute.Options{}) }},
			} {
				fmt.Fprintf(&b, "$ %s\n", step.title)
				if err := step.f(); err != nil {
					t.Fatal(err)
				}
			}
			golden(t, filepath.Join("testdata", tt.preset+"-"+tt.node+".golden"), b.String())
		})
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("%s (-want +got):\n%s", path, d)
	}
}

func TestRenderErrors(t *testing.T) {
	c, err := cluster.Preset("cluster-b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Render(c, "nope", OptionsFor(c)); err == nil || !strings.Contains(err.Error(), `no node "nope"`) {
		t.Errorf("unknown node: %v", err)
	}
	o := OptionsFor(c)
	o.Mode = "Sometimes"
	if _, err := Render(c, "ip-172-31-5-31", o); err == nil || !strings.Contains(err.Error(), "unknown mode") {
		t.Errorf("bad mode: %v", err)
	}
	o = OptionsFor(c)
	o.Version = "latest"
	if _, err := Render(c, "ip-172-31-5-31", o); err == nil {
		t.Errorf("bad version accepted")
	}
	_ = netip.Addr{}
}
