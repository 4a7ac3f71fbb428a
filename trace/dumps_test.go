package trace

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func readTestDump(t *testing.T, name string) *Dump {
	t.Helper()
	p := filepath.Join("testdata", "dumps", name)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return &Dump{Name: p, Data: b}
}

// TestNodeFromDumps checks the wiring of the from-dumps inputs: local addresses from
// `ip addr`, the routing decision from `ip route show table all`, and `-m set` matches from
// `ipset save`.
func TestNodeFromDumps(t *testing.T) {
	d := Dumps{
		IPTablesSave: []Dump{*readTestDump(t, "ipvs-mode.iptables-save")},
		IPSet:        readTestDump(t, "ipset-save.txt"),
		IPAddr:       readTestDump(t, "ip-addr.txt"),
		IPRoute:      readTestDump(t, "ip-route.txt"),
	}
	n, warns, err := NodeFromDumps("node1", d)
	if err != nil {
		t.Fatalf("NodeFromDumps: %v (warnings %v)", err, warns)
	}
	type outcome struct {
		Verdict, DecidedBy string
		Route, Dev         string
	}
	tests := []struct {
		name string
		req  Request
		want outcome
	}{
		// 10.96.0.1 is on veth1b (ip addr), so it is delivered locally; KUBE-CLUSTER-IP
		// holds 10.96.0.1,tcp:443.
		{"ClusterIP port in the set", Request{Src: netip.MustParseAddr("10.244.1.5"), Dst: netip.MustParseAddr("10.96.0.1"), Proto: TCP, DPort: 443},
			outcome{"ACCEPT", "rule", "local 10.96.0.1/32", "lo"}},
		{"ClusterIP port not in the set: INPUT policy DROP", Request{Src: netip.MustParseAddr("10.244.1.5"), Dst: netip.MustParseAddr("10.96.0.1"), Proto: TCP, DPort: 444},
			outcome{"DROP", "policy", "local 10.96.0.1/32", "lo"}},
		{"NodePort in the bitmap:port set", Request{Src: netip.MustParseAddr("203.0.113.9"), Dst: netip.MustParseAddr("172.31.1.9"), Proto: TCP, DPort: 30080},
			outcome{"ACCEPT", "rule", "local 172.31.1.9/32", "lo"}},
		// The blackhole route 10.0.7.0/26 drops before FORWARD.
		{"blackholed by the routing table", Request{Src: netip.MustParseAddr("203.0.113.9"), Dst: netip.MustParseAddr("10.0.7.5"), Proto: TCP, DPort: 80},
			outcome{"DROP", "route", "blackhole 10.0.7.0/26", ""}},
		{"forwarded over the onlink route", Request{Src: netip.MustParseAddr("203.0.113.9"), Dst: netip.MustParseAddr("10.0.8.7"), Proto: TCP, DPort: 80},
			outcome{"ACCEPT", "policy", "unicast 10.0.8.0/26 via 172.31.1.2", "eth0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Trace(n, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			got := outcome{Verdict: string(res.Verdict), DecidedBy: string(res.DecidedBy)}
			for _, h := range res.Path {
				if h.Route != "" {
					got.Route, got.Dev = h.Route, h.Dev
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if len(res.Assumed) != 0 {
				t.Errorf("set matches were assumed, not evaluated: %+v", res.Assumed)
			}
		})
	}
}
