package iptables

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	kubeproxyconfigv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"

	"github.com/knet-dev/knet/render/kubeproxy"
)

// MarkFormat is how the masquerade mark is spelled in the restore input.
type MarkFormat string

// Mark formats.
const (
	// MarkRuntime is what the real binary writes: fmt.Sprintf("%#08x", 1<<bit) = "0x00004000".
	MarkRuntime MarkFormat = "runtime"
	// MarkTests is what upstream's unit tests hard-code: "0x4000".
	MarkTests MarkFormat = "tests"
)

// Defaults (KubeProxyConfiguration v1alpha1 defaults and kube-proxy's constants).
const (
	DefaultMasqueradeBit         = 14
	DefaultLargeClusterThreshold = 1000
)

// Options configure one single-family iptables Proxier. The zero value of a field means the
// upstream default where one exists (noted per field); use DefaultOptions for a complete set.
type Options struct {
	// NodeName is this node's name (endpoints on it are local).
	NodeName string
	// NodeIPs are the node's addresses of every interface, primary first: the first of the
	// proxier's family is kube-proxy's nodeIP (LoadBalancer source-range "allow from node"),
	// and with NodePortAddresses the KUBE-NODEPORTS tail rules use the matching ones, in this
	// order. Loopback addresses may be listed (127.0.0.1 matters for NodePortAddresses).
	NodeIPs []netip.Addr
	// NodeZone is the node's topology.kubernetes.io/zone label (topology hints).
	NodeZone string
	// Family is IPv4 (default) or IPv6; dual stack is two proxiers.
	Family kubeproxy.Family
	// LocalDetector tells pod traffic apart (default None).
	LocalDetector kubeproxy.LocalDetector
	// MasqueradeAll masquerades all ClusterIP traffic (--masquerade-all).
	MasqueradeAll bool
	// MasqueradeBit is iptables.masqueradeBit (default 14).
	MasqueradeBit int
	// MarkFormat spells the mark (default MarkRuntime).
	MarkFormat MarkFormat
	// LocalhostNodePorts is iptables.localhostNodePorts (default true in the config; here the
	// zero value is false, so set it). Forced off unless NodePortAddresses allow 127.0.0.1.
	LocalhostNodePorts bool
	// NodePortAddresses restricts NodePorts to node IPs in these prefixes (nil: all local).
	// PrimaryNodePortAddresses selects the node's primary IPs ("primary" in the config).
	NodePortAddresses        []netip.Prefix
	PrimaryNodePortAddresses bool
	// RandomFully adds --random-fully to MASQUERADE (iptables ≥ 1.6.2 with kernel support).
	RandomFully bool
	// NFAcct says the nfacct counters could be created (kernel nfnetlink_acct).
	NFAcct bool
	// ConntrackTCPLiberal is nf_conntrack_tcp_be_liberal != 0 (no INVALID drop rule).
	ConntrackTCPLiberal bool
	// LargeClusterThreshold is the endpoint count above which comments are dropped
	// (default 1000).
	LargeClusterThreshold int
	// FullSyncEvery makes every N-th Sync a full one. Upstream (v1.35) forces a full sync
	// when proxyutil.FullSyncPeriod (1 h) passed since the last one;
	// knet has no clock, so 0 (default) means "all syncs within that hour": only the first,
	// those after ForceFullSync and those after RestoreFailed are full.
	FullSyncEvery int
	// Version is the kube-proxy version mirrored (default kubeproxy.DefaultVersion).
	Version string
}

// DefaultOptions are kube-proxy's defaults for a node: IPv4, mark bit 14 written as the
// binary does, localhost NodePorts on, modern iptables (--random-fully) and nfacct.
func DefaultOptions(nodeName string, nodeIPs ...netip.Addr) Options {
	return Options{
		NodeName: nodeName, NodeIPs: nodeIPs, Family: kubeproxy.IPv4,
		LocalDetector: kubeproxy.LocalDetector{Mode: kubeproxy.LocalNone},
		MasqueradeBit: DefaultMasqueradeBit, MarkFormat: MarkRuntime,
		LocalhostNodePorts: true, RandomFully: true, NFAcct: true,
		LargeClusterThreshold: DefaultLargeClusterThreshold, Version: kubeproxy.DefaultVersion,
	}
}

// normalized fills defaults and checks the options.
func (o Options) normalized() (Options, error) {
	if o.Family == "" {
		o.Family = kubeproxy.IPv4
	}
	if o.Family != kubeproxy.IPv4 && o.Family != kubeproxy.IPv6 {
		return o, fmt.Errorf("unknown IP family %q (want IPv4 or IPv6)", o.Family)
	}
	if o.MasqueradeBit == 0 {
		o.MasqueradeBit = DefaultMasqueradeBit
	}
	if o.MasqueradeBit < 0 || o.MasqueradeBit > 31 {
		return o, fmt.Errorf("masquerade bit %d out of range [0, 31]", o.MasqueradeBit)
	}
	if o.MarkFormat == "" {
		o.MarkFormat = MarkRuntime
	}
	if o.MarkFormat != MarkRuntime && o.MarkFormat != MarkTests {
		return o, fmt.Errorf("unknown mark format %q (want runtime or tests)", o.MarkFormat)
	}
	if o.LargeClusterThreshold == 0 {
		o.LargeClusterThreshold = DefaultLargeClusterThreshold
	}
	if o.Version == "" {
		o.Version = kubeproxy.DefaultVersion
	}
	if !supportedVersion(o.Version) {
		return o, fmt.Errorf("kube-proxy version %q is not modelled (knet follows the %s iptables mode)", o.Version, kubeproxy.DefaultVersion)
	}
	if o.LocalDetector.Mode == "" {
		o.LocalDetector.Mode = kubeproxy.LocalNone
	}
	// NewNodePortAddresses: keep the CIDRs of the proxier's family; none left, or a zero
	// CIDR among them, means all addresses (MatchAll).
	if o.NodePortAddresses != nil && !o.PrimaryNodePortAddresses {
		var kept []netip.Prefix
		matchAll := false
		for _, p := range o.NodePortAddresses {
			if kubeproxy.FamilyOf(p.Addr()) != o.Family {
				continue
			}
			kept = append(kept, p)
			if p.Bits() == 0 {
				matchAll = true
			}
		}
		if len(kept) == 0 || matchAll {
			kept = nil
		}
		o.NodePortAddresses = kept
	}
	// NewProxier: localhostNodePorts only if nodePortAddresses contain IPv4 loopback
	// (ContainsIPv4Loopback: a CIDR containing 127.0.0.0 or a loopback CIDR; MatchAll
	// contains it for IPv4 only).
	if o.LocalhostNodePorts {
		ok := false
		if o.NodePortAddresses == nil {
			ok = o.Family == kubeproxy.IPv4
		}
		for _, p := range o.NodePortAddresses {
			if p.Addr().Is4() && (p.Addr().IsLoopback() || p.Contains(netip.AddrFrom4([4]byte{127, 0, 0, 0}))) {
				ok = true
			}
		}
		if !ok {
			o.LocalhostNodePorts = false
		}
	}
	if o.PrimaryNodePortAddresses {
		o.NodePortAddresses = nil
		for _, ip := range o.NodeIPs {
			if kubeproxy.FamilyOf(ip) == o.Family && !ip.IsLoopback() {
				o.NodePortAddresses = append(o.NodePortAddresses, netip.PrefixFrom(ip, ip.BitLen()))
				break
			}
		}
		if o.NodePortAddresses == nil {
			o.NodePortAddresses = []netip.Prefix{}
		}
		if o.LocalhostNodePorts {
			o.LocalhostNodePorts = false
		}
	}
	return o, nil
}

// supportedVersion accepts the modelled release line, 1.35, with optional "v" and patch
// ("v1.35.2"). Other releases differ in details knet does not model yet (for example when the
// nfacct counters and KUBE-PROXY-FIREWALL appeared), so they are refused rather than guessed.
func supportedVersion(v string) bool {
	v = strings.TrimPrefix(v, "v")
	parts := strings.Split(v, ".")
	if len(parts) < 2 || parts[0] != "1" {
		return false
	}
	return slices.Contains([]string{"35"}, parts[1])
}

// nodeIP is kube-proxy's primary node IP of the family.
func (o Options) nodeIP() netip.Addr {
	for _, ip := range o.NodeIPs {
		if kubeproxy.FamilyOf(ip) == o.Family && !ip.IsLoopback() {
			return ip
		}
	}
	return netip.Addr{}
}

// OptionsFromConfig derives Options from a KubeProxyConfiguration (nil: all defaults) and the
// Node object (may be nil): mode must be empty or iptables; node name from nodeName, else
// hostnameOverride, else the Node's name; node IPs from the Node's addresses; clusterCIDR
// with detectLocalMode (default ClusterCIDR when clusterCIDR is set, else None), NodeCIDR
// from node.spec.podCIDRs, BridgeInterface/InterfaceNamePrefix from detectLocal; masqueradeAll;
// iptables.masqueradeBit (default 14); iptables.localhostNodePorts (default true);
// nodePortAddresses (CIDRs or "primary"). Capabilities (RandomFully, NFAcct,
// ConntrackTCPLiberal) are not in the config and default to a modern node (true, true, false).
func OptionsFromConfig(cfg *kubeproxyconfigv1alpha1.KubeProxyConfiguration, node *corev1.Node, nodeName string, family kubeproxy.Family) (Options, error) {
	o := DefaultOptions(nodeName)
	if family != "" {
		o.Family = family
	}
	if cfg == nil {
		cfg = &kubeproxyconfigv1alpha1.KubeProxyConfiguration{}
	}
	if cfg.Mode != "" && cfg.Mode != "iptables" {
		return o, fmt.Errorf("configuration mode is %q, not iptables", cfg.Mode)
	}
	if o.NodeName == "" {
		o.NodeName = strings.ToLower(strings.TrimSpace(cfg.HostnameOverride))
	}
	if o.NodeName == "" && node != nil {
		o.NodeName = node.Name
	}
	if node != nil {
		for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP} {
			for _, a := range node.Status.Addresses {
				if a.Type == t {
					if ip, ok := kubeproxy.ParseAddrSloppy(a.Address); ok && !slices.Contains(o.NodeIPs, ip) {
						o.NodeIPs = append(o.NodeIPs, ip)
					}
				}
			}
		}
		o.NodeZone = node.Labels[corev1.LabelTopologyZone]
	}
	if cfg.IPTables.MasqueradeBit != nil {
		o.MasqueradeBit = int(*cfg.IPTables.MasqueradeBit)
		if o.MasqueradeBit == 0 {
			// Bit 0 is valid; normalized() treats 0 as unset, so keep it by a sentinel.
			return o, fmt.Errorf("iptables.masqueradeBit 0 is not supported by knet (use 1..31)")
		}
	}
	if cfg.IPTables.LocalhostNodePorts != nil {
		o.LocalhostNodePorts = *cfg.IPTables.LocalhostNodePorts
	}
	o.MasqueradeAll = cfg.IPTables.MasqueradeAll
	for _, s := range cfg.NodePortAddresses {
		if s == "primary" {
			o.PrimaryNodePortAddresses = true
			continue
		}
		p, ok := kubeproxy.ParsePrefixSloppy(strings.TrimSpace(s))
		if !ok {
			return o, fmt.Errorf("nodePortAddresses: invalid CIDR %q", s)
		}
		o.NodePortAddresses = append(o.NodePortAddresses, p)
	}
	mode := kubeproxy.LocalMode(cfg.DetectLocalMode)
	var cidr netip.Prefix
	for _, s := range strings.Split(cfg.ClusterCIDR, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, ok := kubeproxy.ParsePrefixSloppy(s)
		if !ok {
			return o, fmt.Errorf("clusterCIDR: invalid CIDR %q", s)
		}
		if kubeproxy.FamilyOf(p.Addr()) == o.Family && !cidr.IsValid() {
			cidr = p
		}
	}
	if mode == "" {
		mode = kubeproxy.LocalClusterCIDR
	}
	switch mode {
	case kubeproxy.LocalClusterCIDR:
		if !cidr.IsValid() {
			mode = kubeproxy.LocalNone // upstream: no cluster CIDR of the family → no-op detector
		}
	case kubeproxy.LocalNodeCIDR:
		cidr = netip.Prefix{}
		if node != nil {
			cidrs := node.Spec.PodCIDRs
			if len(cidrs) == 0 && node.Spec.PodCIDR != "" {
				cidrs = []string{node.Spec.PodCIDR}
			}
			for _, s := range cidrs {
				if p, ok := kubeproxy.ParsePrefixSloppy(s); ok && kubeproxy.FamilyOf(p.Addr()) == o.Family {
					cidr = p
					break
				}
			}
		}
		if !cidr.IsValid() {
			return o, fmt.Errorf("detectLocalMode NodeCIDR needs the Node object with spec.podCIDRs")
		}
	}
	iface := ""
	switch mode {
	case kubeproxy.LocalBridgeInterface:
		iface = cfg.DetectLocal.BridgeInterface
	case kubeproxy.LocalInterfaceNamePrefix:
		iface = cfg.DetectLocal.InterfaceNamePrefix
	}
	d, err := kubeproxy.NewLocalDetector(mode, cidr, iface)
	if err != nil {
		return o, err
	}
	o.LocalDetector = d
	return o, nil
}
