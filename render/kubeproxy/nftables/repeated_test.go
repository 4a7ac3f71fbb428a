package nftables

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/knftables"

	"github.com/knet-dev/knet/cluster"
)

func svcObj(ns, name, ip, portName string, port int32) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: ip,
			Ports: []corev1.ServicePort{{Name: portName, Port: port, Protocol: corev1.ProtocolTCP}}},
	}
}

func sliceObj(ns, svc, portName string, port int32, addrs ...string) *discoveryv1.EndpointSlice {
	proto := corev1.ProtocolTCP
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: svc + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port, Protocol: &proto}},
	}
	for _, a := range addrs {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}})
	}
	return s
}

// TestSyncProxyRulesRepeated replays upstream's nftables TestSyncProxyRulesRepeated
// (v1.35.0): each step's whole table and the size of its transaction.
func TestSyncProxyRulesRepeated(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	nft := knftables.NewFake(knftables.IPv4Family, "kube-proxy")
	p, err := New(fakeProxierOptions(IPv4), nft, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	services := map[string]*corev1.Service{
		"svc1": svcObj("ns1", "svc1", "172.30.0.41", "p80", 80),
		"svc2": svcObj("ns2", "svc2", "172.30.0.42", "p8080", 8080),
	}
	slices := map[string]*discoveryv1.EndpointSlice{
		"svc1": sliceObj("ns1", "svc1", "p80", 80, "10.0.1.1"),
		"svc2": sliceObj("ns2", "svc2", "p8080", 8080, "10.0.2.1"),
	}
	objs := func() cluster.Objects {
		var o cluster.Objects
		for _, k := range []string{"svc1", "svc2", "svc3", "svc4"} {
			if s := services[k]; s != nil {
				o.Services = append(o.Services, s)
			}
			if s := slices[k]; s != nil {
				o.EndpointSlices = append(o.EndpointSlices, s)
			}
		}
		return o
	}
	sync := func() {
		t.Helper()
		clk.t = clk.t.Add(10 * time.Millisecond)
		if err := p.Sync(ctx, objs()); err != nil {
			t.Fatal(err)
		}
	}
	age := func() { clk.t = clk.t.Add(2 * time.Second) }
	check := func(step string, wantOps int) {
		t.Helper()
		want, err := os.ReadFile(fmt.Sprintf("testdata/nft07.%s.nft", step))
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(sortTransaction(string(want)), sortTransaction(nft.Dump())); d != "" {
			t.Errorf("%s: table differs from upstream (-upstream +knet):\n%s", step, d)
		}
		if wantOps >= 0 {
			if got := p.LastTransaction.NumOperations(); got != wantOps {
				t.Errorf("%s: transaction has %d operations, upstream expects %d", step, got, wantOps)
			}
		}
	}

	sync()
	check("step01", -1)

	services["svc3"] = svcObj("ns3", "svc3", "172.30.0.43", "p80", 80)
	slices["svc3"] = sliceObj("ns3", "svc3", "p80", 80, "10.0.3.1")
	sync()
	check("step02", 10)

	delete(services, "svc2")
	sync()
	check("step03", 4)

	age()
	sync()
	check("step04", 0)

	services["svc4"] = svcObj("ns4", "svc4", "172.30.0.44", "p80", 80)
	sync()
	check("step05", 2)

	slices["svc4"] = sliceObj("ns4", "svc4", "p80", 80, "10.0.4.1")
	sync()
	check("step06", 10)

	slices["svc3"] = sliceObj("ns3", "svc3", "p80", 80, "10.0.3.2")
	sync()
	check("step07", 9)

	age()
	slices["svc3"] = sliceObj("ns3", "svc3", "p80", 80, "10.0.3.2", "10.0.3.3")
	sync()
	check("step08", 12)

	slices["svc3"] = sliceObj("ns3", "svc3", "p80", 80)
	sync()
	check("step09", 5)
	wantStale := []string{"endpoint-SWWHDC7X-ns3/svc3/tcp/p80__10.0.3.2/80", "endpoint-TQ2QKHCZ-ns3/svc3/tcp/p80__10.0.3.3/80", "service-4AT6LBPK-ns3/svc3/tcp/p80"}
	if d := cmp.Diff(wantStale, sortedKeys(p.staleChains)); d != "" {
		t.Errorf("stale chains after emptying svc3 (-want +got):\n%s", d)
	}

	slices["svc3"] = sliceObj("ns3", "svc3", "p80", 80, "10.0.3.2", "10.0.3.3")
	sync()
	check("step10", 14)
	if len(p.staleChains) != 0 {
		t.Errorf("unexpected stale chains: %v", p.staleChains)
	}

	slices["svc3"] = sliceObj("ns3", "svc3", "p80", 80)
	sync()
	age()
	slices["svc3"] = sliceObj("ns3", "svc3", "p80", 80, "10.0.3.2", "10.0.3.3")
	sync()
	check("step11", -1)

	sync()
	check("step12", 0)
}
