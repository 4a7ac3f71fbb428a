package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), code
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

func TestRenderKubeProxy(t *testing.T) {
	objs := filepath.Join("testdata", "render", "objects.yaml")
	cfg := filepath.Join("testdata", "render", "kube-proxy-config.yaml")
	tests := []struct {
		name   string
		args   []string
		golden string
	}{
		{"restore from config", []string{"render", "kube-proxy", "--objects", objs, "--config", cfg}, "render/restore.golden"},
		{"restore tests mark, old iptables", []string{"render", "kube-proxy", "--objects", objs, "--config", cfg, "--node", "worker-2",
			"--mark-format", "tests", "--random-fully=false", "--nfacct=false", "--conntrack-tcp-liberal"}, "render/restore-worker-2.golden"},
		{"save", []string{"render", "kube-proxy", "--objects", objs, "--config", cfg, "--format", "save"}, "render/save.golden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, errOut)
			}
			checkGolden(t, tt.golden, out)
		})
	}
}

func TestRenderKubeProxyErrors(t *testing.T) {
	objs := filepath.Join("testdata", "render", "objects.yaml")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"render", "kube-proxy"}, "--objects is required"},
		{[]string{"render", "kube-proxy", "--objects", objs}, "no node name"},
		{[]string{"render", "kube-proxy", "--objects", objs, "--node", "worker-1", "--mode", "userspace"}, `unknown mode "userspace"`},
		{[]string{"render", "kube-proxy", "--objects", objs, "--node", "worker-1", "--format", "json"}, `unknown --format "json"`},
		{[]string{"render", "kube-proxy", "--objects", "testdata/render/missing.yaml", "--node", "x"}, "missing.yaml"},
	}
	for _, tt := range tests {
		_, errOut, code := runCLI(t, tt.args...)
		if code == 0 || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want failure mentioning %q", tt.args, code, errOut, tt.want)
		}
	}
}

// TestRenderKubeProxyOtherModes checks the wiring of the IPVS and nftables renderers (their
// output is pinned by their own packages' tests).
func TestRenderKubeProxyOtherModes(t *testing.T) {
	objs := filepath.Join("testdata", "render", "objects.yaml")
	cfg := filepath.Join("testdata", "render", "kube-proxy-config.yaml")
	tests := []struct {
		mode, format string
		want         []string
	}{
		{"ipvs", "restore", []string{"deprecated", "KUBE-CLUSTER-IP", "TCP  10.96.12.34:80 rr", "192.168.10.11:30080"}},
		{"ipvs", "save", []string{"-A -t 10.96.12.34:80 -s rr", "-a -t 10.96.12.34:80 -r 10.244.1.7:8080 -m -w 1"}},
		{"nftables", "restore", []string{"add table ip kube-proxy", "shop/web/tcp/http__10.244.1.7/8080"}},
		{"nftables", "save", []string{"table ip kube-proxy {", "10.96.12.34"}},
	}
	for _, tt := range tests {
		out, errOut, code := runCLI(t, "render", "kube-proxy", "--objects", objs, "--config", cfg, "--mode", tt.mode, "--format", tt.format)
		if code != 0 {
			t.Errorf("%s/%s: exit %d: %s", tt.mode, tt.format, code, errOut)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s/%s: output lacks %q", tt.mode, tt.format, w)
			}
		}
	}
}
