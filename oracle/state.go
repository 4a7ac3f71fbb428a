package oracle

import (
	"fmt"
	"os"
	"sort"

	"sigs.k8s.io/yaml"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// State is the set of objects the proxier has been told about at one point in time.
type State struct {
	Services       []*corev1.Service            `json:"services,omitempty"`
	EndpointSlices []*discoveryv1.EndpointSlice `json:"endpointSlices,omitempty"`
}

func indexServices(in []*corev1.Service) map[string]*corev1.Service {
	m := make(map[string]*corev1.Service, len(in))
	for _, s := range in {
		m[s.Namespace+"/"+s.Name] = s
	}
	return m
}

func indexSlices(in []*discoveryv1.EndpointSlice) map[string]*discoveryv1.EndpointSlice {
	m := make(map[string]*discoveryv1.EndpointSlice, len(in))
	for _, s := range in {
		m[s.Namespace+"/"+s.Name] = s
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Case is a scenario stored as YAML in testdata/: a configuration and the states synced
// one after the other.
type Case struct {
	// Description says what the case shows and, for a regression, what was wrong.
	Description string  `json:"description"`
	Config      Config  `json:"config"`
	States      []State `json:"states"`
	// ExpectedDifference, for a known version difference, are strings the reported
	// difference must contain.
	ExpectedDifference []string `json:"expectedDifference,omitempty"`
}

// LoadCase reads a Case from a YAML file.
func LoadCase(path string) (Case, error) {
	var c Case
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read case: %w", err)
	}
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	if len(c.States) == 0 {
		return c, fmt.Errorf("%s: no states", path)
	}
	return c, nil
}

// MarshalCase renders c as YAML.
func MarshalCase(c Case) ([]byte, error) {
	b, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("marshal case: %w", err)
	}
	return b, nil
}
