package oracle

import (
	"math/rand/v2"
	"testing"
)

// benchState is a fixed random state of n Services (about 3 endpoints per port).
func benchState(n int) (Config, State) {
	g := &Generator{r: rand.New(rand.NewPCG(7, 7)), used: map[string]bool{}, opts: GenOptions{NoTopology: true, NoZeroOrForeignNodePortCIDRs: true}}
	cfg := g.config() // IPv4: g.v6 is false
	return cfg, g.state(n)
}

func endpointsOf(st State) int {
	n := 0
	for _, s := range st.EndpointSlices {
		n += len(s.Endpoints)
	}
	return n
}

// BenchmarkFullSync measures one full sync of the same 200 Services (generator seed 7) by upstream
// kube-proxy v1.37.2's Proxier (on the fake iptables) and by knet's renderer.
func BenchmarkFullSync(b *testing.B) {
	cfg, st := benchState(200)
	b.Run("upstream", func(b *testing.B) {
		up, err := NewUpstream(cfg)
		if err != nil {
			b.Fatal(err)
		}
		up.Apply(State{}, st)
		if _, err := up.Sync(); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			// OnTopologyChange sets needFullSync (and only queues a sync for SyncLoop).
			up.proxier.OnTopologyChange(nil)
			if _, err := up.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(endpointsOf(st)), "endpoints")
	})
	b.Run("knet", func(b *testing.B) {
		for b.Loop() {
			k, err := NewKnet(cfg)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := k.Sync(st); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(endpointsOf(st)), "endpoints")
	})
}
