package verify

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/render"
	"github.com/knet-dev/knet/snapshot"
)

// fixture renders node of preset, writes it as a snapshot and loads it back: the intent and
// an actual that went through the native formats and knet's parsers.
func fixture(t testing.TB, preset, mode, node string) (*cluster.Cluster, *dataplane.Node, *dataplane.Node) {
	t.Helper()
	c, err := cluster.Preset(preset)
	if err != nil {
		t.Fatal(err)
	}
	if mode != "" {
		c.Proxy.Mode = cluster.ProxyMode(mode)
		if c.Objects.ProxyConfig != nil {
			c.Objects.ProxyConfig.Mode = modeOf(mode)
		}
	}
	if node == "" {
		node = c.Nodes[len(c.Nodes)-1].Name
	}
	intent, err := render.Node(c, node)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := snapshot.Write(dir, intent, snapshot.Meta{Node: node, Emulated: true, Time: time.Unix(0, 0).UTC()}); err != nil {
		t.Fatal(err)
	}
	actual, meta, probs, err := snapshot.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) > 0 {
		t.Fatalf("snapshot problems: %v", probs)
	}
	if meta.Node != node {
		t.Fatalf("meta node %q, want %q", meta.Node, node)
	}
	// Render again so that faults injected into actual cannot touch the intent.
	intent, err = render.Node(c, node)
	if err != nil {
		t.Fatal(err)
	}
	return c, intent, actual
}

func format(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "%s %s %s: %s\n", f.Severity, f.Check, f.Object, f.Message)
		for _, e := range f.Evidence {
			fmt.Fprintf(&b, "    %s\n", e)
		}
	}
	return b.String()
}

// TestCleanPresets: a rendered node written as a snapshot verifies clean.
func TestCleanPresets(t *testing.T) {
	for _, tc := range []struct{ preset, mode string }{
		{"cluster-a", ""}, {"cluster-b", ""}, {"cluster-c", ""}, {"cluster-b", "nftables"},
	} {
		t.Run(tc.preset+"/"+tc.mode, func(t *testing.T) {
			c, intent, actual := fixture(t, tc.preset, tc.mode, "")
			got := Verify(intent, actual, c, intent.Name)
			if len(got) != 0 {
				t.Errorf("clean snapshot of %s has findings:\n%s", intent.Name, format(got))
			}
		})
	}
}
