// Package calico renders what Calico (calico-node: felix, BIRD via confd, and the CNI plugin)
// programs on one node's host network namespace and in each local pod's namespace: the
// `cali` host veths (ee:ee:ee:ee:ee:ee, proxy-ARP), the pod side (eth0 /32, default via
// 169.254.1.1), `tunl0` (IPIP) or `vxlan.calico` (VXLAN) with the node's tunnel address, the
// blackhole for the node's own block and the routes to every other node's block, with the
// neighbours and fdb entries of VXLAN.
//
// Version mirrored: Calico v3.31 by default (cluster cni.version); what changes by version
// follows reference/cni.md §1.0: ≤ v3.16 pinned veth MTUs (1440 IPIP, 1410 VXLAN), from v3.17
// the host MTU minus the encapsulation overhead; from v3.31 felix's tunnel routes carry
// `mtu N`; from v3.32 workload and BIRD routes get `metric 1024`; IPIP cluster routes are
// programmed by BIRD (`proto bird`) through v3.33 and by felix (`proto 80`) from v3.34.
package calico

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/dataplane/route"
	"github.com/knet-dev/knet/render/cni/hostnet"
	corev1 "k8s.io/api/core/v1"
)

// Names and numbers felix and the CNI plugin use (felix/dataplane/linux/dataplanedefs,
// felix/config/config_params.go, cni-plugin/pkg/dataplane/linux).
const (
	IPIPDevice       = "tunl0"
	VXLANDevice      = "vxlan.calico"
	DefaultVNI       = 4096
	DefaultVXLANPort = 4789
	DefaultPrefix    = "cali"
	// GatewayIP is the fake next hop every Calico pod routes through; the host veth answers
	// its ARP by proxy-ARP.
	GatewayIP = "169.254.1.1"
	// NormalRoutePriority is felix's IPv4NormalRoutePriority (v3.32+).
	NormalRoutePriority = 1024
	ipipOverhead        = 20
	vxlanOverhead       = 50
)

// HostSideMAC is the MAC of every host-side cali veth.
var HostSideMAC = net.HardwareAddr{0xee, 0xee, 0xee, 0xee, 0xee, 0xee}

// Options are the Calico settings a render follows.
type Options struct {
	// Version is the Calico release ("v3.31.0").
	Version string
	// Mode is the pool's encapsulation (cluster.CalicoIPIPAlways, ...).
	Mode string
	// InterfacePrefix is FELIX_INTERFACEPREFIX's first element ("cali").
	InterfacePrefix string
	// HostMTU is the uplink MTU felix detects.
	HostMTU int
}

// OptionsFor returns the options of cluster c.
func OptionsFor(c *cluster.Cluster) Options {
	return Options{Version: c.CNI.Version, Mode: c.CNI.Mode, InterfacePrefix: DefaultPrefix, HostMTU: c.CNI.MTU}
}

type version struct{ major, minor int }

func parseVersion(v string) (version, error) {
	s := strings.TrimPrefix(v, "v")
	parts := strings.SplitN(s, ".", 3)
	if len(parts) < 2 {
		return version{}, fmt.Errorf("calico version %q: want vMAJOR.MINOR[.PATCH]", v)
	}
	maj, err1 := strconv.Atoi(parts[0])
	min, err2 := strconv.Atoi(strings.SplitN(parts[1], "-", 2)[0])
	if err1 != nil || err2 != nil {
		return version{}, fmt.Errorf("calico version %q: want vMAJOR.MINOR[.PATCH]", v)
	}
	return version{maj, min}, nil
}

func (v version) atLeast(maj, min int) bool {
	return v.major > maj || v.major == maj && v.minor >= min
}

// VethName is the host-side veth name of a pod (cni-plugin `VethNameForWorkload`): prefix +
// the first 11 hex digits of sha1("<namespace>.<pod>").
func VethName(prefix, namespace, pod string) string {
	h := sha1.Sum([]byte(namespace + "." + pod))
	return prefix + hex.EncodeToString(h[:])[:11]
}

// VTEPMAC is the MAC felix gives a node's vxlan.calico when none is stored: 0x66 followed by
// the first five bytes of sha1(nodename) (felix/calc/vxlan_resolver.go).
func VTEPMAC(nodeName string) net.HardwareAddr {
	h := sha1.Sum([]byte(nodeName))
	return net.HardwareAddr{0x66, h[0], h[1], h[2], h[3], h[4]}
}

func (o Options) ipip() bool {
	return o.Mode == cluster.CalicoIPIPAlways || o.Mode == cluster.CalicoIPIPCrossSubnet
}
func (o Options) vxlan() bool {
	return o.Mode == cluster.CalicoVXLANAlways || o.Mode == cluster.CalicoVXLANCrossSubnet
}
func (o Options) crossSubnet() bool {
	return o.Mode == cluster.CalicoIPIPCrossSubnet || o.Mode == cluster.CalicoVXLANCrossSubnet
}

// PodMTU is the veth MTU the CNI plugin uses (§1.5): pinned 1440/1410 up to v3.16, else the
// host MTU minus the overhead of the enabled encapsulation.
func (o Options) PodMTU() int {
	v, _ := parseVersion(o.Version)
	switch {
	case !v.atLeast(3, 17) && o.vxlan():
		return 1410
	case !v.atLeast(3, 17):
		return 1440
	case o.ipip():
		return o.HostMTU - ipipOverhead
	case o.vxlan():
		return o.HostMTU - vxlanOverhead
	}
	return o.HostMTU
}

// Render returns node nodeName of cluster c as Calico programs it: Net, Sysctls and one pod
// namespace per local non-hostNetwork pod in Pods. It leaves netfilter, IPVS and CRI state to
// the other renderers.
func Render(c *cluster.Cluster, nodeName string, o Options) (*dataplane.Node, error) {
	n := c.NodeByName(nodeName)
	if n == nil {
		return nil, fmt.Errorf("calico: no node %q in cluster %s", nodeName, c.Name)
	}
	v, err := parseVersion(o.Version)
	if err != nil {
		return nil, err
	}
	if o.InterfacePrefix == "" {
		o.InterfacePrefix = DefaultPrefix
	}
	if o.HostMTU == 0 {
		o.HostMTU = cluster.DefaultMTU
	}
	switch o.Mode {
	case cluster.CalicoIPIPAlways, cluster.CalicoIPIPCrossSubnet, cluster.CalicoNever, cluster.CalicoVXLANAlways, cluster.CalicoVXLANCrossSubnet:
	default:
		return nil, fmt.Errorf("calico: unknown mode %q", o.Mode)
	}
	r := &renderer{c: c, n: n, o: o, v: v}
	return r.render()
}

type renderer struct {
	c *cluster.Cluster
	n *cluster.Node
	o Options
	v version
	s *route.Stack
}

// birdIPIP says whether BIRD (not felix) programs the IPIP/no-encap cluster routes.
func (r *renderer) birdIPIP() bool { return !r.v.atLeast(3, 34) }

func (r *renderer) render() (*dataplane.Node, error) {
	s, err := hostnet.Host(r.c, r.n)
	if err != nil {
		return nil, fmt.Errorf("calico: %w", err)
	}
	r.s = s
	out := &dataplane.Node{Name: r.n.Name, Net: s, Sysctls: hostnet.HostSysctls(), Pods: map[string]*dataplane.Node{}}

	if err := r.tunnelDevice(); err != nil {
		return nil, fmt.Errorf("calico: node %s: %w", r.n.Name, err)
	}
	for _, p := range r.c.PodsOn(r.n.Name) {
		if p.Spec.HostNetwork {
			continue
		}
		pod, err := r.workload(p, out.Sysctls)
		if err != nil {
			return nil, fmt.Errorf("calico: node %s: pod %s/%s: %w", r.n.Name, p.Namespace, p.Name, err)
		}
		out.Pods[p.Namespace+"/"+p.Name] = pod
	}
	if err := r.blockRoutes(); err != nil {
		return nil, fmt.Errorf("calico: node %s: %w", r.n.Name, err)
	}
	return out, nil
}

// tunnelDevice sets up tunl0 or vxlan.calico with the node's tunnel address.
func (r *renderer) tunnelDevice() error {
	s, n := r.s, r.n
	switch {
	case r.o.ipip():
		l := hostnet.FallbackTunl0(true, r.tunnelMTU())
		if err := s.LinkAdd(l); err != nil {
			return err
		}
		if n.TunnelIP.IsValid() {
			return s.AddrAdd(&route.Addr{Dev: IPIPDevice, Prefix: netip.PrefixFrom(n.TunnelIP, 32), Flags: route.AddrPermanent})
		}
	case r.o.vxlan():
		mac := VTEPMAC(n.Name)
		l := &route.Link{Name: VXLANDevice, Kind: route.KindVXLAN,
			Flags: route.FlagBroadcast | route.FlagMulticast | route.FlagUp | route.FlagLowerUp,
			MTU:   r.tunnelMTU(), Qdisc: "noqueue", OperState: route.OperUnknown, Group: "default", TxQLen: 1000,
			LinkType: "ether", HardwareAddr: mac, Broadcast: hostnet.Broadcast,
			VXLAN: &route.VXLAN{VNI: DefaultVNI, Local: n.IP, Dev: n.Interface, Port: DefaultVXLANPort, Ageing: 300}}
		if err := s.LinkAdd(l); err != nil {
			return err
		}
		if n.TunnelIP.IsValid() {
			if err := s.AddrAdd(&route.Addr{Dev: VXLANDevice, Prefix: netip.PrefixFrom(n.TunnelIP, 32), Flags: route.AddrPermanent}); err != nil {
				return err
			}
		}
		return hostnet.AddLinkLocal(s, VXLANDevice, mac)
	}
	return nil
}

// tunnelMTU is felix's IPIPMTU / VXLANMTU (host − overhead from v3.17, pinned before).
func (r *renderer) tunnelMTU() int {
	if !r.v.atLeast(3, 17) {
		return r.o.PodMTU()
	}
	if r.o.vxlan() {
		return r.o.HostMTU - vxlanOverhead
	}
	return r.o.HostMTU - ipipOverhead
}

// workload adds a pod's veth pair: the host end with its /32 route, static ARP entry and
// sysctls, and returns the pod's namespace.
func (r *renderer) workload(p *corev1.Pod, sysctls map[string]string) (*dataplane.Node, error) {
	ip, err := netip.ParseAddr(p.Status.PodIP)
	if err != nil {
		return nil, fmt.Errorf("pod IP: %w", err)
	}
	hostIf := VethName(r.o.InterfacePrefix, p.Namespace, p.Name)
	netns := hostnet.NetNSName(p.Namespace, p.Name)
	podMAC := hostnet.MAC("pod/" + p.Namespace + "/" + p.Name)
	mtu := r.o.PodMTU()

	ps, err := hostnet.Pod(r.o.ipip())
	if err != nil {
		return nil, err
	}
	podIdx := len(ps.Links) + 1
	hostIdx := 0 // next free
	hostLink := &route.Link{Name: hostIf, Kind: route.KindVeth,
		Flags: route.FlagBroadcast | route.FlagMulticast | route.FlagUp | route.FlagLowerUp,
		MTU:   mtu, Qdisc: "noqueue", OperState: route.OperUp, Group: "default", TxQLen: 1000,
		LinkType: "ether", HardwareAddr: HostSideMAC, Broadcast: hostnet.Broadcast,
		Veth: &route.Veth{PeerName: "eth0", PeerIndex: podIdx, PeerRemote: true, PeerNetNS: netns}}
	if err := r.s.LinkAdd(hostLink); err != nil {
		return nil, err
	}
	hostIdx = hostLink.Index
	if err := hostnet.AddLinkLocal(r.s, hostIf, HostSideMAC); err != nil {
		return nil, err
	}
	wl := &route.Route{Dst: netip.PrefixFrom(ip, 32), Dev: hostIf, Scope: route.ScopeLink}
	if r.v.atLeast(3, 32) {
		wl.Metric = NormalRoutePriority
	}
	if err := r.s.RouteAdd(wl); err != nil {
		return nil, err
	}
	if err := r.s.NeighAdd(&route.Neigh{IP: ip, Dev: hostIf, LLAddr: podMAC, State: route.NeighPermanent}); err != nil {
		return nil, err
	}
	sysctls["ipv4/conf/"+hostIf+"/route_localnet"] = "1"
	sysctls["ipv4/conf/"+hostIf+"/proxy_arp"] = "1"
	sysctls["ipv4/conf/"+hostIf+"/forwarding"] = "1"
	sysctls["ipv4/neigh/"+hostIf+"/proxy_delay"] = "0"
	sysctls["ipv6/conf/"+hostIf+"/accept_ra"] = "0"

	// The pod's side.
	eth0 := &route.Link{Index: podIdx, Name: "eth0", Kind: route.KindVeth,
		Flags: route.FlagBroadcast | route.FlagMulticast | route.FlagUp | route.FlagLowerUp,
		MTU:   mtu, Qdisc: "noqueue", OperState: route.OperUp, Group: "default", TxQLen: 1000,
		LinkType: "ether", HardwareAddr: podMAC, Broadcast: hostnet.Broadcast,
		Veth: &route.Veth{PeerName: hostIf, PeerIndex: hostIdx, PeerRemote: true, PeerNetNSID: 0}}
	if err := ps.LinkAdd(eth0); err != nil {
		return nil, err
	}
	if err := ps.AddrAdd(&route.Addr{Dev: "eth0", Prefix: netip.PrefixFrom(ip, 32), Flags: route.AddrPermanent}); err != nil {
		return nil, err
	}
	if err := hostnet.AddLinkLocal(ps, "eth0", podMAC); err != nil {
		return nil, err
	}
	gw := netip.MustParseAddr(GatewayIP)
	if err := ps.RouteAdd(&route.Route{Dst: netip.PrefixFrom(gw, 32), Dev: "eth0", Scope: route.ScopeLink}); err != nil {
		return nil, err
	}
	if err := ps.RouteAdd(&route.Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: gw, Dev: "eth0"}); err != nil {
		return nil, err
	}
	return &dataplane.Node{
		Name:    r.n.Name + "/" + p.Name,
		Net:     ps,
		Sysctls: map[string]string{"ipv4/ip_forward": "0"},
	}, nil
}

// blockRoutes adds the blackhole for the local block and the routes to every other block.
func (r *renderer) blockRoutes() error {
	s, n := r.s, r.n
	// BIRD programs the no-encap routes always, the IPIP ones up to v3.33; felix the rest.
	birdRoutes := !r.o.vxlan() && (r.birdIPIP() || r.o.Mode == cluster.CalicoNever)
	bh := &route.Route{Type: route.TypeBlackhole, Dst: n.PodCIDR}
	if birdRoutes {
		bh.Protocol = route.ProtoBird
		if r.v.atLeast(3, 32) {
			bh.Metric = NormalRoutePriority
		}
	} else {
		bh.Protocol = route.ProtoFelix
	}
	if err := s.RouteAdd(bh); err != nil {
		return err
	}
	var all []hostnet.PeerRoute
	for i := range r.c.Nodes {
		peer := &r.c.Nodes[i]
		if peer.Name == n.Name {
			continue
		}
		same := hostnet.SameSubnet(n, peer.IP)
		var routes []*route.Route
		switch {
		case r.o.vxlan():
			if same && r.o.crossSubnet() {
				routes = append(routes, &route.Route{Dst: peer.PodCIDR, Gw: peer.IP, Dev: n.Interface, Protocol: route.ProtoFelix, Flags: route.FlagOnlink})
				// Felix also routes the remote VTEP address itself by the uplink (seen in a
				// v3.30 VXLANCrossSubnet worker: `10.0.8.0 via 172.31.1.2 dev eth0 proto 80 onlink`).
				if peer.TunnelIP.IsValid() {
					routes = append(routes, &route.Route{Dst: netip.PrefixFrom(peer.TunnelIP, 32), Gw: peer.IP, Dev: n.Interface, Protocol: route.ProtoFelix, Flags: route.FlagOnlink})
				}
			} else {
				rt := &route.Route{Dst: peer.PodCIDR, Gw: peer.TunnelIP, Dev: VXLANDevice, Flags: route.FlagOnlink}
				if r.v.atLeast(3, 31) {
					rt.MTU = r.tunnelMTU()
				}
				routes = append(routes, rt)
			}
			if peer.TunnelIP.IsValid() {
				mac := VTEPMAC(peer.Name)
				if err := s.NeighAdd(&route.Neigh{IP: peer.TunnelIP, Dev: VXLANDevice, LLAddr: mac, State: route.NeighPermanent}); err != nil {
					return err
				}
				if err := s.FDBAdd(&route.FDB{MAC: mac, Dev: VXLANDevice, Dst: peer.IP, Self: true, State: route.FDBPermanent}); err != nil {
					return err
				}
			}
		case r.o.ipip() && !(same && r.o.crossSubnet()):
			rt := &route.Route{Dst: peer.PodCIDR, Gw: peer.IP, Dev: IPIPDevice, Flags: route.FlagOnlink}
			if birdRoutes {
				rt.Protocol = route.ProtoBird
				if r.v.atLeast(3, 32) {
					rt.Metric = NormalRoutePriority
				}
			} else {
				rt.Protocol = route.ProtoFelix
				rt.MTU = r.tunnelMTU()
			}
			routes = append(routes, rt)
		default:
			// No encapsulation to this peer: IPIP CrossSubnet inside the subnet, or Never.
			rt := &route.Route{Dst: peer.PodCIDR, Gw: peer.IP, Dev: n.Interface}
			if !same {
				// BIRD's `gateway recursive` resolves a next hop outside the subnet through
				// the node's own routes: the subnet's gateway (the VPC router must then know
				// the block, as with AWS route tables).
				rt.Gw = n.Gateway
			}
			if birdRoutes {
				rt.Protocol = route.ProtoBird
				if r.v.atLeast(3, 32) {
					rt.Metric = NormalRoutePriority
				}
			} else {
				rt.Protocol = route.ProtoFelix
				rt.Flags = route.FlagOnlink
			}
			routes = append(routes, rt)
		}
		for _, rt := range routes {
			all = append(all, hostnet.PeerRoute{Route: rt, Peer: peer.Name})
		}
	}
	return hostnet.AddPeerRoutes(s, all)
}
