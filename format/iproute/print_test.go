package iproute

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/knet-dev/knet/dataplane/route"
)

// TestPrintReal61 builds, through the model's mutators, the namespace captured in
// testdata/real61 and checks that every printer reproduces the real iproute2 6.1.0 output
// byte for byte (including the kernel's automatic local/broadcast/prefix routes).
func TestPrintReal61(t *testing.T) {
	s := buildReal61(t)
	for _, tc := range []struct {
		file  string
		print func(*bytes.Buffer, *route.Stack) error
	}{
		{"route.txt", func(b *bytes.Buffer, s *route.Stack) error { return PrintRoutes(b, s, Options{}) }},
		{"route-all.txt", func(b *bytes.Buffer, s *route.Stack) error { return PrintRoutes(b, s, Options{Table: "all"}) }},
		{"route-local.txt", func(b *bytes.Buffer, s *route.Stack) error {
			return PrintRoutes(b, s, Options{Table: "local", Family: Family4})
		}},
		{"route-77.txt", func(b *bytes.Buffer, s *route.Stack) error { return PrintRoutes(b, s, Options{Table: "77"}) }},
		{"route-d.txt", func(b *bytes.Buffer, s *route.Stack) error { return PrintRoutes(b, s, Options{Details: true}) }},
		{"rule.txt", func(b *bytes.Buffer, s *route.Stack) error { return PrintRules(b, s, Options{}) }},
		{"neigh.txt", func(b *bytes.Buffer, s *route.Stack) error { return PrintNeighs(b, s, Options{}) }},
		{"addr.txt", func(b *bytes.Buffer, s *route.Stack) error { return PrintAddrs(b, s, Options{}) }},
		{"addr4.txt", func(b *bytes.Buffer, s *route.Stack) error { return PrintAddrs(b, s, Options{Family: Family4}) }},
		{"addr-eth0.txt", func(b *bytes.Buffer, s *route.Stack) error { return PrintAddrs(b, s, Options{Dev: "eth0"}) }},
		{"addr-o.txt", func(b *bytes.Buffer, s *route.Stack) error { return PrintAddrs(b, s, Options{Oneline: true}) }},
		{"link.txt", func(b *bytes.Buffer, s *route.Stack) error { return PrintLinks(b, s, Options{}) }},
		{"link-o.txt", func(b *bytes.Buffer, s *route.Stack) error { return PrintLinks(b, s, Options{Oneline: true}) }},
	} {
		t.Run(tc.file, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", "real61", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := tc.print(&got, s); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), got.String()); diff != "" {
				t.Errorf("%s mismatch (-want +got):\n%s", tc.file, diff)
			}
		})
	}
}
