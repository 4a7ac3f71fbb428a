package live

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/knet-dev/knet/cluster"
)

const proxyConf = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: ipvs
clusterCIDR: 10.244.0.0/16
ipvs:
  scheduler: rr
`

// fixture is a 6-node cluster with n pods (200 per node at most), a Service with a slice,
// the kubernetes Service, the kube-proxy ConfigMap and DaemonSet and the ServiceCIDR.
func fixture(pods int) []runtime.Object {
	var objs []runtime.Object
	for i := range 6 {
		n := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%d", i),
				Labels: map[string]string{corev1.LabelTopologyZone: fmt.Sprintf("zone-%c", 'a'+i%2)}},
			Spec: corev1.NodeSpec{PodCIDR: fmt.Sprintf("10.244.%d.0/24", i)},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeHostName, Address: fmt.Sprintf("node-%d", i)},
				{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("172.31.%d.%d", i/2, 10+i)},
			}},
		}
		if i == 0 {
			n.Labels[labelControlPlane] = ""
		}
		objs = append(objs, n)
	}
	for i := range pods {
		node := i % 6
		objs = append(objs, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: fmt.Sprintf("web-%04d", i), Labels: map[string]string{"app": "web"}},
			Spec:       corev1.PodSpec{NodeName: fmt.Sprintf("node-%d", node), Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("10.244.%d.%d", node, 2+i/6),
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
		})
	}
	objs = append(objs,
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kubernetes"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.1", Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP}}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "web"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.96.10.20", Selector: map[string]string{"app": "web"},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-proxy"},
			Data: map[string]string{ProxyConfigMapKey: proxyConf}},
		&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-proxy"},
			Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "kube-proxy", Image: "registry.k8s.io/kube-proxy:v1.36.1"}}}}}},
		&networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes"},
			Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.96.0.0/12"}}},
	)
	port, proto := int32(80), corev1.ProtocolTCP
	ready := true
	objs = append(objs, &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "web-abcde",
			Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: &port, Protocol: &proto}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.244.0.2"}, NodeName: ptr("node-0"),
			Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	})
	return objs
}

func ptr[T any](v T) *T { return &v }

var podsGVR = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// pageReactor makes the fake clientset page pod lists as the API server does (Limit +
// Continue, the continue token here being the offset) and records each request's options.
func pageReactor(cs *fake.Clientset, seen *[]metav1.ListOptions) k8stesting.ReactionFunc {
	return func(a k8stesting.Action) (bool, runtime.Object, error) {
		la := a.(k8stesting.ListActionImpl)
		*seen = append(*seen, la.ListOptions)
		obj, err := cs.Tracker().List(podsGVR, corev1.SchemeGroupVersion.WithKind("Pod"), la.Namespace)
		if err != nil {
			return true, nil, err
		}
		all := obj.(*corev1.PodList)
		sort.Slice(all.Items, func(i, j int) bool { return all.Items[i].Name < all.Items[j].Name })
		start := 0
		if la.ListOptions.Continue != "" {
			start, _ = strconv.Atoi(la.ListOptions.Continue)
		}
		end := len(all.Items)
		out := &corev1.PodList{}
		if l := int(la.ListOptions.Limit); l > 0 && start+l < end {
			end = start + l
			out.Continue = strconv.Itoa(end)
		}
		out.Items = all.Items[start:end]
		return true, out, nil
	}
}

func ipPool(name, cidr, ipip, vxlan string, blockSize int64) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
		"metadata": map[string]any{"name": name},
		"spec":     map[string]any{"cidr": cidr, "ipipMode": ipip, "vxlanMode": vxlan, "blockSize": blockSize, "natOutgoing": true},
	}}
	return u
}

func dynClient(objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{calicoIPPools: "IPPoolList"}, objs...)
}

func TestImportPagingAndConfig(t *testing.T) {
	cs := fake.NewClientset(fixture(1200)...)
	var seen []metav1.ListOptions
	cs.PrependReactor("list", "pods", pageReactor(cs, &seen))
	dyn := dynClient(ipPool("default-ipv4-ippool", "10.244.0.0/16", "CrossSubnet", "Never", 24),
		ipPool("z-disabled", "10.250.0.0/16", "Always", "Never", 26))

	c, notes, err := ImportWith(context.Background(), cs, dyn, Options{Name: "fake", PageSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	var gotPages []string
	for _, o := range seen {
		gotPages = append(gotPages, fmt.Sprintf("limit=%d continue=%q", o.Limit, o.Continue))
	}
	wantPages := []string{`limit=500 continue=""`, `limit=500 continue="500"`, `limit=500 continue="1000"`}
	if d := cmp.Diff(wantPages, gotPages); d != "" {
		t.Errorf("pod list requests (-want +got):\n%s", d)
	}
	type summary struct {
		Pods, Nodes, Services, Slices int
		PodCIDR, ServiceCIDR          string
		CNI                           cluster.CNI
		Proxy                         cluster.Proxy
		Scheduler                     string
		ControlPlane, Zone1           string
	}
	got := summary{
		Pods: len(c.Objects.Pods), Nodes: len(c.Nodes), Services: len(c.Objects.Services), Slices: len(c.Objects.EndpointSlices),
		PodCIDR: c.PodCIDR.String(), ServiceCIDR: c.ServiceCIDR.String(), CNI: c.CNI, Proxy: c.Proxy,
		ControlPlane: c.Nodes[0].Role, Zone1: c.Nodes[1].Zone,
	}
	if c.Objects.ProxyConfig != nil {
		got.Scheduler = c.Objects.ProxyConfig.IPVS.Scheduler
	}
	want := summary{
		Pods: 1200, Nodes: 6, Services: 2,
		// web's slice as given; kubernetes' derived by the cluster file loader.
		Slices:  2,
		PodCIDR: "10.244.0.0/16", ServiceCIDR: "10.96.0.0/12",
		CNI:   cluster.CNI{Plugin: cluster.CNICalico, Mode: cluster.CalicoIPIPCrossSubnet, Version: cluster.DefaultCalicoVersion, BlockSize: 24, MTU: cluster.DefaultMTU},
		Proxy: cluster.Proxy{Mode: cluster.ProxyIPVS, Version: "v1.36.1"}, Scheduler: "rr",
		ControlPlane: cluster.RoleControlPlane, Zone1: "zone-b",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("imported cluster (-want +got):\n%s", d)
	}
	if n := c.NodeByName("node-3"); n == nil || n.PodCIDR != netip.MustParsePrefix("10.244.3.0/24") || n.IP != netip.MustParseAddr("172.31.1.13") {
		t.Errorf("node-3 = %+v, want IP 172.31.1.13, podCIDR 10.244.3.0/24", n)
	}
	wantNotes := []string{
		"apiserver:0: calico-node version not read (daemonset calico-node in calico-system, kube-system), the default applies",
		"apiserver:0: pods listed in 3 pages of 500",
	}
	if d := cmp.Diff(wantNotes, noteStrings(notes), cmpContains()); d != "" {
		t.Errorf("notes (-want +got):\n%s", d)
	}
}

// cmpContains compares a want list of notes with got by "every want is in got".
func cmpContains() cmp.Option {
	return cmp.Comparer(func(a, b []string) bool {
		want, got := a, b
		if len(a) > len(b) {
			want, got = b, a
		}
		for _, w := range want {
			found := false
			for _, g := range got {
				found = found || g == w
			}
			if !found {
				return false
			}
		}
		return true
	})
}

func noteStrings(ns []cluster.Note) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.String())
	}
	return out
}

func TestImportForbiddenAndAbsentBecomeNotes(t *testing.T) {
	cs := fake.NewClientset(fixture(12)...)
	forbid := func(res string) k8stesting.ReactionFunc {
		return func(a k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: res}, "",
				fmt.Errorf("User \"system:serviceaccount:default:knet\" cannot %s resource %q", a.GetVerb(), res))
		}
	}
	cs.PrependReactor("get", "configmaps", forbid("configmaps"))
	cs.PrependReactor("list", "endpointslices", forbid("endpointslices"))
	cs.PrependReactor("get", "servicecidrs", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(schema.GroupResource{Group: "networking.k8s.io", Resource: "servicecidrs"}, "kubernetes")
	})
	dyn := dynClient()
	dyn.PrependReactor("list", "ippools", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(calicoIPPools.GroupResource(), "")
	})
	c, notes, err := ImportWith(context.Background(), cs, dyn, Options{CNI: cluster.CNI{Plugin: cluster.CNIFlannel}})
	if err != nil {
		t.Fatal(err)
	}
	got := noteStrings(notes)
	for _, want := range []string{
		"endpointslices not listed: endpointslices is forbidden",
		"kube-proxy configuration not read: configmaps is forbidden",
		"servicecidr kubernetes not read:",
		"calico ippools (ippools.crd.projectcalico.org) not read:",
		"service CIDR 10.96.0.0/20 inferred",
		"kube-proxy mode not set",
	} {
		if !anyPrefix(got, "apiserver:0: "+want) {
			t.Errorf("no note starting %q in:\n%s", want, strings.Join(got, "\n"))
		}
	}
	if c.Proxy.Mode != cluster.ProxyIPTables || c.CNI.Plugin != cluster.CNIFlannel || c.CNI.BlockSize != 24 {
		t.Errorf("proxy %+v cni %+v, want iptables (kube-proxy default), flannel /24", c.Proxy, c.CNI)
	}
}

func anyPrefix(ss []string, p string) bool {
	for _, s := range ss {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func TestCalicoMode(t *testing.T) {
	for _, tc := range []struct{ ipip, vxlan, want, err string }{
		{"Always", "", cluster.CalicoIPIPAlways, ""},
		{"CrossSubnet", "Never", cluster.CalicoIPIPCrossSubnet, ""},
		{"Never", "Always", cluster.CalicoVXLANAlways, ""},
		{"", "CrossSubnet", cluster.CalicoVXLANCrossSubnet, ""},
		{"", "", cluster.CalicoNever, ""},
		{"Always", "Always", "", "both enabled"},
		{"Sometimes", "", "", `ipipMode "Sometimes"`},
	} {
		got, err := calicoMode(tc.ipip, tc.vxlan)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("calicoMode(%q, %q) error %v, want %q", tc.ipip, tc.vxlan, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("calicoMode(%q, %q) = %q, %v; want %q", tc.ipip, tc.vxlan, got, err, tc.want)
		}
	}
}

// TestWriteClusterRoundTrip: the written file loads back with cluster.LoadCluster.
func TestWriteClusterRoundTrip(t *testing.T) {
	cs := fake.NewClientset(fixture(30)...)
	c, _, err := ImportWith(context.Background(), cs, dynClient(ipPool("p", "10.244.0.0/16", "Always", "Never", 24)), Options{Name: "rt"})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteCluster(&b, c); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(f, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	back, err := cluster.LoadCluster(f)
	if err != nil {
		t.Fatalf("LoadCluster of the written file: %v", err)
	}
	sum := func(c *cluster.Cluster) string {
		return fmt.Sprintf("%s nodes=%d pods=%d svcs=%d slices=%d pod=%s svc=%s cni=%+v proxy=%+v cfg=%v",
			c.Name, len(c.Nodes), len(c.Objects.Pods), len(c.Objects.Services), len(c.Objects.EndpointSlices),
			c.PodCIDR, c.ServiceCIDR, c.CNI, c.Proxy, c.Objects.ProxyConfig != nil)
	}
	if d := cmp.Diff(sum(c), sum(back)); d != "" {
		t.Errorf("round trip (-imported +loaded):\n%s", d)
	}
}

func TestFromObjectsDump(t *testing.T) {
	objs, notes, err := cluster.LoadObjects("testdata/dump.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, more, err := FromObjects(objs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("nodes=%d pods=%d pod=%s svc=%s cni=%s/%s/%s proxy=%s/%s",
		len(c.Nodes), len(c.Objects.Pods), c.PodCIDR, c.ServiceCIDR, c.CNI.Plugin, c.CNI.Mode, c.CNI.Version, c.Proxy.Mode, c.Proxy.Version)
	want := "nodes=2 pods=3 pod=10.244.0.0/23 svc=10.96.0.0/28 cni=calico/VXLANCrossSubnet/v3.30.2 proxy=iptables/v1.35.0"
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("cluster from dump (-want +got):\n%s\nnotes: %v %v", d, notes, more)
	}
}

func TestImageTag(t *testing.T) {
	for in, want := range map[string]string{
		"registry.k8s.io/kube-proxy:v1.35.0":           "v1.35.0",
		"localhost:5000/kube-proxy":                    "",
		"docker.io/calico/node:v3.30.2@sha256:abcdef0": "v3.30.2",
		"nginx": "",
	} {
		if got := imageTag(in); got != want {
			t.Errorf("imageTag(%q) = %q, want %q", in, got, want)
		}
	}
}

func decodeDump(data []byte) (cluster.Objects, []cluster.Note, error) {
	return cluster.DecodeObjects(bytes.NewReader(data), "fuzz.yaml")
}
