package iproute

import (
	"net"
	"net/netip"
	"testing"

	"github.com/knet-dev/knet/dataplane/route"
)

func mac(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// buildReal61 replays, through the model's mutators, the commands of testdata/real61/README.md.
// Only IPv6 link-local state (which the kernel adds by itself and the model does not) is
// added explicitly.
func buildReal61(t *testing.T) *route.Stack {
	t.Helper()
	s := route.New()
	bcast := mac(t, "ff:ff:ff:ff:ff:ff")
	up := route.FlagBroadcast | route.FlagMulticast | route.FlagUp | route.FlagLowerUp
	must(t, s.LinkSetUp("lo"))
	must(t, s.LinkAdd(&route.Link{Name: "eth0", Kind: route.KindVeth, Flags: up, OperState: route.OperUp, TxQLen: 1000,
		HardwareAddr: mac(t, "5e:7f:7d:10:dd:0b"), Broadcast: bcast,
		Veth: &route.Veth{PeerIndex: 2, PeerRemote: true, PeerNetNS: "knt2"}}))
	must(t, s.LinkAdd(&route.Link{Name: "veth1b", Kind: route.KindVeth, Flags: up, OperState: route.OperUp, TxQLen: 1000,
		HardwareAddr: mac(t, "be:5f:39:ea:fe:e6"), Broadcast: bcast, Veth: &route.Veth{PeerName: "veth1a", PeerIndex: 4}}))
	must(t, s.LinkAdd(&route.Link{Name: "veth1a", Kind: route.KindVeth, Flags: up, OperState: route.OperUp, TxQLen: 1000,
		HardwareAddr: mac(t, "be:33:12:9b:d0:87"), Broadcast: bcast, Veth: &route.Veth{PeerName: "veth1b", PeerIndex: 3}}))
	must(t, s.LinkAdd(&route.Link{Name: "cni0", Kind: route.KindBridge, Flags: up, OperState: route.OperUp, TxQLen: 1000,
		HardwareAddr: mac(t, "be:33:12:9b:d0:87"), Broadcast: bcast, Bridge: route.DefaultBridge()}))
	must(t, s.LinkSetMaster("veth1a", "cni0"))
	must(t, s.AddrAdd(&route.Addr{Dev: "eth0", Prefix: netip.MustParsePrefix("172.31.1.1/20")}))
	must(t, s.AddrAdd(&route.Addr{Dev: "cni0", Prefix: netip.MustParsePrefix("10.244.1.1/24")}))
	must(t, s.LinkAdd(&route.Link{Name: "flannel.1", Kind: route.KindVXLAN, Flags: up, OperState: route.OperUnknown, TxQLen: 1000,
		HardwareAddr: mac(t, "c6:74:b4:6b:d7:ee"), Broadcast: bcast,
		VXLAN: &route.VXLAN{VNI: 1, Local: netip.MustParseAddr("172.31.1.1"), Dev: "eth0", Port: 8472, Ageing: 300}}))
	must(t, s.AddrAdd(&route.Addr{Dev: "flannel.1", Prefix: netip.MustParsePrefix("10.244.1.0/32")}))
	must(t, s.LinkAdd(&route.Link{Name: "vxlan.calico", Kind: route.KindVXLAN, Flags: up, OperState: route.OperUnknown, TxQLen: 1000,
		HardwareAddr: mac(t, "da:c8:5d:0f:2f:b9"), Broadcast: bcast,
		VXLAN: &route.VXLAN{VNI: 4096, Local: netip.MustParseAddr("172.31.1.1"), Dev: "eth0", Port: 4789, Ageing: 300}}))
	p, a := netip.MustParsePrefix, netip.MustParseAddr
	for _, r := range []*route.Route{
		{Type: route.TypeBlackhole, Dst: p("10.0.7.0/26"), Protocol: route.ProtoBird},
		{Dst: p("10.0.8.0/26"), Gw: a("172.31.1.2"), Dev: "eth0", Protocol: route.ProtoBird, Flags: route.FlagOnlink, Metric: 1024},
		{Dst: p("10.0.9.0/26"), Gw: a("10.0.9.0"), Dev: "vxlan.calico", Flags: route.FlagOnlink, MTU: 1450, Protocol: route.ProtoFelix},
		{Dst: p("0.0.0.0/0"), Gw: a("172.31.0.1"), Dev: "eth0", Protocol: route.ProtoDHCP, Src: a("172.31.1.1"), Metric: 100},
		{Dst: p("10.244.1.5/32"), Dev: "veth1b", Scope: route.ScopeLink},
		{Dst: p("10.244.2.0/24"), Gw: a("10.244.2.0"), Dev: "flannel.1", Flags: route.FlagOnlink},
		{Dst: p("10.244.3.0/24"), Dev: "eth0", Protocol: route.ProtoKubeRouter, Src: a("172.31.1.1")},
		{Dst: p("172.31.1.2/32"), Dev: "eth0", Table: 77},
		{Type: route.TypeUnreachable, Dst: p("10.9.0.0/16")},
		{Type: route.TypeProhibit, Dst: p("10.10.0.0/16")},
		{Type: route.TypeThrow, Dst: p("10.11.0.0/16"), Table: 77},
		{Dst: p("10.12.0.0/16"), MultiPath: []route.NextHop{{Gw: a("172.31.1.2"), Dev: "eth0", Weight: 1}, {Gw: a("172.31.1.3"), Dev: "eth0", Weight: 2}}},
	} {
		must(t, s.RouteAdd(r))
	}
	must(t, s.RuleAdd(&route.Rule{Src: p("10.244.1.0/24"), Table: 77}, true))
	must(t, s.RuleAdd(&route.Rule{HasMark: true, Mark: 0x4000, Mask: 0x4000, Table: 77, Priority: 100}, false))
	must(t, s.RuleAdd(&route.Rule{Not: true, Dst: p("10.0.0.0/8"), IIF: "eth0", Table: route.TableMain, Priority: 200}, false))
	must(t, s.NeighAdd(&route.Neigh{IP: a("10.244.2.0"), Dev: "flannel.1", LLAddr: mac(t, "66:f9:37:c3:7e:94"), State: route.NeighPermanent}))
	must(t, s.NeighAdd(&route.Neigh{IP: a("172.31.1.3"), Dev: "eth0", LLAddr: mac(t, "52:54:00:12:34:57"), State: route.NeighStale}))
	must(t, s.NeighAdd(&route.Neigh{IP: a("172.31.1.2"), Dev: "eth0", LLAddr: mac(t, "52:54:00:12:34:56"), State: route.NeighReachable}))
	must(t, s.AddrAdd(&route.Addr{Dev: "veth1b", Prefix: p("10.96.0.1/32")}))
	must(t, s.AddrAdd(&route.Addr{Dev: "eth0", Prefix: p("172.31.1.9/20"), Broadcast: a("172.31.15.255"), Label: "eth0:1"}))

	// IPv6 state the kernel creates by itself (link-local addresses and their routes).
	must(t, s.AddrAdd(&route.Addr{Dev: "lo", Prefix: p("::1/128"), Scope: route.ScopeHost}))
	ll := map[string]string{"eth0": "fe80::5c7f:7dff:fe10:dd0b", "veth1b": "fe80::bc5f:39ff:feea:fee6",
		"veth1a": "fe80::bc33:12ff:fe9b:d087", "cni0": "fe80::bc33:12ff:fe9b:d087",
		"flannel.1": "fe80::c474:b4ff:fe6b:d7ee", "vxlan.calico": "fe80::d8c8:5dff:fe0f:2fb9"}
	order := []string{"veth1b", "veth1a", "eth0", "cni0", "flannel.1", "vxlan.calico"}
	for _, d := range []string{"eth0", "veth1b", "veth1a", "cni0", "flannel.1", "vxlan.calico"} {
		must(t, s.AddrAdd(&route.Addr{Dev: d, Prefix: netip.PrefixFrom(a(ll[d]), 64), Scope: route.ScopeLink}))
	}
	v6 := func(r *route.Route) { r.Protocol, r.Pref = route.ProtoKernel, "medium"; must(t, s.RouteAppend(r)) }
	for _, d := range order {
		v6(&route.Route{Dst: p("fe80::/64"), Dev: d, Metric: 256})
	}
	v6(&route.Route{Type: route.TypeLocal, Table: route.TableLocal, Dst: p("::1/128"), Dev: "lo"})
	for _, d := range []string{"eth0", "veth1a", "cni0", "veth1b", "flannel.1", "vxlan.calico"} {
		v6(&route.Route{Type: route.TypeLocal, Table: route.TableLocal, Dst: netip.PrefixFrom(a(ll[d]), 128), Dev: d})
	}
	for _, d := range order {
		v6(&route.Route{Type: route.TypeMulticast, Table: route.TableLocal, Dst: p("ff00::/8"), Dev: d, Metric: 256})
	}
	must(t, s.Validate())
	return s
}
