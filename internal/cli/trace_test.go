package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// traceJSON is the part of the `knet trace -o json` contract the test checks.
type traceJSON struct {
	Verdict   string `json:"verdict"`
	DecidedBy string `json:"decidedBy"`
	DNAT      []struct {
		To          string  `json:"to"`
		Probability float64 `json:"probability"`
	} `json:"dnat"`
	Masquerade bool `json:"masquerade"`
	Path       []struct {
		Node  string `json:"node"`
		Table string `json:"table"`
		Chain string `json:"chain"`
		Rule  string `json:"rule"`
		Line  int    `json:"line"`
		Route string `json:"route"`
	} `json:"path"`
}

func TestTraceFromDumps(t *testing.T) {
	const dump = "testdata/trace/case02.iptables-save"
	local := "--local-ip=127.0.0.1,::1,192.168.0.2,192.168.1.2,192.168.99.11"
	tests := []struct {
		name       string
		args       []string
		verdict    string
		decidedBy  string
		dnat       []string
		prob       []float64
		masquerade bool
		// firstRule is the first hop's rule text and line.
		firstRule string
		firstLine int
	}{{
		name:      "pod to a two-endpoint ClusterIP",
		args:      []string{"--src", "10.0.0.2", "--dst", "172.30.0.44", "--dport", "80"},
		verdict:   "ACCEPT",
		decidedBy: "policy",
		dnat:      []string{"10.180.0.4:80", "10.180.0.5:80"},
		prob:      []float64{0.5, 0.5},
		firstRule: "-A PREROUTING -m comment --comment kubernetes service portals -j KUBE-SERVICES", firstLine: 53,
	}, {
		name:       "node to an eTP=Local external IP is masqueraded",
		args:       []string{"--src", "192.168.0.2", "--dst", "192.168.99.22", "--dport", "80", "--proto", "tcp"},
		verdict:    "ACCEPT",
		decidedBy:  "policy",
		dnat:       []string{"10.180.0.2:80"},
		prob:       []float64{1},
		masquerade: true,
		firstRule:  "-A OUTPUT -m comment --comment kubernetes service portals -j KUBE-SERVICES", firstLine: 54,
	}, {
		name:      "external client to an eTP=Local external IP without local endpoints is dropped",
		args:      []string{"--src", "203.0.113.2", "--dst", "192.168.99.22", "--dport", "80"},
		verdict:   "DROP",
		decidedBy: "rule",
		firstRule: "-A PREROUTING -m comment --comment kubernetes service portals -j KUBE-SERVICES", firstLine: 53,
	}, {
		name:      "service without endpoints is rejected",
		args:      []string{"--src", "10.0.0.2", "--dst", "172.30.0.46", "--dport", "80"},
		verdict:   "REJECT",
		decidedBy: "rule",
		firstRule: "-A PREROUTING -m comment --comment kubernetes service portals -j KUBE-SERVICES", firstLine: 53,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			args := append([]string{"trace", "--iptables-save", dump, local, "-o", "json"}, tt.args...)
			if code := Main(context.Background(), args, strings.NewReader(""), &out, &errOut); code != 0 {
				t.Fatalf("knet %s: exit %d: %s", strings.Join(args, " "), code, errOut.String())
			}
			var got traceJSON
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out.String())
			}
			var dnat []string
			var prob []float64
			for _, d := range got.DNAT {
				dnat = append(dnat, d.To)
				prob = append(prob, d.Probability)
			}
			type summary struct {
				Verdict, DecidedBy string
				DNAT               []string
				Prob               []float64
				Masquerade         bool
				FirstRule          string
				FirstLine          int
			}
			want := summary{tt.verdict, tt.decidedBy, tt.dnat, tt.prob, tt.masquerade, tt.firstRule, tt.firstLine}
			g := summary{got.Verdict, got.DecidedBy, dnat, prob, got.Masquerade, "", 0}
			if len(got.Path) > 0 {
				g.FirstRule, g.FirstLine = got.Path[0].Rule, got.Path[0].Line
			}
			if diff := cmp.Diff(want, g); diff != "" {
				t.Errorf("(-want +got):\n%s\n%s", diff, out.String())
			}
			if got.DNAT == nil {
				t.Errorf(`"dnat" must be a list, not null`)
			}
			for _, h := range got.Path {
				if h.Node != "node" {
					t.Errorf("hop %+v: node %q, want \"node\"", h, h.Node)
				}
			}
		})
	}
}

func TestTraceErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"cluster form: unknown client", []string{"trace", "--preset", "cluster-a", "--from", "nobody", "--to", "web:80"}, "no such pod or node"},
		{"cluster form: missing --to", []string{"trace", "--preset", "cluster-a", "--from", "busybox"}, "--from and --to"},
		{"missing dump", []string{"trace", "--src", "10.0.0.1", "--dst", "10.0.0.2", "--dport", "80"}, "--iptables-save"},
		{"bad address", []string{"trace", "--iptables-save", "testdata/trace/case02.iptables-save", "--src", "10.0.0.300", "--dst", "10.0.0.2", "--dport", "80"}, "--src"},
		{"bad proto", []string{"trace", "--iptables-save", "testdata/trace/case02.iptables-save", "--src", "10.0.0.1", "--dst", "10.0.0.2", "--dport", "80", "--proto", "icmp"}, "unknown protocol"},
		{"bad output", []string{"trace", "-o", "xml"}, "unknown output format"},
		{"missing file", []string{"trace", "--iptables-save", "testdata/trace/nope", "--src", "10.0.0.1", "--dst", "10.0.0.2", "--dport", "80"}, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := Main(context.Background(), tt.args, strings.NewReader(""), &out, &errOut); code == 0 {
				t.Fatalf("exit 0, want an error; output %s", out.String())
			}
			if !strings.Contains(errOut.String(), tt.want) {
				t.Errorf("stderr %q does not mention %q", errOut.String(), tt.want)
			}
		})
	}
}

func TestTraceWithAddrRouteIPSet(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"trace", "--iptables-save", "testdata/trace/ipvs-mode.iptables-save", "--ipset", "testdata/trace/ipset-save.txt",
		"--ip-addr", "testdata/trace/ip-addr.txt", "--ip-route", "testdata/trace/ip-route.txt",
		"--src", "10.244.1.5", "--dst", "10.96.0.1", "--dport", "53", "--proto", "udp", "-o", "json"}
	// 10.96.0.1 is on veth1b in ip-addr.txt (delivered locally), and KUBE-CLUSTER-IP only
	// holds 10.96.0.1,tcp:443 for it, so INPUT's DROP policy decides.
	if code := Main(context.Background(), args, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var got traceJSON
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if got.Verdict != "DROP" || got.DecidedBy != "policy" {
		t.Errorf("verdict %s by %s, want DROP by policy (INPUT policy, set miss)\n%s", got.Verdict, got.DecidedBy, out.String())
	}
	route := ""
	for _, h := range got.Path {
		if h.Route != "" {
			route = h.Route
		}
	}
	if route != "local 10.96.0.1/32" {
		t.Errorf("route hop %q, want the FIB's local route", route)
	}
}

func TestTraceClusterForm(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"trace", "--preset", "cluster-a", "--from", "busybox", "--to", "web:80", "-o", "json"}
	if code := Main(context.Background(), args, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var got struct {
		Paths []struct {
			Verdict     string  `json:"verdict"`
			Probability float64 `json:"probability"`
			Endpoint    string  `json:"endpoint"`
			EndpointPod string  `json:"endpointPod"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(got.Paths) == 0 {
		t.Fatalf("no paths:\n%s", out.String())
	}
	total := 0.0
	for _, p := range got.Paths {
		total += p.Probability
		if p.Verdict != "ACCEPT" || !strings.HasPrefix(p.EndpointPod, "default/web-") {
			t.Errorf("path %+v: want ACCEPT to a web pod", p)
		}
	}
	if total < 0.999999 || total > 1.000001 {
		t.Errorf("path probabilities sum to %v, want 1", total)
	}
	// Text form and the flag checks.
	out.Reset()
	errOut.Reset()
	if code := Main(context.Background(), []string{"trace", "--preset", "cluster-a", "--from", "busybox", "--to", "web:80"}, strings.NewReader(""), &out, &errOut); code != 0 || !strings.Contains(out.String(), "path 1 of") {
		t.Errorf("text form: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if code := Main(context.Background(), []string{"trace", "--preset", "cluster-a", "-f", "x.yaml", "--from", "a", "--to", "b"}, strings.NewReader(""), &out, &errOut); code == 0 {
		t.Errorf("--preset with -f accepted")
	}
}
