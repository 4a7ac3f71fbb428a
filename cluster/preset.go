package cluster

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// presetFS holds the seed's clusters (cluster-a.yaml, cluster-b.yaml, cluster-c.yaml) and the
// workloads they share; each file's header documents it.
//
//go:embed presets/*.yaml
var presetFS embed.FS

// PresetNames lists the embedded presets, sorted.
func PresetNames() []string {
	entries, err := fs.ReadDir(presetFS, "presets")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".yaml"); ok && strings.HasPrefix(n, "cluster-") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// Preset loads the embedded cluster called name ("cluster-a", "cluster-b", "cluster-c").
// Each call returns a fresh Cluster the caller may change.
func Preset(name string) (*Cluster, error) {
	file := path.Join("presets", name+".yaml")
	data, err := presetFS.ReadFile(file)
	if err != nil || !strings.HasPrefix(name, "cluster-") {
		return nil, fmt.Errorf("unknown preset %q (have %s)", name, strings.Join(PresetNames(), ", "))
	}
	return ParseCluster(data, file, func(n string) ([]byte, error) {
		return presetFS.ReadFile(path.Join("presets", path.Clean("/" + n)[1:]))
	})
}

// PresetSource returns the embedded YAML of a preset (for `knet get --preset X -o yaml` users
// who want a starting point for their own cluster file).
func PresetSource(name string) ([]byte, error) {
	data, err := presetFS.ReadFile(path.Join("presets", name+".yaml"))
	if err != nil {
		return nil, fmt.Errorf("unknown preset %q (have %s)", name, strings.Join(PresetNames(), ", "))
	}
	return data, nil
}
