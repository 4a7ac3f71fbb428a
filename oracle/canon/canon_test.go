package canon

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var canonTests = []struct {
	name, in, want, err string
}{
	{
		name: "tables, chains and service-ordered rules",
		in: `*nat
:KUBE-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-SVC-B - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-A - [0:0]
-A KUBE-SERVICES -m comment --comment "ns/b:p cluster IP" -j KUBE-SVC-B
-A KUBE-SVC-B -m comment --comment "ns/b:p -> 10.0.0.2:80" -j KUBE-SEP-2
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 192.168.1.2 -j KUBE-NODEPORTS
-A KUBE-SERVICES -m comment --comment "ns/a:p cluster IP" -j KUBE-SVC-A
-A KUBE-SVC-A -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-9
-A KUBE-SVC-A -j KUBE-SEP-1
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 192.168.0.2 -j KUBE-NODEPORTS
-A KUBE-NODEPORTS -m comment --comment ns/b:p -j KUBE-EXT-B
-A KUBE-NODEPORTS -m comment --comment ns/a:p -j KUBE-EXT-A
-X KUBE-SVC-OLD
COMMIT
*filter
:KUBE-SERVICES - [0:0]
:INPUT ACCEPT [0:0]
COMMIT
`,
		want: `*filter
:KUBE-SERVICES - [0:0]
:INPUT ACCEPT [0:0]
COMMIT
*nat
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-A - [0:0]
:KUBE-SVC-B - [0:0]
-A KUBE-NODEPORTS -m comment --comment ns/a:p -j KUBE-EXT-A
-A KUBE-NODEPORTS -m comment --comment ns/b:p -j KUBE-EXT-B
-A KUBE-SERVICES -m comment --comment "ns/a:p cluster IP" -j KUBE-SVC-A
-A KUBE-SERVICES -m comment --comment "ns/b:p cluster IP" -j KUBE-SVC-B
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 192.168.0.2 -j KUBE-NODEPORTS
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -d 192.168.1.2 -j KUBE-NODEPORTS
-A KUBE-SVC-A -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-9
-A KUBE-SVC-A -j KUBE-SEP-1
-A KUBE-SVC-B -m comment --comment "ns/b:p -> 10.0.0.2:80" -j KUBE-SEP-2
-X KUBE-SVC-OLD
COMMIT
`,
	},
	{name: "rule outside a table", in: "-A KUBE-SERVICES -j ACCEPT\n", err: `line 1: "-A KUBE-SERVICES -j ACCEPT" outside a table`},
	{name: "missing COMMIT", in: "*nat\n:KUBE-SERVICES - [0:0]\n", err: "table nat has no COMMIT"},
	{name: "table inside a table", in: "*nat\n*filter\nCOMMIT\n", err: "line 2: table *filter starts before COMMIT of nat"},
}

func TestCanonical(t *testing.T) {
	for _, tt := range canonTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonical([]byte(tt.in))
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("Canonical error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(strings.Split(tt.want, "\n"), strings.Split(got, "\n")); d != "" {
				t.Errorf("Canonical (-want +got):\n%s", d)
			}
		})
	}
}

// FuzzCanonical checks that Canonical never panics and is idempotent.
func FuzzCanonical(f *testing.F) {
	for _, tt := range canonTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		once, err := Canonical([]byte(in))
		if err != nil {
			return
		}
		twice, err := Canonical([]byte(once))
		if err != nil {
			t.Fatalf("canonical output does not parse: %v\n%s", err, once)
		}
		if once != twice {
			t.Fatalf("not idempotent:\n%s\n---\n%s", once, twice)
		}
	})
}
