package nodecmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/format/iptablessave"
)

// TestIPTablesListMatchesRealIPTables compares `iptables -L` emulation with the real
// iptables v1.8.9 (nf_tables) output captured from the same ruleset (testdata/README.md).
func TestIPTablesListMatchesRealIPTables(t *testing.T) {
	f, err := os.Open("testdata/real-roundtrip.iptables-save")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rs, diags, err := iptablessave.Parse(f, "real-roundtrip.iptables-save")
	if err != nil {
		t.Fatal(err)
	}
	if len(diags) > 0 {
		t.Fatalf("parse diagnostics: %v", diags)
	}
	node := &dataplane.Node{Name: "n", IPTables: rs}
	tests := []struct {
		golden string
		argv   []string
	}{}
	for _, table := range []string{"filter", "nat", "mangle"} {
		tests = append(tests,
			struct {
				golden string
				argv   []string
			}{"real-" + table + "-L-n.txt", []string{"iptables", "-t", table, "-L", "-n"}},
			struct {
				golden string
				argv   []string
			}{"real-" + table + "-L-n-v.txt", []string{"iptables", "-t", table, "-nvL"}},
			struct {
				golden string
				argv   []string
			}{"real-" + table + "-L-n-v-x-line-numbers.txt", []string{"iptables", "-t", table, "-L", "-n", "-v", "-x", "--line-numbers"}},
		)
	}
	tests = append(tests, struct {
		golden string
		argv   []string
	}{"real-nat-L-KUBE-SERVICES-n-line-numbers.txt", []string{"iptables", "-t", "nat", "-L", "KUBE-SERVICES", "-n", "--line-numbers"}})
	for _, tt := range tests {
		t.Run(strings.Join(tt.argv, " "), func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", tt.golden))
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := RunEnv(context.Background(), node, tt.argv, &got, Env{}); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(string(want), got.String()); d != "" {
				t.Errorf("%s (-want +got):\n%s", tt.golden, d)
			}
		})
	}
}
