package route

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var (
	pfx = netip.MustParsePrefix
	ip  = netip.MustParseAddr
)

// calicoNode builds a Calico IPIP node as cni.md §1.7 describes it: eth0 172.31.1.1/20,
// tunl0 10.0.7.0/32, two workload veths, the local blackhole block, a remote block via tunl0
// onlink, plus a kube-router style table 77 with a throw route and a from-rule.
func calicoNode(t testing.TB) *Stack {
	s := New()
	ok := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	up := FlagBroadcast | FlagMulticast | FlagUp | FlagLowerUp
	ok(s.LinkSetUp("lo"))
	ok(s.LinkAdd(&Link{Name: "eth0", Flags: up}))
	ok(s.LinkAdd(&Link{Name: "tunl0", Kind: KindIPIP, Flags: FlagNoARP | FlagUp | FlagLowerUp, ParentNone: true}))
	ok(s.LinkAdd(&Link{Name: "calic440f455693", Kind: KindVeth, Flags: up, HardwareAddr: net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}}))
	ok(s.LinkAdd(&Link{Name: "cali12d4a061371", Kind: KindVeth, Flags: up}))
	ok(s.LinkAdd(&Link{Name: "eth1", Flags: up &^ FlagUp}))
	ok(s.AddrAdd(&Addr{Dev: "eth0", Prefix: pfx("172.31.1.1/20"), Broadcast: ip("172.31.15.255")}))
	ok(s.AddrAdd(&Addr{Dev: "tunl0", Prefix: pfx("10.0.7.0/32")}))
	ok(s.AddrAdd(&Addr{Dev: "eth1", Prefix: pfx("192.168.50.1/24")}))
	for _, r := range []*Route{
		{Dst: pfx("0.0.0.0/0"), Gw: ip("172.31.0.1"), Dev: "eth0", Protocol: ProtoDHCP, Metric: 100},
		{Dst: pfx("0.0.0.0/0"), Gw: ip("172.31.0.254"), Dev: "eth0", Protocol: ProtoDHCP, Metric: 200},
		{Type: TypeBlackhole, Dst: pfx("10.0.7.0/26"), Protocol: ProtoBird},
		{Dst: pfx("10.0.7.1/32"), Dev: "cali12d4a061371"},
		{Dst: pfx("10.0.7.2/32"), Dev: "calic440f455693"},
		{Dst: pfx("10.0.8.0/26"), Gw: ip("172.31.1.2"), Dev: "tunl0", Protocol: ProtoBird, Flags: FlagOnlink},
		{Dst: pfx("10.0.9.0/26"), Gw: ip("172.31.1.3"), Dev: "eth0", Protocol: ProtoBird},
		{Dst: pfx("10.50.0.0/16"), Dev: "eth1"},
		{Type: TypeUnreachable, Dst: pfx("10.9.0.0/16")},
		{Type: TypeProhibit, Dst: pfx("10.10.0.0/16")},
		{Type: TypeThrow, Dst: pfx("10.0.0.0/8"), Table: 77},
		{Dst: pfx("0.0.0.0/0"), Gw: ip("172.31.0.77"), Dev: "eth0", Table: 77},
		{Dst: pfx("10.0.9.0/26"), Gw: ip("172.31.1.4"), Dev: "eth0", Protocol: ProtoBird, Metric: 0, Table: 78},
	} {
		if r.Table == 77 || r.Table == 78 {
			r.Flags |= FlagOnlink
		}
		ok(s.RouteAdd(r))
	}
	ok(s.RouteAppend(&Route{Dst: pfx("10.0.9.0/26"), Gw: ip("172.31.1.9"), Dev: "eth0", Protocol: ProtoBird}))
	ok(s.RuleAdd(&Rule{Src: pfx("10.0.7.0/26"), Table: 77}, true))
	ok(s.RuleAdd(&Rule{Priority: 100, HasMark: true, Mark: 0x4000, Mask: 0x4000, Table: 78}, false))
	ok(s.RuleAdd(&Rule{Priority: 50, IIF: "eth9", Action: ActionProhibit}, false))
	return s
}

type want struct {
	Route   string // Dst of the matched route
	Table   TableID
	Type    RouteType
	Dev     string
	Gateway string
	Src     string
	Err     ErrorKind
}

func TestLookup(t *testing.T) {
	s := calicoNode(t)
	for _, tc := range []struct {
		name string
		dst  string
		opt  LookupOptions
		want want
	}{
		{"local pod on its veth, src picked from another device (inet_select_addr)", "10.0.7.2", LookupOptions{},
			want{Route: "10.0.7.2/32", Table: TableMain, Type: TypeUnicast, Dev: "calic440f455693", Src: "172.31.1.1"}},
		{"unallocated IP of the local block hits the blackhole", "10.0.7.33", LookupOptions{},
			want{Route: "10.0.7.0/26", Table: TableMain, Type: TypeBlackhole}},
		{"remote block via tunl0 onlink, src is tunl0's address", "10.0.8.5", LookupOptions{},
			want{Route: "10.0.8.0/26", Table: TableMain, Type: TypeUnicast, Dev: "tunl0", Gateway: "172.31.1.2", Src: "10.0.7.0"}},
		{"equal prefix and metric: first inserted wins", "10.0.9.1", LookupOptions{},
			want{Route: "10.0.9.0/26", Table: TableMain, Type: TypeUnicast, Dev: "eth0", Gateway: "172.31.1.3", Src: "172.31.1.1"}},
		{"default: lowest metric wins", "8.8.8.8", LookupOptions{},
			want{Route: "0.0.0.0/0", Table: TableMain, Type: TypeUnicast, Dev: "eth0", Gateway: "172.31.0.1", Src: "172.31.1.1"}},
		{"own address: local table first, delivered on lo", "172.31.1.1", LookupOptions{},
			want{Route: "172.31.1.1/32", Table: TableLocal, Type: TypeLocal, Dev: "lo", Src: "172.31.1.1"}},
		{"subnet broadcast", "172.31.15.255", LookupOptions{},
			want{Route: "172.31.15.255/32", Table: TableLocal, Type: TypeBroadcast, Dev: "eth0", Src: "172.31.1.1"}},
		{"connected subnet, direct", "172.31.3.3", LookupOptions{},
			want{Route: "172.31.0.0/20", Table: TableMain, Type: TypeUnicast, Dev: "eth0", Src: "172.31.1.1"}},
		{"unreachable route", "10.9.1.1", LookupOptions{}, want{Err: ErrHostUnreachable}},
		{"prohibit route", "10.10.1.1", LookupOptions{}, want{Err: ErrProhibited}},
		{"link down: its routes are skipped, default taken", "10.50.1.1", LookupOptions{},
			want{Route: "0.0.0.0/0", Table: TableMain, Type: TypeUnicast, Dev: "eth0", Gateway: "172.31.0.1", Src: "172.31.1.1"}},
		{"from-rule to table 77: default there", "8.8.8.8", LookupOptions{Src: ip("10.0.7.2"), IIF: "calic440f455693"},
			want{Route: "0.0.0.0/0", Table: 77, Type: TypeUnicast, Dev: "eth0", Gateway: "172.31.0.77", Src: "172.31.1.1"}},
		{"throw in table 77 continues to main", "10.0.8.9", LookupOptions{Src: ip("10.0.7.2"), IIF: "calic440f455693"},
			want{Route: "10.0.8.0/26", Table: TableMain, Type: TypeUnicast, Dev: "tunl0", Gateway: "172.31.1.2", Src: "10.0.7.0"}},
		{"fwmark rule to table 78", "10.0.9.1", LookupOptions{Mark: 0x4000},
			want{Route: "10.0.9.0/26", Table: 78, Type: TypeUnicast, Dev: "eth0", Gateway: "172.31.1.4", Src: "172.31.1.1"}},
		{"fwmark rule: mask mismatch falls through", "10.0.9.1", LookupOptions{Mark: 0x8000},
			want{Route: "10.0.9.0/26", Table: TableMain, Type: TypeUnicast, Dev: "eth0", Gateway: "172.31.1.3", Src: "172.31.1.1"}},
		{"prohibit rule by iif", "10.0.8.1", LookupOptions{IIF: "eth9"}, want{Err: ErrProhibited}},
		{"oif binding skips routes on other devices", "10.0.8.5", LookupOptions{OIF: "eth0"},
			want{Route: "0.0.0.0/0", Table: TableMain, Type: TypeUnicast, Dev: "eth0", Gateway: "172.31.0.1", Src: "172.31.1.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := s.Lookup(ip(tc.dst), tc.opt)
			var got want
			if err != nil {
				var le *LookupError
				if !errors.As(err, &le) {
					t.Fatalf("error %v is not a *LookupError", err)
				}
				got.Err = le.Kind
			} else {
				got = want{Route: res.Route.Dst.String(), Table: res.Table, Type: res.Type, Dev: res.Dev}
				if res.Gateway.IsValid() {
					got.Gateway = res.Gateway.String()
				}
				if res.Src.IsValid() {
					got.Src = res.Src.String()
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Lookup(%s) (-want +got):\n%s", tc.dst, diff)
			}
		})
	}
}

func TestLookupNoRoute(t *testing.T) {
	s := New()
	_, err := s.Lookup(ip("1.1.1.1"), LookupOptions{})
	var le *LookupError
	if !errors.As(err, &le) || le.Kind != ErrNetUnreachable {
		t.Fatalf("got %v, want ENETUNREACH", err)
	}
}

func TestRouteAddChecks(t *testing.T) {
	s := calicoNode(t)
	for _, tc := range []struct {
		name    string
		r       *Route
		wantErr string
	}{
		{"gateway not on a connected route", &Route{Dst: pfx("10.1.0.0/16"), Gw: ip("8.8.8.8"), Dev: "eth0"},
			"route add 10.1.0.0/16: nexthop has invalid gateway 8.8.8.8: not directly connected (resolved by 0.0.0.0/0, use onlink)"},
		{"gateway on another device", &Route{Dst: pfx("10.1.0.0/16"), Gw: ip("172.31.1.2"), Dev: "tunl0"},
			"route add 10.1.0.0/16: nexthop has invalid gateway 172.31.1.2: reached via eth0, not tunl0"},
		{"onlink accepts it", &Route{Dst: pfx("10.1.0.0/16"), Gw: ip("172.31.1.2"), Dev: "tunl0", Flags: FlagOnlink}, ""},
		{"duplicate", &Route{Dst: pfx("10.0.8.0/26"), Gw: ip("172.31.1.2"), Dev: "tunl0", Flags: FlagOnlink},
			"route add 10.0.8.0/26 table main metric 0: file exists"},
		{"missing device", &Route{Dst: pfx("10.2.0.0/16"), Dev: "nope"}, `route add 10.2.0.0/16: cannot find device "nope": not found`},
		{"device inferred from gateway", &Route{Dst: pfx("10.3.0.0/16"), Gw: ip("172.31.1.5")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.RouteAdd(tc.r)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.wantErr {
				t.Errorf("RouteAdd error = %q, want %q", got, tc.wantErr)
			}
		})
	}
	res, err := s.Lookup(ip("10.3.1.1"), LookupOptions{})
	if err != nil || res.Dev != "eth0" {
		t.Errorf("inferred device: got %+v, %v; want eth0", res, err)
	}
}

func TestRuleAddAutoPriority(t *testing.T) {
	s := New()
	for i := range 2 {
		if err := s.RuleAdd(&Rule{Src: pfx(fmt.Sprintf("10.%d.0.0/16", i)), Table: 77}, true); err != nil {
			t.Fatal(err)
		}
	}
	var got []int
	for _, r := range s.Rules {
		got = append(got, r.Priority)
	}
	if diff := cmp.Diff([]int{0, 32764, 32765, 32766, 32767}, got); diff != "" {
		t.Errorf("priorities (-want +got):\n%s", diff)
	}
}

func TestAddrAddSecondaryAndLoopback(t *testing.T) {
	s := New()
	if err := s.LinkSetUp("lo"); err != nil {
		t.Fatal(err)
	}
	if err := s.LinkAdd(&Link{Name: "eth0", Flags: FlagUp | FlagLowerUp}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"10.1.0.1/24", "10.1.0.2/24", "10.2.0.1/31"} {
		if err := s.AddrAdd(&Addr{Dev: "eth0", Prefix: pfx(a)}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, r := range s.Routes {
		got = append(got, fmt.Sprintf("%s %s %s %s src=%s", s.TableName(r.Table), r.Type, r.Dst, r.Scope, r.Src))
	}
	want := []string{
		"main unicast 10.1.0.0/24 link src=10.1.0.1",
		"main unicast 10.2.0.0/31 link src=10.2.0.1",
		"local local 10.1.0.1/32 host src=10.1.0.1",
		"local local 10.1.0.2/32 host src=10.1.0.1",
		"local broadcast 10.1.0.255/32 link src=10.1.0.1",
		"local local 10.2.0.1/32 host src=10.2.0.1",
		"local local 127.0.0.0/8 host src=127.0.0.1",
		"local local 127.0.0.1/32 host src=127.0.0.1",
		"local broadcast 127.255.255.255/32 link src=127.0.0.1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("kernel routes (-want +got):\n%s", diff)
	}
	// The kernel keeps primaries before secondaries (__inet_insert_ifa).
	var order []string
	for _, a := range s.Addrs {
		order = append(order, fmt.Sprintf("%s secondary=%v", a.Prefix, a.Flags&AddrSecondary != 0))
	}
	if diff := cmp.Diff([]string{"127.0.0.1/8 secondary=false", "10.1.0.1/24 secondary=false", "10.2.0.1/31 secondary=false", "10.1.0.2/24 secondary=true"}, order); diff != "" {
		t.Errorf("addresses (-want +got):\n%s", diff)
	}
}

func TestValidate(t *testing.T) {
	s := New()
	s.Links = append(s.Links, &Link{Index: 1, Name: "lo"}, &Link{Index: 2, Name: "br", Master: "nobr"})
	s.Routes = append(s.Routes, &Route{Table: TableMain, Dst: pfx("10.0.0.0/8"), Dev: "eth0"})
	err := s.Validate()
	want := "duplicate link name \"lo\"\nduplicate link index 1 (lo)\nlink br: master \"nobr\" does not exist\nroute 10.0.0.0/8 table main: device \"eth0\" does not exist"
	if err == nil || err.Error() != want {
		t.Errorf("Validate() = %v, want\n%s", err, want)
	}
}

// BenchmarkLookup1000Nodes: a node's FIB in a 1,000-node Calico IPIP cluster (one /26 per
// remote node via tunl0 onlink, 110 local pod /32 routes, kernel local routes), looking up
// remote pods, local pods and the default route in turn.
func BenchmarkLookup1000Nodes(b *testing.B) {
	s := calicoNode(b)
	for n := range 1000 {
		dst := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1 + byte(n/4), byte(n%4) * 64, 0}), 26)
		gw := netip.AddrFrom4([4]byte{172, 31, 16 + byte(n/250), byte(n % 250)})
		if err := s.RouteAdd(&Route{Dst: dst, Gw: gw, Dev: "tunl0", Protocol: ProtoBird, Flags: FlagOnlink}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 110 {
		if err := s.RouteAdd(&Route{Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 7, byte(3 + i%60)}), 32), Dev: "cali12d4a061371", Metric: i / 60}); err != nil {
			b.Fatal(err)
		}
	}
	dsts := []netip.Addr{ip("10.100.128.9"), ip("10.0.7.20"), ip("8.8.8.8"), ip("10.200.0.1"), ip("172.31.1.1")}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Lookup(dsts[i%len(dsts)], LookupOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLookupMultipath(t *testing.T) {
	s := calicoNode(t)
	hops := []NextHop{{Gw: ip("172.31.1.2"), Dev: "eth0", Weight: 1}, {Gw: ip("172.31.1.3"), Dev: "eth0", Weight: 2}}
	if err := s.RouteAdd(&Route{Dst: pfx("10.12.0.0/16"), MultiPath: hops}); err != nil {
		t.Fatal(err)
	}
	res, err := s.Lookup(ip("10.12.3.4"), LookupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Dev != "eth0" || res.Gateway != ip("172.31.1.2") || res.Src != ip("172.31.1.1") {
		t.Errorf("first hop = %s via %s src %s", res.Dev, res.Gateway, res.Src)
	}
	if diff := cmp.Diff(hops, res.NextHops, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("next hops (-want +got):\n%s", diff)
	}
	if err := s.RouteAdd(&Route{Dst: pfx("10.13.0.0/16"), MultiPath: []NextHop{{Gw: ip("8.8.8.8"), Dev: "eth0"}}}); err == nil {
		t.Error("multipath next hop through a non-connected gateway: want an error")
	}
}

func TestAddrDelSecondariesAndLinkDel(t *testing.T) {
	s := New()
	ok := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ok(s.LinkAdd(&Link{Name: "br0", Kind: KindBridge, Flags: FlagUp | FlagLowerUp}))
	ok(s.LinkAdd(&Link{Name: "v1", Kind: KindVeth, Flags: FlagUp | FlagLowerUp, Veth: &Veth{PeerName: "v2"}}))
	ok(s.LinkAdd(&Link{Name: "v2", Kind: KindVeth, Flags: FlagUp | FlagLowerUp, Veth: &Veth{PeerName: "v1"}}))
	ok(s.LinkSetMaster("v1", "br0"))
	ok(s.AddrAdd(&Addr{Dev: "br0", Prefix: pfx("10.1.0.1/24")}))
	ok(s.AddrAdd(&Addr{Dev: "br0", Prefix: pfx("10.1.0.2/24")}))
	ok(s.AddrAdd(&Addr{Dev: "v2", Prefix: pfx("10.2.0.1/24")}))
	ok(s.AddrDel("br0", pfx("10.1.0.1/24")))
	if len(s.Addrs) != 1 || s.Addrs[0].Dev != "v2" {
		t.Errorf("deleting the primary should delete its secondary (promote_secondaries=0): %+v", s.Addrs)
	}
	for _, r := range s.Routes {
		if r.Dev == "br0" {
			t.Errorf("route left on br0 without addresses: %+v", r)
		}
	}
	ok(s.LinkDel("v1"))
	if s.LinkByName("v2") != nil || len(s.Addrs) != 0 || len(s.Routes) != 0 {
		t.Errorf("deleting v1 should delete its peer v2 with its address and routes: links %d addrs %d routes %d", len(s.Links), len(s.Addrs), len(s.Routes))
	}
	if err := s.LinkDel("v1"); err == nil {
		t.Error("deleting a missing link: want an error")
	}
}
