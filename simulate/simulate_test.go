package simulate

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane/ipvs"
)

func eps(n int) []Endpoint {
	var out []Endpoint
	for i := 0; i < n; i++ {
		out = append(out, Endpoint{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 244, 1, byte(10 + i)}), 8080), Weight: 1, Probability: 1 / float64(n-i)})
	}
	return out
}

func base(mode Mode, s ipvs.Scheduler, n, conns, clients int) Config {
	return Config{Mode: mode, Scheduler: s, Service: netip.MustParseAddrPort("10.96.0.20:80"), Endpoints: eps(n),
		Connections: conns, Clients: Clients(netip.MustParseAddr("10.244.0.5"), clients), Seed: 7,
		Duration: Fixed, Lifetime: 5 * time.Second, Rate: 100}
}

func counts(r *Report) []int {
	var out []int
	for _, row := range r.Rows {
		out = append(out, row.Connections)
	}
	return out
}

func TestSpreads(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []int // exact counts (deterministic cases)
	}{
		// rr ignores load: 300 connections over 3 servers are exactly 100 each.
		{"rr even", base(IPVS, ipvs.RoundRobin, 3, 300, 5), []int{100, 100, 100}},
		// sh with one client: every connection hashes to the same bucket.
		{"sh one client", base(IPVS, ipvs.SourceHashing, 3, 50, 1), nil},
		// fo sends everything to the first highest-weight server in the kernel list (the
		// last added).
		{"fo", base(IPVS, ipvs.WeightedFailover, 3, 40, 3), []int{0, 0, 40}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Run(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := counts(r)
			if tc.want != nil {
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("counts (-want +got):\n%s", diff)
				}
			}
			if tc.name == "sh one client" {
				nonzero := 0
				for _, c := range got {
					if c > 0 {
						nonzero++
					}
				}
				if nonzero != 1 {
					t.Errorf("sh with one client spread over %d servers: %v", nonzero, got)
				}
			}
			sum := r.Failed
			for _, c := range got {
				sum += c
			}
			if sum != tc.cfg.Connections {
				t.Errorf("counts add to %d, want %d", sum, tc.cfg.Connections)
			}
		})
	}
}

func TestIPTablesSampleMatchesProbabilities(t *testing.T) {
	r, err := Run(base(IPTables, "", 3, 30000, 50))
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range r.Rows {
		if d := row.Expected - 1.0/3; d > 1e-9 || d < -1e-9 {
			t.Errorf("expected share %v, want 1/3", row.Expected)
		}
	}
	// 2 degrees of freedom: 13.8 is the 0.999 quantile.
	if x := r.ChiSquare(); x > 13.8 {
		t.Errorf("chi-square %.2f: sample does not follow the rule probabilities %v", x, counts(r))
	}
}

// TestWeightedLeastConnection checks that wlc follows weights once connections pile up:
// with long lifetimes the active counts steer 2:1.
func TestWeightedLeastConnection(t *testing.T) {
	cfg := base(IPVS, ipvs.WeightedLeastConnection, 2, 3000, 20)
	cfg.Endpoints[0].Weight = 2
	cfg.Lifetime = 60 * time.Second
	r, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s := r.Rows[0].Share; s < 0.64 || s > 0.69 {
		t.Errorf("wlc weight-2 share %.3f, want about 2/3", s)
	}
}

func TestAffinity(t *testing.T) {
	for _, mode := range []Mode{IPTables, IPVS} {
		cfg := base(mode, ipvs.RoundRobin, 3, 200, 1)
		cfg.Affinity, cfg.AffinityTimeout = true, time.Hour
		r, err := Run(cfg)
		if err != nil {
			t.Fatal(err)
		}
		nonzero := 0
		for _, c := range counts(r) {
			if c > 0 {
				nonzero++
			}
		}
		if nonzero != 1 {
			t.Errorf("%s: one client with affinity spread over %d endpoints: %v", mode, nonzero, counts(r))
		}
	}
}

func TestDeterministicForSeed(t *testing.T) {
	for _, s := range ipvs.Schedulers() {
		a, err := Run(base(IPVS, s, 4, 500, 10))
		if err != nil {
			t.Fatal(err)
		}
		b, err := Run(base(IPVS, s, 4, 500, 10))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(a, b); diff != "" {
			t.Errorf("%s not reproducible (-a +b):\n%s", s, diff)
		}
	}
}

func TestFromObjectsAndOutput(t *testing.T) {
	p := func(s string) *string { return &s }
	port := int32(8080)
	tcp := corev1.ProtocolTCP
	ready := true
	objs := cluster.Objects{
		Services: []*corev1.Service{{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.20", ClusterIPs: []string{"10.96.0.20"}, Type: corev1.ServiceTypeClusterIP,
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: tcp}}}}},
		EndpointSlices: []*discoveryv1.EndpointSlice{{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-1",
			Labels: map[string]string{discoveryv1.LabelServiceName: "web"}}, AddressType: discoveryv1.AddressTypeIPv4,
			Ports: []discoveryv1.EndpointPort{{Name: p("http"), Port: &port, Protocol: &tcp}},
			Endpoints: []discoveryv1.Endpoint{
				{Addresses: []string{"10.244.1.10"}, NodeName: p("n1"), Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
				{Addresses: []string{"10.244.2.10"}, NodeName: p("n2"), Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
				{Addresses: []string{"10.244.2.11"}, NodeName: p("n2"), Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
			}}},
	}
	cfgs, err := Configs(objs, Target{Service: "shop/web", Node: "n1", NodeIPs: []netip.Addr{netip.MustParseAddr("192.168.1.11")}},
		Config{Connections: 900, Clients: Clients(netip.MustParseAddr("10.244.1.5"), 3), Seed: 1}, true, []ipvs.Scheduler{ipvs.RoundRobin})
	if err != nil {
		t.Fatal(err)
	}
	// iptables probabilities come from the rendered KUBE-SVC rules: 1/3, 1/2, last rule.
	var probs []float64
	for _, e := range cfgs[0].Endpoints {
		probs = append(probs, e.Probability)
	}
	if diff := cmp.Diff([]float64{0.3333333333, 0.5, 1}, probs); diff != "" {
		t.Errorf("rule probabilities (-want +got):\n%s", diff)
	}
	var b bytes.Buffer
	var reps []*Report
	for _, c := range cfgs {
		r, err := Run(c)
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, r)
		if err := WriteTable(&b, r); err != nil {
			t.Fatal(err)
		}
		if err := WriteChart(&b, r); err != nil {
			t.Fatal(err)
		}
	}
	out := b.String()
	for _, want := range []string{"iptables: 900 connections to tcp 10.96.0.20:80", "ipvs rr: 900 connections", "10.244.1.10:8080", "|"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	var svg bytes.Buffer
	if err := WriteSVG(&svg, reps); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(svg.String(), "<svg") || strings.Count(svg.String(), "<rect") != 6 {
		t.Errorf("svg has %d bars, want 6", strings.Count(svg.String(), "<rect"))
	}
	if _, err := Run(Config{Mode: IPVS, Connections: 0}); err == nil {
		t.Error("zero connections accepted")
	}
}
