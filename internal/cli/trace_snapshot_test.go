package cli

import (
	"encoding/json"
	"math"
	"testing"
)

// TestTraceSnapshot: a node snapshot written by `knet collect --preset` traces like the
// rendered node, in iptables mode and in nftables mode.
func TestTraceSnapshot(t *testing.T) {
	for _, mode := range []string{"iptables", "nftables"} {
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
			if res.Verdict != "ACCEPT" || len(res.DNAT) != 3 || res.Masquerade {
				t.Fatalf("trace = %+v, want ACCEPT to the 3 ingress pods, unmasqueraded", res)
			}
			for _, d := range res.DNAT {
				if math.Abs(d.Probability-1.0/3) > 1e-6 {
					t.Errorf("%s: p=%v", d.To, d.Probability)
				}
			}
		})
	}
}
