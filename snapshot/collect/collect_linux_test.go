//go:build linux

package collect

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/knet-dev/knet/kernel"
	"github.com/knet-dev/knet/render/kubeproxy"
	kpnft "github.com/knet-dev/knet/render/kubeproxy/nftables"
	"github.com/knet-dev/knet/snapshot"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("collecting iptables and nftables needs root (CAP_NET_ADMIN)")
	}
	for _, tool := range []string{"ip", "iptables-save", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (scripts/install-test-deps.sh installs it)", tool)
		}
	}
}

// hostState is what the host namespace shows, for the before/after comparison; counters
// and dates are masked (they change by themselves).
func hostState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	counters := regexp.MustCompile(`\[\d+:\d+\]|packets \d+ bytes \d+|# (Generated|Completed).*`)
	for _, argv := range [][]string{
		{"ip", "-d", "link", "show"}, {"ip", "addr", "show"}, {"ip", "route", "show", "table", "all"},
		{"ip", "-6", "route", "show", "table", "all"}, {"ip", "rule", "show"}, {"iptables-save"}, {"ip6tables-save"},
		{"nft", "list", "ruleset"},
	} {
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v: %s", argv, err, out)
		}
		b.WriteString("$ " + strings.Join(argv, " ") + "\n" + counters.ReplaceAllString(string(out), "") + "\n")
	}
	return b.String()
}

// TestCollectChangesNothing: collecting the host namespace leaves its links, addresses,
// routes, rules, iptables and nftables exactly as they were.
func TestCollectChangesNothing(t *testing.T) {
	needRoot(t)
	before := hostState(t)
	dir := t.TempDir()
	meta, err := Collect(context.Background(), dir, Options{Node: "host"})
	if err != nil {
		t.Fatal(err)
	}
	if after := hostState(t); after != before {
		t.Errorf("the host's network state changed during collect:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	n, _, _, err := snapshot.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n.Net == nil || n.Net.LinkByName("lo") == nil {
		t.Errorf("snapshot has no lo link")
	}
	if meta.Kernel == "" {
		t.Errorf("no kernel version in meta")
	}
}

// TestCollectNamespace: inside a namespace holding kube-proxy's nftables rules, a veth and
// a route, the snapshot reads all of them back, and says what it could not read.
func TestCollectNamespace(t *testing.T) {
	needRoot(t)
	ns, err := kernel.NewNS("")
	if err != nil {
		t.Skipf("cannot create a network namespace: %v", err)
	}
	defer ns.Close()
	ctx := context.Background()
	for _, argv := range [][]string{
		{"ip", "link", "add", "knet0", "type", "veth", "peer", "name", "knet1"},
		{"ip", "addr", "add", "192.168.77.1/24", "dev", "knet0"},
		{"ip", "link", "set", "knet0", "up"},
		{"ip", "link", "set", "knet1", "up"},
		{"ip", "route", "add", "10.9.0.0/24", "via", "192.168.77.2", "proto", "bird"},
	} {
		if _, err := ns.Run(ctx, nil, argv[0], argv[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := kpnft.RenderRuleset(nftSetup(), kpnft.Options{NodeName: "n1", Family: kubeproxy.IPv4})
	if err != nil {
		t.Fatal(err)
	}
	if err := kernel.ApplyNFT(ctx, ns, rs); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var meta *snapshot.Meta
	err = ns.Do(func() error {
		var err error
		meta, err = Collect(ctx, dir, Options{Node: "n1", Now: func() time.Time { return time.Unix(0, 0) }})
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
		t.Errorf("problem: %v", p)
	}
	if len(probs) > 0 {
		b, _ := os.ReadFile(dir + "/ip-addr.txt")
		t.Logf("ip-addr.txt:\n%s", b)
	}
	res, err := n.Net.Lookup(netip.MustParseAddr("10.9.0.5"), routeOpts())
	if err != nil || res.Dev != "knet0" {
		t.Errorf("route to 10.9.0.5: %+v %v, want via knet0", res, err)
	}
	if n.NFTables == nil || n.NFTables.Table("ip", "kube-proxy") == nil {
		t.Errorf("snapshot lost kube-proxy's nftables table")
	}
	if n.Sysctls["ipv4/ip_forward"] == "" {
		t.Errorf("ip_forward not collected: %v", n.Sysctls)
	}
	if _, err := exec.LookPath("crictl"); err != nil {
		found := false
		for _, u := range meta.Unreadable {
			found = found || strings.HasPrefix(u, "crictl")
		}
		if !found {
			t.Errorf("meta does not say crictl was missing: %v", meta.Unreadable)
		}
	}
}
