package live

import (
	"bytes"
	"os"
	"testing"
)

// FuzzFromObjects: any kubectl dump that decodes imports without a panic, and an accepted
// one writes a cluster file that parses back.
func FuzzFromObjects(f *testing.F) {
	seed, err := os.ReadFile("testdata/dump.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("apiVersion: v1\nkind: Node\nmetadata:\n  name: n\nstatus:\n  addresses:\n  - type: InternalIP\n    address: 10.0.0.1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, _, err := decodeDump(data)
		if err != nil {
			return
		}
		c, _, err := FromObjects(objs, Options{})
		if err != nil {
			return
		}
		if _, err := Parse(c); err != nil {
			t.Errorf("imported cluster does not parse back: %v", err)
		}
		var b bytes.Buffer
		if err := WriteCluster(&b, c); err != nil {
			t.Errorf("WriteCluster: %v", err)
		}
	})
}
