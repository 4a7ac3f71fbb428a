package live

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/knet-dev/knet/cluster"
)

// BenchmarkFromObjects imports the fixture's 6 nodes and 1,200 pods (inference, cluster
// file written and parsed back by cluster.ParseCluster).
func BenchmarkFromObjects(b *testing.B) {
	var objs cluster.Objects
	for _, o := range fixture(1200) {
		switch x := o.(type) {
		case *corev1.Node:
			objs.Nodes = append(objs.Nodes, x)
		case *corev1.Pod:
			x.APIVersion, x.Kind = "v1", "Pod"
			objs.Pods = append(objs.Pods, x)
		case *corev1.Service:
			x.APIVersion, x.Kind = "v1", "Service"
			objs.Services = append(objs.Services, x)
		case *discoveryv1.EndpointSlice:
			x.APIVersion, x.Kind = "discovery.k8s.io/v1", "EndpointSlice"
			objs.EndpointSlices = append(objs.EndpointSlices, x)
		}
	}
	for _, n := range objs.Nodes {
		n.APIVersion, n.Kind = "v1", "Node"
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := FromObjects(objs, Options{CNI: cluster.CNI{Plugin: cluster.CNICalico}}); err != nil {
			b.Fatal(err)
		}
	}
}
