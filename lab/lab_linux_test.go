//go:build linux

package lab

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/render"
)

// presetFor loads a preset, or skips.
func presetFor(t testing.TB, name string) *cluster.Cluster {
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
func vxlanVariant(t testing.TB) *cluster.Cluster {
	c := presetFor(t, "cluster-b")
	c.Name = "labtest-vx"
	c.CNI.Mode = cluster.CalicoVXLANAlways
	return c
}

// runLab brings c up, serves, runs the flows and takes the lab down, failing on any error.
func runLab(t *testing.T, c *cluster.Cluster, flows []Flow) *Report {
	t.Helper()
	if err := Cleanup(Prefix(c.Name)); err != nil { // a crashed earlier run
		t.Fatal(err)
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
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- l.Serve(ctx, ready) }()
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("Serve: %v", err)
	}
	r := l.RunFlows(ctx, flows)
	var b strings.Builder
	r.WriteText(&b)
	t.Log(b.String())
	return r
}

// seedFromEnv is the random flows' seed: KNET_LAB_SEED, else the time (printed, so a
// failure can be replayed).
func seedFromEnv(t *testing.T) uint64 {
	if s := os.Getenv("KNET_LAB_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("KNET_LAB_SEED: %v", err)
		}
		return v
	}
	v := uint64(time.Now().UnixNano())
	t.Logf("random flows seed %d (replay with KNET_LAB_SEED=%d)", v, v)
	return v
}

// TestDifferential runs the seed's flows plus random ones on every preset the kernel can
// build, and checks the kernel against the model: answering pods within the predicted
// endpoints, the spread (chi-square at FalseAlarm), masquerade and encapsulation. Natively
// the host lacks ipip, so the presets skip here and run in the VM (TestDifferentialInVM);
// in the VM (KNET_IN_VM=1) nothing may skip.
func TestDifferential(t *testing.T) {
	requireRoot(t)
	seed := seedFromEnv(t)
	for _, name := range cluster.PresetNames() {
		t.Run(name, func(t *testing.T) {
			c := presetFor(t, name)
			if m := Missing(c); len(m) > 0 {
				if os.Getenv("KNET_IN_VM") == "1" {
					t.Fatalf("inside the VM the kernel must have everything: %v", m)
				}
				t.Skipf("host kernel lacks %v; TestDifferentialInVM runs this preset in the VM", m)
			}
			r := runLab(t, c, SeedFlows(c, 2, 4, seed))
			for _, o := range r.Outcomes {
				for _, d := range o.Disagreements {
					t.Errorf("%s: %s: %s", name, o.Flow.Name, d)
				}
			}
		})
	}
}

// TestUpRunDownNative runs the lab machinery natively on cluster-b with VXLAN in place of
// IPIP (this host has vxlan but not ipip).
func TestUpRunDownNative(t *testing.T) {
	requireRoot(t)
	c := vxlanVariant(t)
	if m := Missing(c); len(m) > 0 {
		t.Skipf("host kernel lacks: %v", m)
	}
	r := runLab(t, c, SeedFlows(c, 1, 2, seedFromEnv(t)))
	if len(r.Outcomes) < 5 {
		t.Errorf("ran %d flows, want the 5 seed flows at least", len(r.Outcomes))
	}
	for _, o := range r.Outcomes {
		if len(o.Answers) == 0 {
			t.Errorf("%s: nobody answered (%s)", o.Flow.Name, o.FirstError)
		}
		for _, d := range o.Disagreements {
			t.Errorf("%s: %s", o.Flow.Name, d)
		}
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestNFTablesModeNative runs the lab with kube-proxy in nftables mode (cluster-b's layout,
// VXLAN so the host kernel can build it): the real nft programs kube-proxy's tables.
func TestNFTablesModeNative(t *testing.T) {
	requireRoot(t)
	c := vxlanVariant(t)
	c.Name = "labtest-nft"
	c.Proxy.Mode = cluster.ProxyNFTables
	if m := Missing(c); len(m) > 0 {
		t.Skipf("host kernel lacks: %v", m)
	}
	r := runLab(t, c, SeedFlows(c, 1, 2, seedFromEnv(t)))
	for _, o := range r.Outcomes {
		if len(o.Answers) == 0 {
			t.Errorf("%s: nobody answered (%s)", o.Flow.Name, o.FirstError)
		}
		for _, d := range o.Disagreements {
			t.Errorf("%s: %s", o.Flow.Name, d)
		}
	}
}

// TestIPVSSchedulers runs cluster-a with each deterministic IPVS scheduler kube-proxy can
// be configured with (ipvs.scheduler) and requires the kernel to send every connection of
// pod → ClusterIP to the real server the model's scheduler (dataplane/ipvs) picks. IPVS is
// missing natively here, so this runs in the VM (TestDifferentialInVM).
func TestIPVSSchedulers(t *testing.T) {
	requireRoot(t)
	for _, sched := range []string{"rr", "wrr", "lc", "sh", "dh", "mh"} {
		t.Run(sched, func(t *testing.T) {
			c := presetFor(t, "cluster-a")
			c.Name = "ipvs-" + sched
			cfg := render.ProxyConfig(c)
			cfg.IPVS.Scheduler = sched
			c.Objects.ProxyConfig = cfg
			if m := Missing(c); len(m) > 0 {
				if os.Getenv("KNET_IN_VM") == "1" {
					t.Fatalf("inside the VM the kernel must have everything: %v", m)
				}
				t.Skipf("host kernel lacks %v; TestDifferentialInVM runs this in the VM", m)
			}
			flows := SeedFlows(c, 1, 0, 1)[:1] // pod → ClusterIP, 60 connections
			r := runLab(t, c, flows)
			o := r.Outcomes[0]
			if o.IPVS == nil || o.IPVS.Checked == 0 {
				t.Fatalf("%s: no connection went through IPVS", sched)
			}
			if o.IPVS.Scheduler != sched {
				t.Errorf("virtual service scheduler %q, want %q", o.IPVS.Scheduler, sched)
			}
			for _, d := range o.Disagreements {
				t.Errorf("%s: %s", o.Flow.Name, d)
			}
		})
	}
}
