package iproute

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/knet-dev/knet/dataplane/route"
)

// TestPrintBrief replays testdata/real61d/README.md through the mutators (IPv6 link-locals,
// which the kernel adds by itself, are added explicitly) and compares with real `-br` output.
func TestPrintBrief(t *testing.T) {
	s := route.New()
	must(t, s.LinkSetUp("lo"))
	eth := route.FlagBroadcast | route.FlagMulticast
	veth := func(idx int, name, peer, m string) {
		must(t, s.LinkAdd(&route.Link{Index: idx, Name: name, Kind: route.KindVeth, Flags: eth, HardwareAddr: mac(t, m), Veth: &route.Veth{PeerName: peer}}))
	}
	veth(2, "p0", "eth0", "6a:4b:87:a0:02:42")
	veth(3, "eth0", "p0", "7e:6c:80:ff:2e:78")
	must(t, s.LinkSetUp("eth0"))
	p := netip.MustParsePrefix
	must(t, s.AddrAdd(&route.Addr{Dev: "eth0", Prefix: p("172.31.1.1/20")}))
	must(t, s.AddrAdd(&route.Addr{Dev: "eth0", Prefix: p("172.31.1.9/20")}))
	veth(4, "p1", "cali1234567890a", "f6:7b:db:36:96:0f")
	veth(5, "cali1234567890a", "p1", "9a:19:b6:3b:7c:e3")
	must(t, s.LinkSetUp("cali1234567890a"))
	must(t, s.LinkSetUp("p1"))
	must(t, s.LinkAdd(&route.Link{Index: 6, Name: "vxlan.calico", Kind: route.KindVXLAN, Flags: eth | route.FlagUp | route.FlagLowerUp, OperState: route.OperUnknown, HardwareAddr: mac(t, "f6:c9:48:bf:dd:75")}))
	must(t, s.AddrAdd(&route.Addr{Dev: "vxlan.calico", Prefix: p("10.0.7.0/32")}))
	for dev, ll := range map[string]string{"lo": "::1/128", "p1": "fe80::f47b:dbff:fe36:960f/64", "cali1234567890a": "fe80::9819:b6ff:fe3b:7ce3/64", "vxlan.calico": "fe80::f4c9:48ff:febf:dd75/64"} {
		must(t, s.AddrAdd(&route.Addr{Dev: dev, Prefix: p(ll), Scope: route.ScopeLink}))
	}
	for _, tc := range []struct {
		file  string
		o     Options
		links bool
	}{
		{"br-addr.txt", Options{}, false},
		{"br-link.txt", Options{}, true},
		{"br-addr4.txt", Options{Family: Family4}, false},
	} {
		want, err := os.ReadFile(filepath.Join("testdata", "real61d", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := PrintBrief(&b, s, tc.o, tc.links); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(want), b.String()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.file, diff)
		}
	}
}
