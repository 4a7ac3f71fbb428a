package cli

import (
	"encoding/json"
	"math"
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
