//go:build linux

package kernel

import (
	"fmt"
	"net/netip"
	"os"
	"testing"

	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/dataplane/route"
)

// BenchmarkApplyRead1000Routes applies a namespace with a bridge, a veth pair and 1000
// routes (a 1000-node cluster's pod-block routes) through netlink and reads it back.
func BenchmarkApplyRead1000Routes(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	s := route.New()
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(s.LinkSetUp("lo"))
	must(s.LinkAdd(&route.Link{Name: "veth0", Kind: route.KindVeth, MTU: 1500, Veth: &route.Veth{PeerName: "veth1"}}))
	must(s.LinkAdd(&route.Link{Name: "veth1", Kind: route.KindVeth, MTU: 1500, Veth: &route.Veth{PeerName: "veth0"}}))
	must(s.LinkSetUp("veth0"))
	must(s.LinkSetUp("veth1"))
	must(s.AddrAdd(&route.Addr{Dev: "veth0", Prefix: netip.MustParsePrefix("172.31.5.31/20")}))
	for i := 0; i < 1000; i++ {
		dst := netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", 100+i/256, i%256))
		must(s.RouteAdd(&route.Route{Table: route.TableMain, Dst: dst, Gw: netip.MustParseAddr("172.31.0.1"), Dev: "veth0", Protocol: route.ProtoBird}))
	}
	n := &dataplane.Node{Name: "bench", Net: s}
	for b.Loop() {
		ns, err := NewNS("")
		if err != nil {
			b.Fatal(err)
		}
		if err := Apply(b.Context(), ns, n, ApplyOptions{}); err != nil {
			b.Fatal(err)
		}
		got, _, err := Read(b.Context(), ns, ReadOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if len(got.Net.Routes) < 1000 {
			b.Fatalf("read %d routes, want 1000+", len(got.Net.Routes))
		}
		ns.Close()
	}
}
