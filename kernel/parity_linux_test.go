//go:build linux

package kernel

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/dataplane/route"
	"github.com/knet-dev/knet/render/cni/calico"
	"github.com/knet-dev/knet/render/cni/hostnet"
)

// requireFeatures skips (saying why) unless the kernel has every feature; under the lab VM
// (KNET_IN_VM=1) a missing feature is a failure, since the Debian kernel has them all.
func requireFeatures(t *testing.T, fs ...Feature) {
	t.Helper()
	for _, f := range fs {
		if err := Probe(f); err != nil {
			if os.Getenv("KNET_IN_VM") == "1" {
				t.Fatalf("inside the lab VM %s must work: %v", f, err)
			}
			t.Skipf("%v (run under the VM: go test ./lab/... runs this test there)", err)
		}
	}
}

// view is the comparable projection of a stack: what Apply programs and Read reads.
type view struct {
	Links, Addrs, Routes, Rules, Neighs, FDB []string
}

func viewOf(s *route.Stack) view {
	var v view
	for _, l := range s.Links {
		line := fmt.Sprintf("%s %s mtu %d up=%t", l.Name, l.Kind, l.MTU, l.Up())
		if l.Master != "" {
			line += " master " + l.Master
		}
		if l.Kind != route.KindLoopback && l.Kind != route.KindIPIP && len(l.HardwareAddr) == 6 {
			line += " " + l.HardwareAddr.String()
		}
		switch {
		case l.VXLAN != nil:
			line += fmt.Sprintf(" vni %d local %s dev %s dstport %d", l.VXLAN.VNI, l.VXLAN.Local, l.VXLAN.Dev, l.VXLAN.Port)
		case l.Veth != nil && !l.Veth.PeerRemote:
			line += " peer " + l.Veth.PeerName
		case l.Veth != nil:
			line += " peer in another namespace"
		}
		v.Links = append(v.Links, line)
	}
	for _, a := range s.Addrs {
		if a.Prefix.Addr().Is6() && a.Prefix.Addr().IsLinkLocalUnicast() {
			continue // the kernel makes these from the MAC
		}
		v.Addrs = append(v.Addrs, fmt.Sprintf("%s %s scope %s", a.Dev, a.Prefix, a.Scope))
	}
	for _, r := range s.Routes {
		if r.Dst.Addr().Is6() {
			continue // IPv6 kernel routes (fe80::/64, multicast) are not modelled the same way
		}
		typ := r.Type
		if typ == "" {
			typ = route.TypeUnicast
		}
		line := fmt.Sprintf("table %d %s %s", r.Table, typ, r.Dst)
		if r.Gw.IsValid() {
			line += " via " + r.Gw.String()
		}
		if r.Dev != "" {
			line += " dev " + r.Dev
		}
		line += fmt.Sprintf(" proto %d scope %d", r.Protocol, r.Scope)
		if r.Src.IsValid() {
			line += " src " + r.Src.String()
		}
		if r.Metric != 0 {
			line += fmt.Sprintf(" metric %d", r.Metric)
		}
		if r.Flags&route.FlagOnlink != 0 {
			line += " onlink"
		}
		if r.MTU != 0 {
			line += fmt.Sprintf(" mtu %d", r.MTU)
		}
		v.Routes = append(v.Routes, line)
	}
	for _, r := range s.Rules {
		if r.Dst.IsValid() && r.Dst.Addr().Is6() || r.Src.IsValid() && r.Src.Addr().Is6() {
			continue
		}
		v.Rules = append(v.Rules, fmt.Sprintf("%d from %v to %v fwmark %t/%#x/%#x %s %d", r.Priority, r.Src, r.Dst, r.HasMark, r.Mark, r.Mask, r.Action, r.Table))
	}
	for _, n := range s.Neighs {
		if n.State != route.NeighPermanent {
			continue // learned entries come and go
		}
		v.Neighs = append(v.Neighs, fmt.Sprintf("%s dev %s lladdr %s %s", n.IP, n.Dev, n.LLAddr, n.State))
	}
	for _, f := range s.FDB {
		if !f.Dst.IsValid() {
			continue // the kernel's own entries for local MACs
		}
		v.FDB = append(v.FDB, fmt.Sprintf("%s dev %s dst %s self=%t", f.MAC, f.Dev, f.Dst, f.Self))
	}
	for _, l := range [][]string{v.Links, v.Addrs, v.Routes, v.Rules, v.Neighs, v.FDB} {
		sort.Strings(l)
	}
	return v
}

// withFallbackTunl0 adds the ipip module's fallback tunl0 to a hand-built stack when the
// kernel puts one in every new namespace (ipip loaded), as hostnet.Pod does for pods.
func withFallbackTunl0(t *testing.T, ns *NS, s *route.Stack) {
	t.Helper()
	got, _, err := Read(t.Context(), ns, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Net.LinkByName("tunl0") != nil && s.LinkByName("tunl0") == nil {
		if err := s.LinkAdd(hostnet.FallbackTunl0(false, 1480)); err != nil {
			t.Fatal(err)
		}
	}
}

func applyAndRead(t *testing.T, ns *NS, n *dataplane.Node, o ApplyOptions) *route.Stack {
	t.Helper()
	if err := Apply(t.Context(), ns, n, o); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	got, notes, err := Read(t.Context(), ns, ReadOptions{})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	for _, n := range notes {
		t.Logf("read note: %s", n)
	}
	return got.Net
}

// TestParityRoutingFeatures builds a stack with the model's own mutators (the model
// predicts the kernel's derived routes), applies it and reads it back.
func TestParityRoutingFeatures(t *testing.T) {
	requireFeatures(t, FeatureVeth, FeatureBridge, FeatureVXLAN)
	s := route.New()
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	pfx := netip.MustParsePrefix
	addr := netip.MustParseAddr
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.LinkSetUp("lo"))
	// The model's `ip link set lo up` adds 127.0.0.1/8; the kernel also adds ::1 (IPv6 on).
	must(s.AddrAdd(&route.Addr{Dev: "lo", Prefix: pfx("::1/128"), Scope: route.ScopeHost}))
	must(s.LinkAdd(&route.Link{Name: "kube-bridge", Kind: route.KindBridge, MTU: 1500, HardwareAddr: mac("02:00:00:00:00:01"), Bridge: route.DefaultBridge()}))
	must(s.LinkAdd(&route.Link{Name: "veth0", Kind: route.KindVeth, MTU: 1500, HardwareAddr: mac("02:00:00:00:00:02"), Veth: &route.Veth{PeerName: "veth1"}}))
	must(s.LinkAdd(&route.Link{Name: "veth1", Kind: route.KindVeth, MTU: 1500, HardwareAddr: mac("02:00:00:00:00:03"), Veth: &route.Veth{PeerName: "veth0"}}))
	must(s.LinkSetMaster("veth0", "kube-bridge"))
	for _, n := range []string{"kube-bridge", "veth0", "veth1"} {
		must(s.LinkSetUp(n))
	}
	must(s.AddrAdd(&route.Addr{Dev: "kube-bridge", Prefix: pfx("10.0.7.1/24"), Broadcast: addr("10.0.7.255")}))
	must(s.AddrAdd(&route.Addr{Dev: "veth1", Prefix: pfx("172.31.5.31/20"), Broadcast: addr("172.31.15.255"), Metric: 100}))
	must(s.LinkAdd(&route.Link{Name: "flannel.1", Kind: route.KindVXLAN, MTU: 1450, HardwareAddr: mac("02:00:00:00:00:04"),
		VXLAN: &route.VXLAN{VNI: 1, Local: addr("172.31.5.31"), Dev: "veth1", Port: 8472}}))
	must(s.LinkSetUp("flannel.1"))
	must(s.AddrAdd(&route.Addr{Dev: "flannel.1", Prefix: pfx("10.0.7.0/32")}))
	must(s.RouteAdd(&route.Route{Table: route.TableMain, Dst: pfx("0.0.0.0/0"), Gw: addr("172.31.0.1"), Dev: "veth1", Protocol: route.ProtoDHCP, Src: addr("172.31.5.31"), Metric: 100}))
	must(s.RouteAdd(&route.Route{Table: route.TableMain, Dst: pfx("10.0.35.0/24"), Gw: addr("10.0.35.0"), Dev: "flannel.1", Protocol: route.ProtoBoot, Flags: route.FlagOnlink}))
	must(s.RouteAdd(&route.Route{Table: route.TableMain, Type: route.TypeBlackhole, Dst: pfx("10.0.104.0/24"), Protocol: route.ProtoBird}))
	must(s.RouteAdd(&route.Route{Table: 77, Dst: pfx("10.0.11.0/24"), Gw: addr("172.31.9.44"), Dev: "veth1", Protocol: route.ProtoStatic}))
	must(s.RuleAdd(&route.Rule{Priority: 32765, Action: route.ActionLookup, Table: 77}, false))
	must(s.NeighAdd(&route.Neigh{IP: addr("10.0.35.0"), Dev: "flannel.1", LLAddr: mac("66:00:00:00:00:35"), State: route.NeighPermanent}))
	must(s.FDBAdd(&route.FDB{MAC: mac("66:00:00:00:00:35"), Dev: "flannel.1", Dst: addr("172.31.21.52"), Self: true, State: route.FDBPermanent}))

	ns := newTestNS(t)
	withFallbackTunl0(t, ns, s)
	got := applyAndRead(t, ns, &dataplane.Node{Name: "parity", Net: s}, ApplyOptions{})
	if diff := cmp.Diff(viewOf(s), viewOf(got)); diff != "" {
		t.Errorf("model vs kernel after Apply/Read (-model +kernel):\n%s", diff)
	}
}

// TestParityDummy covers what kube-proxy's IPVS mode makes: kube-ipvs0 holding the
// Service addresses.
func TestParityDummy(t *testing.T) {
	requireFeatures(t, FeatureDummy)
	s := route.New()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.LinkAdd(&route.Link{Name: "kube-ipvs0", Kind: route.KindDummy, MTU: 1500, HardwareAddr: net.HardwareAddr{0x02, 0, 0, 0, 0, 0x10}}))
	must(s.AddrAdd(&route.Addr{Dev: "kube-ipvs0", Prefix: netip.MustParsePrefix("10.1.0.10/32")}))
	must(s.AddrAdd(&route.Addr{Dev: "kube-ipvs0", Prefix: netip.MustParsePrefix("10.1.0.1/32")}))
	ns := newTestNS(t)
	withFallbackTunl0(t, ns, s)
	got := applyAndRead(t, ns, &dataplane.Node{Name: "parity-dummy", Net: s}, ApplyOptions{})
	if diff := cmp.Diff(viewOf(s), viewOf(got)); diff != "" {
		t.Errorf("model vs kernel after Apply/Read (-model +kernel):\n%s", diff)
	}
}

// TestParityCalicoNode applies a rendered cluster-b worker (Calico IPIP Always: tunl0,
// cali veths into pod namespaces, blackhole, onlink routes via tunl0) with its pods and
// compares each namespace. The uplink eth0 is a physical device, stood in for by a veth
// whose peer stays in a scratch namespace, as the lab does.
func TestParityCalicoNode(t *testing.T) {
	requireFeatures(t, FeatureVeth, FeatureIPIP)
	c, err := cluster.Preset("cluster-b")
	if err != nil {
		t.Fatal(err)
	}
	nodeName := "ip-172-31-27-63"
	n, err := calico.Render(c, nodeName, calico.OptionsFor(c))
	if err != nil {
		t.Fatal(err)
	}
	host := newTestNS(t)
	uplink, err := NewNS("")
	if err != nil {
		t.Fatal(err)
	}
	defer uplink.Close()
	if err := MakeUplink(host, uplink, n.Net.LinkByName("eth0"), "up-"+nodeName[len(nodeName)-5:]); err != nil {
		t.Fatalf("MakeUplink: %v", err)
	}
	pods := map[string]*NS{}
	keys := make([]string, 0, len(n.Pods))
	for k := range n.Pods {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ns, err := NewNS("")
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		pns, pname, _ := strings.Cut(k, "/")
		pods[hostnet.NetNSName(pns, pname)] = ns
	}
	o := ApplyOptions{PeerNS: func(name string) (*NS, error) {
		if ns, ok := pods[name]; ok {
			return ns, nil
		}
		return nil, fmt.Errorf("no pod namespace %q", name)
	}}
	got := applyAndRead(t, host, n, o)
	// The uplink is a veth standing in for the physical eth0: compare it as the device.
	if l := got.LinkByName("eth0"); l != nil {
		l.Kind, l.Veth = route.KindDevice, nil
	}
	if diff := cmp.Diff(viewOf(n.Net), viewOf(got)); diff != "" {
		t.Errorf("node %s: model vs kernel (-model +kernel):\n%s", nodeName, diff)
	}
	for _, k := range keys {
		pns, pname, _ := strings.Cut(k, "/")
		p := n.Pods[k]
		got := applyAndRead(t, pods[hostnet.NetNSName(pns, pname)], p, o)
		if diff := cmp.Diff(viewOf(p.Net), viewOf(got)); diff != "" {
			t.Errorf("pod %s: model vs kernel (-model +kernel):\n%s", k, diff)
		}
	}
}

var _ = context.Background
