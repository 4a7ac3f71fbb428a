package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/knet-dev/knet/cluster"
)

// importDump is a small `kubectl get ... -A -o yaml` List (hand-written in kubectl's layout).
const importDump = `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata:
    name: n1
  spec:
    podCIDR: 10.244.0.0/24
  status:
    addresses:
    - {type: InternalIP, address: 192.168.1.10}
- apiVersion: v1
  kind: Service
  metadata: {name: kubernetes, namespace: default}
  spec:
    clusterIP: 10.96.0.1
    ports: [{name: https, port: 443, protocol: TCP}]
- apiVersion: v1
  kind: Pod
  metadata: {name: web, namespace: default}
  spec:
    nodeName: n1
    containers: [{name: web, image: nginx}]
  status: {phase: Running, podIP: 10.244.0.7}
`

// TestImportObjects: `knet import --objects` writes a cluster file LoadCluster reads back.
func TestImportObjects(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "dump.yaml"), filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(in, []byte(importDump), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runCLI(t, "import", "--objects", in, "--cni", "flannel", "--proxy-mode", "ipvs", "-o", out)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "1 nodes, 1 pods") || !strings.Contains(stderr, "node subnets are not held by the API") {
		t.Errorf("stdout %q stderr %q", stdout, stderr)
	}
	c, err := cluster.LoadCluster(out)
	if err != nil {
		t.Fatalf("LoadCluster: %v", err)
	}
	if c.Proxy.Mode != cluster.ProxyIPVS || c.CNI.Plugin != cluster.CNIFlannel || c.PodCIDR.String() != "10.244.0.0/24" || len(c.Objects.Pods) != 1 {
		t.Errorf("loaded %s %s %s pods=%d", c.Proxy.Mode, c.CNI.Plugin, c.PodCIDR, len(c.Objects.Pods))
	}
}

func TestImportErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"import", "--objects", "x.yaml"}, "-o CLUSTER.yaml is required"},
		{[]string{"import", "--objects", "x.yaml", "-o", "o.yaml", "--proxy-mode", "userspace"}, `--proxy-mode "userspace"`},
		{[]string{"import", "--objects", "/nonexistent/x.yaml", "-o", "o.yaml"}, "no such file"},
	} {
		_, stderr, code := runCLI(t, tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, stderr, tc.want)
		}
	}
}
