package flannel

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/format/iproute"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// flannelCluster is the seed's layout with Flannel as the pod network.
func flannelCluster(t *testing.T, backend string) *cluster.Cluster {
	t.Helper()
	c, err := cluster.Preset("cluster-c")
	if err != nil {
		t.Fatal(err)
	}
	c.CNI.Plugin, c.CNI.Mode, c.CNI.Version = cluster.CNIFlannel, backend, cluster.DefaultFlannelVersion
	return c
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

func TestVXLAN(t *testing.T) {
	c := flannelCluster(t, cluster.FlannelVXLAN)
	n, notes, err := Render(c, "ip-172-31-5-31", OptionsFor(c))
	if err != nil || len(notes) != 0 {
		t.Fatal(err, notes)
	}
	got := lines(t, func(b *bytes.Buffer) error { return iproute.PrintRoutes(b, n.Net, iproute.Options{}) })
	want := []string{
		"default via 172.31.0.1 dev eth0 proto dhcp src 172.31.5.31 metric 100",
		"10.0.1.0/24 via 10.0.1.0 dev flannel.1 onlink",
		"10.0.2.0/24 via 10.0.2.0 dev flannel.1 onlink",
		"10.0.7.0/24 dev cni0 proto kernel scope link src 10.0.7.1",
		"10.0.11.0/24 via 10.0.11.0 dev flannel.1 onlink",
		"10.0.35.0/24 via 10.0.35.0 dev flannel.1 onlink",
		"10.0.104.0/24 via 10.0.104.0 dev flannel.1 onlink",
		"172.31.0.0/20 dev eth0 proto kernel scope link src 172.31.5.31 metric 100",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ip route (-want +got):\n%s", d)
	}
	l := n.Net.LinkByName("flannel.1")
	if l == nil || l.VXLAN == nil || l.VXLAN.VNI != 1 || l.VXLAN.Port != 8472 || l.VXLAN.Learning || l.MTU != 1450 {
		t.Fatalf("flannel.1: %+v", l)
	}
	peer := c.NodeByName("ip-172-31-9-44")
	mac := VTEPMAC(peer.Name).String()
	neigh := lines(t, func(b *bytes.Buffer) error { return iproute.PrintNeighs(b, n.Net, iproute.Options{}) })
	if !contains(neigh, "10.0.11.0 dev flannel.1 lladdr "+mac+" PERMANENT") {
		t.Errorf("ip neigh lacks the VTEP of %s:\n%s", peer.Name, strings.Join(neigh, "\n"))
	}
	fdb := lines(t, func(b *bytes.Buffer) error { return iproute.PrintFDB(b, n.Net, iproute.Options{}) })
	if !contains(fdb, mac+" dev flannel.1 dst 172.31.9.44 self permanent") {
		t.Errorf("bridge fdb lacks the VTEP of %s:\n%s", peer.Name, strings.Join(fdb, "\n"))
	}
	// Pods: /24 on eth0, default and the cluster network via cni0's gateway, MTU 1450.
	for key, p := range n.Pods {
		pr := lines(t, func(b *bytes.Buffer) error { return iproute.PrintRoutes(b, p.Net, iproute.Options{}) })
		if len(pr) != 3 || pr[0] != "default via 10.0.7.1 dev eth0" || pr[1] != "10.0.0.0/16 via 10.0.7.1 dev eth0" {
			t.Errorf("pod %s routes: %q", key, pr)
		}
		if e := p.Net.LinkByName("eth0"); e == nil || e.MTU != 1450 {
			t.Errorf("pod %s eth0: %+v", key, e)
		}
	}
}

func TestHostGW(t *testing.T) {
	c := flannelCluster(t, cluster.FlannelHostGW)
	n, notes, err := Render(c, "ip-172-31-5-31", OptionsFor(c))
	if err != nil {
		t.Fatal(err)
	}
	got := lines(t, func(b *bytes.Buffer) error { return iproute.PrintRoutes(b, n.Net, iproute.Options{}) })
	if !contains(got, "10.0.11.0/24 via 172.31.9.44 dev eth0") || !contains(got, "10.0.1.0/24 via 172.31.2.10 dev eth0") {
		t.Errorf("host-gw routes:\n%s", strings.Join(got, "\n"))
	}
	// The three nodes of the other subnet cannot be reached by host-gw: noted, not silent.
	if len(notes) != 3 || !strings.Contains(notes[0], "is not in subnet 172.31.0.0/20") {
		t.Errorf("notes: %v", notes)
	}
	if n.Net.LinkByName("flannel.1") != nil {
		t.Errorf("host-gw has no vxlan device")
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

func TestGolden(t *testing.T) {
	c := flannelCluster(t, cluster.FlannelVXLAN)
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
		{"ip addr", func() error { return iproute.PrintAddrs(&b, n.Net, iproute.Options{}) }},
		{"ip neigh", func() error { return iproute.PrintNeighs(&b, n.Net, iproute.Options{}) }},
		{"bridge fdb show dev flannel.1", func() error { return iproute.PrintFDB(&b, n.Net, iproute.Options{Dev: "flannel.1"}) }},
		{"default/busybox: ip route", func() error { return iproute.PrintRoutes(&b, n.Pods["default/busybox"].Net, iproute.Options{}) }},
	} {
		fmt.Fprintf(&b, "$ %s\n", s.title)
		if err := s.f(); err != nil {
			t.Fatal(err)
		}
	}
	path := "testdata/flannel-vxlan-ip-172-31-27-63.golden"
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
