package explain

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/knet-dev/knet/cluster"
)

func TestLooksLike(t *testing.T) {
	for _, tc := range []struct {
		file string
		want string
	}{
		{"iproute-calico-route.txt", "route"},
		{"iproute-kuberouter-route.txt", "route"},
		{"iproute-calico-addr.txt", "addr"},
		{"iproute-kuberouter-rule.txt", "rule"},
		{"iproute-calico-vxlan-neigh.txt", "neigh"},
		{"bridge-fdb.txt", "fdb"},
		{"crictl-ps.txt", "crictl"},
	} {
		b, err := os.ReadFile(filepath.Join("testdata", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range []struct {
			name string
			f    func([]byte) bool
		}{{"route", LooksLikeIPRoute}, {"addr", LooksLikeIPAddr}, {"rule", LooksLikeIPRule}, {"neigh", LooksLikeIPNeigh}, {"fdb", LooksLikeBridgeFDB}, {"crictl", LooksLikeCrictl}} {
			if d.f(b) {
				got = append(got, d.name)
			}
		}
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("%s detected as %v, want [%s]", tc.file, got, tc.want)
		}
	}
}

// FuzzExplainNet: the iproute and crictl explainers never panic and give one record per line.
func FuzzExplainNet(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		f.Fatal(err)
	}
	for _, n := range files {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	c := calicoCluster()
	f.Fuzz(func(t *testing.T, b []byte) {
		n := len(splitLines(b))
		for _, ex := range []func(string, []byte, *cluster.Cluster) ([]Record, error){IPRoute, IPAddr, IPRule, IPNeigh, BridgeFDB} {
			recs, err := ex("fuzz", b, c)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != n {
				t.Fatalf("%d records for %d lines", len(recs), n)
			}
		}
		if _, err := Crictl("fuzz", b, nil); err != nil {
			t.Fatal(err)
		}
	})
}
