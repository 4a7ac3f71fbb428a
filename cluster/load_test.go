package cluster

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

func TestLoadObjectsYAML(t *testing.T) {
	objs, notes, err := LoadObjects(filepath.Join("testdata", "objects.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type summary struct {
		Services, Pods, Nodes, Slices int
		ProxyNode                     string
	}
	got := summary{len(objs.Services), len(objs.Pods), len(objs.Nodes), len(objs.EndpointSlices), ""}
	if objs.ProxyConfig != nil {
		got.ProxyNode = objs.ProxyConfig.HostnameOverride
	}
	want := summary{Services: 1, Pods: 3, Nodes: 2, Slices: 0, ProxyNode: "node-a"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	wantNotes := []Note{{File: "testdata/objects.yaml", Line: 18, Message: `skipped v1 ConfigMap "default/ignored": not a kind knet uses`}}
	if diff := cmp.Diff(wantNotes, notes); diff != "" {
		t.Errorf("notes (-want +got):\n%s", diff)
	}
	svc := objs.Services[0]
	// API server defaults.
	if svc.Spec.Type != corev1.ServiceTypeClusterIP || svc.Spec.Ports[1].Protocol != corev1.ProtocolTCP ||
		svc.Spec.Ports[1].TargetPort.IntVal != 9090 || *svc.Spec.InternalTrafficPolicy != corev1.ServiceInternalTrafficPolicyCluster ||
		svc.Spec.ExternalTrafficPolicy != "" || len(svc.Spec.IPFamilies) != 1 || svc.Spec.IPFamilies[0] != corev1.IPv4Protocol {
		t.Errorf("defaults not applied as the API server would: %+v", svc.Spec)
	}
}

func TestLoadObjectsJSONList(t *testing.T) {
	objs, notes, err := LoadObjects(filepath.Join("testdata", "objects.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 0 {
		t.Errorf("unexpected notes: %v", notes)
	}
	if len(objs.Services) != 1 || len(objs.EndpointSlices) != 1 {
		t.Fatalf("got %d services, %d slices; want 1, 1", len(objs.Services), len(objs.EndpointSlices))
	}
	s := objs.Services[0].Spec
	if s.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster {
		t.Errorf("externalTrafficPolicy = %q, want Cluster", s.ExternalTrafficPolicy)
	}
	if s.SessionAffinityConfig == nil || *s.SessionAffinityConfig.ClientIP.TimeoutSeconds != 10800 {
		t.Errorf("sessionAffinityConfig not defaulted: %+v", s.SessionAffinityConfig)
	}
	if *s.AllocateLoadBalancerNodePorts != true || *objs.Services[0].Status.LoadBalancer.Ingress[0].IPMode != corev1.LoadBalancerIPModeVIP {
		t.Errorf("LoadBalancer defaults missing")
	}
	es := objs.EndpointSlices[0]
	if *es.Ports[0].Protocol != corev1.ProtocolTCP || *es.Ports[0].Name != "" {
		t.Errorf("EndpointSlice port defaults missing: %+v", es.Ports[0])
	}
}

func TestDecodeObjectsErrors(t *testing.T) {
	tests := []struct {
		file string
		want string // substring of the error
	}{
		{"malformed-yaml.yaml", "testdata/malformed-yaml.yaml:9: malformed document"},
		{"malformed-type.yaml", "testdata/malformed-type.yaml:7: decoding Service \"wrong\""},
		{"no-kind.yaml", "testdata/no-kind.yaml:1: object has no kind"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, _, err := LoadObjects(filepath.Join("testdata", tt.file))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDecodeObjectsUnknownField(t *testing.T) {
	objs, notes, err := LoadObjects(filepath.Join("testdata", "unknown-field.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs.Services) != 1 || len(notes) != 1 || !strings.Contains(notes[0].Message, "prots") {
		t.Errorf("want the Service kept and a note about the unknown field, got %d services, notes %v", len(objs.Services), notes)
	}
}

func TestDeriveEndpointSlices(t *testing.T) {
	objs, _, err := LoadObjects(filepath.Join("testdata", "objects.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs.Services[0].Annotations = map[string]string{AnnotationTopologyMode: "Auto"}
	DeriveEndpointSlices(&objs)
	if len(objs.EndpointSlices) != 1 {
		t.Fatalf("got %d slices, want 1", len(objs.EndpointSlices))
	}
	es := objs.EndpointSlices[0]
	type ep struct {
		Addr, Node, Zone, Hint      string
		Ready, Serving, Terminating bool
	}
	var got []ep
	for _, e := range es.Endpoints {
		got = append(got, ep{e.Addresses[0], *e.NodeName, *e.Zone, e.Hints.ForZones[0].Name,
			*e.Conditions.Ready, *e.Conditions.Serving, *e.Conditions.Terminating})
	}
	want := []ep{
		{"10.244.1.5", "node-a", "zone-a", "zone-a", true, true, false},
		{"10.244.2.7", "node-b", "zone-b", "zone-b", false, true, true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("endpoints (-want +got):\n%s", diff)
	}
	type port struct {
		Name string
		Port int32
	}
	var gotPorts []port
	for _, p := range es.Ports {
		gotPorts = append(gotPorts, port{*p.Name, *p.Port})
	}
	if diff := cmp.Diff([]port{{"http", 8080}, {"metrics", 9090}}, gotPorts); diff != "" {
		t.Errorf("ports (-want +got):\n%s", diff)
	}
	if es.Labels[LabelServiceName] != "web" || !strings.HasPrefix(es.Name, "web-") || len(es.Name) != len("web-")+5 {
		t.Errorf("name/labels: %s %v", es.Name, es.Labels)
	}
	// Idempotent: a Service that now has a slice gets no second one.
	DeriveEndpointSlices(&objs)
	if len(objs.EndpointSlices) != 1 {
		t.Errorf("second derivation added slices: %d", len(objs.EndpointSlices))
	}
}

func FuzzDecodeObjects(f *testing.F) {
	for _, name := range []string{"objects.yaml", "objects.json", "malformed-yaml.yaml", "malformed-type.yaml", "no-kind.yaml", "unknown-field.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, _, err := DecodeObjects(bytes.NewReader(data), "fuzz.yaml")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Errorf("error does not name the file: %v", err)
			}
			return
		}
		DeriveEndpointSlices(&objs)
	})
}
