package ipvs

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/knet-dev/knet/cluster"
)

// bigObjects is services ClusterIP Services with eps endpoints each, spread over 10 nodes.
func bigObjects(services, eps int) cluster.Objects {
	var objs cluster.Objects
	tcp := corev1.ProtocolTCP
	yes := true
	for i := 0; i < services; i++ {
		name := fmt.Sprintf("svc-%05d", i)
		ip := fmt.Sprintf("10.96.%d.%d", i/250, 1+i%250)
		objs.Services = append(objs.Services, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: ip, ClusterIPs: []string{ip},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: tcp}}}})
		es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name + "-1",
			Labels: map[string]string{discoveryv1.LabelServiceName: name}}, AddressType: discoveryv1.AddressTypeIPv4,
			Ports: []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(8080)), Protocol: &tcp}}}
		for j := 0; j < eps; j++ {
			n := i*eps + j
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.%d.%d.%d", 128+n/65536, n/256%256, n%256)},
				NodeName: ptr(fmt.Sprintf("node-%d", n%10)), Conditions: discoveryv1.EndpointConditions{Ready: &yes}})
		}
		objs.EndpointSlices = append(objs.EndpointSlices, es)
	}
	return objs
}

// BenchmarkRenderIPVS renders 10,000 Services with 10 endpoints each (100,000 real servers).
func BenchmarkRenderIPVS(b *testing.B) {
	objs := bigObjects(10000, 10)
	opts := DefaultOptions("node-1", netip.MustParseAddr("192.168.1.11"))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := Render(objs, opts)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.IPVS.Services) != 10000 {
			b.Fatalf("%d virtual servers", len(res.IPVS.Services))
		}
	}
}
