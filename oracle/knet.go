package oracle

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/render/kubeproxy"
	"github.com/knet-dev/knet/render/kubeproxy/iptables"
)

// KnetOptions translates cfg to knet's iptables renderer options, matching what the
// upstream proxier is given: the mark is spelled as the binary spells it
// (iptables.MarkRuntime), MASQUERADE always carries --random-fully (v1.37 writes it
// unconditionally), and nfacct is present iff cfg.NFAcct (NewUpstream wires it so).
func KnetOptions(cfg Config) (iptables.Options, error) {
	o := iptables.DefaultOptions(cfg.NodeName, cfg.NodeIP)
	for _, p := range cfg.HostAddrs {
		if a := p.Addr(); a != cfg.NodeIP {
			o.NodeIPs = append(o.NodeIPs, a)
		}
	}
	o.Family = kubeproxy.IPv4
	if cfg.Family == corev1.IPv6Protocol {
		o.Family = kubeproxy.IPv6
	}
	var cidr netip.Prefix
	iface := ""
	switch cfg.Detector {
	case DetectClusterCIDR:
		p, err := netip.ParsePrefix(cfg.DetectorValue)
		if err != nil {
			return o, fmt.Errorf("detector CIDR: %w", err)
		}
		cidr = p
	case DetectBridgeInterface, DetectInterfacePrefix:
		iface = cfg.DetectorValue
	}
	mode := kubeproxy.LocalMode(cfg.Detector)
	if cfg.Detector == "" {
		mode = kubeproxy.LocalNone
	}
	d, err := kubeproxy.NewLocalDetector(mode, cidr, iface)
	if err != nil {
		return o, fmt.Errorf("knet local detector: %w", err)
	}
	o.LocalDetector = d
	o.NodeZone = cfg.NodeZone
	o.MasqueradeAll = cfg.MasqueradeAll
	o.MasqueradeBit = int(cfg.MasqueradeBit)
	o.MarkFormat = iptables.MarkRuntime
	o.LocalhostNodePorts = cfg.LocalhostNodePorts
	for _, s := range cfg.NodePortAddresses {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return o, fmt.Errorf("nodePortAddresses: %w", err)
		}
		o.NodePortAddresses = append(o.NodePortAddresses, p)
	}
	o.RandomFully = true
	o.NFAcct = cfg.NFAcct
	o.ConntrackTCPLiberal = cfg.ConntrackTCPLiberal
	return o, nil
}

// Knet is knet's stateful iptables renderer configured like an Upstream.
type Knet struct {
	p *iptables.Proxier
}

// NewKnet returns knet's proxier for cfg.
func NewKnet(cfg Config) (*Knet, error) {
	o, err := KnetOptions(cfg)
	if err != nil {
		return nil, err
	}
	return &Knet{p: iptables.NewProxier(o)}, nil
}

// Sync renders one sync of s (knet's Sync takes the whole desired state).
func (k *Knet) Sync(s State) ([]byte, error) {
	out, err := k.p.Sync(cluster.Objects{Services: s.Services, EndpointSlices: s.EndpointSlices})
	if err != nil {
		return nil, fmt.Errorf("knet sync: %w", err)
	}
	return out, nil
}
