package snapshot

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/format/iproute"
	"github.com/knet-dev/knet/format/iptablessave"
	"github.com/knet-dev/knet/format/ipvsadm"
	"github.com/knet-dev/knet/format/nft"
	"github.com/knet-dev/knet/render"
)

// print renders the parts of a node a snapshot holds, in their native formats.
func print(t *testing.T, n *dataplane.Node) map[string]string {
	t.Helper()
	out := map[string]string{}
	var b bytes.Buffer
	if err := iproute.PrintAddrs(&b, n.Net, iproute.Options{Details: true}); err != nil {
		t.Fatal(err)
	}
	out["addr"] = b.String()
	b.Reset()
	if err := iproute.PrintRoutes(&b, n.Net, iproute.Options{Table: "all"}); err != nil {
		t.Fatal(err)
	}
	out["route"] = b.String()
	if n.IPTables != nil {
		b.Reset()
		iptablessave.Write(&b, n.IPTables, iptablessave.WriteOptions{NoHeader: true})
		out["iptables"] = b.String()
	}
	if n.IPVS != nil {
		b.Reset()
		ipvsadm.WriteSave(&b, n.IPVS)
		out["ipvs"] = b.String()
	}
	if n.NFTables != nil {
		b.Reset()
		nft.Write(&b, n.NFTables, nft.WriteOptions{})
		out["nft"] = b.String()
	}
	return out
}

// TestWriteLoadRoundTrip: a rendered node written as a snapshot and loaded back prints the
// same ip addr, ip route, iptables-save, ipvsadm-save and nft output, for each kube-proxy mode.
func TestWriteLoadRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		preset string
		mode   cluster.ProxyMode
	}{{"cluster-b", cluster.ProxyIPTables}, {"cluster-a", cluster.ProxyIPVS}, {"cluster-c", cluster.ProxyNFTables}} {
		t.Run(tc.preset+"/"+string(tc.mode), func(t *testing.T) {
			c, err := cluster.Preset(tc.preset)
			if err != nil {
				t.Fatal(err)
			}
			c.Proxy.Mode = tc.mode
			if c.Objects.ProxyConfig != nil {
				c.Objects.ProxyConfig.Mode = ""
			}
			node := c.Nodes[len(c.Nodes)-1].Name
			n, err := render.Node(c, node)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := Write(dir, n, Meta{Node: node, Emulated: true, Time: time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)}); err != nil {
				t.Fatal(err)
			}
			back, meta, probs, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range probs {
				t.Errorf("problem: %v", p)
			}
			if meta.Node != node || !meta.Emulated {
				t.Errorf("meta = %+v", meta)
			}
			want, got := print(t, n), print(t, back)
			if len(want) < 3 {
				t.Fatalf("rendered node has too few parts: %v", len(want))
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("snapshot round trip (-rendered +loaded):\n%s", d)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, _, _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "meta.json") {
		t.Errorf("folder without meta.json: %v", err)
	}
	os.WriteFile(filepath.Join(dir, MetaFile), []byte(`{"node":"n1"}`), 0o644)
	os.WriteFile(filepath.Join(dir, SysctlFile), []byte("net.ipv4.ip_forward = 1\ngarbage\n"), 0o644)
	n, _, probs, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n.Sysctls["net.ipv4.ip_forward"] != "1" {
		t.Errorf("sysctls = %v", n.Sysctls)
	}
	if len(probs) != 1 || probs[0].Line != 2 {
		t.Errorf("problems = %v, want one at line 2", probs)
	}
}
