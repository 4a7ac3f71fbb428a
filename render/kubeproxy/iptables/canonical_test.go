package iptables

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCanonicalErrors(t *testing.T) {
	tests := map[string]string{
		"-A X -j Y\n":               "line 1: \"-A X -j Y\" outside a table",
		"*nat\n-A X -j Y\nCOMMIT\n": "line 2: rule for undeclared chain \"X\"",
		"*nat\n:X - [0:0]\n":        "table \"nat\" has no COMMIT",
		"*nat\n-X Y\nCOMMIT\n":      "line 2: -X of undeclared chain \"Y\"",
		"*nat\n*filter\n":           "line 2: table \"filter\" starts before COMMIT",
		"*nat\n-Z\nCOMMIT\n":        "line 2: cannot parse",
	}
	for in, want := range tests {
		if _, err := Canonical([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Canonical(%q) error %v, want %q", in, err, want)
		}
	}
}

// TestCanonicalIsIdempotent: upstream's expected dumps are already canonical.
func TestCanonicalIsIdempotent(t *testing.T) {
	for _, f := range []string{"case01.expected.iptables-restore", "case13.step03.expected.iptables-restore", "case14.expected.iptables-restore"} {
		in := readFile(t, f)
		out, err := Canonical(in)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != string(in) {
			t.Errorf("%s is not a fixed point of Canonical", f)
		}
	}
}

func TestCheckJumpsFindsProblems(t *testing.T) {
	in := "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-A - [0:0]\n:KUBE-SEP-UNUSED - [0:0]\n-A KUBE-SERVICES -j KUBE-SVC-A\n-A KUBE-SERVICES -j KUBE-SVC-MISSING\nCOMMIT\n"
	err := CheckJumps([]byte(in))
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"used but not created: KUBE-SVC-MISSING", "jumped to but have no rules: KUBE-SVC-A", "created but not used: KUBE-SEP-UNUSED"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

func FuzzCanonical(f *testing.F) {
	matches, _ := filepath.Glob(filepath.Join("testdata", "*.iptables-restore"))
	for _, m := range matches[:4] {
		b, err := os.ReadFile(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := Canonical(data)
		if err != nil {
			return
		}
		again, err := Canonical(out)
		if err != nil {
			t.Fatalf("canonical output does not parse: %v", err)
		}
		if string(again) != string(out) {
			t.Errorf("Canonical is not idempotent")
		}
		_ = CheckJumps(data)
	})
}
