// Package archtest guards knet's architecture: only the packages that are meant to touch
// the operating system (kernel, lab, the snapshot collector, and the thin main) import
// os/exec, syscall, x/sys/unix, netlink, netns or the IPVS netlink library. Everything else
// (the model, the formats, the renderers, trace, explain, verify, compare, the CLI) must
// build on any OS and run without privileges.
package archtest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// osImports are the imports that reach the operating system's networking or processes.
var osImports = map[string]bool{
	"os/exec":                           true,
	"syscall":                           true,
	"golang.org/x/sys/unix":             true,
	"github.com/vishvananda/netlink":    true,
	"github.com/vishvananda/netns":      true,
	"github.com/moby/ipvs":              true,
	"github.com/vishvananda/netlink/nl": true,
}

// allowed reports whether the package in dir (slash-separated, relative to the module
// root) may import OS-touching packages.
func allowed(dir string) bool {
	for _, p := range []string{"kernel", "lab", "snapshot/collect", "cmd/knet"} {
		if dir == p || strings.HasPrefix(dir, p+"/") {
			return true
		}
	}
	return false
}

func TestOnlyKernelLabAndCollectorTouchTheOS(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found from %s: %v", root, err)
	}
	var violations []string
	checked := 0
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			// Other modules (the test-only kube-proxy oracle) and hidden/testdata trees are out of scope.
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || rel == "oracle") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		dir := filepath.ToSlash(filepath.Dir(rel))
		if allowed(dir) {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if osImports[p] {
				violations = append(violations, rel+" imports "+p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no Go files checked: the walk is broken")
	}
	sort.Strings(violations)
	for _, v := range violations {
		t.Errorf("%s: only kernel, lab and the snapshot collector may touch the OS", v)
	}
}
