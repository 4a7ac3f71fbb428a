package compare

import "testing"

// BenchmarkCompareLarge compares every combination for the large profile (5,000 nodes,
// 50,000 Services × 10 endpoints): one representative worker per combination and sample
// size, metrics extrapolated to the profile.
func BenchmarkCompareLarge(b *testing.B) {
	p, _ := BuiltinProfile("large")
	b.ReportAllocs()
	for b.Loop() {
		rep, err := Compare(p)
		if err != nil {
			b.Fatal(err)
		}
		if !rep.Extrapolated || len(rep.Rows) != len(ProxyModes())*len(Networks()) {
			b.Fatalf("unexpected report: extrapolated=%v rows=%d", rep.Extrapolated, len(rep.Rows))
		}
	}
}
