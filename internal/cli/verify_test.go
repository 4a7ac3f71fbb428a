package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// editFile rewrites a snapshot file with edit, failing if it changed nothing.
func editFile(t *testing.T, path string, edit func(string) string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := edit(string(b))
	if out == string(b) {
		t.Fatalf("%s: the edit changed nothing", path)
	}
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
}

func dropLine(prefix string) func(string) string {
	return func(s string) string {
		var keep []string
		for _, l := range strings.SplitAfter(s, "\n") {
			if !strings.HasPrefix(l, prefix) {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "")
	}
}

// TestCollectVerify: `knet collect --preset` writes a snapshot that `knet verify` finds clean
// (exit 0); faults edited into the snapshot's files are found (exit 1), in text and JSON.
func TestCollectVerify(t *testing.T) {
	const node = "ip-172-31-5-31"
	for _, tc := range []struct {
		name, preset string
		fault        func(t *testing.T, dir string)
		code         int
		checks       []string
		golden       string
		extra        []string
	}{
		{name: "clean cluster-a", preset: "cluster-a", checks: []string{}},
		{name: "clean cluster-b", preset: "cluster-b", checks: []string{}},
		{name: "route deleted and ip_forward off", preset: "cluster-a", code: 1,
			fault: func(t *testing.T, dir string) {
				editFile(t, filepath.Join(dir, "ip-route.txt"), dropLine("10.0.35.0/24 via 172.31.21.52 dev tunl0"))
				editFile(t, filepath.Join(dir, "sysctl.txt"), func(s string) string {
					return strings.Replace(s, "ipv4/ip_forward = 1", "ipv4/ip_forward = 0", 1)
				})
			},
			checks: []string{"route.missing-pod-block", "sysctl.ip-forward-off"},
			golden: "verify/cluster-a-faults.golden"},
		{name: "rp_filter strict only warns", preset: "cluster-b", code: 0,
			fault: func(t *testing.T, dir string) {
				editFile(t, filepath.Join(dir, "sysctl.txt"), func(s string) string {
					return strings.Replace(s, "ipv4/conf/all/rp_filter = 2", "ipv4/conf/all/rp_filter = 1", 1)
				})
			},
			checks: []string{"sysctl.rp-filter-strict"}},
		{name: "objects without a Service its chains still serve", preset: "cluster-b", code: 1,
			extra:  []string{"--objects", "testdata/verify/cluster-b-without-web.yaml"},
			checks: []string{"iptables.stale-chain", "iptables.stale-chain", "iptables.stale-chain"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if out, errOut, code := runCLI(t, "collect", "--preset", tc.preset, node, "-o", dir); code != 0 {
				t.Fatalf("collect: exit %d\n%s%s", code, out, errOut)
			}
			if tc.fault != nil {
				tc.fault(t, dir)
			}
			out, errOut, code := runCLI(t, append([]string{"verify", "--snapshot", dir, "--preset", tc.preset, "-o", "json"}, tc.extra...)...)
			if code != tc.code {
				t.Fatalf("verify: exit %d, want %d\n%s%s", code, tc.code, out, errOut)
			}
			var rep verifyReport
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("verify -o json: %v\n%s", err, out)
			}
			got := []string{}
			for _, f := range rep.Findings {
				got = append(got, f.Check)
			}
			if diff := cmp.Diff(tc.checks, got); diff != "" {
				t.Errorf("checks (-want +got):\n%s", diff)
			}
			if rep.Node != node {
				t.Errorf("node %q, want %q (from the snapshot's meta)", rep.Node, node)
			}
			if tc.golden != "" {
				text, _, _ := runCLI(t, "verify", "--snapshot", dir, "--preset", tc.preset)
				checkGolden(t, tc.golden, strings.ReplaceAll(text, dir, "SNAPSHOT"))
			}
		})
	}
}

func TestVerifyErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"verify", "--preset", "cluster-a"}, "--snapshot DIR is required"},
		{[]string{"verify", "--snapshot", "/nonexistent", "--preset", "cluster-a"}, "not a knet snapshot"},
		{[]string{"verify", "--snapshot", "x", "--objects", "/nonexistent.yaml"}, "/nonexistent.yaml"},
		{[]string{"verify", "--snapshot", "x", "--kubeconfig", "--preset", "cluster-a"}, "--kubeconfig alone"},
		{[]string{"verify", "--snapshot", "x", "--preset", "cluster-a", "-o", "yaml"}, `-o "yaml"`},
		{[]string{"collect", "--preset", "cluster-a", "-o", "x"}, "name the NODE"},
		{[]string{"collect", "node-1", "-o", "x"}, "needs --preset or -f"},
	} {
		_, errOut, code := runCLI(t, tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("knet %s: exit %d, stderr %q, want an error containing %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
}
