package cluster

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	kubeproxyconfigv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	netutils "k8s.io/utils/net"
	"sigs.k8s.io/yaml"
)

// Note reports something the loader skipped or changed without failing: an unknown kind, an
// object of a kind knet does not use. Line is the first line of the document it is about.
type Note struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Message string `json:"message"`
}

func (n Note) String() string { return fmt.Sprintf("%s:%d: %s", n.File, n.Line, n.Message) }

// newScheme returns a scheme holding the kinds the loader decodes: core/v1 (Service, Pod,
// Node and their lists), discovery.k8s.io/v1 (EndpointSlice) and
// kubeproxy.config.k8s.io/v1alpha1 (KubeProxyConfiguration). A fresh scheme per call keeps
// the package free of global state.
func newScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, discoveryv1.AddToScheme, kubeproxyconfigv1alpha1.AddToScheme,
	} {
		if err := add(s); err != nil {
			return nil, fmt.Errorf("building scheme: %w", err)
		}
	}
	return s, nil
}

// LoadObjects reads every file (multi-document YAML, JSON, `kind: List`, as `kubectl get -o
// yaml|json` writes) and returns the union of their objects, with the API server's defaults
// applied (see ApplyDefaults), and the notes of every file.
func LoadObjects(files ...string) (Objects, []Note, error) {
	var all Objects
	var notes []Note
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return Objects{}, nil, fmt.Errorf("loading objects: %w", err)
		}
		objs, n, err := DecodeObjects(bytes.NewReader(data), f)
		if err != nil {
			return Objects{}, nil, err
		}
		all.Append(objs)
		notes = append(notes, n...)
	}
	return all, notes, nil
}

// Append adds o's objects to objs; a later KubeProxyConfiguration replaces an earlier one.
func (objs *Objects) Append(o Objects) {
	objs.Services = append(objs.Services, o.Services...)
	objs.EndpointSlices = append(objs.EndpointSlices, o.EndpointSlices...)
	objs.Pods = append(objs.Pods, o.Pods...)
	objs.Nodes = append(objs.Nodes, o.Nodes...)
	if o.ProxyConfig != nil {
		objs.ProxyConfig = o.ProxyConfig
	}
}

// document is one YAML document (or the whole JSON input) and the line it starts on.
type document struct {
	line int
	data []byte
}

// splitDocuments splits YAML on `---` separator lines, remembering each document's first
// line. JSON input (first non-blank byte `{` or `[`) is one document.
func splitDocuments(r io.Reader) ([]document, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		line := 1 + bytes.Count(data[:bytes.Index(data, trimmed[:1])], []byte("\n"))
		return []document{{line: line, data: data}}, nil
	}
	var docs []document
	var cur bytes.Buffer
	start := 1
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 64*1024*1024)
	n := 0
	for sc.Scan() {
		n++
		l := sc.Text()
		if l == "---" || strings.HasPrefix(l, "--- ") || l == "..." {
			docs = append(docs, document{line: start, data: bytes.Clone(cur.Bytes())})
			cur.Reset()
			start = n + 1
			continue
		}
		cur.WriteString(l)
		cur.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	docs = append(docs, document{line: start, data: bytes.Clone(cur.Bytes())})
	return docs, nil
}

// DecodeObjects decodes the Kubernetes objects in r (named file in messages). Unknown kinds
// are skipped with a Note; malformed input is an error naming file and the first line of the
// offending document. Defaults are applied as the API server would (ApplyDefaults).
func DecodeObjects(r io.Reader, file string) (Objects, []Note, error) {
	scheme, err := newScheme()
	if err != nil {
		return Objects{}, nil, err
	}
	decoder := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
	docs, err := splitDocuments(r)
	if err != nil {
		return Objects{}, nil, fmt.Errorf("%s: reading: %w", file, err)
	}
	var objs Objects
	var notes []Note
	for _, d := range docs {
		if isBlankYAML(d.data) {
			continue
		}
		d.line = firstContentLine(d)
		js, err := yaml.YAMLToJSON(d.data)
		if err != nil {
			return Objects{}, nil, fmt.Errorf("%s:%d: malformed document: %w", file, d.line, err)
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue
		}
		if err := decodeInto(&objs, &notes, decoder, js, file, d.line, 0); err != nil {
			return Objects{}, nil, err
		}
	}
	ApplyDefaults(&objs)
	return objs, notes, nil
}

// firstContentLine returns the line of d's first line that is neither blank nor a comment.
func firstContentLine(d document) int {
	for i, l := range strings.Split(string(d.data), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			return d.line + i
		}
	}
	return d.line
}

func isBlankYAML(b []byte) bool {
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// decodeInto decodes one JSON object (possibly a List) into objs.
func decodeInto(objs *Objects, notes *[]Note, decoder runtime.Decoder, js []byte, file string, line, depth int) error {
	var head struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Items      []json.RawMessage `json:"items"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	trimmed := bytes.TrimSpace(js)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		// A bare JSON array of objects.
		var items []json.RawMessage
		if err := json.Unmarshal(js, &items); err != nil {
			return fmt.Errorf("%s:%d: malformed JSON array: %w", file, line, err)
		}
		for _, it := range items {
			if err := decodeInto(objs, notes, decoder, it, file, line, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := json.Unmarshal(js, &head); err != nil {
		return fmt.Errorf("%s:%d: malformed object: %w", file, line, err)
	}
	if head.Kind == "" {
		return fmt.Errorf("%s:%d: object has no kind", file, line)
	}
	if head.APIVersion == "" {
		return fmt.Errorf("%s:%d: %s object has no apiVersion", file, line, head.Kind)
	}
	if head.Kind == "List" || strings.HasSuffix(head.Kind, "List") {
		if depth > 4 {
			return fmt.Errorf("%s:%d: lists nested too deeply", file, line)
		}
		for _, it := range head.Items {
			if err := decodeInto(objs, notes, decoder, it, file, line, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	gv, err := schema.ParseGroupVersion(head.APIVersion)
	if err != nil {
		return fmt.Errorf("%s:%d: %s: bad apiVersion %q: %w", file, line, head.Kind, head.APIVersion, err)
	}
	gvk := gv.WithKind(head.Kind)
	switch gvk {
	case corev1.SchemeGroupVersion.WithKind("Service"),
		corev1.SchemeGroupVersion.WithKind("Pod"),
		corev1.SchemeGroupVersion.WithKind("Node"),
		discoveryv1.SchemeGroupVersion.WithKind("EndpointSlice"),
		kubeproxyconfigv1alpha1.SchemeGroupVersion.WithKind("KubeProxyConfiguration"):
	default:
		name := head.Metadata.Name
		if head.Metadata.Namespace != "" {
			name = head.Metadata.Namespace + "/" + name
		}
		*notes = append(*notes, Note{File: file, Line: line,
			Message: fmt.Sprintf("skipped %s %s %q: not a kind knet uses", head.APIVersion, head.Kind, name)})
		return nil
	}
	obj, _, err := decoder.Decode(js, &gvk, nil)
	if err != nil {
		if obj == nil || !runtime.IsStrictDecodingError(err) {
			return fmt.Errorf("%s:%d: decoding %s %q: %w", file, line, head.Kind, head.Metadata.Name, err)
		}
		// Unknown fields: keep the object, report what was ignored.
		if sde, ok := runtime.AsStrictDecodingError(err); ok {
			for _, e := range sde.Errors() {
				*notes = append(*notes, Note{File: file, Line: line,
					Message: fmt.Sprintf("%s %q: ignored %s", head.Kind, head.Metadata.Name, e)})
			}
		}
	}
	switch o := obj.(type) {
	case *corev1.Service:
		objs.Services = append(objs.Services, o)
	case *corev1.Pod:
		objs.Pods = append(objs.Pods, o)
	case *corev1.Node:
		objs.Nodes = append(objs.Nodes, o)
	case *discoveryv1.EndpointSlice:
		objs.EndpointSlices = append(objs.EndpointSlices, o)
	case *kubeproxyconfigv1alpha1.KubeProxyConfiguration:
		objs.ProxyConfig = o
	default:
		return fmt.Errorf("%s:%d: decoded unexpected type %T", file, line, obj)
	}
	return nil
}

// ApplyDefaults applies the defaults the API server would have applied on create, for the
// fields knet reads. It mirrors k8s.io/kubernetes pkg/apis/core/v1/defaults.go
// (SetDefaults_Service, SetDefaults_ContainerPort) and pkg/apis/discovery/v1/defaults.go
// (SetDefaults_EndpointPort) at v1.35, which live outside the published k8s.io/api module,
// plus the Service registry's ipFamilies/ipFamilyPolicy allocation for single-stack clusters
// (the family of spec.clusterIP(s)). It is idempotent.
func ApplyDefaults(objs *Objects) {
	for _, s := range objs.Services {
		defaultService(s)
	}
	for _, es := range objs.EndpointSlices {
		for i := range es.Ports {
			p := &es.Ports[i]
			if p.Name == nil {
				p.Name = new(string)
			}
			if p.Protocol == nil {
				tcp := corev1.ProtocolTCP
				p.Protocol = &tcp
			}
		}
	}
	for _, p := range objs.Pods {
		for i := range p.Spec.Containers {
			for j := range p.Spec.Containers[i].Ports {
				if p.Spec.Containers[i].Ports[j].Protocol == "" {
					p.Spec.Containers[i].Ports[j].Protocol = corev1.ProtocolTCP
				}
			}
		}
	}
}

func defaultService(s *corev1.Service) {
	spec := &s.Spec
	if spec.SessionAffinity == "" {
		spec.SessionAffinity = corev1.ServiceAffinityNone
	}
	if spec.SessionAffinity == corev1.ServiceAffinityNone {
		spec.SessionAffinityConfig = nil
	}
	if spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		if spec.SessionAffinityConfig == nil || spec.SessionAffinityConfig.ClientIP == nil || spec.SessionAffinityConfig.ClientIP.TimeoutSeconds == nil {
			t := corev1.DefaultClientIPServiceAffinitySeconds
			spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: &t}}
		}
	}
	if spec.Type == "" {
		spec.Type = corev1.ServiceTypeClusterIP
	}
	for i := range spec.Ports {
		sp := &spec.Ports[i]
		if sp.Protocol == "" {
			sp.Protocol = corev1.ProtocolTCP
		}
		if sp.TargetPort == intstr.FromInt32(0) || sp.TargetPort == intstr.FromString("") {
			sp.TargetPort = intstr.FromInt32(sp.Port)
		}
	}
	externallyAccessible := spec.Type == corev1.ServiceTypeLoadBalancer || spec.Type == corev1.ServiceTypeNodePort ||
		(spec.Type == corev1.ServiceTypeClusterIP && len(spec.ExternalIPs) > 0)
	if externallyAccessible && spec.ExternalTrafficPolicy == "" {
		spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	}
	if spec.InternalTrafficPolicy == nil &&
		(spec.Type == corev1.ServiceTypeNodePort || spec.Type == corev1.ServiceTypeLoadBalancer || spec.Type == corev1.ServiceTypeClusterIP) {
		p := corev1.ServiceInternalTrafficPolicyCluster
		spec.InternalTrafficPolicy = &p
	}
	if spec.Type == corev1.ServiceTypeLoadBalancer && spec.AllocateLoadBalancerNodePorts == nil {
		t := true
		spec.AllocateLoadBalancerNodePorts = &t
	}
	if spec.Type == corev1.ServiceTypeLoadBalancer {
		vip := corev1.LoadBalancerIPModeVIP
		for i, ing := range s.Status.LoadBalancer.Ingress {
			if ing.IP != "" && ing.IPMode == nil {
				m := vip
				s.Status.LoadBalancer.Ingress[i].IPMode = &m
			}
		}
	}
	// Registry behaviour (pkg/registry/core/service/storage): a ClusterIP given without
	// clusterIPs is mirrored into clusterIPs, and ipFamilies follow the addresses.
	if spec.ClusterIP != "" && len(spec.ClusterIPs) == 0 {
		spec.ClusterIPs = []string{spec.ClusterIP}
	}
	if len(spec.IPFamilies) == 0 && spec.Type != corev1.ServiceTypeExternalName {
		for _, ip := range spec.ClusterIPs {
			if ip == corev1.ClusterIPNone {
				continue
			}
			a := netutils.ParseIPSloppy(ip)
			if a == nil {
				continue
			}
			if a.To4() != nil {
				spec.IPFamilies = append(spec.IPFamilies, corev1.IPv4Protocol)
			} else {
				spec.IPFamilies = append(spec.IPFamilies, corev1.IPv6Protocol)
			}
		}
	}
	if spec.IPFamilyPolicy == nil && len(spec.IPFamilies) > 0 && spec.Type != corev1.ServiceTypeExternalName {
		p := corev1.IPFamilyPolicySingleStack
		if len(spec.IPFamilies) > 1 {
			p = corev1.IPFamilyPolicyRequireDualStack
		}
		spec.IPFamilyPolicy = &p
	}
}
