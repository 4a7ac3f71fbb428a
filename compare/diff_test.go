package compare

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/knet-dev/knet/cluster"
)

func preset(t *testing.T, name string) *cluster.Cluster {
	t.Helper()
	c, err := cluster.Preset(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func flow(t *testing.T, m *Migration, name string) FlowChange {
	t.Helper()
	for _, f := range m.Flows {
		if f.Flow == name {
			return f
		}
	}
	t.Fatalf("no flow %q", name)
	return FlowChange{}
}

// TestDiffIPVSToNFTablesClusterA is the headline migration: IPVS (deprecated in 1.35) to
// nftables on the seed's cluster A.
func TestDiffIPVSToNFTablesClusterA(t *testing.T) {
	m, err := Diff(preset(t, "cluster-a"), cluster.ProxyIPVS, cluster.ProxyNFTables)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Flows) != 8 {
		t.Errorf("%d flows, want 8", len(m.Flows))
	}
	def := flow(t, m, "pod → ClusterIP on a defined port")
	if def.Changed || len(def.From.DNAT) == 0 || def.From.Verdict != "ACCEPT" {
		t.Errorf("defined port: %+v", def)
	}
	// kube-proxy 1.35 IPVS rejects undefined ports and pings through KUBE-IPVS-FILTER, as
	// nftables does through cluster-ips-check: no change.
	for _, name := range []string{"pod → ClusterIP on an undefined port", "pod → ping ClusterIP"} {
		if f := flow(t, m, name); f.Changed || f.From.Verdict != "REJECT" {
			t.Errorf("%s: %+v", name, f)
		}
	}
	if f := flow(t, m, "node → NodePort on 127.0.0.1"); len(f.From.DNAT) != 0 || len(f.To.DNAT) != 0 {
		t.Errorf("NodePort on 127.0.0.1 is DNATed in IPVS or nftables mode: %+v", f)
	}
	if f := flow(t, m, "pod → Service with ClientIP affinity"); !f.Changed || !strings.Contains(f.Reason, "Session affinity") {
		t.Errorf("affinity: %+v", f)
	}
	var what []string
	cmds := map[string]bool{}
	for _, l := range m.Leftovers {
		what = append(what, l.What)
		for _, c := range l.Cleanup {
			cmds[c] = true
		}
		if strings.HasPrefix(l.What, "dummy link kube-ipvs0") && !slices.Contains(l.Items, "10.1.0.10/32") {
			t.Errorf("kube-ipvs0 leftovers lack CoreDNS's 10.1.0.10/32: %v", l.Items)
		}
	}
	for _, c := range []string{"ip link del kube-ipvs0", "ipvsadm -C", "ipset destroy KUBE-CLUSTER-IP", "kube-proxy --cleanup   # or, by hand:",
		"iptables -t nat -D PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES", "iptables -t nat -X KUBE-SERVICES"} {
		if !cmds[c] {
			t.Errorf("clean-up lacks %q", c)
		}
	}
	for c := range cmds {
		if strings.Contains(c, "KUBE-FIREWALL") || strings.Contains(c, "KUBE-KUBELET-CANARY") {
			t.Errorf("clean-up removes kubelet's chain: %q", c)
		}
	}
	var buf bytes.Buffer
	if err := m.Write(&buf, FormatText); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "diff-cluster-a-ipvs-nftables.golden")
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
		t.Errorf("diff text (-want +got):\n%s", diff)
	}
}

func TestDiffIPTablesToNFTables(t *testing.T) {
	m, err := Diff(preset(t, "cluster-b"), cluster.ProxyIPTables, cluster.ProxyNFTables)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flow     string
		from, to string
	}{
		{"pod → ClusterIP on an undefined port", "ACCEPT forwarded no DNAT", "REJECT no DNAT"},
		{"pod → ping ClusterIP", "ACCEPT forwarded no DNAT", "REJECT no DNAT"},
		{"node → NodePort on 127.0.0.1", "", "ACCEPT local no DNAT"},
	} {
		f := flow(t, m, tc.flow)
		if !f.Changed || f.Reason == "" {
			t.Errorf("%s: not reported as changed with a reason: %+v", tc.flow, f)
		}
		if tc.from != "" && f.From.String() != tc.from {
			t.Errorf("%s in iptables mode: %s, want %s", tc.flow, f.From, tc.from)
		}
		if f.To.String() != tc.to {
			t.Errorf("%s in nftables mode: %s, want %s", tc.flow, f.To, tc.to)
		}
	}
	if f := flow(t, m, "node → NodePort on 127.0.0.1"); len(f.From.DNAT) == 0 {
		t.Errorf("iptables mode should DNAT a NodePort on 127.0.0.1 (route_localnet): %+v", f.From)
	}
}

func TestDiffLeavingNFTables(t *testing.T) {
	m, err := Diff(preset(t, "cluster-b"), cluster.ProxyNFTables, cluster.ProxyIPTables)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Leftovers) != 1 || !slices.Contains(m.Leftovers[0].Cleanup, "nft delete table ip kube-proxy") {
		t.Errorf("leftovers %+v", m.Leftovers)
	}
}

func TestDiffErrors(t *testing.T) {
	c := preset(t, "cluster-a")
	for _, tc := range []struct {
		from, to cluster.ProxyMode
		want     string
	}{
		{"ipvs", "ipvs", "both ipvs"},
		{"userspace", "nftables", `unknown kube-proxy mode "userspace"`},
		{"ipvs", "", `unknown kube-proxy mode ""`},
	} {
		if _, err := Diff(c, tc.from, tc.to); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Diff(%s, %s) error = %v, want %q", tc.from, tc.to, err, tc.want)
		}
	}
}
