package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

func TestLoadClusterInline(t *testing.T) {
	c, err := LoadCluster("testdata/spec-inline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type nodeView struct {
		Name, IP, Subnet, Gateway, Role, PodCIDR, Tunnel string
	}
	var got []nodeView
	for _, n := range c.Nodes {
		got = append(got, nodeView{n.Name, n.IP.String(), n.Subnet.String(), n.Gateway.String(), n.Role, n.PodCIDR.String(), n.TunnelIP.String()})
	}
	want := []nodeView{
		// flannel: kube-controller-manager's range allocator hands out blocks in order; the
		// vxlan device carries the lease's network address.
		{"cp", "192.168.1.10", "192.168.1.0/24", "192.168.1.1", "control-plane", "10.244.0.0/24", "10.244.0.0"},
		{"w1", "192.168.1.11", "192.168.1.0/24", "192.168.1.1", "worker", "10.244.1.0/24", "10.244.1.0"},
		{"w2", "192.168.2.12", "192.168.2.0/24", "192.168.2.254", "worker", "10.244.2.0/24", "10.244.2.0"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("nodes (-want +got):\n%s", d)
	}
	if c.CNI.Mode != FlannelVXLAN || c.CNI.Version != DefaultFlannelVersion || c.CNI.BlockSize != 24 || c.CNI.MTU != 1500 {
		t.Errorf("cni defaults: %+v", c.CNI)
	}
	if c.Objects.ProxyConfig == nil || c.Objects.ProxyConfig.ClusterCIDR != "10.244.0.0/16" {
		t.Errorf("proxy config not decoded: %+v", c.Objects.ProxyConfig)
	}
	pods := map[string]string{}
	for _, p := range c.Objects.Pods {
		pods[p.Name] = p.Spec.NodeName + " " + p.Status.PodIP
	}
	// host-local: gateway .1, pods from .2 in (namespace, name) order; the unscheduled
	// client goes to the first worker.
	wantPods := map[string]string{"client": "w1 10.244.1.2", "echo-a": "w1 10.244.1.3", "echo-b": "w1 10.244.1.4"}
	if d := cmp.Diff(wantPods, pods); d != "" {
		t.Errorf("pods (-want +got):\n%s", d)
	}
	// Derived: the kubernetes Service, its slice (control-plane IP :6443), the echo slice.
	var svcs, slices []string
	for _, s := range c.Objects.Services {
		svcs = append(svcs, s.Namespace+"/"+s.Name+" "+s.Spec.ClusterIP)
	}
	for _, es := range c.Objects.EndpointSlices {
		var eps []string
		for _, e := range es.Endpoints {
			eps = append(eps, e.Addresses...)
		}
		slices = append(slices, es.Labels["kubernetes.io/service-name"]+" "+strings.Join(eps, ","))
	}
	if d := cmp.Diff([]string{"default/echo 10.96.100.1", "default/kubernetes 10.96.0.1"}, svcs); d != "" {
		t.Errorf("services (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"echo 10.244.1.3,10.244.1.4", "kubernetes 192.168.1.10"}, slices); d != "" {
		t.Errorf("endpointslices (-want +got):\n%s", d)
	}
	if len(c.Objects.Nodes) != 3 || c.Objects.Nodes[0].Spec.PodCIDR != "10.244.0.0/24" ||
		c.Objects.Nodes[0].Labels["node-role.kubernetes.io/control-plane"] != "" {
		t.Errorf("derived Node objects wrong: %+v", c.Objects.Nodes[0])
	}
	if _, ok := c.Objects.Nodes[0].Labels["node-role.kubernetes.io/control-plane"]; !ok {
		t.Errorf("control-plane node lacks its role label")
	}
}

func TestLoadClusterErrors(t *testing.T) {
	base, err := os.ReadFile("testdata/spec-inline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, old, new, want string
	}{
		{"unknown top-level field", "podCIDR: 10.244.0.0/16", "podCIDRs: 10.244.0.0/16", "c.yaml:7: field podCIDRs not found"},
		{"unknown node field", "  role: control-plane", "  rol: control-plane", "c.yaml:22: field rol not found in a node"},
		{"bad subnet", "subnet: 192.168.2.0/24", "subnet: 192.168.2.0/33", "c.yaml:28: node w2 subnet"},
		{"ip outside subnet", "ip: 192.168.2.12", "ip: 192.168.3.12", "c.yaml:28: node w2: ip 192.168.3.12 is not in subnet"},
		{"host bits", "podCIDR: 10.244.0.0/16", "podCIDR: 10.244.0.1/16", "c.yaml:7: podCIDR: 10.244.0.1/16 has host bits set"},
		{"bad plugin", "plugin: flannel", "plugin: weave", "c.yaml:10: cni: plugin \"weave\""},
		{"bad proxy mode", "  mode: iptables\n  config", "  mode: userspace\n  config", "c.yaml:12: kubeProxy.mode \"userspace\""},
		{"bad role", "role: control-plane", "role: master", "c.yaml:22: node cp: role \"master\""},
		{"duplicate node", "- name: w2", "- name: w1", "c.yaml:26: node \"w1\" already defined at line 23"},
		{"bad inline object", "      targetPort: 8080", "      targetPort: [1]", "c.yaml:31: "},
		{"pod on unknown node", "    nodeName: w1\n    containers: [{name: echo, image: echo:1, ports: [{containerPort: 8080}]}]\n  # a comment",
			"    nodeName: w9\n    containers: [{name: echo, image: echo:1, ports: [{containerPort: 8080}]}]\n  # a comment", "pod default/echo-b: spec.nodeName \"w9\""},
		{"wrong kind", "kind: Cluster", "kind: Clusters", "c.yaml:3: not a cluster file"},
		{"syntax", "objects:\n", "objects: [\n", "c.yaml:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Replace(string(base), tt.old, tt.new, 1)
			if src == string(base) {
				t.Fatalf("test edit %q did not apply", tt.old)
			}
			dir := t.TempDir()
			f := filepath.Join(dir, "c.yaml")
			if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			objs, _ := os.ReadFile("testdata/spec-inline-objects.yaml")
			if err := os.WriteFile(filepath.Join(dir, "spec-inline-objects.yaml"), objs, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadCluster(f)
			if err == nil {
				t.Fatalf("LoadCluster succeeded, want error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestNodeSourceKeepsLines(t *testing.T) {
	data := []byte("a: 1\nobjects:\n  - kind: Pod\n    metadata:\n      name: x\n\n    # comment\n    spec: {}\n  - kind: Service\nnext: 2\n")
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	seq := root.Content[0].Content[3]
	var got []string
	for _, item := range seq.Content {
		b, err := nodeSource(strings.SplitAfter(string(data), "\n"), item)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(b))
	}
	want := []string{
		"kind: Pod\nmetadata:\n  name: x\n\n# comment\nspec: {}\n",
		"kind: Service\n",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("nodeSource (-want +got):\n%s", d)
	}
}

// FuzzParseCluster checks that no cluster file makes the loader panic and that every error
// names the file.
func FuzzParseCluster(f *testing.F) {
	for _, name := range []string{"testdata/spec-inline.yaml", "presets/cluster-a.yaml", "presets/cluster-c.yaml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("apiVersion: knet.dev/v1alpha1\nkind: Cluster\nmetadata: {name: x}\npodCIDR: 10.0.0.0/30\nserviceCIDR: 10.1.0.0/32\ncni: {plugin: calico, blockSize: 31}\nnodes: [{name: a, ip: 1.1.1.1, subnet: 1.1.1.0/24}, {name: b, ip: 1.1.1.2, subnet: 1.1.1.0/24}, {name: c, ip: 1.1.1.3, subnet: 1.1.1.0/24}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := ParseCluster(data, "fuzz.yaml", func(string) ([]byte, error) { return nil, os.ErrNotExist })
		if err != nil && !strings.Contains(err.Error(), "fuzz.yaml") {
			t.Errorf("error does not name the file: %v", err)
		}
	})
}

func TestInlineNotesKeepLines(t *testing.T) {
	base, err := os.ReadFile("testdata/spec-inline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src := strings.ReplaceAll(string(base), "  kind: Pod", "  kind: Pdo")
	c, err := ParseCluster([]byte(src), "c.yaml", func(string) ([]byte, error) { return []byte("# no objects\n"), nil })
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range c.Notes {
		got = append(got, n.String())
	}
	want := []string{
		`c.yaml:44: skipped v1 Pdo "default/echo-b": not a kind knet uses`,
		`c.yaml:51: skipped v1 Pdo "default/echo-a": not a kind knet uses`,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("notes (-want +got):\n%s", d)
	}
}
