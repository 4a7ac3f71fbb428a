package kuberouter

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/format/iproute"
	"github.com/knet-dev/knet/render/cni/hostnet"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// Vectors from kube-router pkg/tunnels/linux_tunnels_test.go (v2) and seen v1 dumps
// (reference/cni.md §2.2).
func TestTunnelName(t *testing.T) {
	for _, tt := range []struct{ version, ip, want string }{
		{"v2.11.0", "10.0.0.1", "tun-e443169117a"},
		{"v2.0.0", "192.168.1.102", "tun-2368ad9b4a1"},
		{"v1.5.0", "10.0.0.1", "tun-10001"},
		{"v1.5.0", "172.0.117.60", "tun-172011760"},
	} {
		got, err := TunnelName(tt.version, netip.MustParseAddr(tt.ip))
		if err != nil || got != tt.want {
			t.Errorf("TunnelName(%s, %s) = %s, %v; want %s", tt.version, tt.ip, got, err, tt.want)
		}
	}
}

func lines(t *testing.T, f func(*bytes.Buffer) error) []string {
	t.Helper()
	var b bytes.Buffer
	if err := f(&b); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
		out = append(out, strings.TrimRight(l, " "))
	}
	return out
}

// TestSeedFacts: like Calico CrossSubnet, eth0 inside the subnet and tunnels across it.
func TestSeedFacts(t *testing.T) {
	c, err := cluster.Preset("cluster-c")
	if err != nil {
		t.Fatal(err)
	}
	n, notes, err := Render(c, "ip-172-31-5-31", OptionsFor(c))
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 0 {
		t.Errorf("notes: %v", notes)
	}
	tun := func(ip string) string {
		name, err := TunnelName(c.CNI.Version, netip.MustParseAddr(ip))
		if err != nil {
			t.Fatal(err)
		}
		return name
	}
	want := []string{
		"default via 172.31.0.1 dev eth0 proto dhcp src 172.31.5.31 metric 100",
		"10.0.1.0/24 via 172.31.2.10 dev eth0 proto 17",
		"10.0.2.0/24 dev " + tun("172.31.18.20") + " proto 17 src 172.31.5.31",
		"10.0.7.0/24 dev kube-bridge proto kernel scope link src 10.0.7.1",
		"10.0.11.0/24 via 172.31.9.44 dev eth0 proto 17",
		"10.0.35.0/24 dev " + tun("172.31.21.52") + " proto 17 src 172.31.5.31",
		"10.0.104.0/24 dev " + tun("172.31.27.63") + " proto 17 src 172.31.5.31",
		"172.31.0.0/20 dev eth0 proto kernel scope link src 172.31.5.31 metric 100",
	}
	got := lines(t, func(b *bytes.Buffer) error { return iproute.PrintRoutes(b, n.Net, iproute.Options{}) })
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ip route (-want +got):\n%s", d)
	}
	got = lines(t, func(b *bytes.Buffer) error {
		return iproute.PrintRoutes(b, n.Net, iproute.Options{Table: "kube-router"})
	})
	wantT := []string{"172.31.18.20 dev " + tun("172.31.18.20") + " scope link", "172.31.21.52 dev " + tun("172.31.21.52") + " scope link", "172.31.27.63 dev " + tun("172.31.27.63") + " scope link"}
	if d := cmp.Diff(wantT, got); d != "" {
		t.Errorf("ip route show table kube-router (-want +got):\n%s", d)
	}
	got = lines(t, func(b *bytes.Buffer) error { return iproute.PrintRules(b, n.Net, iproute.Options{}) })
	if !cmp.Equal(got[1], "32765:\tfrom 10.0.7.0/24 lookup kube-router") {
		t.Errorf("ip rule: %q", got)
	}
	// Pods hang off kube-bridge with hairpin; the pod side routes via the bridge gateway.
	for key, pn := range n.Pods {
		pod := strings.SplitN(key, "/", 2)
		veth := n.Net.LinkByName(hostVeth(pod[0], pod[1]))
		if veth == nil || veth.Master != BridgeName || veth.BridgePort == nil || !veth.BridgePort.Hairpin {
			t.Errorf("pod %s host veth: %+v", key, veth)
		}
		pr := lines(t, func(b *bytes.Buffer) error { return iproute.PrintRoutes(b, pn.Net, iproute.Options{}) })
		if len(pr) != 2 || pr[0] != "default via 10.0.7.1 dev eth0" || !strings.HasPrefix(pr[1], "10.0.7.0/24 dev eth0 proto kernel scope link src 10.0.7.") {
			t.Errorf("pod %s routes: %q", key, pr)
		}
	}
	if len(n.Pods) != 2 {
		t.Errorf("%d pods on ip-172-31-5-31, want 2", len(n.Pods))
	}
}

func TestModes(t *testing.T) {
	c, err := cluster.Preset("cluster-c")
	if err != nil {
		t.Fatal(err)
	}
	o := OptionsFor(c)
	o.Mode = cluster.KubeRouterOverlayFull
	n, _, err := Render(c, "ip-172-31-5-31", o)
	if err != nil {
		t.Fatal(err)
	}
	got := lines(t, func(b *bytes.Buffer) error { return iproute.PrintRoutes(b, n.Net, iproute.Options{}) })
	for _, l := range got {
		if strings.Contains(l, "proto 17") && !strings.Contains(l, " dev tun-") {
			t.Errorf("overlay full: %q does not use a tunnel", l)
		}
	}
	o.Mode = cluster.KubeRouterNoOverlay
	n, notes, err := Render(c, "ip-172-31-5-31", o)
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 3 {
		t.Errorf("no overlay: want one note per node of the other subnet, got %v", notes)
	}
	if n.Net.LinkByName("tunl0") != nil {
		t.Errorf("no overlay: the ipip module should not be loaded")
	}
	o = OptionsFor(c)
	o.ServiceProxy = true
	n, _, err = Render(c, "ip-172-31-5-31", o)
	if err != nil {
		t.Fatal(err)
	}
	got = lines(t, func(b *bytes.Buffer) error { return iproute.PrintAddrs(b, n.Net, iproute.Options{Dev: DummyName}) })
	if !contains(got, "    inet 10.1.0.10/32 scope link kube-dummy-if") {
		t.Errorf("kube-dummy-if lacks the DNS ClusterIP with scope link:\n%s", strings.Join(got, "\n"))
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func hostVeth(ns, pod string) string { return vethName(ns, pod) }

func TestGolden(t *testing.T) {
	c, err := cluster.Preset("cluster-c")
	if err != nil {
		t.Fatal(err)
	}
	n, _, err := Render(c, "ip-172-31-27-63", OptionsFor(c))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, s := range []struct {
		title string
		f     func() error
	}{
		{"ip route", func() error { return iproute.PrintRoutes(&b, n.Net, iproute.Options{}) }},
		{"ip route show table all", func() error { return iproute.PrintRoutes(&b, n.Net, iproute.Options{Table: "all"}) }},
		{"ip rule", func() error { return iproute.PrintRules(&b, n.Net, iproute.Options{}) }},
		{"ip addr", func() error { return iproute.PrintAddrs(&b, n.Net, iproute.Options{}) }},
		{"default/busybox: ip addr", func() error { return iproute.PrintAddrs(&b, n.Pods["default/busybox"].Net, iproute.Options{}) }},
		{"default/busybox: ip route", func() error { return iproute.PrintRoutes(&b, n.Pods["default/busybox"].Net, iproute.Options{}) }},
	} {
		fmt.Fprintf(&b, "$ %s\n", s.title)
		if err := s.f(); err != nil {
			t.Fatal(err)
		}
	}
	path := "testdata/cluster-c-ip-172-31-27-63.golden"
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(string(want), b.String()); d != "" {
		t.Errorf("%s (-want +got):\n%s", path, d)
	}
}

func vethName(ns, pod string) string { return hostnet.VethName(ns, pod) }
