package livetest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.etcd.io/etcd/server/v3/embed"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	kubeapiservertesting "k8s.io/kubernetes/cmd/kube-apiserver/app/testing"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/cluster/live"
)

const (
	nodes       = 6
	podsPerNode = 200 // 1,200 pods: three pages of 500
	serviceCIDR = "10.96.0.0/12"
	proxyConf   = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clusterCIDR: 10.244.0.0/16
`
)

// freeURL is http://127.0.0.1:<a free port>.
func freeURL(t *testing.T) url.URL {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return url.URL{Scheme: "http", Host: l.Addr().String()}
}

// startEtcd runs an embedded etcd on loopback with its data in t.TempDir().
func startEtcd(t *testing.T) string {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Dir = t.TempDir()
	cfg.LogLevel = "error"
	client, peer := freeURL(t), freeURL(t)
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("starting etcd: %v", err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		t.Fatal("etcd not ready after 60s")
	}
	return client.String()
}

// startAPIServer runs kube-apiserver v1.37.2 in process against etcdURL.
func startAPIServer(t *testing.T, etcdURL string) kubeapiservertesting.TestServer {
	t.Helper()
	storage := storagebackend.NewDefaultConfig(path.Join("knet-livetest", "registry"), nil)
	storage.Transport.ServerList = []string{etcdURL}
	srv, err := kubeapiservertesting.StartTestServer(t, nil, []string{
		"--service-cluster-ip-range=" + serviceCIDR,
		"--endpoint-reconciler-type=none",
		"--advertise-address=127.0.0.1",
	}, storage)
	if err != nil {
		t.Fatalf("starting kube-apiserver: %v", err)
	}
	t.Cleanup(srv.TearDownFn)
	return srv
}

// parallel runs fn(i) for i in [0, n) on 16 workers and returns the first error.
func parallel(n int, fn func(i int) error) error {
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	next := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

func populate(ctx context.Context, t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	for _, ns := range []string{"apps", "kube-system"} {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("namespace %s: %v", ns, err)
		}
		// The ServiceAccount admission plugin wants the namespace's default account, which the
		// (absent) controller manager would create.
		_, err = cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("serviceaccount %s/default: %v", ns, err)
		}
	}
	for i := range nodes {
		n := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%d", i),
				Labels: map[string]string{corev1.LabelTopologyZone: fmt.Sprintf("zone-%c", 'a'+i%2)}},
			Spec: corev1.NodeSpec{PodCIDR: fmt.Sprintf("10.244.%d.0/24", i), PodCIDRs: []string{fmt.Sprintf("10.244.%d.0/24", i)}},
		}
		if i == 0 {
			n.Labels["node-role.kubernetes.io/control-plane"] = ""
		}
		got, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("node: %v", err)
		}
		got.Status.Addresses = []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("172.31.%d.%d", i/2, 10+i)},
			{Type: corev1.NodeHostName, Address: n.Name},
		}
		if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("node status: %v", err)
		}
	}
	no := false
	err := parallel(nodes*podsPerNode, func(i int) error {
		node := i % nodes
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: fmt.Sprintf("web-%04d", i), Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{NodeName: fmt.Sprintf("node-%d", node), AutomountServiceAccountToken: &no,
				Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}},
		}
		got, err := cs.CoreV1().Pods("apps").Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("pod %s: %w", p.Name, err)
		}
		ip := fmt.Sprintf("10.244.%d.%d", node, 2+i/nodes)
		got.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			HostIP:     fmt.Sprintf("172.31.%d.%d", node/2, 10+node),
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
		if _, err := cs.CoreV1().Pods("apps").UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("pod %s status: %w", p.Name, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := cs.CoreV1().Services("apps").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("service: %v", err)
	}
	port, proto, ready := int32(80), corev1.ProtocolTCP, true
	http := "http"
	var eps []discoveryv1.Endpoint
	for i := range 10 {
		node := fmt.Sprintf("node-%d", i%nodes)
		eps = append(eps, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.244.%d.%d", i%nodes, 2+i/nodes)},
			NodeName: &node, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	if _, err := cs.DiscoveryV1().EndpointSlices("apps").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-abcde", Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &http, Port: &port, Protocol: &proto}},
		Endpoints:   eps,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("endpointslice: %v", err)
	}
	if _, err := cs.CoreV1().ConfigMaps("kube-system").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy"},
		Data:       map[string]string{live.ProxyConfigMapKey: proxyConf},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("configmap: %v", err)
	}
	// The API server's own reconciler creates default/kubernetes.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := cs.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("default/kubernetes Service not created by the API server within 60s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// installCalicoPool registers Calico's IPPool CRD (crd.projectcalico.org/v1, schema trimmed to
// the fields knet reads, the rest preserved) and creates the default IPv4 pool.
func installCalicoPool(ctx context.Context, t *testing.T, cfg *rest.Config) {
	t.Helper()
	ext, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	preserve := true
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "ippools.crd.projectcalico.org"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "crd.projectcalico.org", Scope: apiextensionsv1.ClusterScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "ippools", Singular: "ippool", Kind: "IPPool", ListKind: "IPPoolList"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: &preserve}}}},
		},
	}
	if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatalf("ippools CRD: %v", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Group: "crd.projectcalico.org", Version: "v1", Resource: "ippools"}
	pool := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
		"metadata": map[string]any{"name": "default-ipv4-ippool"},
		"spec": map[string]any{"cidr": "10.244.0.0/16", "ipipMode": "Never", "vxlanMode": "CrossSubnet",
			"blockSize": int64(24), "natOutgoing": true, "nodeSelector": "all()"},
	}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		// The CRD serves once it is Established.
		_, err := dyn.Resource(gvr).Create(ctx, pool, metav1.CreateOptions{})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ippool: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestImportFromRealAPIServer imports a cluster of 6 nodes and 1,200 pods from a real
// kube-apiserver (k8s.io/kubernetes v1.37.2 in process, embedded etcd) with pages of 500.
func TestImportFromRealAPIServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	srv := startAPIServer(t, startEtcd(t))
	cs, err := kubernetes.NewForConfig(srv.ClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	populate(ctx, t, cs)
	installCalicoPool(ctx, t, srv.ClientConfig)
	t.Logf("populated in %v", time.Since(start))

	start = time.Now()
	c, notes, err := live.Import(ctx, srv.ClientConfig, live.Options{Name: "live", PageSize: 500})
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	t.Logf("imported in %v", time.Since(start))
	for _, n := range notes {
		t.Logf("note: %s", n)
	}

	type summary struct {
		Nodes, Pods, Services int
		WebSliceEndpoints     int
		PodCIDR, ServiceCIDR  string
		Proxy                 cluster.ProxyMode
		ProxyClusterCIDR      string
		Node3IP, Node3PodCIDR string
		Node0Role, Node1Zone  string
		PodsPagedNote         bool
		CNI                   cluster.CNI
	}
	got := summary{Nodes: len(c.Nodes), Pods: len(c.Objects.Pods), Services: len(c.Objects.Services),
		PodCIDR: c.PodCIDR.String(), ServiceCIDR: c.ServiceCIDR.String(), Proxy: c.Proxy.Mode,
		Node0Role: c.Nodes[0].Role, Node1Zone: c.Nodes[1].Zone, CNI: c.CNI}
	if c.Objects.ProxyConfig != nil {
		got.ProxyClusterCIDR = c.Objects.ProxyConfig.ClusterCIDR
	}
	if n := c.NodeByName("node-3"); n != nil {
		got.Node3IP, got.Node3PodCIDR = n.IP.String(), n.PodCIDR.String()
	}
	for _, es := range c.Objects.EndpointSlices {
		if es.Namespace == "apps" && es.Labels[discoveryv1.LabelServiceName] == "web" {
			got.WebSliceEndpoints += len(es.Endpoints)
		}
	}
	for _, n := range notes {
		got.PodsPagedNote = got.PodsPagedNote || n.Message == "pods listed in 3 pages of 500"
	}
	want := summary{Nodes: nodes, Pods: nodes * podsPerNode, Services: 2, WebSliceEndpoints: 10,
		PodCIDR: "10.244.0.0/16", ServiceCIDR: serviceCIDR, Proxy: cluster.ProxyNFTables,
		ProxyClusterCIDR: "10.244.0.0/16", Node3IP: "172.31.1.13", Node3PodCIDR: "10.244.3.0/24",
		Node0Role: cluster.RoleControlPlane, Node1Zone: "zone-b", PodsPagedNote: true,
		CNI: cluster.CNI{Plugin: cluster.CNICalico, Mode: cluster.CalicoVXLANCrossSubnet, Version: cluster.DefaultCalicoVersion,
			BlockSize: 24, MTU: cluster.DefaultMTU}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("imported cluster (-want +got):\n%s", d)
	}
	kube := netip.MustParsePrefix(serviceCIDR).Addr().Next()
	found := false
	for _, s := range c.Objects.Services {
		found = found || (s.Namespace == "default" && s.Name == "kubernetes" && s.Spec.ClusterIP == kube.String())
	}
	if !found {
		t.Errorf("default/kubernetes with ClusterIP %s not imported", kube)
	}
}
