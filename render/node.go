// Package render assembles a whole emulated node from a cluster: the CNI's host and pod
// namespaces (render/cni/...), kube-proxy's programming for the cluster's mode
// (render/kubeproxy/{iptables,ipvs,nftables}, v1.35 by default) and the container runtime's
// sandboxes and containers (containerd via CRI, as `crictl` lists them).
//
// When the cluster file gives no KubeProxyConfiguration, knet uses what kubeadm writes:
// mode from the cluster file and clusterCIDR = the cluster's pod CIDR (kubeadm copies
// networking.podSubnet), so local-traffic detection is ClusterCIDR.
package render

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	kubeproxyconfigv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane"
	"github.com/knet-dev/knet/dataplane/cri"
	nf "github.com/knet-dev/knet/dataplane/netfilter"
	"github.com/knet-dev/knet/format/crictl"
	"github.com/knet-dev/knet/format/iptablessave"
	"github.com/knet-dev/knet/render/cni/calico"
	"github.com/knet-dev/knet/render/cni/flannel"
	"github.com/knet-dev/knet/render/cni/hostnet"
	"github.com/knet-dev/knet/render/cni/kuberouter"
	"github.com/knet-dev/knet/render/kubeproxy"
	"github.com/knet-dev/knet/render/kubeproxy/iptables"
	"github.com/knet-dev/knet/render/kubeproxy/ipvs"
	"github.com/knet-dev/knet/render/kubeproxy/nftables"
)

// Node renders node nodeName of cluster c: the CNI, kube-proxy and the CRI state, with the
// local pods' namespaces in Pods.
func Node(c *cluster.Cluster, nodeName string) (*dataplane.Node, error) {
	n, _, err := NodeWithNotes(c, nodeName)
	return n, err
}

// NodeWithNotes is Node plus the renderers' remarks (routes a CNI could not program, the
// IPVS deprecation notice).
func NodeWithNotes(c *cluster.Cluster, nodeName string) (*dataplane.Node, []string, error) {
	return nodeWithNotes(c, nodeName, nil)
}

func nodeWithNotes(c *cluster.Cluster, nodeName string, shared *sharedProxy) (*dataplane.Node, []string, error) {
	if c.NodeByName(nodeName) == nil {
		return nil, nil, fmt.Errorf("render: cluster %s has no node %q (have %s)", c.Name, nodeName, strings.Join(nodeNames(c), ", "))
	}
	node, notes, err := renderCNI(c, nodeName)
	if err != nil {
		return nil, nil, err
	}
	var pn []string
	if shared != nil {
		node.IPTables, err = shared.p.Ruleset(shared.restore)
	} else {
		pn, err = renderProxy(c, nodeName, node)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("render: node %s: kube-proxy %s: %w", nodeName, c.Proxy.Mode, err)
	}
	notes = append(notes, pn...)
	node.CRI = CRIState(c, nodeName)
	return node, notes, nil
}

// Cluster renders every node of c, in node order, using all CPUs. In iptables mode, when
// kube-proxy's rules cannot depend on the node (see proxyNodeIndependent) and the first two
// nodes' restore inputs are indeed identical, kube-proxy's sync is computed once and each node
// gets its own ruleset from that restore input; the result equals rendering node by node.
func Cluster(c *cluster.Cluster) ([]*dataplane.Node, error) {
	shared, err := shareProxy(c)
	if err != nil {
		return nil, err
	}
	out := make([]*dataplane.Node, len(c.Nodes))
	errs := make([]error, len(c.Nodes))
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(runtime.GOMAXPROCS(0), len(c.Nodes)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				out[i], _, errs[i] = nodeWithNotes(c, c.Nodes[i].Name, shared)
			}
		}()
	}
	for i := range c.Nodes {
		work <- i
	}
	close(work)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// sharedProxy is one kube-proxy sync (iptables mode) valid for every node of a cluster.
type sharedProxy struct {
	p       *iptables.Proxier
	restore []byte
}

func iptablesOptions(c *cluster.Cluster, nodeName string) (iptables.Options, error) {
	opts, err := iptables.OptionsFromConfig(ProxyConfig(c), nodeObject(c, nodeName), nodeName, kubeproxy.IPv4)
	opts.Version = proxyVersion(c.Proxy.Version)
	return opts, err
}

// shareProxy returns the shared sync for c, or nil when each node must be rendered alone.
func shareProxy(c *cluster.Cluster) (*sharedProxy, error) {
	if c.Proxy.Mode != cluster.ProxyIPTables || len(c.Nodes) < 3 || !proxyNodeIndependent(c) {
		return nil, nil
	}
	var restores [2][]byte
	var first *iptables.Proxier
	for i := range restores {
		opts, err := iptablesOptions(c, c.Nodes[i].Name)
		if err != nil {
			return nil, fmt.Errorf("render: node %s: kube-proxy iptables: %w", c.Nodes[i].Name, err)
		}
		p := iptables.NewProxier(opts)
		if restores[i], err = p.Sync(c.Objects); err != nil {
			return nil, fmt.Errorf("render: node %s: kube-proxy iptables: %w", c.Nodes[i].Name, err)
		}
		if i == 0 {
			first = p
		}
	}
	if !bytes.Equal(restores[0], restores[1]) {
		return nil, nil
	}
	return &sharedProxy{p: first, restore: restores[0]}, nil
}

// proxyNodeIndependent reports whether kube-proxy's iptables rules for c are the same on
// every node: they depend on the node only through Local traffic policies (local endpoints,
// health-check node ports), topology hints and trafficDistribution (the node's zone),
// loadBalancerSourceRanges (the node IP is let through), nodePortAddresses (the node's IPs),
// the NodeCIDR local detector, and duplicate endpoints across slices (the local copy wins).
func proxyNodeIndependent(c *cluster.Cluster) bool {
	cfg := ProxyConfig(c)
	if len(cfg.NodePortAddresses) > 0 || cfg.DetectLocalMode == "NodeCIDR" {
		return false
	}
	for _, s := range c.Objects.Services {
		if s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal ||
			s.Spec.InternalTrafficPolicy != nil && *s.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal ||
			len(s.Spec.LoadBalancerSourceRanges) > 0 || s.Spec.TrafficDistribution != nil ||
			s.Annotations[corev1.AnnotationTopologyMode] != "" || s.Annotations["service.kubernetes.io/topology-aware-hints"] != "" {
			return false
		}
	}
	seen := map[string]bool{}
	for _, es := range c.Objects.EndpointSlices {
		svc := es.Namespace + "/" + es.Labels["kubernetes.io/service-name"]
		for _, e := range es.Endpoints {
			if e.Hints != nil {
				return false
			}
			for _, a := range e.Addresses {
				for _, p := range es.Ports {
					key := svc + "|" + a + "|"
					if p.Port != nil {
						key += fmt.Sprint(*p.Port)
					}
					if p.Name != nil {
						key += "|" + *p.Name
					}
					if seen[key] {
						return false
					}
					seen[key] = true
				}
			}
		}
	}
	return true
}

func nodeNames(c *cluster.Cluster) []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Name)
	}
	return out
}

func renderCNI(c *cluster.Cluster, nodeName string) (*dataplane.Node, []string, error) {
	switch c.CNI.Plugin {
	case cluster.CNICalico:
		n, err := calico.Render(c, nodeName, calico.OptionsFor(c))
		return n, nil, err
	case cluster.CNIKubeRouter:
		return kuberouter.Render(c, nodeName, kuberouter.OptionsFor(c))
	case cluster.CNIFlannel:
		return flannel.Render(c, nodeName, flannel.OptionsFor(c))
	}
	return nil, nil, fmt.Errorf("render: unknown CNI plugin %q", c.CNI.Plugin)
}

// ProxyConfig is the KubeProxyConfiguration the cluster's kube-proxy runs with: the one in
// the cluster file, else kubeadm's (mode, clusterCIDR = pod CIDR).
func ProxyConfig(c *cluster.Cluster) *kubeproxyconfigv1alpha1.KubeProxyConfiguration {
	if c.Objects.ProxyConfig != nil {
		cfg := c.Objects.ProxyConfig.DeepCopy()
		if cfg.Mode == "" {
			cfg.Mode = kubeproxyconfigv1alpha1.ProxyMode(c.Proxy.Mode)
		}
		return cfg
	}
	return &kubeproxyconfigv1alpha1.KubeProxyConfiguration{
		Mode:        kubeproxyconfigv1alpha1.ProxyMode(c.Proxy.Mode),
		ClusterCIDR: c.PodCIDR.String(),
	}
}

// proxyVersion turns the cluster's "v1.35.0" into the renderers' "1.35".
func proxyVersion(v string) string {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) >= 2 {
		return parts[0] + "." + parts[1]
	}
	return strings.TrimPrefix(v, "v")
}

func nodeObject(c *cluster.Cluster, name string) *corev1.Node {
	for _, n := range c.Objects.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// localAddrs are the node's IPv4 interface addresses but loopback and kube-ipvs0, as
// kube-proxy's network interfacer lists them (CNI addresses such as tunl0 included).
func localAddrs(node *dataplane.Node) []netip.Addr {
	var out []netip.Addr
	for _, a := range node.Net.Addrs {
		ip := a.Prefix.Addr()
		if ip.Is4() && !ip.IsLoopback() && a.Dev != ipvs.DummyDevice {
			out = append(out, ip)
		}
	}
	return out
}

func renderProxy(c *cluster.Cluster, nodeName string, node *dataplane.Node) ([]string, error) {
	cfg := ProxyConfig(c)
	obj := nodeObject(c, nodeName)
	version := proxyVersion(c.Proxy.Version)
	switch c.Proxy.Mode {
	case cluster.ProxyIPTables:
		opts, err := iptablesOptions(c, nodeName)
		if err != nil {
			return nil, err
		}
		rs, err := iptables.RenderRuleset(c.Objects, opts)
		if err != nil {
			return nil, err
		}
		node.IPTables = rs
		return nil, nil
	case cluster.ProxyIPVS:
		opts, err := ipvs.OptionsFromConfig(cfg, obj, nodeName, kubeproxy.IPv4)
		if err != nil {
			return nil, err
		}
		opts.Version = version
		opts.LocalAddresses = localAddrs(node)
		res, err := ipvs.Render(c.Objects, opts)
		if err != nil {
			return nil, err
		}
		node.IPVS, node.IPSets = res.IPVS, res.IPSets
		if err := ipvs.ApplyDummy(node.Net, res, nodeName); err != nil {
			return nil, err
		}
		for k, v := range res.Sysctls {
			node.Sysctls[k] = v
		}
		rs, err := ipvsRuleset(res)
		if err != nil {
			return nil, err
		}
		node.IPTables = rs
		return res.Notes, nil
	case cluster.ProxyNFTables:
		opts, err := nftables.OptionsFromConfig(cfg, obj, nodeName, kubeproxy.IPv4, localAddrs(node), []netip.Prefix{c.ServiceCIDR})
		if err != nil {
			return nil, err
		}
		opts.Version = "v" + version
		rs, err := nftables.RenderRuleset(c.Objects, opts)
		if err != nil {
			return nil, err
		}
		node.NFTables = rs
		node.IPTables, err = kubeletRuleset(false)
		return nil, err
	}
	return nil, fmt.Errorf("unknown mode")
}

// kubeletSetup is what kubelet (and, with proxyCanary, kube-proxy's iptables Monitor) create
// in iptables before any proxier rule: KUBE-IPTABLES-HINT, the canaries and KUBE-FIREWALL
// (pkg/kubelet/kubelet_network_linux.go, v1.35).
func kubeletSetup(proxyCanary bool) string {
	canary := ""
	if proxyCanary {
		canary = ":KUBE-PROXY-CANARY - [0:0]\n"
	}
	return "*mangle\n:KUBE-IPTABLES-HINT - [0:0]\n:KUBE-KUBELET-CANARY - [0:0]\n" + canary + "COMMIT\n" +
		"*filter\n:KUBE-KUBELET-CANARY - [0:0]\n" + canary + ":KUBE-FIREWALL - [0:0]\n" +
		"-I OUTPUT -j KUBE-FIREWALL\n-I INPUT -j KUBE-FIREWALL\n" +
		`-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP` + "\n" +
		"COMMIT\n*nat\n:KUBE-KUBELET-CANARY - [0:0]\n" + canary + "COMMIT\n"
}

func kubeletRuleset(proxyCanary bool) (*nf.Ruleset, error) {
	rs := &nf.Ruleset{Family: nf.IPv4}
	if err := iptablessave.Restore(rs, strings.NewReader(kubeletSetup(proxyCanary)), "kubelet-setup", iptablessave.RestoreOptions{NoFlush: true}); err != nil {
		return nil, fmt.Errorf("kubelet iptables setup: %w", err)
	}
	return rs, nil
}

// ipvsRuleset is the iptables state of an IPVS-mode node: kubelet's chains, the proxier's
// restore input (with --noflush) and its ensured jumps (`iptables -I CHAIN 1`).
func ipvsRuleset(res *ipvs.Result) (*nf.Ruleset, error) {
	rs, err := kubeletRuleset(true)
	if err != nil {
		return nil, err
	}
	if err := iptablessave.Restore(rs, bytes.NewReader(res.Restore), "kube-proxy-ipvs-restore", iptablessave.RestoreOptions{NoFlush: true, Counters: true}); err != nil {
		return nil, fmt.Errorf("applying kube-proxy restore input: %w", err)
	}
	var b strings.Builder
	for _, table := range []string{"mangle", "filter", "nat"} {
		var lines []string
		for _, j := range res.Jumps {
			if j.Table == table {
				lines = append(lines, "-I "+j.Chain+" 1 "+j.Rule)
			}
		}
		if len(lines) > 0 {
			b.WriteString("*" + table + "\n" + strings.Join(lines, "\n") + "\nCOMMIT\n")
		}
	}
	if err := iptablessave.Restore(rs, strings.NewReader(b.String()), "kube-proxy-ipvs-jumps", iptablessave.RestoreOptions{NoFlush: true}); err != nil {
		return nil, fmt.Errorf("applying kube-proxy jumps: %w", err)
	}
	return rs, nil
}

// CRIState is the container runtime's view of node nodeName: one Ready sandbox per pod
// (named network namespace for non-hostNetwork pods) and one Running container per
// container, with IDs from cluster.ContainerID and the kubelet's io.kubernetes.* labels.
func CRIState(c *cluster.Cluster, nodeName string) *cri.State {
	st := &cri.State{}
	for _, p := range c.PodsOn(nodeName) {
		created := p.CreationTimestamp.Time
		sb := &cri.Sandbox{
			ID: cluster.ContainerID(p.Namespace, p.Name, ""), Name: p.Name, Namespace: p.Namespace,
			UID: string(p.UID), State: cri.SandboxReady, CreatedAt: created, IP: p.Status.PodIP,
			Labels: map[string]string{
				crictl.LabelPodName: p.Name, crictl.LabelPodNamespace: p.Namespace, crictl.LabelPodUID: string(p.UID),
				"io.cri-containerd.kind": "sandbox",
			},
		}
		for k, v := range p.Labels {
			sb.Labels[k] = v
		}
		if !p.Spec.HostNetwork {
			sb.NetNS = hostnet.NetNSName(p.Namespace, p.Name)
		}
		_ = st.RunPodSandbox(sb)
		for i, ct := range p.Spec.Containers {
			started := created.Add(time.Duration(i+1) * time.Second)
			imageRef := ""
			for _, cs := range p.Status.ContainerStatuses {
				if cs.Name == ct.Name {
					imageRef = cs.ImageID
					if cs.State.Running != nil && !cs.State.Running.StartedAt.IsZero() {
						started = cs.State.Running.StartedAt.Time
					}
				}
			}
			_ = st.CreateContainer(&cri.Container{
				ID: cluster.ContainerID(p.Namespace, p.Name, ct.Name), PodSandboxID: sb.ID, Name: ct.Name,
				Image: ct.Image, ImageRef: imageRef, State: cri.ContainerRunning, CreatedAt: started,
				Labels: map[string]string{
					crictl.LabelContainer: ct.Name, crictl.LabelPodName: p.Name,
					crictl.LabelPodNamespace: p.Namespace, crictl.LabelPodUID: string(p.UID),
				},
			})
		}
	}
	return st
}
