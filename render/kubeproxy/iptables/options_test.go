package iptables

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeproxyconfigv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"

	"github.com/knet-dev/knet/render/kubeproxy"
)

func TestOptionsFromConfig(t *testing.T) {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "worker-1", Labels: map[string]string{corev1.LabelTopologyZone: "zone-a"}},
		Spec:       corev1.NodeSpec{PodCIDRs: []string{"10.244.1.0/24", "fd00:1::/64"}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeHostName, Address: "worker-1"},
			{Type: corev1.NodeInternalIP, Address: "192.168.10.11"},
		}},
	}
	f := false
	bit := int32(15)
	tests := []struct {
		name    string
		cfg     *kubeproxyconfigv1alpha1.KubeProxyConfiguration
		nodeArg string
		fam     kubeproxy.Family
		check   func(t *testing.T, o Options)
		wantErr string
	}{
		{name: "nil config: defaults, no detector", cfg: nil, check: func(t *testing.T, o Options) {
			if o.NodeName != "worker-1" || o.LocalDetector.IsImplemented() || !o.LocalhostNodePorts || o.MasqueradeBit != 14 || o.NodeZone != "zone-a" {
				t.Errorf("%+v", o)
			}
			if diff := cmp.Diff([]netip.Addr{netip.MustParseAddr("192.168.10.11")}, o.NodeIPs, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("node IPs (-want +got):\n%s", diff)
			}
		}},
		{name: "clusterCIDR", cfg: &kubeproxyconfigv1alpha1.KubeProxyConfiguration{ClusterCIDR: "10.244.0.0/16,fd00::/48", HostnameOverride: "Worker-1"},
			check: func(t *testing.T, o Options) {
				if o.NodeName != "worker-1" || strings.Join(o.LocalDetector.IfNotLocal(), " ") != "! -s 10.244.0.0/16" {
					t.Errorf("%+v", o)
				}
			}},
		{name: "clusterCIDR IPv6", fam: kubeproxy.IPv6, cfg: &kubeproxyconfigv1alpha1.KubeProxyConfiguration{ClusterCIDR: "10.244.0.0/16,fd00::/48"},
			check: func(t *testing.T, o Options) {
				if strings.Join(o.LocalDetector.IfLocal(), " ") != "-s fd00::/48" {
					t.Errorf("%+v", o.LocalDetector)
				}
			}},
		{name: "NodeCIDR", cfg: &kubeproxyconfigv1alpha1.KubeProxyConfiguration{DetectLocalMode: "NodeCIDR"},
			check: func(t *testing.T, o Options) {
				if strings.Join(o.LocalDetector.IfLocal(), " ") != "-s 10.244.1.0/24" {
					t.Errorf("%+v", o.LocalDetector)
				}
			}},
		{name: "BridgeInterface", cfg: &kubeproxyconfigv1alpha1.KubeProxyConfiguration{DetectLocalMode: "BridgeInterface",
			DetectLocal: kubeproxyconfigv1alpha1.DetectLocalConfiguration{BridgeInterface: "cni0"}},
			check: func(t *testing.T, o Options) {
				if strings.Join(o.LocalDetector.IfNotLocal(), " ") != "! -i cni0" {
					t.Errorf("%+v", o.LocalDetector)
				}
			}},
		{name: "InterfaceNamePrefix", cfg: &kubeproxyconfigv1alpha1.KubeProxyConfiguration{DetectLocalMode: "InterfaceNamePrefix",
			DetectLocal: kubeproxyconfigv1alpha1.DetectLocalConfiguration{InterfaceNamePrefix: "cali"}},
			check: func(t *testing.T, o Options) {
				if strings.Join(o.LocalDetector.IfLocal(), " ") != "-i cali+" {
					t.Errorf("%+v", o.LocalDetector)
				}
			}},
		{name: "iptables options", cfg: &kubeproxyconfigv1alpha1.KubeProxyConfiguration{IPTables: kubeproxyconfigv1alpha1.KubeProxyIPTablesConfiguration{
			MasqueradeAll: true, MasqueradeBit: &bit, LocalhostNodePorts: &f}, NodePortAddresses: []string{"192.168.10.0/24"}},
			check: func(t *testing.T, o Options) {
				if !o.MasqueradeAll || o.MasqueradeBit != 15 || o.LocalhostNodePorts || len(o.NodePortAddresses) != 1 {
					t.Errorf("%+v", o)
				}
			}},
		{name: "--node wins", cfg: &kubeproxyconfigv1alpha1.KubeProxyConfiguration{HostnameOverride: "other"}, nodeArg: "worker-1",
			check: func(t *testing.T, o Options) {
				if o.NodeName != "worker-1" {
					t.Errorf("%+v", o)
				}
			}},
		{name: "wrong mode", cfg: &kubeproxyconfigv1alpha1.KubeProxyConfiguration{Mode: "ipvs"}, wantErr: `mode is "ipvs"`},
		{name: "bad detector", cfg: &kubeproxyconfigv1alpha1.KubeProxyConfiguration{DetectLocalMode: "Magic"}, wantErr: "unknown local traffic detector"},
		{name: "bridge without name", cfg: &kubeproxyconfigv1alpha1.KubeProxyConfiguration{DetectLocalMode: "BridgeInterface"}, wantErr: "needs an interface"},
		{name: "bad nodePortAddresses", cfg: &kubeproxyconfigv1alpha1.KubeProxyConfiguration{NodePortAddresses: []string{"nope"}}, wantErr: "invalid CIDR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := OptionsFromConfig(tt.cfg, node, tt.nodeArg, tt.fam)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o, err = o.normalized()
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, o)
		})
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []Options{
		{Family: "IPv5"}, {MasqueradeBit: 40}, {MarkFormat: "hex"}, {Version: "1.20"},
	} {
		if _, err := NewProxier(o).Sync(loadObjects(t, "case01.objects.yaml")); err == nil {
			t.Errorf("options %+v: no error", o)
		}
	}
	if _, err := NewProxier(Options{Version: "v1.35.2"}).Sync(loadObjects(t, "case01.objects.yaml")); err != nil {
		t.Errorf("v1.35.2 rejected: %v", err)
	}
}

// TestDetectorsInRules checks the detector matches land in the rules as upstream writes them.
func TestDetectorsInRules(t *testing.T) {
	objs := loadObjects(t, "case01.objects.yaml")
	for _, tt := range []struct {
		det        kubeproxy.LocalDetector
		notLocal   string
		podTraffic string
	}{
		{kubeproxy.LocalDetector{Mode: kubeproxy.LocalBridgeInterface, Interface: "cbr0"},
			`--dport 80 ! -i cbr0 -j KUBE-MARK-MASQ`, `external destinations" -i cbr0 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT`},
		{kubeproxy.LocalDetector{Mode: kubeproxy.LocalInterfaceNamePrefix, Interface: "veth"},
			`--dport 80 ! -i veth+ -j KUBE-MARK-MASQ`, `external destinations" -i veth+ -j KUBE-SVC-GNZBNJ2PO5MGZ6GT`},
	} {
		o := fakeOptions(kubeproxy.IPv4)
		o.LocalDetector = tt.det
		out, err := Render(objs, o)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{tt.notLocal, tt.podTraffic} {
			if !strings.Contains(string(out), want) {
				t.Errorf("%s: output lacks %q", tt.det.Mode, want)
			}
		}
	}
}
