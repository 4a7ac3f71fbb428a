package hostnet

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"

	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/dataplane/route"
	corev1 "k8s.io/api/core/v1"
)

// BridgeConfig is the containernetworking `bridge` plugin configuration (plugins v1.9.1)
// with `host-local` IPAM, as kube-router and Flannel write it.
type BridgeConfig struct {
	// Bridge is the bridge's name ("kube-bridge", "cni0").
	Bridge string
	// Block is the node's pod CIDR (the host-local range); the gateway is its first address.
	Block netip.Prefix
	// MTU of the bridge and the veths.
	MTU int
	// Hairpin sets `hairpin on` on every port (hairpinMode).
	Hairpin bool
	// Routes are the IPAM routes added in the pod via the gateway besides the default route
	// (Flannel: the cluster network).
	Routes []netip.Prefix
	// IPIPLoaded says the host has the ipip module loaded, so each pod namespace has tunl0.
	IPIPLoaded bool
}

// VethName is the bridge plugin's host-side name for a pod's veth: "veth" and 8 hex digits
// (pkg/ip RandomVethName draws 4 random bytes; knet hashes the pod identity).
func VethName(namespace, pod string) string {
	h := sha256.Sum256([]byte("knet-veth/" + namespace + "/" + pod))
	return "veth" + hex.EncodeToString(h[:4])
}

// AddBridge creates the bridge, up, with no address yet (the bridge plugin adds the gateway
// address with the first pod).
// Equivalent to: `ip link add NAME type bridge && ip link set NAME mtu N up`
func AddBridge(s *route.Stack, cfg BridgeConfig) error {
	l := &route.Link{Name: cfg.Bridge, Kind: route.KindBridge,
		Flags: route.FlagBroadcast | route.FlagMulticast | route.FlagUp,
		MTU:   cfg.MTU, Qdisc: "noqueue", OperState: route.OperDown, Group: "default", TxQLen: 1000,
		LinkType: "ether", HardwareAddr: MAC("bridge/" + cfg.Bridge + "/" + cfg.Block.String()), Broadcast: Broadcast,
		Bridge: route.DefaultBridge()}
	return s.LinkAdd(l)
}

// AttachPods connects each pod to the bridge as the bridge plugin's ADD does: a veth pair
// (host end `vethXXXXXXXX` enslaved, hairpin; pod end eth0), the gateway address on the bridge
// (`brd` set) on the first pod, the pod address /LEN with its broadcast, and the pod routes
// `default via GW` plus cfg.Routes via GW. It returns the pods' namespaces by "ns/name".
// Afterwards the bridge is up with carrier and takes the lowest port MAC, as the kernel does.
func AttachPods(s *route.Stack, nodeName string, cfg BridgeConfig, pods []*corev1.Pod) (map[string]*dataplane.Node, error) {
	out := map[string]*dataplane.Node{}
	br := s.LinkByName(cfg.Bridge)
	if br == nil {
		return nil, fmt.Errorf("bridge %s: %w", cfg.Bridge, route.ErrNotFound)
	}
	gw := cfg.Block.Masked().Addr().Next()
	for _, p := range pods {
		if p.Spec.HostNetwork {
			continue
		}
		ip, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil {
			return nil, fmt.Errorf("pod %s/%s: pod IP: %w", p.Namespace, p.Name, err)
		}
		ps, err := Pod(cfg.IPIPLoaded)
		if err != nil {
			return nil, err
		}
		podIdx := len(ps.Links) + 1
		hostIf := VethName(p.Namespace, p.Name)
		hostMAC := MAC("veth/" + p.Namespace + "/" + p.Name)
		podMAC := MAC("pod/" + p.Namespace + "/" + p.Name)
		host := &route.Link{Name: hostIf, Kind: route.KindVeth,
			Flags: route.FlagBroadcast | route.FlagMulticast | route.FlagUp | route.FlagLowerUp,
			MTU:   cfg.MTU, Qdisc: "noqueue", OperState: route.OperUp, Group: "default",
			LinkType: "ether", HardwareAddr: hostMAC, Broadcast: Broadcast,
			Veth: &route.Veth{PeerName: "eth0", PeerIndex: podIdx, PeerRemote: true, PeerNetNS: NetNSName(p.Namespace, p.Name)}}
		if err := s.LinkAdd(host); err != nil {
			return nil, fmt.Errorf("pod %s/%s: %w", p.Namespace, p.Name, err)
		}
		if err := s.LinkSetMaster(hostIf, cfg.Bridge); err != nil {
			return nil, err
		}
		host.BridgePort.Hairpin = cfg.Hairpin
		if len(out) == 0 {
			// The first port gives the bridge carrier; then calcGatewayIP + ensureAddr put
			// the gateway on it with the block's length and broadcast.
			br.Flags |= route.FlagLowerUp
			br.OperState = route.OperUp
			if err := s.AddrAdd(&route.Addr{Dev: cfg.Bridge, Prefix: netip.PrefixFrom(gw, cfg.Block.Bits()),
				Broadcast: LastAddr(cfg.Block), Flags: route.AddrPermanent}); err != nil {
				return nil, err
			}
		}
		if err := AddLinkLocal(s, hostIf, hostMAC); err != nil {
			return nil, err
		}

		eth0 := &route.Link{Index: podIdx, Name: "eth0", Kind: route.KindVeth,
			Flags: route.FlagBroadcast | route.FlagMulticast | route.FlagUp | route.FlagLowerUp,
			MTU:   cfg.MTU, Qdisc: "noqueue", OperState: route.OperUp, Group: "default",
			LinkType: "ether", HardwareAddr: podMAC, Broadcast: Broadcast,
			Veth: &route.Veth{PeerName: hostIf, PeerIndex: host.Index, PeerRemote: true, PeerNetNSID: 0}}
		if err := ps.LinkAdd(eth0); err != nil {
			return nil, err
		}
		if err := ps.AddrAdd(&route.Addr{Dev: "eth0", Prefix: netip.PrefixFrom(ip, cfg.Block.Bits()),
			Broadcast: LastAddr(cfg.Block), Flags: route.AddrPermanent}); err != nil {
			return nil, err
		}
		if err := AddLinkLocal(ps, "eth0", podMAC); err != nil {
			return nil, err
		}
		if err := ps.RouteAdd(&route.Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gw: gw, Dev: "eth0"}); err != nil {
			return nil, err
		}
		for _, r := range cfg.Routes {
			if err := ps.RouteAdd(&route.Route{Dst: r, Gw: gw, Dev: "eth0"}); err != nil {
				return nil, err
			}
		}
		out[p.Namespace+"/"+p.Name] = &dataplane.Node{
			Name:    nodeName + "/" + p.Name,
			Net:     ps,
			Sysctls: map[string]string{"ipv4/ip_forward": "0"},
		}
	}
	if len(out) > 0 {
		// The bridge's MAC is its lowest port MAC.
		var low []byte
		for _, l := range s.Links {
			if l.Master == cfg.Bridge && (low == nil || bytes.Compare(l.HardwareAddr, low) < 0) {
				low = l.HardwareAddr
			}
		}
		br.HardwareAddr = append(br.HardwareAddr[:0:0], low...)
		if err := AddLinkLocal(s, cfg.Bridge, br.HardwareAddr); err != nil {
			return nil, err
		}
	}
	return out, nil
}
