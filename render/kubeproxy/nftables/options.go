package nftables

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	kubeproxyconfigv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"

	"github.com/knet-dev/knet/render/kubeproxy"
	kpiptables "github.com/knet-dev/knet/render/kubeproxy/iptables"
)

// OptionsFromConfig derives Options from kube-proxy's configuration and the Node object as
// kube-proxy does in nftables mode (node name from hostnameOverride or the Node, node IPs
// from its status, the local detector, masquerade bit and all, nodePortAddresses).
// localAddrs are the node's interface addresses (for nodeport-ips); serviceCIDRs the
// cluster's ServiceCIDRs.
func OptionsFromConfig(cfg *kubeproxyconfigv1alpha1.KubeProxyConfiguration, node *corev1.Node, nodeName string, family kubeproxy.Family, localAddrs []netip.Addr, serviceCIDRs []netip.Prefix) (Options, error) {
	if cfg != nil && cfg.Mode != "" && cfg.Mode != "nftables" {
		return Options{}, fmt.Errorf("configuration mode is %q, not nftables", cfg.Mode)
	}
	// The fields both modes share are read the same way; the iptables reader checks the
	// mode, so hand it a copy without one.
	var shared *kubeproxyconfigv1alpha1.KubeProxyConfiguration
	if cfg != nil {
		c := cfg.DeepCopy()
		c.Mode = ""
		if c.NFTables.MasqueradeBit != nil {
			c.IPTables.MasqueradeBit = c.NFTables.MasqueradeBit
		}
		c.IPTables.MasqueradeAll = c.NFTables.MasqueradeAll || c.IPTables.MasqueradeAll
		shared = c
	}
	io, err := kpiptables.OptionsFromConfig(shared, node, nodeName, family)
	if err != nil {
		return Options{}, err
	}
	o := Options{
		NodeName:          io.NodeName,
		Family:            io.Family,
		Detector:          io.LocalDetector,
		MasqueradeAll:     io.MasqueradeAll,
		MasqueradeBit:     io.MasqueradeBit,
		NodePortAddresses: io.NodePortAddresses,
		LocalAddrs:        localAddrs,
		Zone:              io.NodeZone,
	}
	for _, a := range io.NodeIPs {
		if kubeproxy.FamilyOf(a) == o.Family {
			o.NodeIP = a
			break
		}
	}
	if len(o.LocalAddrs) == 0 {
		o.LocalAddrs = io.NodeIPs
	}
	for _, c := range serviceCIDRs {
		if kubeproxy.FamilyOf(c.Addr()) == o.Family {
			o.ServiceCIDRs = append(o.ServiceCIDRs, c)
		}
	}
	return o, nil
}
