package cri

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestState(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	s := &State{}
	for _, p := range []*Sandbox{
		{ID: "bbb111", Name: "web", Namespace: "default", CreatedAt: t0.Add(-2 * time.Hour)},
		{ID: "aaa222", Name: "web", Namespace: "default", CreatedAt: t0.Add(-time.Hour), Attempt: 1},
		{ID: "ccc333", Name: "dns", Namespace: "kube-system", CreatedAt: t0.Add(-time.Hour)},
	} {
		if err := s.RunPodSandbox(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"duplicate sandbox", s.RunPodSandbox(&Sandbox{ID: "aaa222", Name: "x"}), "run pod sandbox aaa222: already exists"},
		{"sandbox without name", s.RunPodSandbox(&Sandbox{ID: "ddd"}), `run pod sandbox: id and name are required (id "ddd", name "")`},
		{"container in a missing sandbox", s.CreateContainer(&Container{ID: "c1", Name: "c", PodSandboxID: "zzz"}), `create container c: pod sandbox "zzz" not found`},
		{"container by id prefix", s.CreateContainer(&Container{ID: "c2", Name: "web", PodSandboxID: "aaa", CreatedAt: t0}), ""},
	} {
		got := ""
		if tc.err != nil {
			got = tc.err.Error()
		}
		if got != tc.want {
			t.Errorf("%s: error %q, want %q", tc.name, got, tc.want)
		}
	}
	var order []string
	for _, p := range s.SortedSandboxes() {
		order = append(order, p.ID)
	}
	if diff := cmp.Diff([]string{"aaa222", "ccc333", "bbb111"}, order); diff != "" {
		t.Errorf("crictl pods order, newest first then id (-want +got):\n%s", diff)
	}
	if p := s.SandboxFor("default", "web"); p == nil || p.ID != "aaa222" {
		t.Errorf("SandboxFor(default/web) = %+v, want the newest attempt aaa222", p)
	}
	if got := s.Containers[0].State.CRIState(); got != "CONTAINER_RUNNING" {
		t.Errorf("default container state %s", got)
	}
	if got := SandboxNotReady.CRIState(); got != "SANDBOX_NOTREADY" {
		t.Errorf("CRIState = %s", got)
	}
}
