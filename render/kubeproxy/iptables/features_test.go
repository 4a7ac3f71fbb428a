package iptables

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/render/kubeproxy"
)

func svcWithSlice(mod func(*corev1.Service, *discoveryv1.EndpointSlice)) cluster.Objects {
	tcp := corev1.ProtocolTCP
	name, port := "p80", int32(80)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: "svc1"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "172.30.0.41",
			Ports: []corev1.ServicePort{{Name: "p80", Port: 80, Protocol: tcp, NodePort: 3001}}},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}}},
	}
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "ns1", Name: "svc1-x", Labels: map[string]string{discoveryv1.LabelServiceName: "svc1"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &tcp}},
	}
	for _, a := range []string{"10.180.0.1", "10.180.0.2"} {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}})
	}
	mod(svc, es)
	objs := cluster.Objects{Services: []*corev1.Service{svc}, EndpointSlices: []*discoveryv1.EndpointSlice{es}}
	cluster.ApplyDefaults(&objs)
	return objs
}

func TestFeatures(t *testing.T) {
	zone := func(z string) *string { return &z }
	tests := []struct {
		name        string
		mod         func(*corev1.Service, *discoveryv1.EndpointSlice)
		opts        func(*Options)
		want, avoid []string
	}{
		{"ipMode Proxy ignored", func(s *corev1.Service, _ *discoveryv1.EndpointSlice) {
			m := corev1.LoadBalancerIPModeProxy
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: "5.6.7.8", IPMode: &m})
		}, nil, []string{"-d 1.2.3.4 --dport 80"}, []string{"5.6.7.8"}},
		{"zero source range means no firewall", func(s *corev1.Service, _ *discoveryv1.EndpointSlice) {
			s.Spec.LoadBalancerSourceRanges = []string{"0.0.0.0/0"}
		}, nil, []string{"-j KUBE-EXT-"}, []string{"KUBE-FW-"}},
		{"source range containing the node IP allows the LB IP as source", func(s *corev1.Service, _ *discoveryv1.EndpointSlice) {
			s.Spec.LoadBalancerSourceRanges = []string{"192.168.0.0/16"}
		}, nil, []string{`"ns1/svc1:p80 loadbalancer IP" -s 1.2.3.4 -j KUBE-EXT-XPGD46QRK7WJZT7O`}, nil},
		{"topology hints for this zone", func(s *corev1.Service, es *discoveryv1.EndpointSlice) {
			es.Endpoints[0].Hints = &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "zone-a"}}}
			es.Endpoints[1].Hints = &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "zone-b"}}}
			es.Endpoints[0].Zone, es.Endpoints[1].Zone = zone("zone-a"), zone("zone-b")
		}, func(o *Options) { o.NodeZone = "zone-a" }, []string{`"ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP`}, []string{"10.180.0.2:80"}},
		{"hints ignored when this zone has none", func(s *corev1.Service, es *discoveryv1.EndpointSlice) {
			es.Endpoints[0].Hints = &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "zone-b"}}}
			es.Endpoints[1].Hints = &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "zone-b"}}}
		}, func(o *Options) { o.NodeZone = "zone-a" }, []string{"10.180.0.1:80", "10.180.0.2:80"}, nil},
		{"masquerade-all", func(*corev1.Service, *discoveryv1.EndpointSlice) {}, func(o *Options) { o.MasqueradeAll = true },
			[]string{`"ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-MARK-MASQ`}, []string{"! -s 10.0.0.0/8"}},
		{"conntrack liberal, no nfacct, random-fully", func(*corev1.Service, *discoveryv1.EndpointSlice) {}, func(o *Options) {
			o.ConntrackTCPLiberal, o.NFAcct, o.RandomFully = true, false, true
		}, []string{"-j MASQUERADE --random-fully"}, []string{"INVALID", "nfacct"}},
		{"all endpoints terminating: serving ones are used", func(_ *corev1.Service, es *discoveryv1.EndpointSlice) {
			f, tr := false, true
			for i := range es.Endpoints {
				es.Endpoints[i].Conditions = discoveryv1.EndpointConditions{Ready: &f, Serving: &tr, Terminating: &tr}
			}
		}, nil, []string{"10.180.0.1:80", "10.180.0.2:80"}, []string{"has no endpoints"}},
		{"not serving and terminating: no endpoints", func(_ *corev1.Service, es *discoveryv1.EndpointSlice) {
			f, tr := false, true
			for i := range es.Endpoints {
				es.Endpoints[i].Conditions = discoveryv1.EndpointConditions{Ready: &f, Serving: &f, Terminating: &tr}
			}
		}, nil, []string{`"ns1/svc1:p80 has no endpoints"`, "-j REJECT"}, []string{"KUBE-SEP-"}},
		{"ExternalName skipped", func(s *corev1.Service, _ *discoveryv1.EndpointSlice) {
			s.Spec.Type = corev1.ServiceTypeExternalName
		}, nil, nil, []string{"ns1/svc1"}},
		{"headless skipped", func(s *corev1.Service, _ *discoveryv1.EndpointSlice) {
			s.Spec.ClusterIP = "None"
			s.Spec.ClusterIPs = nil
		}, nil, nil, []string{"ns1/svc1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := fakeOptions(kubeproxy.IPv4)
			if tt.opts != nil {
				tt.opts(&o)
			}
			out, err := Render(svcWithSlice(tt.mod), o)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, a := range tt.avoid {
				if strings.Contains(string(out), a) {
					t.Errorf("output has %q:\n%s", a, out)
				}
			}
			if err := CheckJumps(out); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestPartialSyncs: unchanged syncs write no service chains; FullSyncEvery and ForceFullSync
// force full ones.
func TestPartialSyncs(t *testing.T) {
	objs := svcWithSlice(func(*corev1.Service, *discoveryv1.EndpointSlice) {})
	o := fakeOptions(kubeproxy.IPv4)
	o.FullSyncEvery = 3
	p := NewProxier(o)
	full := func(b []byte) bool { return strings.Contains(string(b), ":KUBE-SVC-") }
	var got []bool
	for i := 0; i < 4; i++ {
		out, err := p.Sync(objs)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, full(out))
	}
	p.ForceFullSync()
	out, _ := p.Sync(objs)
	got = append(got, full(out))
	want := []bool{true, false, true, false, true}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("sync %d full=%v, want %v (all %v)", i+1, got[i], want[i], got)
		}
	}
}

// TestNodePortAddressesNormalisation mirrors NewNodePortAddresses: CIDRs of the other family
// are dropped, and an empty result or a zero CIDR means every local address.
func TestNodePortAddressesNormalisation(t *testing.T) {
	objs := svcWithSlice(func(*corev1.Service, *discoveryv1.EndpointSlice) {})
	tail := `"kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`
	for _, cidrs := range [][]string{{"2001:db8::/64"}, {"0.0.0.0/0"}, {"192.168.0.0/24", "0.0.0.0/0"}} {
		o := fakeOptions(kubeproxy.IPv4)
		for _, c := range cidrs {
			o.NodePortAddresses = append(o.NodePortAddresses, netip.MustParsePrefix(c))
		}
		out, err := Render(objs, o)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), tail) || strings.Contains(string(out), "-d 192.168.0.2 -j KUBE-NODEPORTS") {
			t.Errorf("%v: want the match-all tail rule only:\n%s", cidrs, out)
		}
		if !strings.Contains(string(out), "localhost_nps_accepted_pkts") {
			t.Errorf("%v: localhost NodePorts should stay on (the list matches 127.0.0.0)", cidrs)
		}
	}
}

// TestPartialSyncSliceObjectChange: upstream rewrites a Service's chains whenever one of its
// EndpointSlice objects changes, even if the endpoints derived from it do not.
func TestPartialSyncSliceObjectChange(t *testing.T) {
	objs := svcWithSlice(func(*corev1.Service, *discoveryv1.EndpointSlice) {})
	portless := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "ns1", Name: "svc1-portless", Labels: map[string]string{discoveryv1.LabelServiceName: "svc1"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.180.0.9"}}},
	}
	objs.EndpointSlices = append(objs.EndpointSlices, portless)
	p := NewProxier(fakeOptions(kubeproxy.IPv4))
	if _, err := p.Sync(objs); err != nil {
		t.Fatal(err)
	}
	out, _ := p.Sync(objs)
	if strings.Contains(string(out), ":KUBE-SVC-") {
		t.Errorf("unchanged sync rewrote service chains:\n%s", out)
	}
	objs.EndpointSlices = objs.EndpointSlices[:1]
	out, _ = p.Sync(objs)
	if !strings.Contains(string(out), ":KUBE-SVC-XPGD46QRK7WJZT7O") {
		t.Errorf("removing a portless slice of svc1 did not rewrite its chains:\n%s", out)
	}
	// A slice of the other family is not this proxier's business.
	v6 := portless.DeepCopy()
	v6.AddressType = discoveryv1.AddressTypeIPv6
	objs.EndpointSlices = append(objs.EndpointSlices, v6)
	out, _ = p.Sync(objs)
	if strings.Contains(string(out), ":KUBE-SVC-") {
		t.Errorf("an IPv6 slice made the IPv4 proxier rewrite chains:\n%s", out)
	}
}
