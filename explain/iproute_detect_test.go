package explain

import (
	"os"
	"path/filepath"
	"testing"
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
