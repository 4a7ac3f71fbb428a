package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestExplainIPTables(t *testing.T) {
	dump := filepath.Join("testdata", "explain", "large-cluster.iptables-restore")
	objs := filepath.Join("testdata", "explain", "objects.yaml")
	out, errOut, code := runCLI(t, "explain", dump, "--objects", objs)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	checkGolden(t, "explain/large-cluster.text.golden", out)

	out, errOut, code = runCLI(t, "explain", dump, "--objects", objs, "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var recs []struct {
		File string
		Line int
		Text string
		Kind string
		Refs struct{ Service, Endpoint string }
	}
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 95 {
		t.Errorf("%d records, want one per line (95)", len(recs))
	}
	for _, r := range recs {
		if strings.HasPrefix(r.Text, "-A KUBE-SEP-") && (r.Refs.Service == "" || r.Refs.Endpoint == "") {
			t.Errorf("line %d not resolved to a Service endpoint: %+v", r.Line, r)
		}
	}
}

func TestExplainErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"explain"}, "requires at least 1 arg"},
		{[]string{"explain", "testdata/render/kube-proxy-config.yaml"}, "cannot tell what kind of dump"},
		{[]string{"explain", "testdata/explain/nope"}, "nope"},
		{[]string{"explain", "testdata/explain/large-cluster.iptables-restore", "-o", "yaml"}, `unknown output "yaml"`},
	} {
		_, errOut, code := runCLI(t, tt.args...)
		if code == 0 || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want failure mentioning %q", tt.args, code, errOut, tt.want)
		}
	}
}
