//go:build linux

package lab

import (
	"math"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/knet-dev/knet/kernel"
)

func TestChiSquareSurvival(t *testing.T) {
	// Critical values from the chi-square table (NIST/SEMATECH e-Handbook, 1.3.6.7.4).
	for _, tc := range []struct {
		x    float64
		df   int
		want float64
	}{
		{3.841, 1, 0.05}, {5.991, 2, 0.05}, {9.210, 2, 0.01}, {23.209, 10, 0.01},
		{0, 3, 1}, {18.467, 4, 0.001}, {13.816, 2, 0.001},
	} {
		got := chiSquareSurvival(tc.x, tc.df)
		if math.Abs(got-tc.want) > 2e-4 {
			t.Errorf("chiSquareSurvival(%v, %d) = %.6f, want %.4f", tc.x, tc.df, got, tc.want)
		}
	}
}

func TestSeedFlowsClusterB(t *testing.T) {
	c := presetFor(t, "cluster-b")
	flows := SeedFlows(c, 1, 2, 42)
	var got []string
	for _, f := range flows[:5] {
		got = append(got, f.Name+" "+f.From+" "+f.To.String()+" "+f.Kind)
	}
	want := []string{
		"pod → ClusterIP default/busybox 10.1.60.159:80 http",
		"pod → pod across subnets default/busybox 10.0.11.27:80 tcp",
		"node → Service ip-172-31-5-31 10.1.60.159:80 http",
		"outside → NodePort outside 172.31.27.63:30998 http",
		"DNS to CoreDNS (UDP) default/busybox 10.1.0.10:53 dns",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("seed flows (-want +got):\n%s", diff)
	}
	if len(flows) != 7 {
		t.Errorf("got %d flows, want 5 seed + 2 random", len(flows))
	}
	again := SeedFlows(c, 1, 2, 42)
	if diff := cmp.Diff(flows, again, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("random flows differ for the same seed (-first +second):\n%s", diff)
	}
}

func TestRequirements(t *testing.T) {
	for _, tc := range []struct {
		preset string
		want   []kernel.Feature
	}{
		{"cluster-a", []kernel.Feature{kernel.FeatureVeth, kernel.FeatureBridge, kernel.FeatureIPTables, kernel.FeatureIPIP, kernel.FeatureDummy, kernel.FeatureIPVS}},
		{"cluster-b", []kernel.Feature{kernel.FeatureVeth, kernel.FeatureBridge, kernel.FeatureIPTables, kernel.FeatureIPIP}},
	} {
		var got []kernel.Feature
		for _, r := range Requirements(presetFor(t, tc.preset)) {
			got = append(got, r.Feature)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s requirements (-want +got):\n%s", tc.preset, diff)
		}
	}
}

func TestParseAnswer(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Answer
		wantErr string
	}{
		{"knet-lab pod=default/web saw=10.0.104.2:41042\n", Answer{Pod: "default/web", Saw: netip.MustParseAddrPort("10.0.104.2:41042")}, ""},
		{"HTTP/1.0 200 OK\r\n\r\nknet-lab pod=a/b saw=1.2.3.4:5\n", Answer{Pod: "a/b", Saw: netip.MustParseAddrPort("1.2.3.4:5")}, ""},
		{"hello", Answer{}, "no knet-lab answer"},
		{"knet-lab pod=a/b", Answer{}, "malformed answer"},
		{"knet-lab pod=a/b saw=nonsense", Answer{}, "malformed answer"},
	} {
		got, err := ParseAnswer(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseAnswer(%q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseAnswer(%q): %v", tc.in, err)
		}
		if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
			t.Errorf("ParseAnswer(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{"knet-lab pod=default/web saw=10.0.104.2:41042\n", "HTTP/1.0 200 OK\r\n\r\nknet-lab pod=a/b saw=1.2.3.4:5\n", "knet-lab pod=a/b", "knet-lab pod= saw=[::1]:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAnswer(s)
		if err == nil {
			if !a.Saw.IsValid() {
				t.Errorf("ParseAnswer(%q) accepted an invalid address", s)
			}
			// What was accepted prints back to an answer that parses to the same.
			b, err := ParseAnswer(a.line())
			if err != nil || b.Saw != a.Saw {
				t.Errorf("round trip of %q: %v %v", s, b, err)
			}
		}
	})
}

func TestDNSReplyRoundTrip(t *testing.T) {
	q, err := dnsQuery()
	if err != nil {
		t.Fatal(err)
	}
	r, err := dnsReply(q, "knet-lab pod=kube-system/coredns saw=10.0.104.2:5353")
	if err != nil {
		t.Fatal(err)
	}
	txt, err := txtOf(r)
	if err != nil {
		t.Fatal(err)
	}
	if txt != "knet-lab pod=kube-system/coredns saw=10.0.104.2:5353" {
		t.Errorf("TXT = %q", txt)
	}
	if _, err := dnsReply([]byte("HELLO\n"), "x"); err == nil {
		t.Error("dnsReply accepted a non-DNS datagram")
	}
}
