// Package cluster holds what knet knows about a Kubernetes cluster: its shape (nodes with
// their addresses, subnets and zones, pod and Service CIDRs, the CNI and kube-proxy choice
// and versions) and its workloads as standard Kubernetes objects (k8s.io/api types).
//
// Objects are loaded from the YAML or JSON that kubectl writes (multi-document YAML, JSON,
// `kind: List`); presets embed the seed's clusters A, B and C.
package cluster

import (
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	kubeproxyconfigv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
)

// Objects are the Kubernetes objects that drive a node's dataplane.
type Objects struct {
	Services       []*corev1.Service
	EndpointSlices []*discoveryv1.EndpointSlice
	Pods           []*corev1.Pod
	Nodes          []*corev1.Node

	// ProxyConfig is kube-proxy's configuration, nil when none was given (defaults apply).
	ProxyConfig *kubeproxyconfigv1alpha1.KubeProxyConfiguration
}

// ProxyMode is a kube-proxy mode, spelled as in KubeProxyConfiguration.mode.
type ProxyMode string

// kube-proxy modes.
const (
	ProxyIPTables ProxyMode = "iptables"
	ProxyIPVS     ProxyMode = "ipvs"
	ProxyNFTables ProxyMode = "nftables"
)

// CNIPlugin names a pod network.
type CNIPlugin string

// Pod networks knet renders.
const (
	CNICalico     CNIPlugin = "calico"
	CNIKubeRouter CNIPlugin = "kube-router"
	CNIFlannel    CNIPlugin = "flannel"
)

// Cluster is a cluster's shape plus its objects.
type Cluster struct {
	// Name is the cluster's name ("cluster-a" for a preset).
	Name string
	// Description says in one line what the cluster is.
	Description string

	Nodes []Node

	// PodCIDR is the cluster CIDR all pod blocks come from; ServiceCIDR the ClusterIP range.
	PodCIDR     netip.Prefix
	ServiceCIDR netip.Prefix

	CNI   CNI
	Proxy Proxy

	Objects Objects

	// Created is the creationTimestamp given to derived objects (cluster file `created`).
	Created time.Time
	// Notes are what the object loader skipped or changed without failing.
	Notes []Note

	// podIndex is the pods by node name (see PodsOn, Reindex), built for podIndexLen pods.
	podIndex    map[string][]*corev1.Pod
	podIndexLen int
}

// Node is one node of the cluster.
type Node struct {
	Name string
	// IP is the node's primary address (on eth0); it is the InternalIP of the Node object.
	IP netip.Addr
	// Subnet is the VPC subnet the node sits in (its eth0 prefix), Zone its zone.
	Subnet netip.Prefix
	Zone   string
	// Gateway is the subnet's default gateway.
	Gateway netip.Addr
	// Role is "control-plane" or "worker".
	Role string
	// PodCIDR is the node's pod block.
	PodCIDR netip.Prefix
	// Interface is the node's uplink name (default "eth0").
	Interface string
	// TunnelIP is the CNI's tunnel address on this node (Calico tunl0 / vxlan.calico, flannel.N),
	// filled by IPAM; invalid when the CNI uses none.
	TunnelIP netip.Addr
}

// CNI is the pod network choice.
type CNI struct {
	Plugin CNIPlugin
	// Mode is the encapsulation mode: for Calico "IPIPAlways", "IPIPCrossSubnet", "Never",
	// "VXLANAlways", "VXLANCrossSubnet"; for kube-router "overlay-subnet", "overlay-full",
	// "none"; for Flannel "vxlan", "host-gw".
	Mode string
	// Version is the plugin version the renderer follows.
	Version string
	// BlockSize is the IPAM block prefix length (Calico default 26; the seed uses 24).
	BlockSize int
	// MTU is the host uplink MTU (default 1500).
	MTU int
}

// Proxy is the kube-proxy choice.
type Proxy struct {
	Mode ProxyMode
	// Version is the kube-proxy version the renderer follows.
	Version string
}
