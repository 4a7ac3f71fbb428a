package verify

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/render"
)

// bench scale: 10,000 ClusterIP Services with 10 ready endpoints each.
const (
	benchServices  = 10000
	benchEndpoints = 10
)

func addrN(base netip.Addr, n int) netip.Addr {
	b := base.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) + uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// scaled returns preset with nSvc extra Services of nEp endpoints each (on other nodes).
func scaled(tb testing.TB, preset, mode string, nSvc, nEp int) *cluster.Cluster {
	tb.Helper()
	c, err := cluster.Preset(preset)
	if err != nil {
		tb.Fatal(err)
	}
	if mode != "" {
		c.Proxy.Mode = cluster.ProxyMode(mode)
		if c.Objects.ProxyConfig != nil {
			c.Objects.ProxyConfig.Mode = modeOf(mode)
		}
	}
	cipBase := netip.MustParseAddr("10.1.160.0")
	epBase := netip.MustParseAddr("10.200.0.0")
	tcp := corev1.ProtocolTCP
	name, port, ready := "http", int32(8080), true
	other := c.Nodes[0].Name
	for i := range nSvc {
		ns, svcName := fmt.Sprintf("ns%d", i/100), fmt.Sprintf("svc%d", i)
		cip := addrN(cipBase, i+1).String()
		c.Objects.Services = append(c.Objects.Services, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svcName},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: cip, ClusterIPs: []string{cip},
				IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
				Ports:      []corev1.ServicePort{{Name: "http", Protocol: tcp, Port: 80, TargetPort: intstr.FromInt32(8080)}}},
		})
		es := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: svcName + "-abcde", Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &name, Protocol: &tcp, Port: &port}},
		}
		for j := range nEp {
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{addrN(epBase, i*nEp+j+1).String()},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready},
				NodeName:   &other,
			})
		}
		c.Objects.EndpointSlices = append(c.Objects.EndpointSlices, es)
	}
	cluster.ApplyDefaults(&c.Objects)
	return c
}

func benchVerify(b *testing.B, preset, mode string) {
	c := scaled(b, preset, mode, benchServices, benchEndpoints)
	node := c.Nodes[len(c.Nodes)-1].Name
	intent, err := render.Node(c, node)
	if err != nil {
		b.Fatal(err)
	}
	actual, err := render.Node(c, node)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0, cpuOK := processCPU()
	n := 0
	for b.Loop() {
		if fs := Verify(intent, actual, c, node); len(fs) != 0 {
			b.Fatalf("%d findings on identical renders:\n%s", len(fs), format(fs[:1]))
		}
		n++
	}
	if cpu1, ok := processCPU(); ok && cpuOK && n > 0 {
		b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(n), "cpu-ns/op")
	}
	// Peak RSS of the whole process: both rendered nodes, the objects and Verify.
	if rss, ok := processMaxRSS(); ok {
		b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
	}
}

// BenchmarkVerify10kServices: kube-proxy iptables mode (cluster-b), 10,000 Services x 10
// endpoints: ~100k KUBE-SEP chains compared rule by rule.
func BenchmarkVerify10kServices(b *testing.B) { benchVerify(b, "cluster-b", "") }

// BenchmarkVerify10kServicesIPVS: the same objects in IPVS mode (cluster-a).
func BenchmarkVerify10kServicesIPVS(b *testing.B) { benchVerify(b, "cluster-a", "") }

// TestScaledFaults: at scale a fault is still found, exactly once.
func TestScaledFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("renders 1,000 Services twice")
	}
	c := scaled(t, "cluster-b", "", 1000, 10)
	node := c.Nodes[len(c.Nodes)-1].Name
	intent, err := render.Node(c, node)
	if err != nil {
		t.Fatal(err)
	}
	actual, err := render.Node(c, node)
	if err != nil {
		t.Fatal(err)
	}
	chainFor(t, actual, "KUBE-SVC-", "ns3/svc377:http").Flush()
	got := keys(Verify(intent, actual, c, node))
	want := []key{{SeverityError, CheckIPTMissingRule, "Service ns3/svc377:http"}}
	if len(got) != 1 || got[0] != want[0] {
		t.Errorf("got %v, want %v", got, want)
	}
}
