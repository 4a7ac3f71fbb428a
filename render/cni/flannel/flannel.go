// Package flannel renders what Flannel (flanneld v0.28 with the kube subnet manager, and the
// flannel CNI plugin delegating to the containernetworking bridge plugin) programs on one
// node: for the vxlan backend `flannel.1` (VNI 1, dstport 8472, the lease's network address
// /32, MTU host − 50) with one onlink route, neighbour and fdb entry per remote lease; for
// host-gw one route per remote lease via the peer's IP on the uplink; and the `cni0` bridge
// with the lease's first address and a veth per pod (reference/cni.md §3).
package flannel

import (
	"crypto/sha256"
	"fmt"
	"net"
	"net/netip"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/dataplane/route"
	"github.com/knet-dev/knet/render/cni/hostnet"
)

// Names and numbers Flannel uses.
const (
	BridgeName = "cni0"
	DefaultVNI = 1
	// KernelVXLANPort is what the kernel uses when flannel passes port 0.
	KernelVXLANPort = 8472
	vxlanOverhead   = 50
)

// Options are the Flannel settings a render follows.
type Options struct {
	// Version is the flannel release ("v0.28.9").
	Version string
	// Backend is cluster.FlannelVXLAN or cluster.FlannelHostGW.
	Backend string
	// VNI is the vxlan network id (default 1 → device flannel.1).
	VNI int
	// HostMTU is the uplink's MTU.
	HostMTU int
}

// OptionsFor returns the options of cluster c.
func OptionsFor(c *cluster.Cluster) Options {
	return Options{Version: c.CNI.Version, Backend: c.CNI.Mode, VNI: DefaultVNI, HostMTU: c.CNI.MTU}
}

// VTEPMAC stands for the random MAC flanneld gives flannel.N and publishes in the node
// annotation flannel.alpha.coreos.com/backend-data; knet derives it from the node name.
func VTEPMAC(nodeName string) net.HardwareAddr {
	h := sha256.Sum256([]byte("knet-flannel-vtep/" + nodeName))
	m := net.HardwareAddr(append([]byte(nil), h[:6]...))
	m[0] = m[0]&0xfe | 0x02
	return m
}

// Render returns node nodeName of cluster c as Flannel programs it, with notes on leases it
// could not route.
func Render(c *cluster.Cluster, nodeName string, o Options) (*dataplane.Node, []string, error) {
	n := c.NodeByName(nodeName)
	if n == nil {
		return nil, nil, fmt.Errorf("flannel: no node %q in cluster %s", nodeName, c.Name)
	}
	if o.Backend == "" {
		o.Backend = cluster.FlannelVXLAN
	}
	if o.Backend != cluster.FlannelVXLAN && o.Backend != cluster.FlannelHostGW {
		return nil, nil, fmt.Errorf("flannel: unknown backend %q", o.Backend)
	}
	if o.VNI == 0 {
		o.VNI = DefaultVNI
	}
	if o.HostMTU == 0 {
		o.HostMTU = cluster.DefaultMTU
	}
	fail := func(err error) (*dataplane.Node, []string, error) {
		return nil, nil, fmt.Errorf("flannel: node %s: %w", n.Name, err)
	}
	s, err := hostnet.Host(c, n)
	if err != nil {
		return fail(err)
	}
	out := &dataplane.Node{Name: n.Name, Net: s, Sysctls: hostnet.HostSysctls()}
	mtu := o.HostMTU
	var notes []string
	dev := fmt.Sprintf("flannel.%d", o.VNI)
	if o.Backend == cluster.FlannelVXLAN {
		mtu -= vxlanOverhead
		mac := VTEPMAC(n.Name)
		l := &route.Link{Name: dev, Kind: route.KindVXLAN,
			Flags: route.FlagBroadcast | route.FlagMulticast, MTU: mtu, Group: "default",
			LinkType: "ether", HardwareAddr: mac, Broadcast: hostnet.Broadcast,
			VXLAN: &route.VXLAN{VNI: o.VNI, Local: n.IP, Dev: n.Interface, Port: KernelVXLANPort, Ageing: 300}}
		if err := s.LinkAdd(l); err != nil {
			return fail(err)
		}
		if err := s.AddrAdd(&route.Addr{Dev: dev, Prefix: netip.PrefixFrom(n.PodCIDR.Masked().Addr(), 32), Flags: route.AddrPermanent}); err != nil {
			return fail(err)
		}
		if err := s.LinkSetUp(dev); err != nil {
			return fail(err)
		}
		if err := hostnet.AddLinkLocal(s, dev, mac); err != nil {
			return fail(err)
		}
	}
	var routes []hostnet.PeerRoute
	for i := range c.Nodes {
		peer := &c.Nodes[i]
		if peer.Name == n.Name {
			continue
		}
		switch o.Backend {
		case cluster.FlannelVXLAN:
			vtep := peer.PodCIDR.Masked().Addr()
			mac := VTEPMAC(peer.Name)
			if err := s.NeighAdd(&route.Neigh{IP: vtep, Dev: dev, LLAddr: mac, State: route.NeighPermanent}); err != nil {
				return fail(err)
			}
			if err := s.FDBAdd(&route.FDB{MAC: mac, Dev: dev, Dst: peer.IP, Self: true, State: route.FDBPermanent}); err != nil {
				return fail(err)
			}
			routes = append(routes, hostnet.PeerRoute{Route: &route.Route{Dst: peer.PodCIDR, Gw: vtep, Dev: dev, Flags: route.FlagOnlink}, Peer: peer.Name})
		case cluster.FlannelHostGW:
			if !hostnet.SameSubnet(n, peer.IP) {
				// The kernel refuses a gateway that is not directly connected; flanneld logs
				// the failure and retries.
				notes = append(notes, fmt.Sprintf("flannel host-gw: node %s: cannot route %s via %s (node %s is not in subnet %s)", n.Name, peer.PodCIDR, peer.IP, peer.Name, n.Subnet))
				continue
			}
			routes = append(routes, hostnet.PeerRoute{Route: &route.Route{Dst: peer.PodCIDR, Gw: peer.IP, Dev: n.Interface}, Peer: peer.Name})
		}
	}
	if err := hostnet.AddPeerRoutes(s, routes); err != nil {
		return fail(err)
	}
	cfg := hostnet.BridgeConfig{Bridge: BridgeName, Block: n.PodCIDR, MTU: mtu, Hairpin: true,
		Routes: []netip.Prefix{c.PodCIDR}}
	pods := c.PodsOn(n.Name)
	hasPod := false
	for _, p := range pods {
		hasPod = hasPod || !p.Spec.HostNetwork
	}
	if hasPod {
		// The bridge plugin creates cni0 with the first pod.
		if err := hostnet.AddBridge(s, cfg); err != nil {
			return fail(err)
		}
	}
	out.Pods = map[string]*dataplane.Node{}
	if hasPod {
		if out.Pods, err = hostnet.AttachPods(s, n.Name, cfg, pods); err != nil {
			return fail(err)
		}
	}
	return out, notes, nil
}
