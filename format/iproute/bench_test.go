package iproute

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/knet-dev/knet/dataplane/route"
)

// bigStack is a Calico IPIP node of a 1,000-node cluster: one /26 per remote node via tunl0
// onlink (proto bird), 100 local pod routes on veths, the kernel's routes.
func bigStack(b *testing.B) *route.Stack {
	s := route.New()
	ok := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	ok(s.LinkSetUp("lo"))
	ok(s.LinkAdd(&route.Link{Name: "eth0", Flags: route.FlagBroadcast | route.FlagMulticast | route.FlagUp | route.FlagLowerUp}))
	ok(s.LinkAdd(&route.Link{Name: "tunl0", Kind: route.KindIPIP, Flags: route.FlagNoARP | route.FlagUp | route.FlagLowerUp, ParentNone: true}))
	ok(s.AddrAdd(&route.Addr{Dev: "eth0", Prefix: netip.MustParsePrefix("172.31.1.1/16"), Broadcast: netip.MustParseAddr("172.31.255.255")}))
	ok(s.RouteAdd(&route.Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: netip.MustParseAddr("172.31.0.1"), Dev: "eth0", Protocol: route.ProtoDHCP, Metric: 100}))
	for n := range 1000 {
		dst := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1 + byte(n/4), byte(n%4) * 64, 0}), 26)
		gw := netip.AddrFrom4([4]byte{172, 31, 16 + byte(n/250), byte(n % 250)})
		ok(s.RouteAdd(&route.Route{Dst: dst, Gw: gw, Dev: "tunl0", Protocol: route.ProtoBird, Flags: route.FlagOnlink, Metric: 1024}))
	}
	for i := range 100 {
		name := "cali" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + "000000000"
		ok(s.LinkAdd(&route.Link{Name: name, Kind: route.KindVeth, Flags: route.FlagBroadcast | route.FlagMulticast | route.FlagUp | route.FlagLowerUp}))
		ok(s.RouteAdd(&route.Route{Dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 7, byte(1 + i)}), 32), Dev: name, Metric: 1024}))
	}
	return s
}

// BenchmarkPrintRoutes1000Nodes prints `ip route show table all` of a 1,000-node cluster's node.
func BenchmarkPrintRoutes1000Nodes(b *testing.B) {
	s := bigStack(b)
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := PrintRoutes(&buf, s, Options{Table: "all"}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
}

// BenchmarkParseRoutes1000Nodes parses that dump back (1,100+ lines).
func BenchmarkParseRoutes1000Nodes(b *testing.B) {
	s := bigStack(b)
	var buf bytes.Buffer
	if err := PrintRoutes(&buf, s, Options{Table: "all"}); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if p := ParseRoutes(&route.Stack{}, "bench", data, Options{Table: "all"}); len(p) > 0 {
			b.Fatal(p)
		}
	}
}

// BenchmarkPrintParseAddrs parses `ip addr` of that node (100 veths).
func BenchmarkPrintParseAddrs(b *testing.B) {
	s := bigStack(b)
	var buf bytes.Buffer
	if err := PrintAddrs(&buf, s, Options{}); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if p := ParseAddrs(&route.Stack{}, "bench", data); len(p) > 0 {
			b.Fatal(p)
		}
	}
}
