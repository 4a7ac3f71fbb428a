package nftables

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/knet-dev/knet/cluster"
	dpnft "github.com/knet-dev/knet/dataplane/nftables"
	"github.com/knet-dev/knet/format/nft"
)

// scaleObjects makes n ClusterIP+NodePort Services with eps endpoints each, ClusterIPs in
// 172.30.0.0/16 and 172.31.0.0/16, pods in 10.0.0.0/8.
func scaleObjects(n, eps int) cluster.Objects {
	var objs cluster.Objects
	ready := true
	proto := corev1.ProtocolTCP
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("svc%d", i)
		ip := netip.AddrFrom4([4]byte{172, 30 + byte(i>>16), byte(i >> 8), byte(i)})
		objs.Services = append(objs.Services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIP: ip.String(),
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, NodePort: int32(30000 + i%2768)}}},
		})
		pn := "http"
		port := int32(8080)
		sl := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: name + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &pn, Port: &port, Protocol: &proto}},
		}
		for j := 0; j < eps; j++ {
			k := i*eps + j
			a := netip.AddrFrom4([4]byte{10, byte(k >> 16), byte(k >> 8), byte(k)})
			sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{a.String()}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
		}
		objs.EndpointSlices = append(objs.EndpointSlices, sl)
	}
	return objs
}

func benchOptions() Options {
	o := fakeProxierOptions(IPv4)
	o.NodePortAddresses = nil
	return o
}

// BenchmarkRenderAndPrint10kx10 renders 10,000 Services x 10 endpoints and prints
// `nft list ruleset`.
func BenchmarkRenderAndPrint10kx10(b *testing.B) {
	objs := scaleObjects(10000, 10)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		rs, err := RenderRuleset(objs, benchOptions())
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		if err := nft.Write(&buf, rs, nft.WriteOptions{}); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(buf.Len()))
	}
}

// BenchmarkTraceClusterIP measures one traced first packet to a ClusterIP through the
// verdict maps at growing Service counts: the cost must not grow with the count.
func BenchmarkTraceClusterIP(b *testing.B) {
	for _, n := range []int{100, 1000, 10000, 30000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			rs, err := RenderRuleset(scaleObjects(n, 10), benchOptions())
			if err != nil {
				b.Fatal(err)
			}
			target := netip.AddrFrom4([4]byte{172, 30 + byte((n-1)>>16), byte((n - 1) >> 8), byte(n - 1)})
			pkt := dpnft.Packet{Src: netip.MustParseAddr("10.200.0.9"), Dst: target, Proto: "tcp", SPort: 40000, DPort: 80}
			// warm the map index once
			if _, err := rs.Trace(pkt, nodeLocal, dpnft.TraceOptions{}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				outs, err := rs.Trace(pkt, nodeLocal, dpnft.TraceOptions{})
				if err != nil || len(outs) != 10 {
					b.Fatalf("outs=%d err=%v", len(outs), err)
				}
			}
		})
	}
}
