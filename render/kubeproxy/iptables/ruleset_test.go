package iptables

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/knet-dev/knet/format/iptablessave"
	"github.com/knet-dev/knet/render/kubeproxy"
)

// TestRenderRuleset checks the whole node state after the first sync, printed as
// iptables-save (v1.8.9 nf_tables) would, against a golden file; and that the builtin
// chains carry kube-proxy's jumps in `iptables -I` order.
func TestRenderRuleset(t *testing.T) {
	objs := loadObjects(t, "case01.objects.yaml")
	o := DefaultOptions("test-node", netip.MustParseAddr("192.168.0.2"))
	o.LocalDetector = kubeproxy.LocalDetector{Mode: kubeproxy.LocalClusterCIDR, CIDR: netip.MustParsePrefix("10.0.0.0/8")}
	rs, err := RenderRuleset(objs, o)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := iptablessave.Write(&out, rs, iptablessave.WriteOptions{NoHeader: true}); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "case01.save.golden")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), out.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var input []string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "-A INPUT ") {
			input = append(input, l[strings.LastIndex(l, "-j ")+3:])
		}
	}
	if diff := cmp.Diff([]string{ChainProxyFirewall, ChainNodePorts, ChainExternalServices, ChainKubeletFirewall}, input); diff != "" {
		t.Errorf("INPUT jump order (-want +got):\n%s", diff)
	}
}

// TestRenderRulesetIPv6: ip6tables has no kubelet anti-martian rule, but kube-proxy still
// ensures the (empty) KUBE-FIREWALL chain and its INPUT/OUTPUT jumps.
func TestRenderRulesetIPv6(t *testing.T) {
	objs := loadObjects(t, "case06.5.objects.yaml")
	o := fakeOptions(kubeproxy.IPv6)
	rs, err := RenderRuleset(objs, o)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := iptablessave.Write(&out, rs, iptablessave.WriteOptions{NoHeader: true}); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"-A INPUT -j KUBE-FIREWALL", "-A OUTPUT -j KUBE-FIREWALL", ":KUBE-FIREWALL - [0:0]",
		"--to-destination [fd00:10:180::1]:80", "! -d ::1/128"} {
		if !strings.Contains(s, want) {
			t.Errorf("ip6tables-save lacks %q", want)
		}
	}
	if strings.Contains(s, "-A KUBE-FIREWALL") {
		t.Errorf("IPv6 KUBE-FIREWALL should be empty:\n%s", s)
	}
}
