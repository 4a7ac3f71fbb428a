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

// TestLinkDownUpAddrDel replays testdata/real61c/README.md: link down flushes every route but
// the local one (and the neighbours), link up restores only the kernel's routes, deleting the
// last address flushes the rest.
func TestLinkDownUpAddrDel(t *testing.T) {
	s := route.New()
	must(t, s.LinkSetUp("lo"))
	eth := route.FlagBroadcast | route.FlagMulticast
	must(t, s.LinkAdd(&route.Link{Index: 2, Name: "a2", Kind: route.KindVeth, Flags: eth, Veth: &route.Veth{PeerName: "a1", PeerIndex: 3}}))
	must(t, s.LinkAdd(&route.Link{Index: 3, Name: "a1", Kind: route.KindVeth, Flags: eth, Veth: &route.Veth{PeerName: "a2", PeerIndex: 2}}))
	must(t, s.LinkSetUp("a1"))
	must(t, s.LinkSetUp("a2"))
	p, a := netip.MustParsePrefix, netip.MustParseAddr
	must(t, s.AddrAdd(&route.Addr{Dev: "a1", Prefix: p("192.168.5.10/24")}))
	must(t, s.RouteAdd(&route.Route{Dst: p("10.1.0.0/16"), Gw: a("192.168.5.1"), Dev: "a1"}))
	must(t, s.RouteAdd(&route.Route{Dst: p("10.2.0.0/16"), Dev: "a1", Table: 77}))
	must(t, s.NeighAdd(&route.Neigh{IP: a("192.168.5.1"), Dev: "a1", LLAddr: mac(t, "52:54:00:00:00:01"), State: route.NeighPermanent}))

	check := func(file string) {
		t.Helper()
		want, err := os.ReadFile(filepath.Join("testdata", "real61c", file))
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := PrintRoutes(&b, s, Options{Table: "all", Family: Family4}); err != nil {
			t.Fatal(err)
		}
		var got strings.Builder
		for _, l := range strings.SplitAfter(b.String(), "\n") {
			if l != "" && !strings.Contains(l, "127.") {
				got.WriteString(l)
			}
		}
		if diff := cmp.Diff(string(want), got.String()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", file, diff)
		}
	}
	check("1-up.txt")
	must(t, s.LinkSetDown("a1"))
	check("2-down.txt")
	if len(s.Neighs) != 0 {
		t.Errorf("neighbours after link down: %+v", s.Neighs)
	}
	if l := s.LinkByName("a2"); l.Flags&route.FlagLowerUp != 0 || l.OperState != route.OperLowerLayerDown {
		t.Errorf("peer a2 after a1 down: flags %s state %s, want no carrier", l.Flags, l.OperState)
	}
	must(t, s.LinkSetUp("a1"))
	check("3-up-again.txt")
	must(t, s.AddrDel("a1", p("192.168.5.10/24")))
	check("4-addr-del.txt")
	if err := s.AddrDel("a1", p("192.168.5.10/24")); err == nil {
		t.Error("deleting a missing address: want an error")
	}
}
