//go:build linux

package lab

import (
	"os"
	"strings"
	"testing"

	"github.com/knet-dev/knet/cluster"
)

// presetFor loads a preset, or skips.
func presetFor(t *testing.T, name string) *cluster.Cluster {
	t.Helper()
	c, err := cluster.Preset(name)
	if err != nil {
		t.Fatalf("preset %s: %v", name, err)
	}
	return c
}

// requireRoot skips without the privileges a lab needs.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the lab needs root (network namespaces); the VM tests cover it without root")
	}
}

// vxlanVariant is cluster-b with Calico in VXLAN Always mode: what this host's kernel can
// run natively (no ipip here), so the lab's machinery is tested without the VM.
func vxlanVariant(t *testing.T) *cluster.Cluster {
	c := presetFor(t, "cluster-b")
	c.Name = "labtest-vx"
	c.CNI.Mode = cluster.CalicoVXLANAlways
	return c
}

func TestUpRunDownNative(t *testing.T) {
	requireRoot(t)
	c := vxlanVariant(t)
	if m := Missing(c); len(m) > 0 {
		t.Skipf("host kernel lacks: %v", m)
	}
	l, err := Up(t.Context(), c, testLog{t})
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	defer func() {
		if err := l.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
	}()
	ready := make(chan struct{})
	ctx, cancel := t.Context(), func() {}
	_ = cancel
	go l.Serve(ctx, ready)
	<-ready
	r := l.RunFlows(ctx, SeedFlows(c, 1, 2, 1))
	var b strings.Builder
	r.WriteText(&b)
	t.Log(b.String())
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
