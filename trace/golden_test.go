package trace

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestGolden pins the text, JSON and YAML renderings of a few traces through kube-proxy's
// TestTracePacket rules (case02). Run with -update after an intended change and review the diff.
func TestGolden(t *testing.T) {
	rs := loadCase(t, filepath.Join("testdata", "kube-proxy-cases", "case02.iptables-save"))
	n, err := NewNode("test-node", rs, nil, localAddrs(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  Request
	}{
		{"multiple-endpoints", Request{Src: netip.MustParseAddr("10.0.0.2"), Dst: netip.MustParseAddr("172.30.0.44"), Proto: TCP, DPort: 80}},
		{"local-masquerade", Request{Src: netip.MustParseAddr("192.168.0.2"), Dst: netip.MustParseAddr("192.168.99.22"), Proto: TCP, DPort: 80}},
		{"drop", Request{Src: netip.MustParseAddr("203.0.113.2"), Dst: netip.MustParseAddr("192.168.99.22"), Proto: TCP, DPort: 80}},
	}
	for _, tt := range tests {
		for _, f := range []Format{FormatText, FormatJSON, FormatYAML} {
			t.Run(tt.name+"."+string(f), func(t *testing.T) {
				res, err := Trace(n, tt.req)
				if err != nil {
					t.Fatal(err)
				}
				var got bytes.Buffer
				if err := res.Write(&got, f); err != nil {
					t.Fatal(err)
				}
				file := filepath.Join("testdata", "golden", tt.name+"."+string(f))
				if *update {
					if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(file, got.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(file)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if diff := cmp.Diff(string(want), got.String()); diff != "" {
					t.Errorf("%s (-want +got):\n%s", file, diff)
				}
			})
		}
	}
}

// TestConcurrentTrace: a Node (its evaluators and rule-text cache) is shared by goroutines;
// run with -race.
func TestConcurrentTrace(t *testing.T) {
	rs := loadCase(t, filepath.Join("testdata", "kube-proxy-cases", "case02.iptables-save"))
	n, err := NewNode("test-node", rs, nil, localAddrs(t))
	if err != nil {
		t.Fatal(err)
	}
	n = n.Indexed()
	req := Request{Src: netip.MustParseAddr("10.0.0.2"), Dst: netip.MustParseAddr("172.30.0.44"), Proto: TCP, DPort: 80}
	want, err := Trace(n, req)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 50; i++ {
				got, err := Trace(n, req)
				if err != nil {
					errs <- err.Error()
					return
				}
				if d := cmp.Diff(want, got); d != "" {
					errs <- d
					return
				}
			}
			errs <- ""
		}()
	}
	for g := 0; g < 8; g++ {
		if e := <-errs; e != "" {
			t.Error(e)
		}
	}
}
