package verify

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/dataplane/netfilter"
	"github.com/knet-dev/knet/dataplane/route"
)

// run runs one check on hand-built nodes and returns its findings' keys.
func run(check func(*verifier), intent, actual *dataplane.Node, mode cluster.ProxyMode) []key {
	v := &verifier{intent: intent, actual: actual, c: &cluster.Cluster{Proxy: cluster.Proxy{Mode: mode}}, node: "n1"}
	check(v)
	Sort(v.out)
	return keys(v.out)
}

func stackWith(links ...*route.Link) *route.Stack {
	s := route.New()
	for _, l := range links {
		s.Links = append(s.Links, l)
	}
	return s
}

func TestCheckSysctls(t *testing.T) {
	net := stackWith(
		&route.Link{Index: 2, Name: "eth0", Kind: route.LinkKind("device"), MTU: 1500},
		&route.Link{Index: 3, Name: "tunl0", Kind: route.LinkKind("ipip"), MTU: 1480, IPIP: &route.IPIP{}},
		&route.Link{Index: 4, Name: "cali0123456789a", Kind: route.LinkKind("veth"), MTU: 1480, Veth: &route.Veth{}},
	)
	rp := key{SeverityWarning, CheckSysctlRPFilter, "Node n1"}
	for _, tc := range []struct {
		name    string
		sysctls map[string]string
		want    []key
	}{
		{"defaults", map[string]string{"ipv4/ip_forward": "1", "ipv4/conf/all/rp_filter": "2"}, []key{}},
		{"forwarding off", map[string]string{"ipv4/ip_forward": "0"}, []key{{SeverityError, CheckSysctlIPForward, "Node n1"}}},
		{"forwarding unknown", map[string]string{}, []key{}},
		{"strict on all", map[string]string{"ipv4/conf/all/rp_filter": "1"}, []key{rp}},
		{"strict on the uplink only", map[string]string{"ipv4/conf/eth0/rp_filter": "1"}, []key{}},
		{"strict on the tunnel", map[string]string{"ipv4/conf/tunl0/rp_filter": "1"}, []key{rp}},
		{"strict on a pod veth", map[string]string{"ipv4/conf/cali0123456789a/rp_filter": "1"}, []key{rp}},
		{"strict on a link that is not there", map[string]string{"ipv4/conf/gone0/rp_filter": "1"}, []key{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			actual := &dataplane.Node{Net: net, Sysctls: tc.sysctls}
			if diff := cmp.Diff(tc.want, run(checkSysctls, &dataplane.Node{}, actual, cluster.ProxyIPTables)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckConntrack(t *testing.T) {
	full := []key{{SeverityWarning, CheckConntrackNearFull, "Node n1"}}
	for _, tc := range []struct {
		name       string
		count, max string
		want       []key
	}{
		{"91%", "910", "1000", full},
		{"exactly 90%", "900", "1000", []key{}},
		{"full", "1000", "1000", full},
		{"max zero", "5", "0", []key{}},
		{"not a number", "x", "1000", []key{}},
		{"no max", "900", "", []key{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := map[string]string{"netfilter/nf_conntrack_count": tc.count}
			if tc.max != "" {
				sc["netfilter/nf_conntrack_max"] = tc.max
			}
			if diff := cmp.Diff(tc.want, run(checkConntrack, &dataplane.Node{}, &dataplane.Node{Sysctls: sc}, cluster.ProxyIPTables)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func natNode(chains map[string][]*netfilter.Rule) *dataplane.Node {
	rs := &netfilter.Ruleset{Family: netfilter.IPv4}
	nat := rs.EnsureTable(netfilter.TableName("nat"))
	for _, name := range []string{"KUBE-SERVICES", "KUBE-SVC-AAAAAAAAAAAAAAAA", "KUBE-SEP-BBBBBBBBBBBBBBBB"} {
		if rules, ok := chains[name]; ok {
			c := nat.EnsureChain(name)
			c.Rules = rules
		}
	}
	return &dataplane.Node{IPTables: rs}
}

func TestCheckIPTablesStale(t *testing.T) {
	jump := func(to string) *netfilter.Rule { return &netfilter.Rule{Target: &netfilter.Jump{Chain: to}} }
	intent := natNode(map[string][]*netfilter.Rule{"KUBE-SERVICES": nil})
	for _, tc := range []struct {
		name   string
		mode   cluster.ProxyMode
		actual *dataplane.Node
		want   []key
	}{
		{"none", cluster.ProxyIPTables, natNode(map[string][]*netfilter.Rule{"KUBE-SERVICES": nil}), []key{}},
		{"unreferenced", cluster.ProxyIPTables, natNode(map[string][]*netfilter.Rule{"KUBE-SERVICES": nil, "KUBE-SEP-BBBBBBBBBBBBBBBB": nil}),
			[]key{{SeverityWarning, CheckIPTStaleChain, "Node n1"}}},
		{"still referenced", cluster.ProxyIPTables, natNode(map[string][]*netfilter.Rule{
			"KUBE-SERVICES":             {jump("KUBE-SVC-AAAAAAAAAAAAAAAA")},
			"KUBE-SVC-AAAAAAAAAAAAAAAA": {jump("KUBE-SEP-BBBBBBBBBBBBBBBB")},
			"KUBE-SEP-BBBBBBBBBBBBBBBB": nil,
		}), []key{{SeverityError, CheckIPTStaleChain, "Node n1"}, {SeverityError, CheckIPTStaleChain, "Node n1"}}},
		{"another mode's chains are leftovers, not stale", cluster.ProxyIPVS, natNode(map[string][]*netfilter.Rule{"KUBE-SEP-BBBBBBBBBBBBBBBB": nil}), []key{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, run(checkIPTablesStale, intent, tc.actual, tc.mode)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSort(t *testing.T) {
	fs := []Finding{
		{Severity: SeverityInfo, Check: "a"},
		{Severity: SeverityWarning, Check: "b", Object: "Node y"},
		{Severity: SeverityError, Check: "z"},
		{Severity: SeverityWarning, Check: "b", Object: "Node x"},
		{Severity: SeverityError, Check: "c"},
	}
	Sort(fs)
	got := keys(fs)
	want := []key{{SeverityError, "c", ""}, {SeverityError, "z", ""}, {SeverityWarning, "b", "Node x"}, {SeverityWarning, "b", "Node y"}, {SeverityInfo, "a", ""}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
