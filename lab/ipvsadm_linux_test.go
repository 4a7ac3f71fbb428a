//go:build linux

package lab

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/knet-dev/knet/format/ipvsadm"
	"github.com/knet-dev/knet/kernel"
	"github.com/knet-dev/knet/render"
)

// TestIPVSAdmMatchesRealTool: the IPVS state kube-proxy's IPVS mode renders for a Cluster A
// worker, programmed into a namespace of a kernel that has ip_vs, lists through the real
// ipvsadm exactly as knet's ipvsadm printers print the model: `ipvsadm -Ln`, `-Ln --stats`,
// `-Ln --rate`, `-Ln --thresholds` and `ipvsadm-save -n`. It runs in the VM with the
// differential suite (the host kernel here has no IP_VS).
func TestIPVSAdmMatchesRealTool(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("ipvsadm"); err != nil {
		t.Skip("ipvsadm not installed (scripts/install-test-deps.sh installs it)")
	}
	if err := kernel.Probe(kernel.FeatureIPVS); err != nil {
		if os.Getenv("KNET_IN_VM") == "1" {
			t.Fatalf("IPVS must work in the VM: %v", err)
		}
		t.Skipf("this kernel has no IPVS (%v); TestDifferentialInVM runs this test under qemu", err)
	}
	c := presetFor(t, "cluster-a")
	node, err := render.Node(c, "ip-172-31-27-63")
	if err != nil {
		t.Fatal(err)
	}
	if node.IPVS == nil || len(node.IPVS.Services) == 0 {
		t.Fatal("no IPVS state rendered")
	}
	ns, err := kernel.NewNS("")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	ctx := context.Background()
	// IPVS refuses a Masq real server whose address the namespace cannot route (EINVAL):
	// give it the worker's uplink and default route first.
	for _, argv := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "add", "eth0", "type", "dummy"},
		{"ip", "addr", "add", "172.31.27.63/20", "dev", "eth0"},
		{"ip", "link", "set", "eth0", "up"},
		{"ip", "route", "add", "default", "via", "172.31.16.1"},
	} {
		if _, err := ns.Run(ctx, nil, argv[0], argv[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	if err := kernel.ApplyIPVS(ns, node.IPVS); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args  []string
		write func(*bytes.Buffer) error
	}{
		{[]string{"-Ln"}, func(b *bytes.Buffer) error { return ipvsadm.WriteList(b, node.IPVS, ipvsadm.ListOptions{}) }},
		{[]string{"-Ln", "--stats"}, func(b *bytes.Buffer) error {
			return ipvsadm.WriteList(b, node.IPVS, ipvsadm.ListOptions{View: ipvsadm.ViewStats})
		}},
		{[]string{"-Ln", "--rate"}, func(b *bytes.Buffer) error {
			return ipvsadm.WriteList(b, node.IPVS, ipvsadm.ListOptions{View: ipvsadm.ViewRate})
		}},
		{[]string{"-Ln", "--thresholds"}, func(b *bytes.Buffer) error {
			return ipvsadm.WriteList(b, node.IPVS, ipvsadm.ListOptions{View: ipvsadm.ViewThresholds})
		}},
		{[]string{"-S", "-n"}, func(b *bytes.Buffer) error { return ipvsadm.WriteSave(b, node.IPVS) }},
	} {
		real, err := ns.Run(ctx, nil, "ipvsadm", tc.args...)
		if err != nil {
			t.Fatal(err)
		}
		var ours bytes.Buffer
		if err := tc.write(&ours); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(string(real), ours.String()); d != "" {
			t.Errorf("ipvsadm %v (-real ipvsadm +knet):\n%s", tc.args, d)
		}
	}
}
