package iptables

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/render/kubeproxy"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// fakeOptions configures Options like upstream's NewFakeProxier (proxier_test.go): node
// test-node with the fake network's addresses, mark written as the tests do ("0x4000"),
// local detector by CIDR 10.0.0.0/8 (fd00:10::/64 for IPv6), localhost NodePorts, nfacct
// counters present, no --random-fully, nf_conntrack_tcp_be_liberal unset.
func fakeOptions(fam kubeproxy.Family) Options {
	cidr := netip.MustParsePrefix("10.0.0.0/8")
	if fam == kubeproxy.IPv6 {
		cidr = netip.MustParsePrefix("fd00:10::/64")
	}
	o := Options{
		NodeName: "test-node",
		NodeIPs: []netip.Addr{
			netip.MustParseAddr("192.168.0.2"), netip.MustParseAddr("192.168.1.2"), netip.MustParseAddr("192.168.99.11"),
			netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:1::2"),
		},
		Family:             fam,
		LocalDetector:      kubeproxy.LocalDetector{Mode: kubeproxy.LocalClusterCIDR, CIDR: cidr},
		MarkFormat:         MarkTests,
		LocalhostNodePorts: true,
		NFAcct:             true,
	}
	if fam == kubeproxy.IPv6 {
		o.NodeIPs = []netip.Addr{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:1::2"),
			netip.MustParseAddr("192.168.0.2"), netip.MustParseAddr("192.168.1.2"), netip.MustParseAddr("192.168.99.11")}
	}
	return o
}

func loadObjects(t *testing.T, name string) cluster.Objects {
	t.Helper()
	objs, notes, err := cluster.LoadObjects(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 0 {
		t.Fatalf("unexpected loader notes: %v", notes)
	}
	return objs
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func canon(t *testing.T, what string, b []byte) string {
	t.Helper()
	c, err := CanonicalByPort(b)
	if err != nil {
		t.Fatalf("canonicalising %s: %v", what, err)
	}
	return string(c)
}

// upstreamCases are the inputs and expected restore inputs of kube-proxy-cases (see
// testdata/README.md): verbatim upstream expectations and DERIVED ones.
func upstreamCases() []struct {
	name, objects, want string
	opts                func() Options
} {
	type tc = struct {
		name, objects, want string
		opts                func() Options
	}
	v4 := func() Options { return fakeOptions(kubeproxy.IPv4) }
	with := func(fam kubeproxy.Family, f func(*Options)) func() Options {
		return func() Options { o := fakeOptions(fam); f(&o); return o }
	}
	cidrs := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, c := range s {
			out = append(out, netip.MustParsePrefix(c))
		}
		return out
	}
	cases := []tc{
		{"case01 TestOverallIPTablesRules", "case01.objects.yaml", "case01.expected.iptables-restore", v4},
		{"case14 TestBadIPs", "case14.objects.yaml", "case14.expected.iptables-restore", v4},
		{"case03", "case03.objects.yaml", "case03.derived.iptables-restore", v4},
		{"case04", "case04.objects.yaml", "case04.derived.iptables-restore", v4},
		{"case05", "case05.objects.yaml", "case05.derived.iptables-restore", v4},
		{"case06.1", "case06.1.objects.yaml", "case06.1.derived.iptables-restore", v4},
		{"case06.2", "case06.2.objects.yaml", "case06.2.derived.iptables-restore", with(kubeproxy.IPv4, func(o *Options) { o.LocalhostNodePorts = false })},
		{"case06.3", "case06.3.objects.yaml", "case06.3.derived.iptables-restore", with(kubeproxy.IPv4, func(o *Options) {
			o.LocalhostNodePorts = false
			o.NodePortAddresses = cidrs("192.168.0.0/24", "127.0.0.1/32")
		})},
		{"case06.4", "case06.4.objects.yaml", "case06.4.derived.iptables-restore", with(kubeproxy.IPv4, func(o *Options) {
			o.LocalhostNodePorts = false
			o.NodePortAddresses = cidrs("192.168.0.0/24", "192.168.1.0/24", "2001:db8::/64")
		})},
		{"case06.5", "case06.5.objects.yaml", "case06.5.derived.iptables-restore", with(kubeproxy.IPv6, func(o *Options) {})},
		{"case06.6", "case06.6.objects.yaml", "case06.6.derived.iptables-restore", with(kubeproxy.IPv6, func(o *Options) { o.LocalhostNodePorts = false })},
		{"case06.7", "case06.7.objects.yaml", "case06.7.derived.iptables-restore", with(kubeproxy.IPv6, func(o *Options) {
			o.LocalhostNodePorts = false
			o.NodePortAddresses = cidrs("192.168.0.0/24", "192.168.1.0/24", "2001:db8::/64")
		})},
		{"case07", "case07.objects.yaml", "case07.derived.iptables-restore", v4},
		{"case08", "case08.objects.yaml", "case08.derived.iptables-restore", v4},
		{"case12.a-base", "case12.objects.yaml", "case12.a-base.derived.iptables-restore", v4},
		{"case12.b-noLocalDetector", "case12.objects.yaml", "case12.b-noLocalDetector.derived.iptables-restore", with(kubeproxy.IPv4, func(o *Options) {
			o.LocalDetector = kubeproxy.LocalDetector{Mode: kubeproxy.LocalNone}
		})},
		{"case12.c-masqueradeAll", "case12.objects.yaml", "case12.c-masqueradeAll.derived.iptables-restore", with(kubeproxy.IPv4, func(o *Options) { o.MasqueradeAll = true })},
		{"case12.d-masqueradeAll-noLocalDetector", "case12.objects.yaml", "case12.d-masqueradeAll-noLocalDetector.derived.iptables-restore", with(kubeproxy.IPv4, func(o *Options) {
			o.MasqueradeAll = true
			o.LocalDetector = kubeproxy.LocalDetector{Mode: kubeproxy.LocalNone}
		})},
	}
	for _, c := range []string{"case09", "case10", "case11"} {
		for _, sub := range []string{"a", "b", "c", "d"} {
			id := c + "." + sub
			cases = append(cases, tc{id, id + ".objects.yaml", id + ".derived.iptables-restore", v4})
		}
	}
	return cases
}

func TestUpstreamCases(t *testing.T) {
	for _, tc := range upstreamCases() {
		t.Run(tc.name, func(t *testing.T) {
			objs := loadObjects(t, tc.objects)
			got, err := Render(objs, tc.opts())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(canon(t, tc.want, readFile(t, tc.want)), canon(t, "rendered", got)); diff != "" {
				t.Errorf("restore input differs from %s after sortIPTablesRules (-want +got):\n%s", tc.want, diff)
			}
			if err := CheckJumps(got); err != nil {
				t.Errorf("checkIPTablesRuleJumps: %v", err)
			}
		})
	}
}

// TestSyncProxyRulesRepeated replays upstream TestSyncProxyRulesRepeated (case13): each
// step's objects are synced on the same Proxier and the restore input must equal upstream's.
func TestSyncProxyRulesRepeated(t *testing.T) {
	p := NewProxier(fakeOptions(kubeproxy.IPv4))
	for step := 1; step <= 9; step++ {
		name := filepath.Join("testdata", "case13.step0"+string(rune('0'+step)))
		objs := loadObjects(t, filepath.Base(name)+".objects.yaml")
		got, err := p.Sync(objs)
		if err != nil {
			t.Fatal(err)
		}
		if step == 9 {
			// Upstream injects a dangling jump into the fake iptables, so this partial
			// restore (which deletes svc4's chains) fails and the retry is a full sync.
			if !strings.Contains(string(got), "-X KUBE-SVC-4SW47YFZTEDKD3PK") || strings.Contains(string(got), ":KUBE-SVC-XPGD46QRK7WJZT7O") {
				t.Errorf("step 9 partial sync should delete svc4's chains and not rewrite svc1:\n%s", got)
			}
			p.RestoreFailed()
			if got, err = p.Sync(objs); err != nil {
				t.Fatal(err)
			}
		}
		want := filepath.Base(name) + ".expected.iptables-restore"
		if diff := cmp.Diff(canon(t, want, readFile(t, want)), canon(t, "rendered", got)); diff != "" {
			t.Errorf("step %d (-want +got):\n%s", step, diff)
		}
	}
}

// TestRenderGolden pins the exact bytes (not just the canonical form) of the runtime
// defaults: mark 0x00004000, --random-fully, sorted Service order.
func TestRenderGolden(t *testing.T) {
	objs := loadObjects(t, "case01.objects.yaml")
	o := DefaultOptions("test-node", netip.MustParseAddr("192.168.0.2"))
	o.LocalDetector = kubeproxy.LocalDetector{Mode: kubeproxy.LocalClusterCIDR, CIDR: netip.MustParsePrefix("10.0.0.0/8")}
	got, err := Render(objs, o)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "case01.runtime.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, s := range []string{"--or-mark 0x00004000", "-j MASQUERADE --random-fully", "--mark 0x00004000/0x00004000"} {
		if !strings.Contains(string(got), s) {
			t.Errorf("runtime output lacks %q", s)
		}
	}
}

func TestComputeProbability(t *testing.T) {
	tests := map[int]string{1: "1.0000000000", 2: "0.5000000000", 10: "0.1000000000", 100: "0.0100000000",
		1000: "0.0010000000", 10000: "0.0001000000", 100000: "0.0000100000", 100001: "0.0000099999"}
	for n, want := range tests {
		if got := ComputeProbability(n); got != want {
			t.Errorf("ComputeProbability(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestChainNames(t *testing.T) {
	tests := []struct{ got, want string }{
		{PrefixSVC + PortProtoHash("ns1/svc1:p80", "tcp"), "KUBE-SVC-XPGD46QRK7WJZT7O"},
		{EndpointChainName("ns1/svc1:p80", "tcp", "10.180.0.1:80"), "KUBE-SEP-SXIVWICOYRO3J4NJ"},
		{PrefixSVC + PortProtoHash("ns2/svc2:p80", "tcp"), "KUBE-SVC-GNZBNJ2PO5MGZ6GT"},
		{EndpointChainName("ns5/svc5:p80", "tcp", "10.180.0.3:80"), "KUBE-SEP-I77PXRDZVX7PMWMN"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %s, want %s", tt.got, tt.want)
		}
	}
}
