//go:build linux

package kernel

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/knftables"

	"github.com/knet-dev/knet/cluster"
	"github.com/knet-dev/knet/format/nft"
	"github.com/knet-dev/knet/render/kubeproxy"
	kpnft "github.com/knet-dev/knet/render/kubeproxy/nftables"
)

// txLog is a knftables.Interface that applies transactions to knet's model and keeps
// their text, so the same transactions can be replayed on a real kernel.
type txLog struct {
	*nft.Model
	texts []string
}

func (l *txLog) Run(ctx context.Context, tx *knftables.Transaction) error {
	if err := l.Model.Run(ctx, tx); err != nil {
		return err
	}
	l.texts = append(l.texts, tx.String())
	return nil
}

func nftNS(t *testing.T) *NS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft not installed (scripts/install-test-deps.sh installs nftables 1.0.6)")
	}
	ns, err := NewNS("")
	if err != nil {
		t.Skipf("cannot create a network namespace: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

func nftObjects(services, eps int, affinity bool) cluster.Objects {
	var objs cluster.Objects
	proto := corev1.ProtocolTCP
	ready := true
	for i := 0; i < services; i++ {
		name := fmt.Sprintf("svc%d", i)
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIP: fmt.Sprintf("172.30.%d.%d", i/250, i%250+1),
				ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
				Ports:                 []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, NodePort: int32(30000 + i)}}}}
		if affinity && i%2 == 0 {
			svc.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		}
		objs.Services = append(objs.Services, svc)
		pn, port := "http", int32(8080)
		sl := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name + "-a", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{{Name: &pn, Port: &port, Protocol: &proto}}}
		for j := 0; j < eps; j++ {
			node := "other"
			if j == 0 {
				node = "test-node"
			}
			sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.%d.%d.%d", i/250, i%250, j+1)},
				NodeName: &node, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
		}
		objs.EndpointSlices = append(objs.EndpointSlices, sl)
	}
	return objs
}

// TestNFTKernelParity: the transactions knet's kube-proxy nftables renderer produces,
// replayed with the real nft on a real kernel, list exactly what knet's model prints as
// `nft list ruleset` — after a full sync and after partial syncs that add, change and
// remove Services (stale chains flushed, then deleted).
func TestNFTKernelParity(t *testing.T) {
	ns := nftNS(t)
	ctx := context.Background()
	log := &txLog{Model: nft.NewModel(knftables.IPv4Family, "kube-proxy")}
	opts := kpnft.Options{
		NodeName: "test-node", NodeIP: netip.MustParseAddr("192.168.0.2"), Family: kubeproxy.IPv4,
		Detector:     kubeproxy.LocalDetector{Mode: kubeproxy.LocalClusterCIDR, CIDR: netip.MustParsePrefix("10.0.0.0/8")},
		ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("172.30.0.0/16")},
	}
	clock := &fakeClock{}
	p, err := kpnft.New(opts, log, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	steps := []cluster.Objects{nftObjects(12, 3, true), nftObjects(14, 2, true), nftObjects(9, 4, false), nftObjects(9, 4, false)}
	for i, objs := range steps {
		clock.advance(3)
		if err := p.Sync(ctx, objs); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if err := NFTApply(ctx, ns, log.texts...); err != nil {
			t.Fatalf("step %d: the real nft refused knet's transaction: %v", i, err)
		}
		log.texts = nil
		real, err := NFTListRuleset(ctx, ns)
		if err != nil {
			t.Fatal(err)
		}
		var ours bytes.Buffer
		if err := nft.Write(&ours, log.Model.Ruleset(), nft.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(string(real), ours.String()); d != "" {
			t.Errorf("step %d: nft list ruleset (-kernel +knet):\n%s", i, d)
		}
	}
}

type fakeClock struct{ s int64 }

func (c *fakeClock) advance(sec int64) { c.s += sec }

func (c *fakeClock) now() time.Time { return time.Unix(c.s, 0) }

// TestNFTKernelParityJSON: `nft -j list ruleset` on the real kernel, after knet's
// kube-proxy transactions, equals knet's WriteJSON of its model (handles included).
func TestNFTKernelParityJSON(t *testing.T) {
	ns := nftNS(t)
	ctx := context.Background()
	log := &txLog{Model: nft.NewModel(knftables.IPv4Family, "kube-proxy")}
	opts := kpnft.Options{
		NodeName: "test-node", NodeIP: netip.MustParseAddr("192.168.0.2"), Family: kubeproxy.IPv4,
		Detector:     kubeproxy.LocalDetector{Mode: kubeproxy.LocalClusterCIDR, CIDR: netip.MustParsePrefix("10.0.0.0/8")},
		ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("172.30.0.0/16")},
	}
	clock := &fakeClock{}
	p, err := kpnft.New(opts, log, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	for i, objs := range []cluster.Objects{nftObjects(6, 3, true), nftObjects(7, 2, true), nftObjects(5, 4, false)} {
		clock.advance(3)
		if err := p.Sync(ctx, objs); err != nil {
			t.Fatal(err)
		}
		if err := NFTApply(ctx, ns, log.texts...); err != nil {
			t.Fatal(err)
		}
		log.texts = nil
		real, err := ns.Run(ctx, nil, "nft", "-j", "list", "ruleset")
		if err != nil {
			t.Fatal(err)
		}
		var ours bytes.Buffer
		if err := nft.WriteJSON(&ours, log.Model.Ruleset(), nft.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(strings.ReplaceAll(string(real), "}, {", "},\n{"), strings.ReplaceAll(ours.String(), "}, {", "},\n{")); d != "" {
			t.Errorf("step %d: nft -j list ruleset (-kernel +knet):\n%s", i, d)
		}
	}
}

// TestNFTApplyReadParity: a rendered kube-proxy nftables state applied to a namespace and
// read back (nft -j) prints the same `nft list ruleset` as the model it came from.
func TestNFTApplyReadParity(t *testing.T) {
	ns := nftNS(t)
	ctx := context.Background()
	opts := kpnft.Options{
		NodeName: "test-node", NodeIP: netip.MustParseAddr("192.168.0.2"), Family: kubeproxy.IPv4,
		Detector:     kubeproxy.LocalDetector{Mode: kubeproxy.LocalClusterCIDR, CIDR: netip.MustParsePrefix("10.0.0.0/8")},
		ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("172.30.0.0/16")},
	}
	rs, err := kpnft.RenderRuleset(nftObjects(8, 3, true), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := ApplyNFT(ctx, ns, rs); err != nil {
		t.Fatal(err)
	}
	back, err := ReadNFT(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	var want, got bytes.Buffer
	nft.Write(&want, rs, nft.WriteOptions{})
	nft.Write(&got, back, nft.WriteOptions{})
	// nft -j drops table/chain comments and the "dynamic" set flag (nft 1.0.6).
	w := strings.Replace(want.String(), "\tcomment \"rules for kube-proxy\"\n", "", 1)
	w = strings.Replace(w, "\t\tcomment \"helper for @no-endpoint-services / @no-endpoint-nodeports\"\n", "", 1)
	w = strings.ReplaceAll(w, "flags dynamic,timeout", "flags timeout")
	if d := cmp.Diff(w, got.String()); d != "" {
		t.Errorf("applied and read back (-model +kernel):\n%s", d)
	}
}
