// Package compare answers "did you make the right choice?": for a cluster profile (nodes,
// subnets, Services, endpoints, traffic mix, churn) it renders a representative node for
// every combination of kube-proxy mode (iptables, IPVS, nftables; kube-proxy v1.35 by
// default) and pod network (Calico v3.31 IPIP Always / CrossSubnet / VXLAN / Never,
// kube-router v2.11, Flannel v0.28 VXLAN / host-gw), measures the rendered models (rules and
// objects per node, rules a first packet traverses through the real evaluators, bytes
// rewritten per sync, encapsulation and pod MTU), and ranks the combinations for the
// profile's traffic mix. Reports print as text, Markdown, JSON and a self-contained HTML
// page with inline SVG charts.
package compare

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ProfileAPIVersion and ProfileKind identify a profile file.
const (
	ProfileAPIVersion = "knet.dev/v1alpha1"
	ProfileKind       = "Profile"
)

// Profile is the shape of a cluster to compare choices for. See testdata/profile.yaml for
// a documented example.
type Profile struct {
	APIVersion string `yaml:"apiVersion" json:"apiVersion"`
	Kind       string `yaml:"kind" json:"kind"`
	Name       string `yaml:"name" json:"name"`
	// Description says what the profile models.
	Description string `yaml:"description,omitempty" json:"description,omitempty"`

	// Nodes is the number of nodes, spread evenly over Subnets subnets (one zone each).
	Nodes   int `yaml:"nodes" json:"nodes"`
	Subnets int `yaml:"subnets" json:"subnets"`
	// Services is the number of Services, each with EndpointsPerService ready endpoints and
	// one TCP port.
	Services            int `yaml:"services" json:"services"`
	EndpointsPerService int `yaml:"endpointsPerService" json:"endpointsPerService"`
	// NodePortShare is the fraction of Services of type NodePort, AffinityShare the fraction
	// with sessionAffinity: ClientIP.
	NodePortShare float64 `yaml:"nodePortShare" json:"nodePortShare"`
	AffinityShare float64 `yaml:"affinityShare" json:"affinityShare"`
	// MTU is the host uplink MTU (default 1500; 9001 on AWS with jumbo frames).
	MTU int `yaml:"mtu,omitempty" json:"mtu,omitempty"`
	// KubeProxyVersion is the kube-proxy version rendered (default v1.35.0).
	KubeProxyVersion string `yaml:"kubeProxyVersion,omitempty" json:"kubeProxyVersion,omitempty"`

	Traffic Traffic `yaml:"traffic" json:"traffic"`
	Churn   Churn   `yaml:"churn" json:"churn"`
}

// Traffic is the traffic mix of one node.
type Traffic struct {
	// ConnectionsPerSecond is the rate of requests a node's pods send to Services.
	ConnectionsPerSecond float64 `yaml:"connectionsPerSecond" json:"connectionsPerSecond"`
	// NewConnectionShare is the fraction of requests that open a new connection (1: no
	// keepalive; 0.01: 100 requests per connection).
	NewConnectionShare float64 `yaml:"newConnectionShare" json:"newConnectionShare"`
	// CrossSubnetShare is the fraction of pod-to-pod traffic that crosses subnets.
	CrossSubnetShare float64 `yaml:"crossSubnetShare" json:"crossSubnetShare"`
}

// Churn is how often the Services change.
type Churn struct {
	// EndpointChangesPerSecond is the rate of endpoint changes cluster-wide.
	EndpointChangesPerSecond float64 `yaml:"endpointChangesPerSecond" json:"endpointChangesPerSecond"`
}

// Defaults.
const (
	DefaultMTU              = 1500
	DefaultKubeProxyVersion = "v1.35.0"
)

// Validate checks the profile and fills defaults.
func (p *Profile) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if p.APIVersion != "" && p.APIVersion != ProfileAPIVersion {
		bad("apiVersion %q: want %s", p.APIVersion, ProfileAPIVersion)
	}
	if p.Kind != "" && p.Kind != ProfileKind {
		bad("kind %q: want %s", p.Kind, ProfileKind)
	}
	if p.Name == "" {
		bad("name is required")
	}
	if p.Nodes < 1 {
		bad("nodes must be at least 1 (got %d)", p.Nodes)
	}
	if p.Subnets < 1 {
		bad("subnets must be at least 1 (got %d)", p.Subnets)
	} else if p.Subnets > p.Nodes && p.Nodes >= 1 {
		bad("subnets (%d) exceed nodes (%d)", p.Subnets, p.Nodes)
	} else if p.Subnets > 250 {
		bad("subnets must be at most 250 (got %d)", p.Subnets)
	}
	if p.Services < 1 {
		bad("services must be at least 1 (got %d)", p.Services)
	}
	if p.EndpointsPerService < 1 || p.EndpointsPerService > 1000 {
		bad("endpointsPerService must be in 1..1000 (got %d)", p.EndpointsPerService)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"nodePortShare", p.NodePortShare}, {"affinityShare", p.AffinityShare},
		{"traffic.newConnectionShare", p.Traffic.NewConnectionShare}, {"traffic.crossSubnetShare", p.Traffic.CrossSubnetShare}} {
		if f.v < 0 || f.v > 1 {
			bad("%s must be in [0,1] (got %g)", f.name, f.v)
		}
	}
	if p.Traffic.ConnectionsPerSecond < 0 || p.Churn.EndpointChangesPerSecond < 0 {
		bad("rates must not be negative")
	}
	if p.Subnets == 1 && p.Traffic.CrossSubnetShare > 0 {
		bad("traffic.crossSubnetShare is %g but there is one subnet", p.Traffic.CrossSubnetShare)
	}
	if p.MTU == 0 {
		p.MTU = DefaultMTU
	} else if p.MTU < 1280 || p.MTU > 9216 {
		bad("mtu must be in 1280..9216 (got %d)", p.MTU)
	}
	if p.KubeProxyVersion == "" {
		p.KubeProxyVersion = DefaultKubeProxyVersion
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("profile %s: %w", p.Name, err)
	}
	return nil
}

// ParseProfile decodes a profile file (YAML or JSON); file names it in errors, which carry
// the line. Unknown fields are errors.
func ParseProfile(data []byte, file string) (*Profile, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var p Profile
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("%s:%d: a profile file holds one document", file, extra.Line)
	}
	if p.Kind == "" || p.APIVersion == "" {
		return nil, fmt.Errorf("%s: apiVersion %s and kind %s are required", file, ProfileAPIVersion, ProfileKind)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &p, nil
}

// LoadProfile reads a profile from a file, or returns the built-in profile of that name
// (see BuiltinProfiles) when no such file exists and the name has no path separator.
func LoadProfile(nameOrFile string) (*Profile, error) {
	if !strings.ContainsAny(nameOrFile, "/\\.") {
		if p, ok := BuiltinProfile(nameOrFile); ok {
			return p, nil
		}
	}
	data, err := os.ReadFile(nameOrFile)
	if err != nil {
		return nil, fmt.Errorf("profile %q is neither a file nor a built-in (%s): %w", nameOrFile, strings.Join(BuiltinProfiles(), ", "), err)
	}
	return ParseProfile(data, nameOrFile)
}

func builtins() map[string]Profile {
	base := func(name, desc string, nodes, subnets, svcs, eps int, tr Traffic, churn float64) Profile {
		return Profile{APIVersion: ProfileAPIVersion, Kind: ProfileKind, Name: name, Description: desc,
			Nodes: nodes, Subnets: subnets, Services: svcs, EndpointsPerService: eps,
			NodePortShare: 0.1, AffinityShare: 0.05, MTU: DefaultMTU, KubeProxyVersion: DefaultKubeProxyVersion,
			Traffic: tr, Churn: Churn{EndpointChangesPerSecond: churn}}
	}
	return map[string]Profile{
		"small": base("small", "a small cluster: 10 nodes in 2 subnets, 100 Services x 3 endpoints, mostly keepalive traffic",
			10, 2, 100, 3, Traffic{ConnectionsPerSecond: 200, NewConnectionShare: 0.1, CrossSubnetShare: 0.5}, 0.5),
		"seed": base("seed", "the seed's clusters A, B and C: 6 nodes in 2 AWS subnets (us-east-1a, us-east-1b), a handful of Services",
			6, 2, 8, 2, Traffic{ConnectionsPerSecond: 100, NewConnectionShare: 0.5, CrossSubnetShare: 0.5}, 0.1),
		"large": base("large", "5,000 nodes in 10 subnets, 50,000 Services x 10 endpoints, no keepalive (Tigera's benchmark shape, scaled)",
			5000, 10, 50000, 10, Traffic{ConnectionsPerSecond: 1000, NewConnectionShare: 1, CrossSubnetShare: 0.9}, 50),
	}
}

// BuiltinProfiles lists the built-in profile names, sorted.
func BuiltinProfiles() []string {
	var out []string
	for k := range builtins() {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// BuiltinProfile returns a copy of the built-in profile name.
func BuiltinProfile(name string) (*Profile, bool) {
	p, ok := builtins()[name]
	if !ok {
		return nil, false
	}
	return &p, true
}
