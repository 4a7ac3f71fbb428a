//go:build linux

package collect

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/dataplane/route"
)

func routeOpts() route.LookupOptions { return route.LookupOptions{} }

// nftSetup is one ClusterIP Service with one endpoint.
func nftSetup() cluster.Objects {
	name, port, proto := "http", int32(80), corev1.ProtocolTCP
	return cluster.Objects{
		Services: []*corev1.Service{{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10", Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}}},
		EndpointSlices: []*discoveryv1.EndpointSlice{{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
			AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.9.0.7"}}}}},
	}
}
