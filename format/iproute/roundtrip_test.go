package iproute

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/knet-dev/knet/dataplane/route"
)

type rtCase struct {
	file  string
	parse func(*route.Stack, []byte) Problems
	print func(*bytes.Buffer, *route.Stack) error
}

func rtCases() []rtCase {
	routes := func(o Options) rtCase {
		return rtCase{
			parse: func(s *route.Stack, b []byte) Problems { return ParseRoutes(s, "in", b, o) },
			print: func(w *bytes.Buffer, s *route.Stack) error { return PrintRoutes(w, s, o) },
		}
	}
	addrs := func(o Options) rtCase {
		return rtCase{
			parse: func(s *route.Stack, b []byte) Problems { return ParseAddrs(s, "in", b) },
			print: func(w *bytes.Buffer, s *route.Stack) error { return PrintAddrs(w, s, o) },
		}
	}
	links := func(o Options) rtCase {
		return rtCase{
			parse: func(s *route.Stack, b []byte) Problems { return ParseAddrs(s, "in", b) },
			print: func(w *bytes.Buffer, s *route.Stack) error { return PrintLinks(w, s, o) },
		}
	}
	named := func(f string, c rtCase) rtCase { c.file = f; return c }
	return []rtCase{
		named("real61/route.txt", routes(Options{})),
		named("real61/route-all.txt", routes(Options{Table: "all"})),
		named("real61/route-local.txt", routes(Options{Table: "local", Family: Family4})),
		named("real61/route-77.txt", routes(Options{Table: "77"})),
		named("real61/route-d.txt", routes(Options{Details: true})),
		named("real61/addr.txt", addrs(Options{})),
		named("real61/addr4.txt", addrs(Options{Family: Family4})),
		named("real61/addr-eth0.txt", addrs(Options{Dev: "eth0"})),
		named("real61/addr-o.txt", addrs(Options{Oneline: true})),
		named("real61/pod-addr.txt", addrs(Options{})),
		named("real61/link.txt", links(Options{})),
		named("real61/link-o.txt", links(Options{Oneline: true})),
		named("real61/link-d.txt", links(Options{Details: true})),
		named("real61b/route-all-v4.txt", routes(Options{Table: "all", Family: Family4})),
		named("real61b/addr4.txt", addrs(Options{Family: Family4})),
		named("real61b/link.txt", links(Options{})),
		named("cni/calico-ipip-addr.txt", addrs(Options{})),
		named("cni/calico-ipip-route.txt", routes(Options{})),
		named("cni/kube-router-route-all.txt", routes(Options{Table: "all"})),
		named("cni/tunnels-link-d.txt", links(Options{Details: true})),
		{file: "real61/rule.txt",
			parse: func(s *route.Stack, b []byte) Problems { return ParseRules(s, "in", b) },
			print: func(w *bytes.Buffer, s *route.Stack) error { return PrintRules(w, s, Options{}) }},
		{file: "real61/neigh.txt",
			parse: func(s *route.Stack, b []byte) Problems { return ParseNeighs(s, "in", b) },
			print: func(w *bytes.Buffer, s *route.Stack) error { return PrintNeighs(w, s, Options{}) }},
		{file: "real61/fdb.txt",
			parse: func(s *route.Stack, b []byte) Problems { return ParseFDB(s, "in", b, "") },
			print: func(w *bytes.Buffer, s *route.Stack) error { return PrintFDB(w, s, Options{}) }},
	}
}

// TestRoundTrip checks Print(Parse(x)) == x, without parse problems, on real and canonical dumps.
func TestRoundTrip(t *testing.T) {
	for _, tc := range rtCases() {
		t.Run(tc.file, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			s := &route.Stack{}
			if probs := tc.parse(s, in); len(probs) > 0 {
				t.Fatalf("parse problems:\n%v", probs)
			}
			var out bytes.Buffer
			if err := tc.print(&out, s); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(in), out.String()); diff != "" {
				t.Errorf("round trip mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
