package iptables

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/render/kubeproxy"
)

// scaleObjects builds nSvc ClusterIP Services with nEp ready endpoints each, every tenth a
// NodePort, spread over 100 nodes (this node is node-0).
func scaleObjects(nSvc, nEp int) cluster.Objects {
	var objs cluster.Objects
	tcp := corev1.ProtocolTCP
	for i := range nSvc {
		ns := fmt.Sprintf("ns%d", i%50)
		name := fmt.Sprintf("svc%d", i)
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{
				Type:      corev1.ServiceTypeClusterIP,
				ClusterIP: fmt.Sprintf("172.30.%d.%d", i/256, i%256),
				Ports:     []corev1.ServicePort{{Name: "http", Port: 80, Protocol: tcp}},
			},
		}
		if i%10 == 0 {
			svc.Spec.Type = corev1.ServiceTypeNodePort
			svc.Spec.Ports[0].NodePort = int32(30000 + i%2768)
			svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
		}
		objs.Services = append(objs.Services, svc)
		pname, port := "http", int32(8080)
		es := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name + "-abcde", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &pname, Port: &port, Protocol: &tcp}},
		}
		for j := range nEp {
			k := i*nEp + j
			node := fmt.Sprintf("node-%d", k%100)
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
				Addresses: []string{fmt.Sprintf("10.%d.%d.%d", 1+k/65536, (k/256)%256, k%256)},
				NodeName:  &node,
			})
		}
		objs.EndpointSlices = append(objs.EndpointSlices, es)
	}
	return objs
}

func benchOptions() Options {
	o := DefaultOptions("node-0", netip.MustParseAddr("192.168.0.2"))
	o.LocalDetector = kubeproxy.LocalDetector{Mode: kubeproxy.LocalClusterCIDR, CIDR: netip.MustParsePrefix("10.0.0.0/8")}
	return o
}

// BenchmarkRender is kube-proxy's first full sync for 10,000 Services x 10 endpoints
// (100,000 endpoints): restore input built and printed.
func BenchmarkRender(b *testing.B) {
	objs := scaleObjects(10000, 10)
	o := benchOptions()
	b.ReportAllocs()
	var size int
	for b.Loop() {
		out, err := Render(objs, o)
		if err != nil {
			b.Fatal(err)
		}
		size = len(out)
	}
	b.ReportMetric(float64(size), "bytes/restore")
}

// BenchmarkPartialSync is a sync after one Service's endpoints changed (10k x 10).
func BenchmarkPartialSync(b *testing.B) {
	objs := scaleObjects(10000, 10)
	p := NewProxier(benchOptions())
	if _, err := p.Sync(objs); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		objs.EndpointSlices[0].Endpoints[0].Addresses[0] = fmt.Sprintf("10.200.%d.%d", (i/256)%256, i%256)
		if _, err := p.Sync(objs); err != nil {
			b.Fatal(err)
		}
	}
}

func TestScaleRuleCount(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test")
	}
	out, err := Render(scaleObjects(1000, 10), benchOptions())
	if err != nil {
		t.Fatal(err)
	}
	lines := 0
	comments := 0
	for _, c := range out {
		if c == '\n' {
			lines++
		}
	}
	for i := 0; i+len("-> ") < len(out); i++ {
		if string(out[i:i+3]) == "-> " {
			comments++
		}
	}
	// 10,000 endpoints > 1000: large-cluster mode drops the SVC->SEP and SEP comments.
	if comments != 0 {
		t.Errorf("large-cluster mode output still has %d \"SVC -> EP\" comments", comments)
	}
	if lines < 1000*(1+1+10+10*3) {
		t.Errorf("only %d lines for 1000 services x 10 endpoints", lines)
	}
}
