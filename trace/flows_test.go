package trace

// Acceptance against kube-proxy's own packet-flow expectations (case02..case12, see
// testdata/README.md): every row of every flows.tsv is traced through a node that has the
// case's rules, and kube-proxy's `output` and `masq` are compared with what knet's tracer
// says.
//
// kube-proxy's tracer (proxier_test.go tracePacket, reference kube-proxy.md §4.1) is a
// simplification; knet's is a real evaluator. The mapping from knet's Result onto the
// upstream columns is:
//   - output: the DNAT destinations of every branch, in rule order, joined by ", " (the
//     upstream tracer collects every endpoint of a statistic fan-out in the same order);
//     when no branch is DNATed, the verdict when it is DROP or REJECT, or ACCEPT when an
//     ACCEPT rule decided it (kube-proxy's health-check-nodeport rule); else empty. A DNATed
//     packet that is then accepted by KUBE-FORWARD's 0x4000 rule is still reported by its
//     DNAT targets, as upstream does.
//   - masq: a MASQUERADE target fired in nat POSTROUTING (KUBE-POSTROUTING, driven by the
//     0x4000 mark) in some branch. Upstream says "some rule jumped to KUBE-MARK-MASQ"; the
//     two agree whenever the packet reaches POSTROUTING, which every masq=true row does.
//
// Where the real kernel path differs from upstream's tracer, knet follows the kernel:
//   - a source that is a local address (192.168.0.2, 127.0.0.1, ::1, 2001:db8::1, ...) is
//     sent by the node: nat OUTPUT (not PREROUTING) runs, then filter OUTPUT, POSTROUTING,
//     and for a local destination the loopback PREROUTING/INPUT without nat. kube-proxy
//     installs the same KUBE-SERVICES jump in nat OUTPUT and PREROUTING, so the DNAT result
//     is the same; e.g. "[1 ...] localhost to nodePort gets masqueraded" (127.0.0.1 ->
//     127.0.0.1:3001) DNATs in nat OUTPUT through the nfacct-counted 127.0.0.0/8 rule and is
//     masqueraded in POSTROUTING (the kernel needs route_localnet=1 for that, which
//     kube-proxy sets). kubelet's KUBE-FIREWALL rule does not drop it because its source is
//     in 127.0.0.0/8.
//   - "[2..4 ...] localhost to nodePort is ignored" and "[5..7 ...] ::1": the KUBE-SERVICES
//     tail rule excludes 127.0.0.0/8 (::1/128), no DNAT happens, and the packet is delivered
//     locally by policy ACCEPT: output empty, as upstream.
//   - filter chains run at their real hooks (INPUT for local destinations after DNAT,
//     FORWARD otherwise) with conntrack state NEW, through the jump rules of kube-proxy.md
//     §1.1 (testdata base-jumps*.derived.iptables-restore), instead of being called
//     directly.
//   - IPv6 DNAT targets are printed as [addr]:port (upstream's tracer parses them badly,
//     §4.1, but its expected strings are already in this form).
//   - case05 "same node to LB1, SNATted to LB1" uses source 1.2.3.4, which is not a local
//     address of the test node, so it arrives from the network, as upstream assumes.
//   - "[x] after EndpointSlice deleted" rows (case09) run against
//     case09.deleted.derived.iptables-restore; case10/11 "[each subcase, after EndpointSlice
//     deleted]" rows run against the d subcase, whose rules are identical to the deleted
//     state (no usable endpoint anywhere: only the REJECT rules and the health check port).

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/knet-dev/knet/dataplane/netfilter"
	"github.com/knet-dev/knet/format/iptablessave"
)

// testLocalAddrs are the FakeProxier's addresses (kube-proxy.md §4.1).
var testLocalAddrs = []string{"127.0.0.1", "::1", "192.168.0.2", "192.168.1.2", "192.168.99.11", "2001:db8::1", "2001:db8:1::2"}

func localAddrs(t testing.TB) *netfilter.LocalAddrs {
	t.Helper()
	var as []netip.Addr
	for _, s := range testLocalAddrs {
		as = append(as, netip.MustParseAddr(s))
	}
	return netfilter.NewLocalAddrs(as...)
}

type flowRow struct {
	line                  int
	name, src, proto, dst string
	dport                 uint16
	output                string
	masq                  bool
}

func readFlows(t *testing.T, file string) []flowRow {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []flowRow
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		if n == 1 {
			continue // header
		}
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) != 7 {
			t.Fatalf("%s:%d: %d columns, want 7", file, n, len(cols))
		}
		port, err := strconv.ParseUint(cols[4], 10, 16)
		if err != nil {
			t.Fatalf("%s:%d: port: %v", file, n, err)
		}
		proto := cols[2]
		if proto == "" {
			proto = "tcp"
		}
		rows = append(rows, flowRow{line: n, name: cols[0], src: cols[1], proto: proto, dst: cols[3], dport: uint16(port), output: cols[5], masq: cols[6] == "true"})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// loadCase builds the node's ruleset: the static dump as is (case02), or the jump rules of
// kube-proxy.md §1.1 plus the case's restore input applied with --noflush.
func loadCase(t testing.TB, dump string) *netfilter.Ruleset {
	t.Helper()
	data, err := os.ReadFile(dump)
	if err != nil {
		t.Fatal(err)
	}
	fam := iptablessave.DetectFamily(data)
	if !strings.Contains(dump, ".derived.") {
		rs, _, err := iptablessave.ParseFamily(strings.NewReader(string(data)), dump, fam)
		if err != nil {
			t.Fatalf("parse %s: %v", dump, err)
		}
		return rs
	}
	base := "base-jumps-nofirewall.derived.iptables-restore"
	if strings.Contains(string(data), ":KUBE-FIREWALL ") {
		base = "base-jumps.derived.iptables-restore"
	}
	rs := &netfilter.Ruleset{Family: fam}
	for _, f := range []string{filepath.Join("testdata", "kube-proxy-cases", base), dump} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := iptablessave.Restore(rs, strings.NewReader(string(b)), f, iptablessave.RestoreOptions{NoFlush: true}); err != nil {
			t.Fatalf("restore %s: %v", f, err)
		}
	}
	return rs
}

// dumpFor picks the dump a flow row runs against.
func dumpFor(caseID, name string) string {
	dir := filepath.Join("testdata", "kube-proxy-cases")
	p := func(s string) string { return filepath.Join(dir, s) }
	sub := ""
	if strings.HasPrefix(name, "[") {
		sub = strings.Fields(strings.TrimPrefix(name, "["))[0]
		sub = strings.TrimSuffix(sub, "]")
	}
	deleted := strings.Contains(name, "after EndpointSlice deleted")
	switch caseID {
	case "case02":
		return p("case02.iptables-save")
	case "case06":
		return p("case06." + sub + ".derived.iptables-restore")
	case "case09":
		if deleted {
			return p("case09.deleted.derived.iptables-restore")
		}
		return p("case09." + sub + ".derived.iptables-restore")
	case "case10", "case11":
		if deleted {
			return p(caseID + ".d.derived.iptables-restore")
		}
		return p(caseID + "." + sub + ".derived.iptables-restore")
	case "case12":
		switch {
		case strings.HasPrefix(name, "[base"):
			return p("case12.a-base.derived.iptables-restore")
		case strings.HasPrefix(name, "[no LocalTrafficDetector"):
			return p("case12.b-noLocalDetector.derived.iptables-restore")
		case strings.HasPrefix(name, "[masqueradeAll=true, localDetector"):
			return p("case12.c-masqueradeAll.derived.iptables-restore")
		case strings.HasPrefix(name, "[masqueradeAll=true, no LocalTrafficDetector"):
			return p("case12.d-masqueradeAll-noLocalDetector.derived.iptables-restore")
		}
		return ""
	}
	return p(caseID + ".derived.iptables-restore")
}

// upstreamOutput maps a Result onto kube-proxy's `output` column (see the file comment).
func upstreamOutput(r *Result) string {
	if len(r.DNAT) > 0 {
		var to []string
		for _, d := range r.DNAT {
			to = append(to, d.To)
		}
		return strings.Join(to, ", ")
	}
	switch r.Verdict {
	case netfilter.DecisionDrop, netfilter.DecisionReject:
		return string(r.Verdict)
	case netfilter.DecisionAccept:
		if r.DecidedBy == netfilter.DecidedByRule && acceptedByServiceRule(r) {
			return "ACCEPT"
		}
	}
	return ""
}

// acceptedByServiceRule says the ACCEPT came from one of the chains upstream's tracer runs
// (KUBE-SERVICES, KUBE-EXTERNAL-SERVICES, KUBE-NODEPORTS, KUBE-PROXY-FIREWALL), not from
// a generic forwarding rule.
func acceptedByServiceRule(r *Result) bool {
	for i := len(r.Path) - 1; i >= 0; i-- {
		h := r.Path[i]
		if h.Table == "filter" && strings.HasSuffix(h.Rule, "-j ACCEPT") {
			return slices.Contains([]string{"KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-NODEPORTS", "KUBE-PROXY-FIREWALL"}, h.Chain)
		}
	}
	return false
}

func TestKubeProxyFlows(t *testing.T) {
	cases := []string{"case02", "case03", "case04", "case05", "case06", "case07", "case08", "case09", "case10", "case11", "case12"}
	local := localAddrs(t)
	nodes := map[string]*Node{}
	total := 0
	for _, id := range cases {
		rows := readFlows(t, filepath.Join("testdata", "kube-proxy-cases", id+".flows.tsv"))
		for _, row := range rows {
			total++
			t.Run(id+"/"+row.name, func(t *testing.T) {
				dump := dumpFor(id, row.name)
				n := nodes[dump]
				if n == nil {
					rs := loadCase(t, dump)
					var err error
					if rs.Family == netfilter.IPv6 {
						n, err = NewNode("test-node", nil, rs, local)
					} else {
						n, err = NewNode("test-node", rs, nil, local)
					}
					if err != nil {
						t.Fatalf("%s: %v", dump, err)
					}
					nodes[dump] = n
				}
				proto, err := ParseProtocol(row.proto)
				if err != nil {
					t.Fatal(err)
				}
				req := Request{Src: netip.MustParseAddr(row.src), Dst: netip.MustParseAddr(row.dst), Proto: proto, DPort: row.dport}
				for _, node := range []*Node{n, n.Indexed()} {
					res, err := Trace(node, req)
					if err != nil {
						t.Fatalf("Trace: %v", err)
					}
					got := fmt.Sprintf("output=%q masq=%v", upstreamOutput(res), res.Masquerade)
					want := fmt.Sprintf("output=%q masq=%v", row.output, row.masq)
					if got != want {
						var sb strings.Builder
						res.Write(&sb, FormatText)
						t.Errorf("flows.tsv line %d (%s): got %s, want %s\n%s", row.line, dump, got, want, sb.String())
					}
				}
			})
		}
	}
	if total < 230 {
		t.Errorf("only %d flow rows read", total)
	}
}
