package live

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/knet-dev/knet/cluster"
)

// extras is what the API server says beyond the four object kinds.
type extras struct {
	// serviceCIDRs are the networking.k8s.io/v1 ServiceCIDR "kubernetes" ranges.
	serviceCIDRs []netip.Prefix
	// cni is the pod network read from its own configuration (Plugin "" when none).
	cni cluster.CNI
	// cniPodCIDR is the pod network's cluster CIDR (Calico pool, Flannel Network).
	cniPodCIDR netip.Prefix
	// proxyVersion is the kube-proxy DaemonSet's image tag.
	proxyVersion string
}

// notFunc records a note.
type noteFunc func(format string, args ...any)

// unreadable reports whether err means "absent or not allowed" (a note, not a failure).
func unreadable(err error) bool {
	return apierrors.IsNotFound(err) || apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) ||
		apierrors.IsMethodNotSupported(err)
}

// ProxyConfigMapKey is the key of kube-system/kube-proxy holding the KubeProxyConfiguration
// (kubeadm's layout).
const ProxyConfigMapKey = "config.conf"

// readProxyConfig reads kube-system/kube-proxy config.conf into objs.ProxyConfig and the
// kube-proxy DaemonSet's image tag into ex.proxyVersion.
func readProxyConfig(ctx context.Context, kube kubernetes.Interface, objs *cluster.Objects, ex *extras, note noteFunc) error {
	cm, err := kube.CoreV1().ConfigMaps("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
	switch {
	case err == nil:
		data, ok := cm.Data[ProxyConfigMapKey]
		if !ok {
			note("configmap kube-system/kube-proxy has no key %s", ProxyConfigMapKey)
			break
		}
		src := "configmap kube-system/kube-proxy " + ProxyConfigMapKey
		got, n, err := cluster.DecodeObjects(strings.NewReader(data), src)
		if err != nil {
			return fmt.Errorf("kube-proxy configuration: %w", err)
		}
		for _, x := range n {
			note("%s", x.String())
		}
		if got.ProxyConfig == nil {
			note("%s holds no KubeProxyConfiguration", src)
			break
		}
		objs.ProxyConfig = got.ProxyConfig
	case unreadable(err):
		note("kube-proxy configuration not read: %v", err)
	default:
		return fmt.Errorf("kube-proxy configuration: %w", err)
	}
	ds, err := kube.AppsV1().DaemonSets("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
	switch {
	case err == nil:
		for _, c := range ds.Spec.Template.Spec.Containers {
			if c.Name == "kube-proxy" {
				ex.proxyVersion = imageTag(c.Image)
			}
		}
	case unreadable(err):
		note("kube-proxy version not read from daemonset kube-system/kube-proxy: %v", err)
	default:
		return fmt.Errorf("kube-proxy daemonset: %w", err)
	}
	return nil
}

// imageTag is the tag of an image reference ("" when none): registry.k8s.io/kube-proxy:v1.35.0
// → v1.35.0.
func imageTag(image string) string {
	image, _, _ = strings.Cut(image, "@")
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return ""
	}
	return image[i+1:]
}

// readServiceCIDRs reads the ServiceCIDR "kubernetes" the API server keeps for its
// --service-cluster-ip-range (networking.k8s.io/v1, Kubernetes >= 1.33).
func readServiceCIDRs(ctx context.Context, kube kubernetes.Interface, ex *extras, note noteFunc) error {
	sc, err := kube.NetworkingV1().ServiceCIDRs().Get(ctx, "kubernetes", metav1.GetOptions{})
	switch {
	case err == nil:
		for _, s := range sc.Spec.CIDRs {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				note("servicecidr kubernetes: %v", err)
				continue
			}
			ex.serviceCIDRs = append(ex.serviceCIDRs, p)
		}
	case unreadable(err):
		note("servicecidr kubernetes not read: %v", err)
	default:
		return fmt.Errorf("servicecidr: %w", err)
	}
	return nil
}

// readCNI finds the pod network: Calico IPPools, else Flannel's net-conf.json, else the
// kube-router DaemonSet.
func readCNI(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, ex *extras, note noteFunc) error {
	if dyn != nil {
		found, err := readCalico(ctx, kube, dyn, ex, note)
		if err != nil || found {
			return err
		}
	}
	if found, err := readFlannel(ctx, kube, ex, note); err != nil || found {
		return err
	}
	found, err := readKubeRouter(ctx, kube, ex, note)
	if err != nil {
		return err
	}
	if !found {
		note("no pod network configuration found (Calico IPPools, Flannel kube-flannel-cfg, kube-router daemonset)")
	}
	return nil
}

// readCalico maps the enabled IPv4 Calico IPPools onto ex.cni (the first by name when several).
func readCalico(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, ex *extras, note noteFunc) (bool, error) {
	l, err := dyn.Resource(calicoIPPools).List(ctx, metav1.ListOptions{})
	switch {
	case err == nil:
	case unreadable(err):
		note("calico ippools (%s) not read: %v", calicoIPPools.GroupResource(), err)
		return false, nil
	default:
		return false, fmt.Errorf("calico ippools: %w", err)
	}
	items := l.Items
	sort.Slice(items, func(i, j int) bool { return items[i].GetName() < items[j].GetName() })
	var chosen []calicoPool
	for _, it := range items {
		p, err := parseCalicoPool(&it)
		if err != nil {
			note("ippool %s: %v", it.GetName(), err)
			continue
		}
		if p.disabled || !p.cidr.Addr().Is4() {
			continue
		}
		chosen = append(chosen, p)
	}
	if len(chosen) == 0 {
		if len(items) > 0 {
			note("calico: no enabled IPv4 IPPool among %d", len(items))
		}
		return false, nil
	}
	if len(chosen) > 1 {
		note("calico: %d enabled IPv4 IPPools, using %s (%s)", len(chosen), chosen[0].name, chosen[0].cidr)
	}
	p := chosen[0]
	ex.cni = cluster.CNI{Plugin: cluster.CNICalico, Mode: p.mode, BlockSize: p.blockSize}
	ex.cniPodCIDR = p.cidr
	ex.cni.Version = daemonSetTag(ctx, kube, "calico-node", note, "calico-system", "kube-system")
	return true, nil
}

type calicoPool struct {
	name      string
	cidr      netip.Prefix
	mode      string
	blockSize int
	disabled  bool
}

// parseCalicoPool reads an IPPool's spec (cidr, ipipMode, vxlanMode, blockSize, disabled).
// Calico's defaults: blockSize 26 (IPv4), modes Never.
func parseCalicoPool(u *unstructured.Unstructured) (calicoPool, error) {
	p := calicoPool{name: u.GetName(), blockSize: cluster.DefaultCalicoBlockSize}
	cidr, _, _ := unstructured.NestedString(u.Object, "spec", "cidr")
	var err error
	if p.cidr, err = netip.ParsePrefix(cidr); err != nil {
		return p, fmt.Errorf("spec.cidr: %w", err)
	}
	if bs, ok, _ := unstructured.NestedInt64(u.Object, "spec", "blockSize"); ok {
		p.blockSize = int(bs)
	}
	p.disabled, _, _ = unstructured.NestedBool(u.Object, "spec", "disabled")
	ipip, _, _ := unstructured.NestedString(u.Object, "spec", "ipipMode")
	vxlan, _, _ := unstructured.NestedString(u.Object, "spec", "vxlanMode")
	p.mode, err = calicoMode(ipip, vxlan)
	return p, err
}

// calicoMode maps an IPPool's ipipMode and vxlanMode onto a cluster.CNI Calico mode.
func calicoMode(ipip, vxlan string) (string, error) {
	norm := func(field, v string) (string, error) {
		switch v {
		case "", "Never":
			return "Never", nil
		case "Always", "CrossSubnet":
			return v, nil
		}
		return "", fmt.Errorf("%s %q: want Always, CrossSubnet or Never", field, v)
	}
	i, err := norm("ipipMode", ipip)
	if err != nil {
		return "", err
	}
	v, err := norm("vxlanMode", vxlan)
	if err != nil {
		return "", err
	}
	switch {
	case i != "Never" && v != "Never":
		return "", fmt.Errorf("ipipMode %s and vxlanMode %s are both enabled", i, v)
	case i == "Always":
		return cluster.CalicoIPIPAlways, nil
	case i == "CrossSubnet":
		return cluster.CalicoIPIPCrossSubnet, nil
	case v == "Always":
		return cluster.CalicoVXLANAlways, nil
	case v == "CrossSubnet":
		return cluster.CalicoVXLANCrossSubnet, nil
	}
	return cluster.CalicoNever, nil
}

// daemonSetTag is the image tag of the DaemonSet's container of the same name, in the first
// namespace holding it ("" and a note when none is readable).
func daemonSetTag(ctx context.Context, kube kubernetes.Interface, name string, note noteFunc, namespaces ...string) string {
	for _, ns := range namespaces {
		ds, err := kube.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			continue
		}
		for _, c := range ds.Spec.Template.Spec.Containers {
			if c.Name == name {
				return imageTag(c.Image)
			}
		}
	}
	note("%s version not read (daemonset %s in %s), the default applies", name, name, strings.Join(namespaces, ", "))
	return ""
}

// flannelNetConf is Flannel's net-conf.json.
type flannelNetConf struct {
	Network   string `json:"Network"`
	SubnetLen int    `json:"SubnetLen"`
	Backend   struct {
		Type string `json:"Type"`
	} `json:"Backend"`
}

// readFlannel reads the kube-flannel-cfg ConfigMap (namespace kube-flannel, older manifests
// kube-system), key net-conf.json.
func readFlannel(ctx context.Context, kube kubernetes.Interface, ex *extras, note noteFunc) (bool, error) {
	for _, ns := range []string{"kube-flannel", "kube-system"} {
		cm, err := kube.CoreV1().ConfigMaps(ns).Get(ctx, "kube-flannel-cfg", metav1.GetOptions{})
		if unreadable(err) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("flannel configuration: %w", err)
		}
		src := "configmap " + ns + "/kube-flannel-cfg net-conf.json"
		var nc flannelNetConf
		if err := json.Unmarshal([]byte(cm.Data["net-conf.json"]), &nc); err != nil {
			note("%s: %v", src, err)
			return false, nil
		}
		ex.cni = cluster.CNI{Plugin: cluster.CNIFlannel, BlockSize: nc.SubnetLen}
		switch nc.Backend.Type {
		case cluster.FlannelVXLAN, cluster.FlannelHostGW:
			ex.cni.Mode = nc.Backend.Type
		default:
			note("%s: backend %q is not one knet renders (vxlan, host-gw); using vxlan", src, nc.Backend.Type)
			ex.cni.Mode = cluster.FlannelVXLAN
		}
		if p, err := netip.ParsePrefix(nc.Network); err == nil {
			ex.cniPodCIDR = p
		} else {
			note("%s: Network: %v", src, err)
		}
		ex.cni.Version = daemonSetTag(ctx, kube, "kube-flannel", note, ns)
		return true, nil
	}
	return false, nil
}

// readKubeRouter reads the kube-router DaemonSet's flags: --enable-overlay (default true)
// and --overlay-type (subnet | full, default subnet), kube-router v2.
func readKubeRouter(ctx context.Context, kube kubernetes.Interface, ex *extras, note noteFunc) (bool, error) {
	ds, err := kube.AppsV1().DaemonSets("kube-system").Get(ctx, "kube-router", metav1.GetOptions{})
	if unreadable(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("kube-router daemonset: %w", err)
	}
	overlay, typ := true, "subnet"
	for _, c := range ds.Spec.Template.Spec.Containers {
		if c.Name != "kube-router" {
			continue
		}
		ex.cni.Version = imageTag(c.Image)
		for _, a := range append(append([]string{}, c.Command...), c.Args...) {
			k, v, _ := strings.Cut(a, "=")
			switch k {
			case "--enable-overlay":
				overlay = v != "false"
			case "--overlay-type":
				typ = v
			}
		}
	}
	ex.cni.Plugin = cluster.CNIKubeRouter
	switch {
	case !overlay:
		ex.cni.Mode = cluster.KubeRouterNoOverlay
	case typ == "full":
		ex.cni.Mode = cluster.KubeRouterOverlayFull
	default:
		ex.cni.Mode = cluster.KubeRouterOverlaySubnet
	}
	return true, nil
}
