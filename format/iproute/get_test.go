package iproute

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/knet-dev/knet/dataplane/route"
)

// TestPrintRouteGet compares with real `ip route get` output (iproute2 6.1.0) captured in a
// namespace set up as below (a1 172.31.1.1/20, default via 172.31.0.1, 10.0.8.0/26 via
// 172.31.1.2 onlink, blackhole 10.0.7.0/26).
func TestPrintRouteGet(t *testing.T) {
	s := route.New()
	must(t, s.LinkSetUp("lo"))
	must(t, s.LinkAdd(&route.Link{Name: "a1", Kind: route.KindVeth, Flags: route.FlagBroadcast | route.FlagMulticast | route.FlagUp | route.FlagLowerUp}))
	p, a := netip.MustParsePrefix, netip.MustParseAddr
	must(t, s.AddrAdd(&route.Addr{Dev: "a1", Prefix: p("172.31.1.1/20")}))
	must(t, s.RouteAdd(&route.Route{Dst: p("0.0.0.0/0"), Gw: a("172.31.0.1"), Dev: "a1"}))
	must(t, s.RouteAdd(&route.Route{Dst: p("10.0.8.0/26"), Gw: a("172.31.1.2"), Dev: "a1", Flags: route.FlagOnlink}))
	must(t, s.RouteAdd(&route.Route{Type: route.TypeBlackhole, Dst: p("10.0.7.0/26")}))
	for _, tc := range []struct {
		dst  string
		from string
		want string
		err  string
	}{
		{dst: "10.0.8.5", want: "10.0.8.5 via 172.31.1.2 dev a1 src 172.31.1.1 uid 0 \n    cache \n"},
		{dst: "8.8.8.8", want: "8.8.8.8 via 172.31.0.1 dev a1 src 172.31.1.1 uid 0 \n    cache \n"},
		{dst: "172.31.1.1", want: "local 172.31.1.1 dev lo src 172.31.1.1 uid 0 \n    cache <local> \n"},
		{dst: "172.31.3.3", want: "172.31.3.3 dev a1 src 172.31.1.1 uid 0 \n    cache \n"},
		{dst: "10.0.7.9", err: "RTNETLINK answers: Invalid argument"},
		{dst: "8.8.8.8", from: "172.31.1.1", want: "8.8.8.8 from 172.31.1.1 via 172.31.0.1 dev a1 uid 0 \n    cache \n"},
	} {
		var o GetOptions
		if tc.from != "" {
			o.From = a(tc.from)
		}
		var b bytes.Buffer
		err := PrintRouteGet(&b, s, a(tc.dst), o)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if gotErr != tc.err {
			t.Errorf("get %s: error %q, want %q", tc.dst, gotErr, tc.err)
		}
		if diff := cmp.Diff(tc.want, b.String()); diff != "" {
			t.Errorf("get %s from %q (-want +got):\n%s", tc.dst, tc.from, diff)
		}
	}
}
