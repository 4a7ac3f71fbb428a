package hostnet

import (
	"net"
	"net/netip"
	"regexp"
	"testing"

	"github.com/knet-dev/knet/cluster"
)

func TestLinkLocal(t *testing.T) {
	// Every Calico host veth (MAC ee:ee:ee:ee:ee:ee) shows this address (reference/cni.md §1.1).
	mac, _ := net.ParseMAC("ee:ee:ee:ee:ee:ee")
	if got := LinkLocal(mac).String(); got != "fe80::ecee:eeff:feee:eeee/64" {
		t.Errorf("LinkLocal = %s", got)
	}
}

func TestStableNames(t *testing.T) {
	ns := NetNSName("default", "web")
	if !regexp.MustCompile(`^cni-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`).MatchString(ns) {
		t.Errorf("NetNSName = %q, not containerd's cni-<uuid> shape", ns)
	}
	if ns != NetNSName("default", "web") || ns == NetNSName("default", "web2") {
		t.Errorf("NetNSName is not a function of the pod identity")
	}
	if v := VethName("default", "web"); !regexp.MustCompile(`^veth[0-9a-f]{8}$`).MatchString(v) {
		t.Errorf("VethName = %q, want veth + 8 hex digits", v)
	}
	m := MAC("x")
	if m[0]&1 != 0 || m[0]&2 == 0 {
		t.Errorf("MAC %s is not a locally administered unicast address", m)
	}
}

func TestHost(t *testing.T) {
	c := &cluster.Cluster{CNI: cluster.CNI{MTU: 9001}}
	n := &cluster.Node{Name: "n", Interface: "ens5"}
	var err error
	if n.IP, n.Subnet, n.Gateway, err = parse("172.31.20.1", "172.31.16.0/20", "172.31.16.1"); err != nil {
		t.Fatal(err)
	}
	s, err := Host(c, n)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range s.Routes {
		if r.Table == 254 {
			got = append(got, r.Dst.String()+" "+r.Gw.String()+" "+r.Dev+" "+r.Protocol.String())
		}
	}
	want := []string{"0.0.0.0/0 172.31.16.1 ens5 dhcp", "172.31.16.0/20 invalid IP ens5 kernel"}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("main table %q, want %q", got, want)
	}
	if l := s.LinkByName("ens5"); l == nil || l.MTU != 9001 || l.Index != 2 {
		t.Errorf("uplink: %+v", l)
	}
	if err := s.Validate(); err != nil {
		t.Error(err)
	}
}

func parse(ip, subnet, gw string) (a netip.Addr, p netip.Prefix, g netip.Addr, err error) {
	if a, err = netip.ParseAddr(ip); err != nil {
		return
	}
	if p, err = netip.ParsePrefix(subnet); err != nil {
		return
	}
	g, err = netip.ParseAddr(gw)
	return
}
