package compare

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/knet-dev/knet/cluster"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestParseProfile(t *testing.T) {
	good, err := os.ReadFile("testdata/profile.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseProfile(good, "profile.yaml")
	if err != nil {
		t.Fatalf("documented example: %v", err)
	}
	want := Profile{APIVersion: ProfileAPIVersion, Kind: ProfileKind, Name: "shop",
		Description: "an online shop, two AZs, mostly keepalive traffic through an ingress",
		Nodes:       60, Subnets: 2, Services: 400, EndpointsPerService: 4, NodePortShare: 0.05, AffinityShare: 0.02,
		MTU: 9001, KubeProxyVersion: "v1.35.0",
		Traffic: Traffic{ConnectionsPerSecond: 500, NewConnectionShare: 0.2, CrossSubnetShare: 0.5},
		Churn:   Churn{EndpointChangesPerSecond: 2}}
	if diff := cmp.Diff(want, *p); diff != "" {
		t.Errorf("profile (-want +got):\n%s", diff)
	}

	head := "apiVersion: knet.dev/v1alpha1\nkind: Profile\nname: x\n"
	for _, tc := range []struct{ name, in, wantErr string }{
		{"unknown field", head + "nodes: 3\nsubnetz: 2\n", "line 5: field subnetz not found"},
		{"no kind", "name: x\nnodes: 3\n", "apiVersion knet.dev/v1alpha1 and kind Profile are required"},
		{"bad kind", "apiVersion: knet.dev/v1alpha1\nkind: Cluster\nname: x\nnodes: 1\nsubnets: 1\nservices: 1\nendpointsPerService: 1\n", `kind "Cluster"`},
		{"zero nodes", head + "nodes: 0\nsubnets: 1\nservices: 1\nendpointsPerService: 1\n", "nodes must be at least 1"},
		{"share out of range", head + "nodes: 2\nsubnets: 2\nservices: 1\nendpointsPerService: 1\ntraffic: {crossSubnetShare: 1.5}\n", "traffic.crossSubnetShare must be in [0,1]"},
		{"cross with one subnet", head + "nodes: 2\nsubnets: 1\nservices: 1\nendpointsPerService: 1\ntraffic: {crossSubnetShare: 0.5}\n", "there is one subnet"},
		{"bad type", head + "nodes: many\n", "line 4"},
		{"two documents", string(good) + "---\nname: y\n", "one document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseProfile([]byte(tc.in), "p.yaml")
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "p.yaml") {
				t.Errorf("error = %v, want one naming p.yaml and containing %q", err, tc.wantErr)
			}
		})
	}
}

func FuzzParseProfile(f *testing.F) {
	good, err := os.ReadFile("testdata/profile.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte("apiVersion: knet.dev/v1alpha1\nkind: Profile\nname: x\nnodes: 3\nsubnetz: 2\n"))
	f.Add([]byte("apiVersion: knet.dev/v1alpha1\nkind: Profile\nname: x\nnodes: 2\nsubnets: 1\nservices: 1\nendpointsPerService: 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProfile(data, "fuzz.yaml")
		if err != nil {
			return
		}
		if p.Nodes < 1 || p.Subnets < 1 || p.Subnets > p.Nodes || p.Services < 1 || p.MTU == 0 || p.KubeProxyVersion == "" {
			t.Fatalf("accepted an invalid profile: %+v", p)
		}
	})
}

func TestBuiltinProfilesValid(t *testing.T) {
	names := BuiltinProfiles()
	if diff := cmp.Diff([]string{"large", "seed", "small"}, names); diff != "" {
		t.Errorf("built-ins (-want +got):\n%s", diff)
	}
	for _, n := range names {
		p, _ := BuiltinProfile(n)
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	if l, _ := BuiltinProfile("large"); l.Nodes != 5000 || l.Services != 50000 {
		t.Errorf("large is %d nodes × %d Services, want 5000 × 50000", l.Nodes, l.Services)
	}
}

func TestExamined(t *testing.T) {
	lens := map[string]int{"KUBE-SERVICES": 10, "KUBE-SVC-A": 3, "KUBE-SEP-1": 2, "KUBE-MARK-MASQ": 1, "PREROUTING": 1, "FORWARD": 4, "KUBE-FORWARD": 3}
	chainLen := func(_, c string) int { return lens[c] }
	for _, tc := range []struct {
		name  string
		steps []xstep
		want  int
	}{
		{"DNAT through SVC and SEP", []xstep{
			{"pre/nat", "PREROUTING", 1, "KUBE-SERVICES"},
			{"pre/nat", "KUBE-SERVICES", 7, "KUBE-SVC-A"},
			{"pre/nat", "KUBE-SVC-A", 2, "KUBE-SEP-1"},
			{"pre/nat", "KUBE-SEP-1", 2, ""},
		}, 1 + 7 + 2 + 2},
		{"a chain returned from counts whole", []xstep{
			{"pre/nat", "PREROUTING", 1, "KUBE-SERVICES"},
			{"pre/nat", "KUBE-SERVICES", 3, "KUBE-MARK-MASQ"},
			{"pre/nat", "KUBE-MARK-MASQ", 1, ""},
			{"pre/nat", "KUBE-SERVICES", 7, "KUBE-SVC-A"},
			{"pre/nat", "KUBE-SVC-A", 3, ""},
		}, 1 + 7 + 1 + 3},
		{"jump to a chain with no match, then the policy", []xstep{
			{"fwd/filter", "FORWARD", 1, "KUBE-FORWARD"},
			{"fwd/filter", "FORWARD", 4, ""},
		}, 3 + 4},
		{"scopes are separate", []xstep{
			{"pre/nat", "PREROUTING", 1, ""},
			{"fwd/filter", "FORWARD", 2, ""},
		}, 1 + 2},
		{"no steps", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := examined(tc.steps, chainLen); got != tc.want {
				t.Errorf("examined = %d, want %d", got, tc.want)
			}
		})
	}
}

func row(t *testing.T, rep *Report, mode cluster.ProxyMode, plugin cluster.CNIPlugin, cniMode string) *Row {
	t.Helper()
	for i := range rep.Rows {
		r := &rep.Rows[i]
		if r.Mode == mode && r.Network.Plugin == plugin && r.Network.Mode == cniMode {
			return r
		}
	}
	t.Fatalf("no row %s + %s/%s", mode, plugin, cniMode)
	return nil
}

func TestCompareSmall(t *testing.T) {
	p, _ := BuiltinProfile("small")
	rep, err := Compare(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(rep.Rows), len(ProxyModes())*len(Networks()); got != want {
		t.Fatalf("%d rows, want %d", got, want)
	}
	if rep.Extrapolated {
		t.Errorf("small profile (%d nodes, %d Services) should be rendered, not extrapolated: %s", p.Nodes, p.Services, rep.Method)
	}
	ipt := row(t, rep, cluster.ProxyIPTables, cluster.CNICalico, cluster.CalicoIPIPCrossSubnet)
	nft := row(t, rep, cluster.ProxyNFTables, cluster.CNICalico, cluster.CalicoIPIPCrossSubnet)
	vs := row(t, rep, cluster.ProxyIPVS, cluster.CNICalico, cluster.CalicoIPIPCrossSubnet)
	// iptables dispatch is linear: the worst Service sits ~ one KUBE-SERVICES rule per Service
	// deeper than the best; nftables and IPVS are flat.
	if spread := ipt.Measure.FirstPacketWorst - ipt.Measure.FirstPacketBest; spread < float64(p.Services)*0.9 {
		t.Errorf("iptables first packet best %v worst %v: spread below the %d Services", ipt.Measure.FirstPacketBest, ipt.Measure.FirstPacketWorst, p.Services)
	}
	if spread := nft.Measure.FirstPacketWorst - nft.Measure.FirstPacketBest; spread > 10 {
		t.Errorf("nftables first packet best %v worst %v: should not grow with Services", nft.Measure.FirstPacketBest, nft.Measure.FirstPacketWorst)
	}
	if vs.Measure.FirstPacketWorst != vs.Measure.FirstPacketBest {
		t.Errorf("IPVS first packet best %v worst %v: should be flat", vs.Measure.FirstPacketBest, vs.Measure.FirstPacketWorst)
	}
	// IPVS: one virtual server per ClusterIP at least (plus NodePorts on every node address).
	if vs.Measure.IPVSServices < float64(p.Services) || vs.Measure.IPVSDests < float64(p.Services*p.EndpointsPerService) {
		t.Errorf("IPVS %v virtual servers, %v real servers for %d Services × %d", vs.Measure.IPVSServices, vs.Measure.IPVSDests, p.Services, p.EndpointsPerService)
	}
	for _, r := range []*Row{ipt, nft} {
		if r.Measure.EndpointChangeBytes <= 0 || r.Measure.EndpointChangeBytes >= r.Measure.FullSyncBytes {
			t.Errorf("%s: endpoint change %v bytes vs full sync %v", r.Name(), r.Measure.EndpointChangeBytes, r.Measure.FullSyncBytes)
		}
	}
	// Encapsulation and MTU per network.
	for _, tc := range []struct {
		plugin     cluster.CNIPlugin
		mode       string
		share      float64
		mtu        int
		unroutable bool
	}{
		{cluster.CNICalico, cluster.CalicoIPIPAlways, 1, p.MTU - 20, false},
		{cluster.CNICalico, cluster.CalicoIPIPCrossSubnet, p.Traffic.CrossSubnetShare, p.MTU - 20, false},
		{cluster.CNICalico, cluster.CalicoVXLANAlways, 1, p.MTU - 50, false},
		{cluster.CNICalico, cluster.CalicoNever, 0, p.MTU, true},
		{cluster.CNIFlannel, cluster.FlannelVXLAN, 1, p.MTU - 50, false},
		{cluster.CNIFlannel, cluster.FlannelHostGW, 0, p.MTU, true},
		{cluster.CNIKubeRouter, cluster.KubeRouterOverlaySubnet, p.Traffic.CrossSubnetShare, 0, false},
	} {
		r := row(t, rep, cluster.ProxyNFTables, tc.plugin, tc.mode)
		if math.Abs(r.EncapShare-tc.share) > 1e-9 {
			t.Errorf("%s: encapsulated share %v, want %v", r.Name(), r.EncapShare, tc.share)
		}
		if tc.mtu != 0 && r.PodMTU != tc.mtu {
			t.Errorf("%s: pod MTU %d, want %d", r.Name(), r.PodMTU, tc.mtu)
		}
		if r.Unroutable != tc.unroutable {
			t.Errorf("%s: unroutable %v, want %v (cross-subnet path %+v)", r.Name(), r.Unroutable, tc.unroutable, r.CrossSubnet)
		}
	}
	if best := rep.Rows[0]; best.Rank < 1 {
		t.Errorf("ranks not assigned")
	}
	for _, r := range rep.Rows {
		if r.Rank == 1 && (r.Mode == cluster.ProxyIPVS || r.Unroutable) {
			t.Errorf("recommended %s: deprecated or unroutable", r.Name())
		}
	}
}

// TestExtrapolationMatchesRender checks the straight-line fit against a direct render at the
// profile's size.
func TestExtrapolationMatchesRender(t *testing.T) {
	if testing.Short() {
		t.Skip("renders 400 Services")
	}
	p := &Profile{Name: "fit", Nodes: 8, Subnets: 2, Services: 400, EndpointsPerService: 4, NodePortShare: 0.1, AffinityShare: 0.05}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	svcs, nodes := plan(p)
	if len(svcs) != 2 || svcs[0] == p.Services {
		t.Fatalf("plan %v: the test needs an extrapolated profile", svcs)
	}
	net := Network{cluster.CNICalico, cluster.CalicoIPIPCrossSubnet}
	for _, mode := range ProxyModes() {
		var ms []Measure
		var sizes []Sample
		for _, s := range svcs {
			c, err := synthCluster(p, net, mode, nodes[0], s)
			if err != nil {
				t.Fatal(err)
			}
			m, _, err := measureOne(c, s)
			if err != nil {
				t.Fatal(err)
			}
			ms, sizes = append(ms, m), append(sizes, Sample{Nodes: nodes[0], Services: s})
		}
		got := fit(ms, sizes, p.Services, nodes[0])
		c, err := synthCluster(p, net, mode, nodes[0], p.Services)
		if err != nil {
			t.Fatal(err)
		}
		want, _, err := measureOne(c, p.Services)
		if err != nil {
			t.Fatal(err)
		}
		// Counts are linear in Services: within 1% (NodePort and affinity Services fall on
		// every Nth index, so the samples carry slightly different mixes).
		gf, wf := got.fields(), want.fields()
		names := []string{"iptablesRules", "ipvsServices", "ipvsDests", "ipsetMembers", "nftChains", "nftRules", "nftElements", "routes", "objects"}
		for i, n := range names {
			if d := math.Abs(*gf[i] - *wf[i]); d > 0.01**wf[i]+2 {
				t.Errorf("%s %s: extrapolated %v, rendered %v", mode, n, *gf[i], *wf[i])
			}
		}
	}
}

func TestMarkdownGolden(t *testing.T) {
	p, _ := BuiltinProfile("seed")
	rep, err := Compare(p)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := rep.Write(&buf, FormatMarkdown); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "seed.md.golden")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if diff := cmp.Diff(string(want), buf.String()); diff != "" {
		t.Errorf("markdown (-want +got):\n%s", diff)
	}
	var again bytes.Buffer
	rep2, err := Compare(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep2.Write(&again, FormatMarkdown); err != nil {
		t.Fatal(err)
	}
	if again.String() != buf.String() {
		t.Errorf("two runs print different reports")
	}
}
