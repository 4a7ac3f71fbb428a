package nftables

import (
	"context"
	"net/netip"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/knftables"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/render/kubeproxy"
)

// fakeProxierOptions mirrors upstream's nftables NewFakeProxier (pkg/proxy/nftables/
// proxier_test.go @ v1.35.0): node test-node at 192.168.0.2, pod CIDR 10.0.0.0/8 detector,
// mark 0x4000, NodePorts only on the node IP, ServiceCIDR 172.30.0.0/16.
func fakeProxierOptions(fam Family) Options {
	o := Options{
		NodeName:          "test-node",
		NodeIP:            netip.MustParseAddr("192.168.0.2"),
		Family:            IPv4,
		Detector:          kubeproxy.LocalDetector{Mode: kubeproxy.LocalClusterCIDR, CIDR: netip.MustParsePrefix("10.0.0.0/8")},
		MarkFormat:        "tests",
		NodePortAddresses: []netip.Prefix{netip.MustParsePrefix("192.168.0.2/32"), netip.MustParsePrefix("2001:db8::1/128")},
		LocalAddrs: []netip.Addr{
			netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1"),
			netip.MustParseAddr("192.168.0.2"), netip.MustParseAddr("192.168.1.2"), netip.MustParseAddr("192.168.99.11"),
			netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:1::2"),
		},
		ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("172.30.0.0/16")},
	}
	if fam == IPv6 {
		o.Family = IPv6
		o.NodeIP = netip.MustParseAddr("2001:db8::1")
		o.Detector.CIDR = netip.MustParsePrefix("fd00:10::/64")
		o.ServiceCIDRs = []netip.Prefix{netip.MustParsePrefix("fd00:10:96::/112")}
	}
	return o
}

func loadObjects(t *testing.T, file string) cluster.Objects {
	t.Helper()
	objs, notes, err := cluster.LoadObjects(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range notes {
		t.Logf("note: %v", n)
	}
	return objs
}

// sortTransaction canonicalises knftables transaction text as upstream's
// sortNFTablesTransaction does: blank and comment lines dropped, lines ordered by object
// type and name, rules keeping their order within a chain.
func sortTransaction(s string) string {
	typeOrder := map[string]int{"table": 0, "chain": 1, "set": 2, "map": 3, "rule": 4, "element": 5}
	type line struct {
		typ  int
		name string
		idx  int
		text string
	}
	var lines []line
	for i, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(l)
		ln := line{typ: 99, idx: i, text: l}
		if len(f) >= 5 {
			if o, ok := typeOrder[f[1]]; ok {
				ln.typ = o
				ln.name = f[4]
			}
		}
		lines = append(lines, ln)
	}
	sort.SliceStable(lines, func(i, j int) bool {
		a, b := lines[i], lines[j]
		if a.typ != b.typ {
			return a.typ < b.typ
		}
		if a.name != b.name {
			return a.name < b.name
		}
		if a.typ == 4 {
			return a.idx < b.idx
		}
		return a.text < b.text
	})
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.text
	}
	return strings.Join(out, "\n") + "\n"
}

func TestOverallNFTablesRules(t *testing.T) {
	objs := loadObjects(t, "testdata/case01.objects.yaml")
	nft := knftables.NewFake(knftables.IPv4Family, "kube-proxy")
	p, err := New(fakeProxierOptions(IPv4), nft, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Sync(context.Background(), objs); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/nft01.nft")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(sortTransaction(string(want)), sortTransaction(nft.Dump())); d != "" {
		t.Errorf("kube-proxy nftables state differs from upstream's TestOverallNFTablesRules (-upstream +knet):\n%s", d)
	}
}

// clock is a manual clock for the stale-chain timing of repeated syncs.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
