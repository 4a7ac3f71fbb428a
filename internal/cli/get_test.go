package cli

import (
	"strings"
	"testing"
)

// TestGet checks `knet get` against golden files; the expected spacing is kubectl's
// (tabwriter minwidth 6, padding 3; the last column unpadded).
func TestGet(t *testing.T) {
	now := "--now=2026-11-26T09:30:00Z"
	tests := []struct {
		name   string
		args   []string
		golden string
	}{
		{"nodes", []string{"get", "nodes", "--preset", "cluster-b", now}, "get/nodes.golden"},
		{"nodes wide", []string{"get", "nodes", "--preset", "cluster-a", now, "-o", "wide"}, "get/nodes-wide.golden"},
		{"pods default", []string{"get", "pods", "--preset", "cluster-b", now}, "get/pods.golden"},
		{"pods all wide", []string{"get", "po", "-A", "--preset", "cluster-c", now, "-o", "wide"}, "get/pods-all-wide.golden"},
		{"services all", []string{"get", "svc", "-A", "--preset", "cluster-b", now}, "get/services-all.golden"},
		{"services wide", []string{"get", "services", "-n", "ingress-nginx", "--preset", "cluster-b", now, "-o", "wide"}, "get/services-ingress-wide.golden"},
		{"endpointslices", []string{"get", "endpointslices", "-A", "--preset", "cluster-b", now}, "get/endpointslices-all.golden"},
		{"services json", []string{"get", "services", "-n", "kube-system", "--preset", "cluster-b", "-o", "json"}, "get/services-kube-system.json"},
		{"nodes yaml", []string{"get", "nodes", "--preset", "cluster-c", "-o", "yaml"}, "get/nodes.yaml"},
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

func TestGetErrors(t *testing.T) {
	tests := []struct {
		args       []string
		code       int
		stderrHave string
	}{
		{[]string{"get", "nodes"}, 1, "no cluster: give --preset"},
		{[]string{"get", "nodes", "--preset", "cluster-q"}, 1, `unknown preset "cluster-q"`},
		{[]string{"get", "deployments", "--preset", "cluster-a"}, 1, `unknown resource type "deployments"`},
		{[]string{"get", "pods", "--preset", "cluster-a", "-o", "name"}, 1, `unknown output format "name"`},
		{[]string{"get", "pods", "--preset", "cluster-a", "-f", "x.yaml"}, 1, "either --preset or -f"},
		{[]string{"get", "pods", "--preset", "cluster-a", "-n", "empty"}, 0, "No resources found in empty namespace."},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, errOut, code := runCLI(t, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.stderrHave) {
				t.Errorf("exit %d stderr %q, want exit %d and stderr containing %q", code, errOut, tt.code, tt.stderrHave)
			}
			if tt.code == 0 && out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
		})
	}
}
