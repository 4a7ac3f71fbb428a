package iproute

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/knet-dev/knet/dataplane/route"
)

// TestOldIproute2Layout: iproute2 before 4.15 printed " proto %s " etc. (two spaces between
// fields after dev), as in cni.md §4.1's seen Calico/CentOS 7 dumps; parse and print with
// Version 3.10.0 are inverses on them.
func TestOldIproute2Layout(t *testing.T) {
	in := "default via 10.0.2.2 dev enp0s3  proto static  metric 100 \n" +
		"10.0.2.0/24 dev enp0s3  proto kernel  scope link  src 10.0.2.15  metric 100 \n" +
		"blackhole 10.10.78.0/26  proto bird \n" +
		"10.10.78.1 dev cali0123456789a  scope link \n" +
		"10.10.79.0/26 via 192.168.2.1 dev enp6s0  proto bird \n" +
		"10.10.80.0/26 via 192.168.2.2 dev tunl0  proto bird onlink \n"
	s := &route.Stack{}
	if p := ParseRoutes(s, "old.txt", []byte(in), Options{Version: "3.10.0"}); len(p) > 0 {
		t.Fatal(p)
	}
	var out bytes.Buffer
	if err := PrintRoutes(&out, s, Options{Version: "3.10.0"}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out.String()); diff != "" {
		t.Errorf("old layout (-want +got):\n%s", diff)
	}
	out.Reset()
	if err := PrintRoutes(&out, s, Options{}); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.SplitN(out.String(), "\n", 3)[1], "10.0.2.0/24 dev enp0s3 proto kernel scope link src 10.0.2.15 metric 100 "; got != want {
		t.Errorf("6.1.0 layout: got %q, want %q", got, want)
	}
}

// TestParseRoutesTolerant feeds shapes seen in old or pasted dumps (cni.md §4.1: iproute2
// 3.x double spaces, stripped trailing spaces, tabs) and checks the parsed fields and the
// problems reported with file:line.
func TestParseRoutesTolerant(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    string
		want  []string // canonical 6.1.0 re-print
		probs []string
	}{
		{
			name: "old iproute2 double spaces",
			in:   "10.10.78.0/26 via 192.168.2.1 dev enp6s0  proto bird\n169.254.1.1 dev eth0  scope link\n",
			want: []string{"10.10.78.0/26 via 192.168.2.1 dev enp6s0 proto bird \n", "169.254.1.1 dev eth0 scope link \n"},
		},
		{
			name: "tabs and no trailing space",
			in:   "default via 10.0.0.1 dev eth0\t metric 100\n",
			want: []string{"default via 10.0.0.1 dev eth0 metric 100 \n"},
		},
		{
			name:  "prompt line and unknown token",
			in:    "$ ip route\n10.0.0.0/8 dev eth0 scope link frobnicate\n",
			want:  []string{"10.0.0.0/8 dev eth0 scope link \n"},
			probs: []string{`f.txt:1: bad route destination "$": "$ ip route"`, `f.txt:2: unknown route token "frobnicate": "10.0.0.0/8 dev eth0 scope link frobnicate"`},
		},
		{
			name:  "bad numbers are reported, not silently zero",
			in:    "10.0.0.0/8 dev eth0 metric 1OO\n10.1.0.0/16 dev eth0 mtu lock x advmss 1460\n",
			want:  []string{"10.0.0.0/8 dev eth0 \n", "10.1.0.0/16 dev eth0 advmss 1460 \n"},
			probs: []string{`f.txt:1: metric: bad number "1OO": "10.0.0.0/8 dev eth0 metric 1OO"`, `f.txt:2: locked mtu not modelled: "10.1.0.0/16 dev eth0 mtu lock x advmss 1460"`, `f.txt:2: mtu: bad number "x": "10.1.0.0/16 dev eth0 mtu lock x advmss 1460"`},
		},
		{
			name: "named table",
			in:   "10.244.0.0/24 dev tun-1 table kube-router proto 17\n",
			want: []string{"10.244.0.0/24 dev tun-1 table kube-router proto 17 \n"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &route.Stack{}
			probs := ParseRoutes(s, "f.txt", []byte(tc.in), Options{})
			var gotProbs []string
			for _, p := range probs {
				gotProbs = append(gotProbs, p.Error())
			}
			if diff := cmp.Diff(tc.probs, gotProbs); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			var got []string
			for _, r := range s.Routes {
				got = append(got, FormatRoute(s, r, Options{}, true))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("routes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseAddrsOldAndProblems(t *testing.T) {
	in := "4: kube-ipvs0: <BROADCAST,NOARP> mtu 1500 qdisc noop state DOWN group default \n" +
		"    link/ether 5a:3e:1b:22:7c:0d brd ff:ff:ff:ff:ff:ff\n" +
		"    inet 10.96.0.1/32 brd 10.96.0.1 scope global kube-ipvs0\n" +
		"       valid_lft forever preferred_lft forever\n" +
		"    bogus line here\n" +
		"    inet 10.96.0.10/32 brd 10.96.0.x scope global kube-ipvs0\n"
	s := &route.Stack{}
	probs := ParseAddrs(s, "addr.txt", []byte(in))
	want := Problems{
		{File: "addr.txt", Line: 5, Text: "    bogus line here", Msg: "unknown line in link kube-ipvs0"},
		{File: "addr.txt", Line: 6, Text: "    inet 10.96.0.10/32 brd 10.96.0.x scope global kube-ipvs0", Msg: `brd: bad address "10.96.0.x"`},
	}
	if diff := cmp.Diff(want, probs); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if len(s.Addrs) != 2 {
		t.Fatalf("got %d addresses, want 2", len(s.Addrs))
	}
	a := s.Addrs[0]
	if a.Broadcast != netip.MustParseAddr("10.96.0.1") || a.Dev != "kube-ipvs0" || a.Label != "kube-ipvs0" {
		t.Errorf("address = %+v", a)
	}
}

// TestParseLookupIntegration parses real dumps and resolves through them.
func TestParseLookupIntegration(t *testing.T) {
	s := &route.Stack{}
	for _, f := range []struct{ name, table string }{{"route-all.txt", "all"}} {
		b, err := os.ReadFile(filepath.Join("testdata", "real61", f.name))
		if err != nil {
			t.Fatal(err)
		}
		if p := ParseRoutes(s, f.name, b, Options{Table: f.table}); len(p) > 0 {
			t.Fatal(p)
		}
	}
	b, _ := os.ReadFile(filepath.Join("testdata", "real61", "addr.txt"))
	if p := ParseAddrs(s, "addr.txt", b); len(p) > 0 {
		t.Fatal(p)
	}
	b, _ = os.ReadFile(filepath.Join("testdata", "real61", "rule.txt"))
	if p := ParseRules(s, "rule.txt", b); len(p) > 0 {
		t.Fatal(p)
	}
	res, err := s.Lookup(netip.MustParseAddr("10.244.2.7"), route.LookupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.WriteString(FormatRoute(s, res.Route, Options{}, true))
	if got, want := buf.String(), "10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink \n"; got != want {
		t.Errorf("lookup route = %q, want %q", got, want)
	}
	if res.Src != netip.MustParseAddr("10.244.1.0") {
		t.Errorf("src = %s, want 10.244.1.0 (flannel.1's address)", res.Src)
	}
}
