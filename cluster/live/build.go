package live

import (
	"bytes"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/knet-dev/knet/cluster"
)

// Options are what the caller knows better than the API server; zero values are inferred.
type Options struct {
	// Name is the cluster's name (default "imported").
	Name string
	// PageSize is the list page size (default DefaultPageSize).
	PageSize int64
	// PodCIDR and ServiceCIDR override the inferred ones.
	PodCIDR, ServiceCIDR netip.Prefix
	// ProxyMode and ProxyVersion override the kube-proxy ConfigMap and image tag.
	ProxyMode    cluster.ProxyMode
	ProxyVersion string
	// CNI overrides the pod network read from its configuration (fields left empty are
	// inferred or defaulted).
	CNI cluster.CNI
	// NodeSubnetBits is the prefix length assumed for each node's subnet, which the API does
	// not hold (default 24).
	NodeSubnetBits int
}

// ObjectsSource names loaded objects in FromObjects' notes.
const ObjectsSource = "objects"

// DefaultNodeSubnetBits is the node subnet prefix length assumed when not given.
const DefaultNodeSubnetBits = 24

// Label of control-plane nodes (kubeadm).
const labelControlPlane = "node-role.kubernetes.io/control-plane"

// FromObjects builds a cluster from objects already loaded (kubectl dumps): nodes from the
// Node objects (InternalIP, zone label, control-plane role label, spec.podCIDR), the pod CIDR
// covering the nodes' pod CIDRs, the Service CIDR around the `kubernetes` Service's ClusterIP,
// the kube-proxy mode from objs.ProxyConfig, versions and the CNI from the images of the
// kube-proxy, calico-node, kube-flannel and kube-router pods. The result is what LoadCluster
// reads back from WriteCluster's output, completed by cluster.ParseCluster.
func FromObjects(objs cluster.Objects, o Options) (*cluster.Cluster, []cluster.Note, error) {
	c, notes, err := build(objs, o, extras{}, ObjectsSource)
	if err != nil {
		return nil, nil, err
	}
	if c, err = Parse(c); err != nil {
		return nil, nil, err
	}
	c.Notes = append(c.Notes, notes...)
	return c, notes, nil
}

func build(objs cluster.Objects, o Options, ex extras, src string) (*cluster.Cluster, []cluster.Note, error) {
	var notes []cluster.Note
	note := func(format string, args ...any) {
		notes = append(notes, cluster.Note{File: src, Message: fmt.Sprintf(format, args...)})
	}
	fromPods := podHints(objs.Pods)
	c := &cluster.Cluster{Name: o.Name, Objects: objs}
	if c.Name == "" {
		c.Name = "imported"
	}

	// kube-proxy.
	c.Proxy.Mode = o.ProxyMode
	if c.Proxy.Mode == "" && objs.ProxyConfig != nil {
		c.Proxy.Mode = cluster.ProxyMode(objs.ProxyConfig.Mode)
	}
	if c.Proxy.Mode == "" {
		c.Proxy.Mode = cluster.ProxyIPTables
		note("kube-proxy mode not set (no KubeProxyConfiguration or mode \"\"): kube-proxy's Linux default %s", c.Proxy.Mode)
	}
	c.Proxy.Version = firstNonEmpty(o.ProxyVersion, ex.proxyVersion, fromPods.proxyVersion)
	if c.Proxy.Version == "" {
		c.Proxy.Version = cluster.DefaultKubeProxyVersion
		note("kube-proxy version not found (daemonset or pod image), using %s", c.Proxy.Version)
	}

	// CNI.
	c.CNI = ex.cni
	if c.CNI.Plugin == "" {
		c.CNI = fromPods.cni
	}
	if o.CNI.Plugin != "" && o.CNI.Plugin != c.CNI.Plugin {
		c.CNI = cluster.CNI{Plugin: o.CNI.Plugin}
	}
	if o.CNI.Mode != "" {
		c.CNI.Mode = o.CNI.Mode
	}
	if o.CNI.Version != "" {
		c.CNI.Version = o.CNI.Version
	}
	if o.CNI.BlockSize != 0 {
		c.CNI.BlockSize = o.CNI.BlockSize
	}
	if o.CNI.MTU != 0 {
		c.CNI.MTU = o.CNI.MTU
	}
	if c.CNI.Plugin == "" {
		return nil, nil, fmt.Errorf("import: the pod network is not recognisable from the cluster (no Calico IPPool, Flannel or kube-router configuration or pods): give it (--cni)")
	}

	// Nodes.
	nodes := append([]*corev1.Node(nil), objs.Nodes...)
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	bits := o.NodeSubnetBits
	if bits == 0 {
		bits = DefaultNodeSubnetBits
	}
	var kept []*corev1.Node
	var nodePodCIDRs []netip.Prefix
	for _, n := range nodes {
		ip := internalIPv4(n)
		if !ip.IsValid() {
			note("node %s has no IPv4 InternalIP, skipped", n.Name)
			continue
		}
		subnet, _ := ip.Prefix(bits)
		cn := cluster.Node{Name: n.Name, IP: ip, Subnet: subnet, Zone: n.Labels[corev1.LabelTopologyZone],
			Role: cluster.RoleWorker, Interface: cluster.DefaultInterface}
		if _, ok := n.Labels[labelControlPlane]; ok {
			cn.Role = cluster.RoleControlPlane
		}
		if p, err := netip.ParsePrefix(n.Spec.PodCIDR); err == nil {
			cn.PodCIDR = p
			nodePodCIDRs = append(nodePodCIDRs, p)
		}
		c.Nodes = append(c.Nodes, cn)
		kept = append(kept, n)
	}
	if len(c.Nodes) == 0 {
		return nil, nil, fmt.Errorf("import: no node with an IPv4 InternalIP")
	}
	c.Objects.Nodes = kept
	note("node subnets are not held by the API: assumed /%d around each InternalIP", bits)

	// CIDRs.
	c.PodCIDR = firstValid(o.PodCIDR, ex.cniPodCIDR, cover(nodePodCIDRs))
	if !c.PodCIDR.IsValid() {
		return nil, nil, fmt.Errorf("import: no pod CIDR (no CNI pool and no Node spec.podCIDR): give it (--pod-cidr)")
	}
	if c.CNI.BlockSize == 0 && len(nodePodCIDRs) > 0 {
		c.CNI.BlockSize = nodePodCIDRs[0].Bits()
	}
	for i := range c.Nodes {
		n := &c.Nodes[i]
		if n.PodCIDR.IsValid() && (!c.PodCIDR.Contains(n.PodCIDR.Addr()) || (c.CNI.BlockSize != 0 && n.PodCIDR.Bits() != c.CNI.BlockSize)) {
			note("node %s: spec.podCIDR %s is not a /%d block of %s (the CNI allocates its own), dropped", n.Name, n.PodCIDR, c.CNI.BlockSize, c.PodCIDR)
			n.PodCIDR = netip.Prefix{}
		}
	}
	c.Objects.Pods = keepPods(objs.Pods, c, note)
	c.ServiceCIDR = o.ServiceCIDR
	for _, p := range ex.serviceCIDRs {
		if !c.ServiceCIDR.IsValid() && p.Addr().Is4() {
			c.ServiceCIDR = p
		}
	}
	if !c.ServiceCIDR.IsValid() {
		p, ok := serviceCIDRFromServices(objs.Services)
		if !ok {
			return nil, nil, fmt.Errorf("import: no Service CIDR (no ServiceCIDR object and no default/kubernetes Service): give it (--service-cidr)")
		}
		c.ServiceCIDR = p
		note("service CIDR %s inferred: the smallest range whose first address is the kubernetes Service's ClusterIP and that holds every ClusterIP", p)
	}
	sortNotes(notes)
	return c, notes, nil
}

// Parse round-trips c through its cluster file (WriteCluster, then cluster.ParseCluster), so
// the result is completed exactly as LoadCluster completes a file.
func Parse(c *cluster.Cluster) (*cluster.Cluster, error) {
	var b bytes.Buffer
	if err := WriteCluster(&b, c); err != nil {
		return nil, err
	}
	out, err := cluster.ParseCluster(b.Bytes(), c.Name+".yaml", nil)
	if err != nil {
		return nil, fmt.Errorf("imported cluster: %w", err)
	}
	return out, nil
}

func sortNotes(n []cluster.Note) {
	sort.SliceStable(n, func(i, j int) bool { return n[i].Message < n[j].Message })
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func firstValid(p ...netip.Prefix) netip.Prefix {
	for _, x := range p {
		if x.IsValid() {
			return x
		}
	}
	return netip.Prefix{}
}

func internalIPv4(n *corev1.Node) netip.Addr {
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(a.Address); err == nil && ip.Is4() {
			return ip
		}
	}
	return netip.Addr{}
}

// cover is the smallest IPv4 prefix holding every prefix of ps (invalid when none).
func cover(ps []netip.Prefix) netip.Prefix {
	var out netip.Prefix
	for _, p := range ps {
		if !p.Addr().Is4() {
			continue
		}
		p = p.Masked()
		if !out.IsValid() {
			out = p
			continue
		}
		for bits := min(out.Bits(), p.Bits()); bits >= 0; bits-- {
			a, _ := out.Addr().Prefix(bits)
			b, _ := p.Addr().Prefix(bits)
			if a == b {
				out = a
				break
			}
		}
	}
	return out
}

// serviceCIDRFromServices is the smallest IPv4 prefix whose first address (after the network
// address) is the default/kubernetes ClusterIP, as the API server allocates it, and that holds
// every ClusterIP.
func serviceCIDRFromServices(svcs []*corev1.Service) (netip.Prefix, bool) {
	var kube netip.Addr
	var ips []netip.Addr
	for _, s := range svcs {
		ip, err := netip.ParseAddr(s.Spec.ClusterIP)
		if err != nil || !ip.Is4() {
			continue
		}
		ips = append(ips, ip)
		if s.Namespace == metav1.NamespaceDefault && s.Name == "kubernetes" {
			kube = ip
		}
	}
	if !kube.IsValid() {
		return netip.Prefix{}, false
	}
next:
	for bits := 30; bits >= 8; bits-- {
		p, _ := kube.Prefix(bits)
		if p.Addr().Next() != kube {
			continue
		}
		for _, ip := range ips {
			if !p.Contains(ip) {
				continue next
			}
		}
		return p, true
	}
	return netip.Prefix{}, false
}

// hints is what the pods of the system DaemonSets say about the cluster.
type hints struct {
	proxyVersion string
	cni          cluster.CNI
}

// podHints reads the kube-proxy, calico-node, kube-flannel and kube-router containers'
// images (and calico-node's CALICO_IPV4POOL_IPIP/VXLAN, kube-router's overlay flags).
func podHints(pods []*corev1.Pod) hints {
	var h hints
	sorted := append([]*corev1.Pod(nil), pods...)
	sort.Slice(sorted, func(i, j int) bool {
		return sorted[i].Namespace+"/"+sorted[i].Name < sorted[j].Namespace+"/"+sorted[j].Name
	})
	for _, p := range sorted {
		for _, c := range p.Spec.Containers {
			switch c.Name {
			case "kube-proxy":
				if h.proxyVersion == "" {
					h.proxyVersion = imageTag(c.Image)
				}
			case "calico-node":
				if h.cni.Plugin != "" {
					continue
				}
				var ipip, vxlan string
				for _, e := range c.Env {
					switch e.Name {
					case "CALICO_IPV4POOL_IPIP":
						ipip = e.Value
					case "CALICO_IPV4POOL_VXLAN":
						vxlan = e.Value
					}
				}
				if ipip == "" && vxlan == "" {
					ipip = "Always" // calico-node's default pool: IPIP Always
				}
				mode, err := calicoMode(ipip, vxlan)
				if err != nil {
					mode = ""
				}
				h.cni = cluster.CNI{Plugin: cluster.CNICalico, Mode: mode, Version: imageTag(c.Image)}
			case "kube-flannel":
				if h.cni.Plugin == "" {
					h.cni = cluster.CNI{Plugin: cluster.CNIFlannel, Version: imageTag(c.Image)}
				}
			case "kube-router":
				if h.cni.Plugin != "" {
					continue
				}
				h.cni = cluster.CNI{Plugin: cluster.CNIKubeRouter, Version: imageTag(c.Image), Mode: cluster.KubeRouterOverlaySubnet}
				for _, a := range append(append([]string{}, c.Command...), c.Args...) {
					k, v, _ := strings.Cut(a, "=")
					switch {
					case k == "--enable-overlay" && v == "false":
						h.cni.Mode = cluster.KubeRouterNoOverlay
					case k == "--overlay-type" && v == "full" && h.cni.Mode != cluster.KubeRouterNoOverlay:
						h.cni.Mode = cluster.KubeRouterOverlayFull
					}
				}
			}
		}
	}
	return h
}

// keepPods drops the pods knet cannot place, each with a note: not scheduled yet (no
// spec.nodeName), on a node that was skipped, or with a pod IP outside the pod CIDR.
func keepPods(pods []*corev1.Pod, c *cluster.Cluster, note func(string, ...any)) []*corev1.Pod {
	nodes := map[string]bool{}
	for _, n := range c.Nodes {
		nodes[n.Name] = true
	}
	var out []*corev1.Pod
	unscheduled := 0
	for _, p := range pods {
		switch {
		case p.Spec.NodeName == "":
			unscheduled++
			continue
		case !nodes[p.Spec.NodeName]:
			note("pod %s/%s: node %s was skipped, pod dropped", p.Namespace, p.Name, p.Spec.NodeName)
			continue
		}
		if !p.Spec.HostNetwork && p.Status.PodIP != "" {
			ip, err := netip.ParseAddr(p.Status.PodIP)
			if err != nil || !c.PodCIDR.Contains(ip) {
				note("pod %s/%s: status.podIP %q is not in the pod CIDR %s, pod dropped", p.Namespace, p.Name, p.Status.PodIP, c.PodCIDR)
				continue
			}
		}
		out = append(out, p)
	}
	if unscheduled > 0 {
		note("%d pods not scheduled yet (no spec.nodeName), dropped", unscheduled)
	}
	return out
}
