package crictl

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/knet-dev/knet/dataplane/cri"
)

var update = flag.Bool("update", false, "rewrite golden files")

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

const (
	podNginx   = "5b3c0f1d2e4a6f7081929a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f"
	podCoreDNS = "9f8e7d6c5b4a30112233445566778899aabbccddeeff00112233445566778899"
	podBusy    = "0a1b2c3d4e5f60112233445566778899aabbccddeeff00112233445566778899"
)

func testState(t *testing.T) *cri.State {
	t.Helper()
	s := &cri.State{}
	for _, p := range []*cri.Sandbox{
		{ID: podBusy, Name: "busybox", Namespace: "default", State: cri.SandboxNotReady, CreatedAt: now.Add(-50 * time.Hour)},
		{ID: podNginx, Name: "nginx", Namespace: "default", CreatedAt: now.Add(-4*time.Minute - 10*time.Second)},
		{ID: podCoreDNS, Name: "coredns-5dd5756b68-6n6lb", Namespace: "kube-system", Attempt: 1, RuntimeHandler: "runc", CreatedAt: now.Add(-65 * time.Minute)},
	} {
		if err := s.RunPodSandbox(p); err != nil {
			t.Fatal(err)
		}
	}
	lbl := func(pod, ns string) map[string]string {
		return map[string]string{LabelPodName: pod, LabelPodNamespace: ns}
	}
	for _, c := range []*cri.Container{
		{ID: "e5f6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f80910", PodSandboxID: podCoreDNS, Name: "coredns", Attempt: 1,
			Image: "sha256:cbb01a7bd410dc08ba382018ab909a674fb0e48687f0c00797ed5bc34fcc6bb4", CreatedAt: now.Add(-64 * time.Minute), Labels: lbl("coredns-5dd5756b68-6n6lb", "kube-system")},
		{ID: "c1d2e3f4a5b6c7d8e9f00112233445566778899aabbccddeeff00112233445566", PodSandboxID: podNginx, Name: "nginx",
			Image: "docker.io/library/nginx:1.27", CreatedAt: now.Add(-3 * time.Minute), Labels: lbl("nginx", "default")},
		{ID: "f0e1d2c3b4a5968778695a4b3c2d1e0f00112233445566778899aabbccddeeff", PodSandboxID: podBusy, Name: "busybox", State: cri.ContainerExited,
			Image: "3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741", CreatedAt: now.Add(-49 * time.Hour), Labels: lbl("busybox", "default")},
	} {
		if err := s.CreateContainer(c); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", name, diff)
	}
}

func TestPrint(t *testing.T) {
	s := testState(t)
	for _, tc := range []struct {
		golden string
		pods   bool
		opt    Options
	}{
		{"ps-v132.txt", false, Options{Now: now}},
		{"ps-v124.txt", false, Options{Now: now, Version: "1.28.0"}},
		{"ps-v115.txt", false, Options{Now: now, Version: "v1.23.1"}},
		{"ps-v114.txt", false, Options{Now: now, Version: "1.14.0"}},
		{"pods-v132.txt", true, Options{Now: now}},
		{"pods-v118.txt", true, Options{Now: now, Version: "1.18.0"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			var b bytes.Buffer
			var err error
			if tc.pods {
				err = PrintPods(&b, s, tc.opt)
			} else {
				err = PrintPS(&b, s, tc.opt)
			}
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.golden, b.Bytes())
		})
	}
}

func TestQuiet(t *testing.T) {
	s := testState(t)
	var b bytes.Buffer
	if err := PrintPods(&b, s, Options{Now: now, Quiet: true}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(podNginx+"\n"+podCoreDNS+"\n"+podBusy+"\n", b.String()); diff != "" {
		t.Errorf("pods -q (-want +got):\n%s", diff)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		file string
		pods bool
	}{{"ps-v132.txt", false}, {"ps-v124.txt", false}, {"ps-v115.txt", false}, {"ps-v114.txt", false}, {"pods-v132.txt", true}, {"pods-v118.txt", true}} {
		t.Run(tc.file, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			s := &cri.State{}
			var b bytes.Buffer
			if tc.pods {
				v, probs := ParsePods(s, tc.file, in, now)
				if len(probs) > 0 {
					t.Fatal(probs)
				}
				err = PrintPods(&b, s, Options{Now: now, Version: v, NoTrunc: true})
			} else {
				v, probs := ParsePS(s, tc.file, in, now)
				if len(probs) > 0 {
					t.Fatal(probs)
				}
				err = PrintPS(&b, s, Options{Now: now, Version: v, NoTrunc: true})
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(in), b.String()); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseProblems(t *testing.T) {
	in := "POD ID              CREATED             STATE               NAME                NAMESPACE           ATTEMPT             RUNTIME\n" +
		"5b3c0f1d2e4a6       4 fortnights ago    Sleeping            nginx               default             0                   (default)\n"
	_, probs := ParsePods(&cri.State{}, "pods.txt", []byte(in), now)
	var got []string
	for _, p := range probs {
		got = append(got, p.Error())
	}
	want := []string{
		`pods.txt:2: unknown duration unit "fortnights": "5b3c0f1d2e4a6       4 fortnights ago    Sleeping            nginx               default             0                   (default)"`,
		`pods.txt:2: unknown pod state "Sleeping": "5b3c0f1d2e4a6       4 fortnights ago    Sleeping            nginx               default             0                   (default)"`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

func TestParseJSON(t *testing.T) {
	s := &cri.State{}
	for _, f := range []struct {
		name  string
		parse func(*cri.State, string, []byte) error
	}{{"ps.json", ParsePSJSON}, {"pods.json", ParsePodsJSON}} {
		b, err := os.ReadFile(filepath.Join("testdata", f.name))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.parse(s, f.name, b); err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	if err := PrintPS(&b, s, Options{Now: time.Unix(0, 1795694400000000000)}); err != nil {
		t.Fatal(err)
	}
	want := "CONTAINER           IMAGE                          CREATED             STATE               NAME                ATTEMPT             POD ID              POD                 NAMESPACE\n" +
		"c1d2e3f4a5b6c       docker.io/library/nginx:1.27   3 minutes ago       Running             nginx               0                   5b3c0f1d2e4a6       nginx               default\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("ps from json (-want +got):\n%s", diff)
	}
	if p := s.SandboxFor("default", "nginx"); p == nil || p.UID != "4f6d0b1e-6c3a-4d1e-9a3b-1f2e3d4c5b6a" || p.State != cri.SandboxReady {
		t.Errorf("sandbox from json = %+v", p)
	}
	if err := ParsePSJSON(s, "bad.json", []byte(`{"containers": [`)); err == nil {
		t.Error("truncated JSON: want an error")
	}
}

func FuzzParseCrictl(f *testing.F) {
	for _, n := range []string{"ps-v132.txt", "ps-v114.txt", "pods-v132.txt", "pods-v118.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// A 6-column "CONTAINER ID" header once indexed past the row (found by a mutation run).
	f.Add([]byte("CONTAINER ID        IMAGE               CREATED             STATE               NAME                POD ID\nc1                  img                 2 days ago          Running             x                   p1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &cri.State{}
		ParsePS(s, "fuzz", b, now)
		ParsePods(s, "fuzz", b, now)
		var out bytes.Buffer
		if err := PrintPS(&out, s, Options{Now: now}); err != nil {
			t.Fatal(err)
		}
		if err := PrintPods(&out, s, Options{Now: now}); err != nil {
			t.Fatal(err)
		}
	})
}

// BenchmarkPrintPS500 prints `crictl ps` for 500 containers (a full node at --max-pods 500).
func BenchmarkPrintPS500(b *testing.B) {
	s := &cri.State{}
	for i := range 500 {
		id := fmt.Sprintf("%064x", i+1)
		pod := fmt.Sprintf("%064x", 1000+i)
		s.Sandboxes = append(s.Sandboxes, &cri.Sandbox{ID: pod, Name: fmt.Sprintf("web-%d", i), Namespace: "default", State: cri.SandboxReady, CreatedAt: now.Add(-time.Duration(i) * time.Minute)})
		s.Containers = append(s.Containers, &cri.Container{ID: id, PodSandboxID: pod, Name: "web", Image: "docker.io/library/nginx:1.27",
			State: cri.ContainerRunning, CreatedAt: now.Add(-time.Duration(i) * time.Minute),
			Labels: map[string]string{LabelPodName: fmt.Sprintf("web-%d", i), LabelPodNamespace: "default"}})
	}
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := PrintPS(&buf, s, Options{Now: now}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(buf.Len()))
}
