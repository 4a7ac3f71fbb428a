package cli

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTraceSnapshot: a node snapshot written by `knet collect --preset` traces like the
// rendered node, in iptables mode and in nftables mode; in IPVS mode the snapshot's IPVS table
// picks the real server (rr on fresh state: one of the 3 ingress pods, p=1).
func TestTraceSnapshot(t *testing.T) {
	ingress := map[string]bool{"10.0.11.26:80": true, "10.0.11.27:80": true, "10.0.35.21:80": true}
	for _, mode := range []string{"iptables", "nftables", "ipvs"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			if _, stderr, code := runCLI(t, "collect", "--preset", "cluster-b", "--proxy-mode", mode, "ip-172-31-27-63", "-o", dir); code != 0 {
				t.Fatalf("collect: exit %d: %s", code, stderr)
			}
			out, stderr, code := runCLI(t, "trace", "--snapshot", dir, "--src", "10.0.104.2", "--dst", "10.1.60.159", "--dport", "80", "-o", "json")
			if code != 0 {
				t.Fatalf("trace: exit %d: %s", code, stderr)
			}
			var res struct {
				Verdict string `json:"verdict"`
				DNAT    []struct {
					To          string  `json:"to"`
					Probability float64 `json:"probability"`
				} `json:"dnat"`
				Masquerade bool `json:"masquerade"`
			}
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if mode == "ipvs" {
				if res.Verdict != "ACCEPT" || len(res.DNAT) != 1 || !ingress[res.DNAT[0].To] || res.DNAT[0].Probability != 1 || res.Masquerade {
					t.Fatalf("trace = %+v, want ACCEPT via IPVS to one ingress pod, p=1, unmasqueraded", res)
				}
				return
			}
			if res.Verdict != "ACCEPT" || len(res.DNAT) != 3 || res.Masquerade {
				t.Fatalf("trace = %+v, want ACCEPT to the 3 ingress pods, unmasqueraded", res)
			}
			for _, d := range res.DNAT {
				if !ingress[d.To] {
					t.Errorf("DNAT to %s, not an ingress pod", d.To)
				}
				if math.Abs(d.Probability-1.0/3) > 1e-6 {
					t.Errorf("%s: p=%v", d.To, d.Probability)
				}
			}
		})
	}
}

// TestTraceDumpsIPVS: the from-dumps form with --ipvsadm. Dumps of Cluster B's worker in IPVS
// mode come from `knet exec`; a plain `ip route` (main table only) is given, so the Service
// address on kube-ipvs0 is local only through the kernel's local route for each address.
func TestTraceDumpsIPVS(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]string{
		"iptables-save": {"iptables-save"},
		"ipset":         {"ipset", "save"},
		"ip-addr":       {"ip", "addr"},
		"ip-route":      {"ip", "route"},
		"ipvsadm":       {"ipvsadm", "-Ln"},
	}
	for name, cmd := range files {
		out, stderr, code := runCLI(t, append([]string{"exec", "--preset", "cluster-b", "--proxy-mode", "ipvs", "ip-172-31-27-63", "--"}, cmd...)...)
		if code != 0 {
			t.Fatalf("exec %v: exit %d: %s", cmd, code, stderr)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// An `ipvsadm -Lnc` listing (connections, no services) is refused.
	conns := "IPVS connection entries\npro expire state       source             virtual            destination\n"
	if err := os.WriteFile(filepath.Join(dir, "ipvsadm-conns"), []byte(conns), 0o644); err != nil {
		t.Fatal(err)
	}
	args := func(ipvsadm string) []string {
		return []string{"trace", "--iptables-save", filepath.Join(dir, "iptables-save"), "--ipset", filepath.Join(dir, "ipset"),
			"--ip-addr", filepath.Join(dir, "ip-addr"), "--ip-route", filepath.Join(dir, "ip-route"), "--ipvsadm", filepath.Join(dir, ipvsadm),
			"--src", "10.0.104.2", "--dst", "10.1.60.159", "--dport", "80", "-o", "json"}
	}
	out, stderr, code := runCLI(t, args("ipvsadm")...)
	if code != 0 {
		t.Fatalf("trace: exit %d: %s", code, stderr)
	}
	var res traceJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	ingress := map[string]bool{"10.0.11.26:80": true, "10.0.11.27:80": true, "10.0.35.21:80": true}
	if res.Verdict != "ACCEPT" || len(res.DNAT) != 1 || !ingress[res.DNAT[0].To] || res.DNAT[0].Probability != 1 {
		t.Fatalf("trace = %+v, want ACCEPT via IPVS to one ingress pod", res)
	}
	var local, ipvsHop bool
	for _, h := range res.Path {
		local = local || strings.HasPrefix(h.Route, "local 10.1.60.159/32")
		ipvsHop = ipvsHop || (h.Table == "ipvs" && strings.Contains(h.Rule, "10.1.60.159:80 rr"))
	}
	if !local || !ipvsHop {
		t.Errorf("path lacks local delivery (%v) or the IPVS hop (%v): %+v", local, ipvsHop, res.Path)
	}
	if _, stderr, code := runCLI(t, args("ipvsadm-conns")...); code == 0 || !strings.Contains(stderr, "ipvsadm -Ln") {
		t.Errorf("a -Lnc dump: exit %d, stderr %q; want an error asking for ipvsadm -Ln", code, stderr)
	}
}
