// Package live imports a running Kubernetes cluster into knet's cluster model
// (github.com/knet-dev/knet/cluster) with client-go v0.37.2: Nodes, Pods, Services and
// EndpointSlices of all namespaces, listed in pages (client-go tools/pager, Limit +
// Continue), kube-proxy's KubeProxyConfiguration from the kube-system/kube-proxy ConfigMap
// (key config.conf, as kubeadm writes it), the Service CIDR from the networking.k8s.io/v1
// ServiceCIDR "kubernetes" (Kubernetes >= 1.33), and the CNI's settings where readable:
// Calico IPPools (crd.projectcalico.org/v1, Calico v3.x), Flannel's kube-flannel-cfg
// net-conf.json and kube-router's DaemonSet flags.
//
// What cannot be read (RBAC forbidden, a resource or CRD absent) becomes a cluster.Note,
// never a failure. FromObjects builds the same model from objects already loaded (for
// example `kubectl get svc,endpointslices,pods,nodes -A -o yaml` dumps).
package live

import (
	"context"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/pager"

	"github.com/knet-dev/knet/cluster"
)

// DefaultPageSize is the list page size (client-go's pager default).
const DefaultPageSize = 500

// Source names the API server in notes (cluster.Note.File).
const Source = "apiserver"

// CalicoIPPools is the Calico IPPool resource of the CRD datastore (Calico v3.x).
var calicoIPPools = schema.GroupVersionResource{Group: "crd.projectcalico.org", Version: "v1", Resource: "ippools"}

// RESTConfig returns the client configuration: the kubeconfig file when given, else
// $KUBECONFIG, else the in-cluster service account, else ~/.kube/config (clientcmd's rules).
// Equivalent to kubectl's `--kubeconfig FILE` resolution.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, nil
	}
	if os.Getenv(clientcmd.RecommendedConfigPathEnvVar) == "" {
		if cfg, err := rest.InClusterConfig(); err == nil {
			return cfg, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules() // $KUBECONFIG, else ~/.kube/config
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("client configuration: %w", err)
	}
	return cfg, nil
}

// Import lists the cluster behind cfg and returns it as a cluster.Cluster (see FromObjects
// for what is inferred) with the notes of what could not be read.
// Equivalent to: `kubectl get nodes,pods,svc,endpointslices -A -o yaml` plus the kube-proxy
// ConfigMap, the ServiceCIDRs and Calico IPPools.
func Import(ctx context.Context, cfg *rest.Config, o Options) (*cluster.Cluster, []cluster.Note, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("import: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("import: %w", err)
	}
	return ImportWith(ctx, kube, dyn, o)
}

// ImportWith is Import with given clients (dyn may be nil: no CRDs are read).
func ImportWith(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, o Options) (*cluster.Cluster, []cluster.Note, error) {
	var notes []cluster.Note
	note := func(format string, args ...any) {
		notes = append(notes, cluster.Note{File: Source, Message: fmt.Sprintf(format, args...)})
	}
	size := o.PageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	var objs cluster.Objects
	pages := map[string]int{}

	list := func(kind string, fn pager.ListPageFunc, each func(runtime.Object) error) error {
		counted := func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			pages[kind]++
			return fn(ctx, opts)
		}
		p := pager.New(counted)
		p.PageSize = size
		err := p.EachListItem(ctx, metav1.ListOptions{}, each)
		switch {
		case err == nil:
			return nil
		case apierrors.IsForbidden(err) || apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err):
			note("%s not listed: %v", kind, err)
			return nil
		default:
			return fmt.Errorf("listing %s: %w", kind, err)
		}
	}

	if err := list("nodes", func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return kube.CoreV1().Nodes().List(ctx, opts)
	}, func(obj runtime.Object) error {
		n := obj.(*corev1.Node).DeepCopy()
		n.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Node"}
		objs.Nodes = append(objs.Nodes, n)
		return nil
	}); err != nil {
		return nil, nil, err
	}
	if err := list("pods", func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return kube.CoreV1().Pods(metav1.NamespaceAll).List(ctx, opts)
	}, func(obj runtime.Object) error {
		p := obj.(*corev1.Pod).DeepCopy()
		p.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}
		objs.Pods = append(objs.Pods, p)
		return nil
	}); err != nil {
		return nil, nil, err
	}
	if err := list("services", func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return kube.CoreV1().Services(metav1.NamespaceAll).List(ctx, opts)
	}, func(obj runtime.Object) error {
		s := obj.(*corev1.Service).DeepCopy()
		s.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}
		objs.Services = append(objs.Services, s)
		return nil
	}); err != nil {
		return nil, nil, err
	}
	if err := list("endpointslices", func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return kube.DiscoveryV1().EndpointSlices(metav1.NamespaceAll).List(ctx, opts)
	}, func(obj runtime.Object) error {
		es := obj.(*discoveryv1.EndpointSlice).DeepCopy()
		es.TypeMeta = metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"}
		objs.EndpointSlices = append(objs.EndpointSlices, es)
		return nil
	}); err != nil {
		return nil, nil, err
	}
	for _, kind := range []string{"nodes", "pods", "services", "endpointslices"} {
		if pages[kind] > 1 {
			note("%s listed in %d pages of %d", kind, pages[kind], size)
		}
	}

	var ex extras
	if err := readProxyConfig(ctx, kube, &objs, &ex, note); err != nil {
		return nil, nil, err
	}
	if err := readServiceCIDRs(ctx, kube, &ex, note); err != nil {
		return nil, nil, err
	}
	if err := readCNI(ctx, kube, dyn, &ex, note); err != nil {
		return nil, nil, err
	}
	c, more, err := build(objs, o, ex, Source)
	if err != nil {
		return nil, nil, err
	}
	notes = append(notes, more...)
	if c, err = Parse(c); err != nil {
		return nil, nil, err
	}
	c.Notes = append(c.Notes, notes...)
	return c, notes, nil
}
