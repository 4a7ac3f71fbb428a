package verify

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/dataplane/netfilter"
	"github.com/knet-dev/knet/dataplane/nftables"
	"github.com/knet-dev/knet/dataplane/route"
)

// key is what a fault test asserts of a finding.
type key struct {
	Severity Severity
	Check    string
	Object   string
}

func keys(fs []Finding) []key {
	out := []key{}
	for _, f := range fs {
		out = append(out, key{f.Severity, f.Check, f.Object})
	}
	return out
}

const worker = "ip-172-31-5-31" // in cluster-a and cluster-b: pod block 10.0.7.0/24

func delRoute(t *testing.T, n *dataplane.Node, dst string, typ route.RouteType) *route.Route {
	t.Helper()
	p := netip.MustParsePrefix(dst)
	for i, r := range n.Net.Routes {
		if r.Dst == p && r.Type == typ {
			n.Net.Routes = append(n.Net.Routes[:i:i], n.Net.Routes[i+1:]...)
			n.Net.Reindex()
			return r
		}
	}
	t.Fatalf("no %s route %s in the snapshot", typ, dst)
	return nil
}

// chainFor returns the nat chain with prefix whose rules' comments name svc.
func chainFor(t *testing.T, n *dataplane.Node, prefix, svc string) *netfilter.Chain {
	t.Helper()
	for _, c := range natTable(n).Chains {
		if !strings.HasPrefix(c.Name, prefix) {
			continue
		}
		for _, r := range c.Rules {
			for _, m := range r.Matches {
				if cm, ok := m.(*netfilter.Comment); ok && strings.HasPrefix(cm.Text, svc) {
					return c
				}
			}
		}
	}
	t.Fatalf("no %s chain for %s", prefix, svc)
	return nil
}

func removeChain(n *dataplane.Node, name string) {
	t := natTable(n)
	for i, c := range t.Chains {
		if c.Name == name {
			t.Chains = append(t.Chains[:i:i], t.Chains[i+1:]...)
			break
		}
	}
	t.Reindex()
}

func addIPVSDummy(t *testing.T, n *dataplane.Node, addr string) {
	t.Helper()
	if n.Net.LinkByName(ipvsDummy) == nil {
		if err := n.Net.LinkAdd(&route.Link{Name: ipvsDummy, Kind: route.LinkKind("dummy"), MTU: 1500, LinkType: "ether"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Net.AddrAdd(&route.Addr{Dev: ipvsDummy, Prefix: netip.MustParsePrefix(addr), Scope: route.Scope(0)}); err != nil {
		t.Fatal(err)
	}
}

// TestFaults: each fault injected into a clean snapshot's model gives exactly its finding.
func TestFaults(t *testing.T) {
	for _, tc := range []struct {
		name, preset, mode string
		fault              func(t *testing.T, actual *dataplane.Node)
		want               []key
	}{
		{"delete remote pod block route", "cluster-a", "", func(t *testing.T, a *dataplane.Node) {
			delRoute(t, a, "10.0.35.0/24", route.RouteType("unicast"))
		}, []key{{SeverityError, CheckRouteMissingPodBlock, "Node ip-172-31-21-52"}}},
		{"pod block via the wrong device", "cluster-a", "", func(t *testing.T, a *dataplane.Node) {
			r := delRoute(t, a, "10.0.35.0/24", route.RouteType("unicast"))
			cp := *r
			cp.Dev, cp.Flags = "eth0", 0
			a.Net.Routes = append(a.Net.Routes, &cp)
			a.Net.Reindex()
		}, []key{{SeverityError, CheckRouteWrongDevice, "Node ip-172-31-21-52"}}},
		{"delete a local pod's route", "cluster-a", "", func(t *testing.T, a *dataplane.Node) {
			delRoute(t, a, "10.0.7.1/32", route.RouteType("unicast"))
		}, []key{{SeverityError, CheckRouteMissingPodRoute, podAt(t, "cluster-a", "10.0.7.1")}}},
		{"delete the local blackhole", "cluster-a", "", func(t *testing.T, a *dataplane.Node) {
			delRoute(t, a, "10.0.7.0/24", route.RouteType("blackhole"))
		}, []key{{SeverityError, CheckRouteMissingBlackhole, "Node " + worker}}},
		{"tunl0 MTU", "cluster-a", "", func(t *testing.T, a *dataplane.Node) {
			a.Net.LinkByName("tunl0").MTU = 1500
		}, []key{{SeverityError, CheckMTUMismatch, "Node " + worker}}},
		{"rp_filter all strict", "cluster-a", "", func(t *testing.T, a *dataplane.Node) {
			a.Sysctls["ipv4/conf/all/rp_filter"] = "1"
		}, []key{{SeverityWarning, CheckSysctlRPFilter, "Node " + worker}}},
		{"ip_forward off", "cluster-b", "", func(t *testing.T, a *dataplane.Node) {
			a.Sysctls["ipv4/ip_forward"] = "0"
		}, []key{{SeverityError, CheckSysctlIPForward, "Node " + worker}}},
		{"conntrack near full", "cluster-b", "", func(t *testing.T, a *dataplane.Node) {
			a.Sysctls["netfilter/nf_conntrack_count"] = "235930"
			a.Sysctls["netfilter/nf_conntrack_max"] = "262144"
		}, []key{{SeverityWarning, CheckConntrackNearFull, "Node " + worker}}},
		{"conntrack below 90%", "cluster-b", "", func(t *testing.T, a *dataplane.Node) {
			a.Sysctls["netfilter/nf_conntrack_count"] = "235929"
			a.Sysctls["netfilter/nf_conntrack_max"] = "262144"
		}, []key{}},
		{"remove a KUBE-SVC chain", "cluster-b", "", func(t *testing.T, a *dataplane.Node) {
			removeChain(a, chainFor(t, a, "KUBE-SVC-", "default/web").Name)
		}, []key{{SeverityError, CheckIPTMissingServiceChain, "Service default/web:http"}}},
		{"flush a KUBE-SVC chain", "cluster-b", "", func(t *testing.T, a *dataplane.Node) {
			chainFor(t, a, "KUBE-SVC-", "default/web").Flush()
		}, []key{{SeverityError, CheckIPTMissingRule, "Service default/web:http"}}},
		{"add a stale KUBE-SEP chain", "cluster-b", "", func(t *testing.T, a *dataplane.Node) {
			c := natTable(a).EnsureChain("KUBE-SEP-AAAAAAAAAAAAAAAA")
			c.Append(&netfilter.Rule{Proto: netfilter.ProtoMatch{Name: "tcp"},
				Matches: []netfilter.Match{&netfilter.Comment{Text: "default/old"}},
				Target:  &netfilter.DNAT{To: netfilter.NATRange{MinAddr: netip.MustParseAddr("10.0.9.9"), MaxAddr: netip.MustParseAddr("10.0.9.9"), MinPort: 80, MaxPort: 80}}})
		}, []key{{SeverityWarning, CheckIPTStaleChain, "Service default/old"}}},
		{"DNAT to a non-endpoint", "cluster-b", "", func(t *testing.T, a *dataplane.Node) {
			for _, r := range chainFor(t, a, "KUBE-SEP-", "default/web").Rules {
				if d, ok := r.Target.(*netfilter.DNAT); ok {
					d.To.MinAddr = netip.MustParseAddr("10.0.9.9")
					d.To.MaxAddr = d.To.MinAddr
				}
			}
		}, []key{{SeverityError, CheckIPTDNATNotEndpoint, "Service default/web:http"}}},
		{"kube-ipvs0 on an iptables node", "cluster-b", "", func(t *testing.T, a *dataplane.Node) {
			addIPVSDummy(t, a, "10.1.120.34/32")
		}, []key{{SeverityError, CheckLeftoverIPVS, "Node " + worker}}},
		{"kube-proxy nftables table on an iptables node", "cluster-b", "", func(t *testing.T, a *dataplane.Node) {
			a.NFTables = &nftables.Ruleset{Tables: []*nftables.Table{{Family: nftables.Family("ip"), Name: "kube-proxy"}}}
		}, []key{{SeverityWarning, CheckLeftoverNFTables, "Node " + worker}}},
		{"IPVS real server missing", "cluster-a", "", func(t *testing.T, a *dataplane.Node) {
			s := a.IPVS.Service("tcp", netip.MustParseAddr("10.1.0.1"), 443)
			s.Dests = s.Dests[1:]
		}, []key{{SeverityError, CheckIPVSMissingRealServer, "Service default/kubernetes:https"}}},
		{"IPVS stale real server", "cluster-a", "", func(t *testing.T, a *dataplane.Node) {
			s := a.IPVS.Service("tcp", netip.MustParseAddr("10.1.0.1"), 443)
			d := *s.Dests[0]
			d.Addr = netip.MustParseAddr("172.31.99.99")
			s.Dests = append(s.Dests, &d)
		}, []key{{SeverityError, CheckIPVSStaleRealServer, "Service default/kubernetes:https"}}},
		{"IPVS virtual service missing", "cluster-a", "", func(t *testing.T, a *dataplane.Node) {
			a.IPVS.DelService(a.IPVS.Service("tcp", netip.MustParseAddr("10.1.0.1"), 443))
		}, []key{
			{SeverityError, CheckIPVSMissingService, "Service default/kubernetes:https"},
			{SeverityWarning, CheckIPVSAddrNoService, "Node " + worker},
		}},
		{"Service address not on kube-ipvs0", "cluster-a", "", func(t *testing.T, a *dataplane.Node) {
			if err := a.Net.AddrDel(ipvsDummy, netip.MustParsePrefix("10.1.0.1/32")); err != nil {
				t.Fatal(err)
			}
		}, []key{{SeverityError, CheckIPVSServiceNoAddr, "Service default/kubernetes"}}},
		{"kube-ipvs0 address without a virtual service", "cluster-a", "", func(t *testing.T, a *dataplane.Node) {
			addIPVSDummy(t, a, "10.1.200.200/32")
		}, []key{{SeverityWarning, CheckIPVSAddrNoService, "Node " + worker}}},
		{"KUBE-SVC chains on an IPVS node", "cluster-a", "", func(t *testing.T, a *dataplane.Node) {
			natTable(a).EnsureChain("KUBE-SVC-CDGGSHYLG3RE2FKL")
		}, []key{{SeverityWarning, CheckLeftoverIPTables, "Node " + worker}}},
		{"nftables service-ips element missing", "cluster-b", "nftables", func(t *testing.T, a *dataplane.Node) {
			s := a.NFTables.Table(nftables.Family("ip"), "kube-proxy").Set("service-ips")
			for i, e := range s.Elements {
				if e.KeyString() == "10.1.120.34 . tcp . 80" {
					s.Elements = append(s.Elements[:i:i], s.Elements[i+1:]...)
					return
				}
			}
			t.Fatal("no element for default/web")
		}, []key{{SeverityError, CheckNFTMissingElement, "Service default/web:http"}}},
		{"nftables stale endpoint chain", "cluster-b", "nftables", func(t *testing.T, a *dataplane.Node) {
			tb := a.NFTables.Table(nftables.Family("ip"), "kube-proxy")
			tb.Chains = append(tb.Chains, &nftables.Chain{Name: "endpoint-AAAAAAAA-default/old/tcp/http__10.0.9.9/80"})
		}, []key{{SeverityWarning, CheckNFTStaleChain, "Service default/old:http"}}},
		{"ipvsadm-save not collected", "cluster-a", "", func(t *testing.T, a *dataplane.Node) {
			a.IPVS = nil
		}, []key{{SeverityWarning, CheckNotCollected, "Node " + worker}}},
		{"iptables-save not collected", "cluster-b", "", func(t *testing.T, a *dataplane.Node) {
			a.IPTables = nil
		}, []key{{SeverityWarning, CheckNotCollected, "Node " + worker}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, intent, actual := fixture(t, tc.preset, tc.mode, worker)
			tc.fault(t, actual)
			got := Verify(intent, actual, c, worker)
			if diff := cmp.Diff(tc.want, keys(got)); diff != "" {
				t.Errorf("findings (-want +got):\n%s\n%s", diff, format(got))
			}
			for _, f := range got {
				if len(f.Evidence) == 0 || f.Fix == "" || f.Message == "" {
					t.Errorf("finding %s lacks evidence, fix or message: %+v", f.Check, f)
				}
			}
		})
	}
}

// podAt names the pod of preset with IP ip, from the objects (not through verify).
func podAt(t *testing.T, preset, ip string) string {
	t.Helper()
	c, err := cluster.Preset(preset)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range c.Objects.Pods {
		if p.Status.PodIP == ip {
			return "Pod " + p.Namespace + "/" + p.Name
		}
	}
	t.Fatalf("%s has no pod %s", preset, ip)
	return ""
}
