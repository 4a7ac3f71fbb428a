// Package kuberouter renders what kube-router (routing and pod network; v2.x by default,
// cluster cni.version) programs on one node: the `kube-bridge` bridge with the node's pod
// gateway and one `veth` pair per pod (containernetworking bridge plugin, hairpin on), the
// routes to other nodes' pod CIDRs learned over iBGP (`proto 17`), by eth0 inside the subnet
// and by one ipip tunnel `tun-<hash>` per remote node otherwise (overlay-type subnet; `full`
// tunnels to every node), table 77 `kube-router` with one route per tunnel peer and the
// `from <podCIDR> lookup kube-router` rule, and, when kube-router also runs its service proxy,
// `kube-dummy-if` with the Service IPs (reference/cni.md §2).
package kuberouter

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/dataplane/route"
	"github.com/knet-dev/knet/render/cni/hostnet"
)

// Names and numbers kube-router uses.
const (
	BridgeName   = "kube-bridge"
	DummyName    = "kube-dummy-if"
	RouteTable   = route.TableID(77)
	RouteTableNm = "kube-router"
)

// Options are the kube-router settings a render follows.
type Options struct {
	// Version is the kube-router release ("v2.11.0"); v1.x names tunnels differently and,
	// up to v1.5, lowers the MTU by 20 when the overlay is on.
	Version string
	// Mode is cluster.KubeRouterOverlaySubnet (default), KubeRouterOverlayFull or
	// KubeRouterNoOverlay (--enable-overlay=false).
	Mode string
	// HostMTU is the uplink's MTU (--auto-mtu).
	HostMTU int
	// ServiceProxy is --run-service-proxy: kube-router then binds the Service IPs to
	// kube-dummy-if. Off when kube-proxy handles Services.
	ServiceProxy bool
}

// OptionsFor returns the options of cluster c (kube-proxy runs, so no service proxy).
func OptionsFor(c *cluster.Cluster) Options {
	return Options{Version: c.CNI.Version, Mode: c.CNI.Mode, HostMTU: c.CNI.MTU}
}

func major(v string) (int, int, error) {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return 0, 0, fmt.Errorf("kube-router version %q: want vMAJOR.MINOR[.PATCH]", v)
	}
	maj, err1 := strconv.Atoi(parts[0])
	min, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("kube-router version %q: want vMAJOR.MINOR[.PATCH]", v)
	}
	return maj, min, nil
}

// TunnelName is the ipip device kube-router creates for a peer: from v2.0
// "tun-" + hex(sha256(IP without dots and colons))[:11]; in v1.x the IP without dots,
// prefixed "tun-" when shorter than 12 characters, else "tun".
func TunnelName(version string, peer netip.Addr) (string, error) {
	maj, _, err := major(version)
	if err != nil {
		return "", err
	}
	s := strings.NewReplacer(".", "", ":", "").Replace(peer.String())
	if maj >= 2 {
		h := sha256.Sum256([]byte(s))
		return "tun-" + hex.EncodeToString(h[:])[:11], nil
	}
	if len(s) < 12 {
		return "tun-" + s, nil
	}
	return "tun" + s, nil
}

// Render returns node nodeName of cluster c as kube-router programs it (Net, Sysctls, Pods),
// and notes on what it could not route.
func Render(c *cluster.Cluster, nodeName string, o Options) (*dataplane.Node, []string, error) {
	n := c.NodeByName(nodeName)
	if n == nil {
		return nil, nil, fmt.Errorf("kube-router: no node %q in cluster %s", nodeName, c.Name)
	}
	maj, min, err := major(o.Version)
	if err != nil {
		return nil, nil, err
	}
	if o.Mode == "" {
		o.Mode = cluster.KubeRouterOverlaySubnet
	}
	switch o.Mode {
	case cluster.KubeRouterOverlaySubnet, cluster.KubeRouterOverlayFull, cluster.KubeRouterNoOverlay:
	default:
		return nil, nil, fmt.Errorf("kube-router: unknown mode %q", o.Mode)
	}
	if o.HostMTU == 0 {
		o.HostMTU = cluster.DefaultMTU
	}
	overlay := o.Mode != cluster.KubeRouterNoOverlay
	mtu := o.HostMTU
	if overlay && (maj < 1 || maj == 1 && min <= 5) {
		mtu -= 20
	}
	fail := func(err error) (*dataplane.Node, []string, error) {
		return nil, nil, fmt.Errorf("kube-router: node %s: %w", n.Name, err)
	}

	s, err := hostnet.Host(c, n)
	if err != nil {
		return fail(err)
	}
	out := &dataplane.Node{Name: n.Name, Net: s, Sysctls: hostnet.HostSysctls()}
	cfg := hostnet.BridgeConfig{Bridge: BridgeName, Block: n.PodCIDR, MTU: mtu, Hairpin: true}
	if err := hostnet.AddBridge(s, cfg); err != nil {
		return fail(err)
	}
	if o.ServiceProxy {
		if err := dummyIf(s, c, n); err != nil {
			return fail(err)
		}
	}

	// Routes to the other nodes, in node order (GoBGP delivers paths as peers come up).
	var notes []string
	var routes []hostnet.PeerRoute
	tunnels := 0
	for i := range c.Nodes {
		peer := &c.Nodes[i]
		if peer.Name == n.Name {
			continue
		}
		same := hostnet.SameSubnet(n, peer.IP)
		useTunnel := overlay && (o.Mode == cluster.KubeRouterOverlayFull || !same)
		switch {
		case useTunnel:
			if tunnels == 0 {
				// Loading ipip creates the fallback device first.
				if err := s.LinkAdd(hostnet.FallbackTunl0(false, 1480)); err != nil {
					return fail(err)
				}
				s.TableNames = map[route.TableID]string{RouteTable: RouteTableNm}
			}
			tunnels++
			name, err := TunnelName(o.Version, peer.IP)
			if err != nil {
				return fail(err)
			}
			tmtu := 1480
			if maj < 1 || maj == 1 && min <= 5 {
				tmtu = o.HostMTU - 20 - 20
			}
			t := &route.Link{Name: name, Kind: route.KindIPIP,
				Flags: route.FlagPointToPoint | route.FlagNoARP, MTU: tmtu, Qdisc: "noop", OperState: route.OperDown,
				Group: "default", TxQLen: 1000, LinkType: "ipip", ParentNone: true,
				HardwareAddr: peerAddr(n.IP), Broadcast: peerAddr(peer.IP),
				IPIP: &route.IPIP{Local: n.IP, Remote: peer.IP}}
			if err := s.LinkAdd(t); err != nil {
				return fail(err)
			}
			if err := s.LinkSetUp(name); err != nil {
				return fail(err)
			}
			// `ip route replace PEER dev TUN table 77` (shelled out: scope link, proto boot).
			if err := s.RouteAdd(&route.Route{Table: RouteTable, Dst: netip.PrefixFrom(peer.IP, 32), Dev: name}); err != nil {
				return fail(err)
			}
			routes = append(routes, hostnet.PeerRoute{Route: &route.Route{Dst: peer.PodCIDR, Dev: name, Src: n.IP, Protocol: route.ProtoKubeRouter}, Peer: peer.Name})
		case same:
			routes = append(routes, hostnet.PeerRoute{Route: &route.Route{Dst: peer.PodCIDR, Gw: peer.IP, Dev: n.Interface, Protocol: route.ProtoKubeRouter}, Peer: peer.Name})
		default:
			notes = append(notes, fmt.Sprintf("kube-router: node %s: no route to %s (node %s, other subnet) without the overlay: the upstream router must learn it over BGP", n.Name, peer.PodCIDR, peer.Name))
		}
	}
	if err := hostnet.AddPeerRoutes(s, routes); err != nil {
		return fail(err)
	}
	for _, pr := range routes {
		if pr.Route.Gw.IsValid() {
			continue
		}
		// netlink.Route{LinkIndex, Src, Dst} has scope universe; the model's RouteAdd picks
		// link for a device route without a gateway, so set it back.
		pr.Route.Scope = route.ScopeUniverse
	}
	if tunnels > 0 {
		if err := s.RuleAdd(&route.Rule{Src: n.PodCIDR, Action: route.ActionLookup, Table: RouteTable}, true); err != nil {
			return fail(err)
		}
	}

	cfg.IPIPLoaded = tunnels > 0
	pods, err := hostnet.AttachPods(s, n.Name, cfg, c.PodsOn(n.Name))
	if err != nil {
		return fail(err)
	}
	out.Pods = pods
	for _, l := range s.Links {
		if l.Master == BridgeName {
			out.Sysctls["ipv4/conf/"+l.Name+"/forwarding"] = "1"
		}
	}
	return out, notes, nil
}

// peerAddr is an ipip link's `link/ipip ADDR` (4 bytes).
func peerAddr(a netip.Addr) []byte {
	b := a.As4()
	return b[:]
}

// dummyIf adds kube-dummy-if with every ClusterIP bound /32 scope link, and forces the
// local route's source to the node IP (kube-router linux_networking.go ipAddrAdd).
func dummyIf(s *route.Stack, c *cluster.Cluster, n *cluster.Node) error {
	l := &route.Link{Name: DummyName, Kind: route.KindDummy,
		Flags: route.FlagBroadcast | route.FlagNoARP, MTU: 1500, Qdisc: "noop", OperState: route.OperDown,
		Group: "default", TxQLen: 1000, LinkType: "ether", HardwareAddr: hostnet.MAC("dummy/" + n.Name), Broadcast: hostnet.Broadcast}
	if err := s.LinkAdd(l); err != nil {
		return err
	}
	if err := s.LinkSetUp(DummyName); err != nil {
		return err
	}
	for _, svc := range c.Objects.Services {
		for _, ipStr := range svc.Spec.ClusterIPs {
			ip, err := netip.ParseAddr(ipStr)
			if err != nil || !ip.Is4() {
				continue
			}
			if err := s.AddrAdd(&route.Addr{Dev: DummyName, Prefix: netip.PrefixFrom(ip, 32), Scope: route.ScopeLink, Flags: route.AddrPermanent}); err != nil {
				return err
			}
			for _, r := range s.Routes {
				if r.Table == route.TableLocal && r.Type == route.TypeLocal && r.Dst == netip.PrefixFrom(ip, 32) {
					r.Src = n.IP
				}
			}
		}
	}
	return nil
}
