package iproute

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/knet-dev/knet/dataplane/route"
)

func seed(f *testing.F, files ...string) {
	for _, n := range files {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzParseRoute: the route parser never panics, and what it parsed prints.
func FuzzParseRoute(f *testing.F) {
	seed(f, "real61/route.txt", "real61/route-all.txt", "real61/route-d.txt", "cni/calico-ipip-route.txt", "cni/kube-router-route-all.txt")
	f.Add([]byte("10.10.78.0/26 via 192.168.2.1 dev enp6s0  proto bird\n\tnexthop via 1.2.3.4 dev x weight 3\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &route.Stack{}
		ParseRoutes(s, "fuzz", b, Options{Table: "all"})
		var out bytes.Buffer
		if err := PrintRoutes(&out, s, Options{Table: "all"}); err != nil {
			t.Fatal(err)
		}
		_, _ = s.Lookup(netip.MustParseAddr("10.1.2.3"), route.LookupOptions{})
	})
}

// FuzzParseAddr: the addr/link parser never panics, and what it parsed prints.
func FuzzParseAddr(f *testing.F) {
	seed(f, "real61/addr.txt", "real61/addr-o.txt", "real61/link-d.txt", "real61/addr4.txt", "cni/calico-ipip-addr.txt", "cni/tunnels-link-d.txt")
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &route.Stack{}
		ParseAddrs(s, "fuzz", b)
		var out bytes.Buffer
		if err := PrintAddrs(&out, s, Options{Details: true}); err != nil {
			t.Fatal(err)
		}
		if err := PrintLinks(&out, s, Options{Details: true}); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzParseMisc covers ip rule, ip neigh and bridge fdb.
func FuzzParseMisc(f *testing.F) {
	seed(f, "real61/rule.txt", "real61/neigh.txt", "real61/fdb.txt")
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &route.Stack{}
		ParseRules(s, "fuzz", b)
		ParseNeighs(s, "fuzz", b)
		ParseFDB(s, "fuzz", b, "")
		var out bytes.Buffer
		_ = PrintRules(&out, s, Options{})
		_ = PrintNeighs(&out, s, Options{})
		_ = PrintFDB(&out, s, Options{})
	})
}
