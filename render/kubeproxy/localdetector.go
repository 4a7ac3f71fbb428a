package kubeproxy

import (
	"fmt"
	"net/netip"
)

// LocalMode is how kube-proxy tells pod traffic from other traffic; the values are the
// KubeProxyConfiguration.detectLocalMode spellings (and CLI tokens), plus None.
type LocalMode string

// Local traffic detector modes (pkg/proxy/util/localdetector.go).
const (
	LocalClusterCIDR         LocalMode = "ClusterCIDR"
	LocalNodeCIDR            LocalMode = "NodeCIDR"
	LocalBridgeInterface     LocalMode = "BridgeInterface"
	LocalInterfaceNamePrefix LocalMode = "InterfaceNamePrefix"
	LocalNone                LocalMode = "None"
)

// LocalDetector is kube-proxy's LocalTrafficDetector.
type LocalDetector struct {
	Mode LocalMode
	// CIDR is the pod CIDR for ClusterCIDR/NodeCIDR.
	CIDR netip.Prefix
	// Interface is the bridge name, or the interface name prefix.
	Interface string
}

// NewLocalDetector validates and returns a detector; an empty mode is None.
func NewLocalDetector(mode LocalMode, cidr netip.Prefix, iface string) (LocalDetector, error) {
	switch mode {
	case "", LocalNone:
		return LocalDetector{Mode: LocalNone}, nil
	case LocalClusterCIDR, LocalNodeCIDR:
		if !cidr.IsValid() {
			return LocalDetector{}, fmt.Errorf("local traffic detector %s needs a CIDR", mode)
		}
		return LocalDetector{Mode: mode, CIDR: cidr.Masked()}, nil
	case LocalBridgeInterface, LocalInterfaceNamePrefix:
		if iface == "" {
			return LocalDetector{}, fmt.Errorf("local traffic detector %s needs an interface name", mode)
		}
		return LocalDetector{Mode: mode, Interface: iface}, nil
	}
	return LocalDetector{}, fmt.Errorf("unknown local traffic detector mode %q (want ClusterCIDR, NodeCIDR, BridgeInterface, InterfaceNamePrefix or None)", mode)
}

// IsImplemented reports whether the detector can tell local traffic apart.
func (d LocalDetector) IsImplemented() bool { return d.Mode != "" && d.Mode != LocalNone }

// IfLocal is the iptables match for "from a local pod".
func (d LocalDetector) IfLocal() []string {
	switch d.Mode {
	case LocalClusterCIDR, LocalNodeCIDR:
		return []string{"-s", d.CIDR.String()}
	case LocalBridgeInterface:
		return []string{"-i", d.Interface}
	case LocalInterfaceNamePrefix:
		return []string{"-i", d.Interface + "+"}
	}
	return nil
}

// IfNotLocal is the iptables match for "not from a local pod".
func (d LocalDetector) IfNotLocal() []string {
	switch d.Mode {
	case LocalClusterCIDR, LocalNodeCIDR:
		return []string{"!", "-s", d.CIDR.String()}
	case LocalBridgeInterface:
		return []string{"!", "-i", d.Interface}
	case LocalInterfaceNamePrefix:
		return []string{"!", "-i", d.Interface + "+"}
	}
	return nil
}
