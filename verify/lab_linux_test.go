//go:build linux

package verify

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/kernel"
	"github.com/knet-dev/knet/lab"
	"github.com/knet-dev/knet/snapshot"
	"github.com/knet-dev/knet/snapshot/collect"
)

// collectIn collects namespace ns with the real collector and loads the snapshot.
func collectIn(t *testing.T, ns *kernel.NS, node string) *dataplane.Node {
	t.Helper()
	dir := t.TempDir()
	err := ns.Do(func() error {
		_, err := collect.Collect(context.Background(), dir, collect.Options{Node: node, Now: func() time.Time { return time.Unix(0, 0) }})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	n, _, probs, err := snapshot.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Logf("snapshot problem: %v", p)
	}
	return n
}

// TestLabNodeVerifies: a lab node (cluster-b with Calico VXLAN Always, which this host's
// kernel runs natively; kube-proxy iptables mode through the real iptables-restore),
// collected by the real collector inside its namespace, verifies without errors or
// warnings; then real faults made with ip, sysctl and iptables in that namespace (a deleted pod
// block route, strict rp_filter, ip_forward off, a tunnel MTU, a flushed KUBE-SVC chain, a
// stale KUBE-SEP chain) are each found, and nothing else.
func TestLabNodeVerifies(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the lab needs root (network namespaces)")
	}
	c, err := cluster.Preset("cluster-b")
	if err != nil {
		t.Fatal(err)
	}
	c.Name = "verify-vx"
	c.CNI.Mode = cluster.CalicoVXLANAlways
	if m := lab.Missing(c); len(m) > 0 {
		t.Skipf("host kernel lacks: %v", m)
	}
	ctx := context.Background()
	l, err := lab.Up(ctx, c, nil)
	if err != nil {
		t.Skipf("lab up: %v", err)
	}
	defer l.Down()
	ns, ok := l.NS("node/" + worker)
	if !ok {
		t.Fatalf("lab has no node %s", worker)
	}
	intent := l.Nodes[worker]

	actual := collectIn(t, ns, worker)
	got := Verify(intent, actual, c, worker)
	if Count(got, SeverityError)+Count(got, SeverityWarning) > 0 {
		t.Fatalf("a lab node straight after lab up has findings:\n%s", format(got))
	}

	web := chainFor(t, actual, "KUBE-SVC-", "default/web").Name
	for _, argv := range [][]string{
		{"ip", "route", "del", "10.0.35.0/24"},
		{"sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1"},
		{"sysctl", "-qw", "net.ipv4.ip_forward=0"},
		{"ip", "link", "set", "dev", "vxlan.calico", "mtu", "1400"},
		{"iptables", "-t", "nat", "-F", web},
		{"iptables", "-t", "nat", "-N", "KUBE-SEP-AAAAAAAAAAAAAAAA"},
		{"iptables", "-t", "nat", "-A", "KUBE-SEP-AAAAAAAAAAAAAAAA", "-p", "tcp", "-m", "comment", "--comment", "default/old:http", "-j", "DNAT", "--to-destination", "10.0.9.9:80"},
	} {
		if out, err := ns.Run(ctx, nil, argv[0], argv[1:]...); err != nil {
			t.Fatalf("%v: %v: %s", argv, err, out)
		}
	}
	actual = collectIn(t, ns, worker)
	got = Verify(intent, actual, c, worker)
	t.Logf("findings after the faults:\n%s", format(got))
	want := map[string]bool{CheckRouteMissingPodBlock: true, CheckSysctlRPFilter: true, CheckSysctlIPForward: true,
		CheckMTUMismatch: true, CheckIPTMissingRule: true, CheckIPTStaleChain: true}
	for _, f := range got {
		if !want[f.Check] {
			t.Errorf("unexpected finding: %s %s %s: %s", f.Severity, f.Check, f.Object, f.Message)
		}
		delete(want, f.Check)
	}
	for c := range want {
		t.Errorf("fault not found: %s\n%s", c, format(got))
	}
}
