// Package hostnet builds what every CNI renderer starts from: a node's host network namespace
// before the CNI runs (lo, the uplink with the node's DHCP address and routes, as an AWS
// Ubuntu 24.04 node with systemd-networkd has them) and a pod's namespace, plus the stable
// stand-ins knet uses where the real system draws random numbers (MAC addresses, containerd's
// netns names), derived from the object's identity so output is reproducible.
package hostnet

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/netip"
	"sort"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane/route"
)

// DHCPMetric is the metric systemd-networkd gives DHCP routes and addresses.
const DHCPMetric = 100

// Broadcast is ff:ff:ff:ff:ff:ff.
var Broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// MAC returns a locally administered unicast MAC derived from seed (the kernel's
// eth_random_addr draws random bytes with the same two bits set).
func MAC(seed string) net.HardwareAddr {
	h := sha256.Sum256([]byte("knet-mac/" + seed))
	m := net.HardwareAddr(append([]byte(nil), h[:6]...))
	m[0] = m[0]&0xfe | 0x02
	return m
}

// NetNSName is containerd's name for a pod sandbox's network namespace: "cni-" and 16 bytes
// as 8-4-4-4-12 hex (containerd pkg/netns newNS formats random bytes this way; knet hashes
// the pod identity instead).
func NetNSName(namespace, pod string) string {
	b := sha256.Sum256([]byte("knet-netns/" + namespace + "/" + pod))
	return fmt.Sprintf("cni-%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// LinkLocal is the EUI-64 IPv6 link-local address the kernel gives a device with MAC m
// (addrgenmode eui64).
func LinkLocal(m net.HardwareAddr) netip.Prefix {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	a[8], a[9], a[10] = m[0]^0x02, m[1], m[2]
	a[11], a[12] = 0xff, 0xfe
	a[13], a[14], a[15] = m[3], m[4], m[5]
	return netip.PrefixFrom(netip.AddrFrom16(a), 64)
}

// AddLinkLocal adds the kernel's IPv6 link-local address to an ether device that is up.
func AddLinkLocal(s *route.Stack, dev string, m net.HardwareAddr) error {
	return s.AddrAdd(&route.Addr{Dev: dev, Prefix: LinkLocal(m), Scope: route.ScopeLink, Proto: "kernel_ll", Flags: route.AddrPermanent})
}

// Loopback brings lo up with 127.0.0.1/8 and ::1/128, as every namespace has it once up.
func Loopback(s *route.Stack) error {
	if err := s.LinkSetUp("lo"); err != nil {
		return err
	}
	for _, a := range s.Addrs {
		if a.Dev == "lo" {
			a.Flags |= route.AddrPermanent
		}
	}
	return s.AddrAdd(&route.Addr{Dev: "lo", Prefix: netip.MustParsePrefix("::1/128"), Scope: route.ScopeHost, Proto: "kernel_lo", Flags: route.AddrPermanent})
}

// Host returns node n's host namespace before any CNI or kube-proxy: lo; the uplink (index 2,
// `qdisc mq`, MTU from the cluster) with the node's address in its subnet (metric 100, as
// networkd's DHCP client sets it); the connected subnet route and
// `default via GATEWAY dev eth0 proto dhcp src NODEIP metric 100`.
func Host(c *cluster.Cluster, n *cluster.Node) (*route.Stack, error) {
	s := route.New()
	if err := Loopback(s); err != nil {
		return nil, err
	}
	mac := MAC("node/" + n.Name)
	up := &route.Link{Index: 2, Name: n.Interface, Kind: route.KindDevice,
		Flags: route.FlagBroadcast | route.FlagMulticast | route.FlagUp | route.FlagLowerUp,
		MTU:   c.CNI.MTU, Qdisc: "mq", OperState: route.OperUp, Group: "default", TxQLen: 1000,
		LinkType: "ether", HardwareAddr: mac, Broadcast: Broadcast}
	if err := s.LinkAdd(up); err != nil {
		return nil, err
	}
	bits := n.Subnet.Bits()
	a := &route.Addr{Dev: n.Interface, Prefix: netip.PrefixFrom(n.IP, bits), Scope: route.ScopeUniverse,
		Metric: DHCPMetric, Flags: route.AddrPermanent}
	if bits < 31 {
		a.Broadcast = lastAddr(n.Subnet)
	}
	if err := s.AddrAdd(a); err != nil {
		return nil, err
	}
	if err := AddLinkLocal(s, n.Interface, mac); err != nil {
		return nil, err
	}
	if n.Gateway.IsValid() {
		if err := s.RouteAdd(&route.Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: n.Gateway, Dev: n.Interface,
			Protocol: route.ProtoDHCP, Src: n.IP, Metric: DHCPMetric}); err != nil {
			return nil, fmt.Errorf("node %s: default route: %w", n.Name, err)
		}
	}
	return s, nil
}

// HostSysctls are the forwarding sysctls of a Kubernetes node: ip_forward (kubeadm's
// preflight requires it) and Ubuntu's loose reverse-path filter (/usr/lib/sysctl.d
// 10-network-security.conf); the CNIs add per-device ones.
func HostSysctls() map[string]string {
	return map[string]string{
		"ipv4/ip_forward":             "1",
		"ipv4/conf/all/forwarding":    "1",
		"ipv4/conf/all/rp_filter":     "2",
		"ipv4/conf/default/rp_filter": "2",
	}
}

// Pod returns a pod namespace with lo up and, when ipipLoaded (the host has the ipip module
// loaded, so every new namespace gets the fallback device), `tunl0@NONE` down at index 2.
// The pod's eth0 is added by the caller at the next index.
func Pod(ipipLoaded bool) (*route.Stack, error) {
	s := route.New()
	if err := Loopback(s); err != nil {
		return nil, err
	}
	if ipipLoaded {
		if err := s.LinkAdd(FallbackTunl0(false, 1480)); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// FallbackTunl0 is the ipip module's fallback device `tunl0@NONE` (`link/ipip 0.0.0.0 brd
// 0.0.0.0`, `ipip any remote any local any ttl inherit nopmtudisc`), up or down.
func FallbackTunl0(up bool, mtu int) *route.Link {
	l := &route.Link{Name: "tunl0", Kind: route.KindIPIP, Flags: route.FlagNoARP, MTU: mtu,
		Qdisc: "noop", OperState: route.OperDown, Group: "default", TxQLen: 1000, LinkType: "ipip",
		HardwareAddr: net.HardwareAddr{0, 0, 0, 0}, Broadcast: net.HardwareAddr{0, 0, 0, 0},
		ParentNone: true, IPIP: &route.IPIP{}}
	if up {
		l.Flags |= route.FlagUp | route.FlagLowerUp
		l.Qdisc, l.OperState = "noqueue", route.OperUnknown
	}
	return l
}

// SameSubnet reports whether the peer's address is inside node n's uplink subnet (the test
// Calico's BIRD filter, felix and kube-router apply for "cross-subnet").
func SameSubnet(n *cluster.Node, peer netip.Addr) bool { return n.Subnet.Contains(peer) }

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= 1<<(32-p.Bits()) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// LastAddr is the broadcast address of p.
func LastAddr(p netip.Prefix) netip.Addr { return lastAddr(p) }

// PeerRoute is a route a CNI programs towards another node.
type PeerRoute struct {
	Route *route.Route
	Peer  string
}

// AddPeerRoutes adds routes to s. The model keeps routes in the kernel's dump order by
// insertion, scanning from the front; adding the highest destinations first makes each
// insertion stop early, which keeps a 1000-node cluster's routes linear to build. The result
// does not depend on the order.
func AddPeerRoutes(s *route.Stack, routes []PeerRoute) error {
	sort.SliceStable(routes, func(i, j int) bool {
		a, b := routes[i].Route.Dst, routes[j].Route.Dst
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c > 0
		}
		return a.Bits() < b.Bits()
	})
	for _, pr := range routes {
		if err := s.RouteAdd(pr.Route); err != nil {
			return fmt.Errorf("route to node %s: %w", pr.Peer, err)
		}
	}
	return nil
}
