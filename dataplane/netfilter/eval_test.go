package netfilter

import (
	"errors"
	"math"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Helpers that build rules as iptables-restore would parse them.

func pfx(s string) AddrMatch { return AddrMatch{Prefix: netip.MustParsePrefix(s)} }

func jump(c string) Target  { return &Jump{Chain: c} }
func gotoC(c string) Target { return &Jump{Chain: c, Goto: true} }
func verdict(k VerdictKind) Target {
	return &Verdict{Kind: k}
}
func dnat(s string) Target {
	ap := netip.MustParseAddrPort(s)
	return &DNAT{To: NATRange{MinAddr: ap.Addr(), MaxAddr: ap.Addr(), MinPort: ap.Port(), MaxPort: ap.Port()}}
}
func tcpDport(p uint16) Match {
	return &TCP{DPort: PortMatch{Set: true, Range: PortRange{p, p}}}
}
func random(p float64) Match {
	return &Statistic{Mode: StatisticRandom, Probability: uint32(math.Round(0x80000000 * p))}
}

type chainSpec struct {
	name   string
	policy Policy
	rules  []*Rule
}

func ruleset(t *testing.T, tables map[TableName][]chainSpec) *Ruleset {
	t.Helper()
	rs := &Ruleset{Family: IPv4}
	for _, tn := range TableOrder() {
		specs, ok := tables[tn]
		if !ok {
			continue
		}
		tb := rs.EnsureTable(tn)
		for _, cs := range specs {
			c := tb.EnsureChain(cs.name)
			if cs.policy != "" && c.Builtin {
				c.Policy = cs.policy
			}
			for i, r := range cs.rules {
				if r.Line == 0 {
					r.Line = i + 1
				}
				c.Append(r)
			}
		}
	}
	return rs
}

func mustEval(t *testing.T, rs *Ruleset) *Evaluator {
	t.Helper()
	ev, err := NewEvaluator(rs)
	if err != nil {
		t.Fatalf("NewEvaluator: %v", err)
	}
	return ev
}

type outcome struct {
	P       float64
	Verdict Decision
	By      DecidedBy
	DNAT    string
	Mark    uint32
}

func outcomes(bs []*Branch) []outcome {
	var out []outcome
	for _, b := range bs {
		o := outcome{P: Probability(b.Probability), Verdict: b.Verdict, By: b.DecidedBy, Mark: b.Packet.Mark}
		if d, ok := b.FirstDNAT(); ok {
			o.DNAT = d.String()
		}
		out = append(out, o)
	}
	return out
}

func pkt(src, dst string, dport uint16) Packet {
	return Packet{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Proto: "tcp", SPort: 40000, DPort: dport}
}

func TestEvalHooks(t *testing.T) {
	local := NewLocalAddrs(netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.168.0.2"))
	// Three endpoints as kube-proxy writes them: probabilities 1/3, 1/2, rest.
	svc3 := map[TableName][]chainSpec{
		NAT: {
			{name: "PREROUTING", rules: []*Rule{{Target: jump("KUBE-SERVICES")}}},
			{name: "KUBE-SERVICES", rules: []*Rule{
				{Dst: pfx("172.30.0.41/32"), Proto: ProtoMatch{Name: "tcp"}, Matches: []Match{&Comment{Text: "ns1/svc1:p80 cluster IP"}, tcpDport(80)}, Target: jump("KUBE-SVC-1")},
			}},
			{name: "KUBE-SVC-1", rules: []*Rule{
				{Matches: []Match{random(0.3333333333)}, Target: jump("KUBE-SEP-A")},
				{Matches: []Match{random(0.5)}, Target: jump("KUBE-SEP-B")},
				{Target: jump("KUBE-SEP-C")},
			}},
			{name: "KUBE-SEP-A", rules: []*Rule{{Proto: ProtoMatch{Name: "tcp"}, Target: dnat("10.180.0.1:8080")}}},
			{name: "KUBE-SEP-B", rules: []*Rule{{Proto: ProtoMatch{Name: "tcp"}, Target: dnat("10.180.0.2:8080")}}},
			{name: "KUBE-SEP-C", rules: []*Rule{{Proto: ProtoMatch{Name: "tcp"}, Target: dnat("10.180.0.3:8080")}}},
		},
	}
	// 715827883/2^31 and (1-that)/2, rounded to iptables-save's 11 decimals.
	p1 := Probability(715827883.0 / 2147483648.0)
	p2 := Probability((1 - 715827883.0/2147483648.0) / 2)

	gotoSpec := map[TableName][]chainSpec{
		Filter: {
			{name: "INPUT", policy: PolicyDrop, rules: []*Rule{
				{Target: jump("A")},
				{Matches: []Match{&Mark{Value: 0x1, Mask: 0x1}}, Target: verdict(VerdictAccept)},
			}},
			{name: "A", rules: []*Rule{{Target: gotoC("B")}, {Target: &MarkTarget{Value: 0x2, Mask: 0x2}}}},
			{name: "B", rules: []*Rule{{Target: &MarkTarget{Value: 0x1, Mask: 0x1}}, {Target: verdict(VerdictReturn)}, {Target: verdict(VerdictDrop)}}},
		},
	}
	tests := []struct {
		name   string
		tables map[TableName][]chainSpec
		hook   Hook
		pkt    Packet
		want   []outcome
	}{{
		name: "three endpoints: kernel u32 probabilities in rule order", tables: svc3, hook: Prerouting,
		pkt: pkt("10.0.0.2", "172.30.0.41", 80),
		want: []outcome{
			{P: p1, Verdict: DecisionAccept, By: DecidedByRule, DNAT: "10.180.0.1:8080"},
			{P: p2, Verdict: DecisionAccept, By: DecidedByRule, DNAT: "10.180.0.2:8080"},
			{P: p2, Verdict: DecisionAccept, By: DecidedByRule, DNAT: "10.180.0.3:8080"},
		},
	}, {
		name: "no service match: policy", tables: svc3, hook: Prerouting,
		pkt:  pkt("10.0.0.2", "172.30.0.41", 81),
		want: []outcome{{P: 1, Verdict: DecisionAccept, By: DecidedByPolicy}},
	}, {
		name: "established connections skip nat", tables: svc3, hook: Prerouting,
		pkt:  func() Packet { p := pkt("10.0.0.2", "172.30.0.41", 80); p.State = CTEstablished; return p }(),
		want: []outcome{{P: 1}},
	}, {
		name: "goto: RETURN goes back to the caller of the chain that did the goto", tables: gotoSpec, hook: Input,
		pkt:  pkt("10.0.0.2", "192.168.0.2", 80),
		want: []outcome{{P: 1, Verdict: DecisionAccept, By: DecidedByRule, Mark: 0x1}},
	}, {
		name: "addrtype LOCAL covers 127.0.0.0/8 and node IPs, ! -i wildcard",
		tables: map[TableName][]chainSpec{Filter: {{name: "INPUT", policy: PolicyAccept, rules: []*Rule{
			{In: IfaceMatch{Name: "cali+", Invert: true}, Matches: []Match{&AddrTypeMatch{DstType: AddrLocal}, &Multiport{Dir: MultiportDest, Ports: []PortRange{{22, 22}, {8000, 9000}}}}, Target: &Reject{}},
		}}}},
		hook: Input, pkt: func() Packet { p := pkt("10.0.0.2", "127.0.0.5", 8080); p.InIface = "eth0"; return p }(),
		want: []outcome{{P: 1, Verdict: DecisionReject, By: DecidedByRule}},
	}, {
		name: "interface wildcard matches the prefix",
		tables: map[TableName][]chainSpec{Filter: {{name: "INPUT", policy: PolicyAccept, rules: []*Rule{
			{In: IfaceMatch{Name: "cali+", Invert: true}, Target: &Reject{}},
		}}}},
		hook: Input, pkt: func() Packet { p := pkt("10.0.0.2", "127.0.0.5", 8080); p.InIface = "cali1234"; return p }(),
		want: []outcome{{P: 1, Verdict: DecisionAccept, By: DecidedByPolicy}},
	}, {
		name: "ctstate DNAT is set once DNAT happened",
		tables: map[TableName][]chainSpec{Filter: {{name: "INPUT", policy: PolicyAccept, rules: []*Rule{
			{Matches: []Match{&Conntrack{StateSet: true, State: CTDNAT}}, Target: verdict(VerdictDrop)},
		}}}},
		hook: Input, pkt: func() Packet { p := pkt("10.0.0.2", "192.168.0.2", 80); p.DNATed = true; return p }(),
		want: []outcome{{P: 1, Verdict: DecisionDrop, By: DecidedByRule}},
	}, {
		name: "recent rcheck does not match an empty list",
		tables: map[TableName][]chainSpec{Filter: {{name: "INPUT", policy: PolicyAccept, rules: []*Rule{
			{Matches: []Match{&Recent{Command: RecentCheck, Name: "KUBE-SEP-A", Seconds: 10800, Reap: true}}, Target: verdict(VerdictDrop)},
		}}}},
		hook: Input, pkt: pkt("10.0.0.2", "192.168.0.2", 80),
		want: []outcome{{P: 1, Verdict: DecisionAccept, By: DecidedByPolicy}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := mustEval(t, ruleset(t, tt.tables))
			for _, e := range []*Evaluator{ev, ev.Indexed()} {
				got := outcomes(e.Eval(tt.hook, NewEnv(local), tt.pkt))
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("indexed=%v outcomes (-want +got):\n%s", e.indexed, diff)
				}
			}
		})
	}
}

func TestEvalRecentAffinity(t *testing.T) {
	// ClientIP affinity: rcheck rules first; with a pre-loaded entry the packet sticks.
	tables := map[TableName][]chainSpec{NAT: {
		{name: "PREROUTING", rules: []*Rule{{Target: jump("SVC")}}},
		{name: "SVC", rules: []*Rule{
			{Matches: []Match{&Recent{Command: RecentCheck, Name: "SEP-B", Seconds: 10800, Reap: true}}, Target: jump("SEP-B")},
			{Matches: []Match{random(0.5)}, Target: jump("SEP-A")},
			{Target: jump("SEP-B")},
		}},
		{name: "SEP-A", rules: []*Rule{{Matches: []Match{&Recent{Command: RecentSet, Name: "SEP-A"}}, Target: dnat("10.0.0.10:80")}}},
		{name: "SEP-B", rules: []*Rule{{Matches: []Match{&Recent{Command: RecentSet, Name: "SEP-B"}}, Target: dnat("10.0.0.11:80")}}},
	}}
	ev := mustEval(t, ruleset(t, tables))
	src := netip.MustParseAddr("203.0.113.2")
	tests := []struct {
		name   string
		recent RecentState
		want   []outcome
	}{
		{"no affinity yet", nil, []outcome{
			{P: 0.5, Verdict: DecisionAccept, By: DecidedByRule, DNAT: "10.0.0.10:80"},
			{P: 0.5, Verdict: DecisionAccept, By: DecidedByRule, DNAT: "10.0.0.11:80"},
		}},
		{"seen 5s ago", RecentState{"SEP-B": {{Addr: src, SecondsAgo: 5, Hits: 1}}}, []outcome{
			{P: 1, Verdict: DecisionAccept, By: DecidedByRule, DNAT: "10.0.0.11:80"},
		}},
		{"expired", RecentState{"SEP-B": {{Addr: src, SecondsAgo: 20000, Hits: 1}}}, []outcome{
			{P: 0.5, Verdict: DecisionAccept, By: DecidedByRule, DNAT: "10.0.0.10:80"},
			{P: 0.5, Verdict: DecisionAccept, By: DecidedByRule, DNAT: "10.0.0.11:80"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := NewEnv(NewLocalAddrs())
			env.Recent = tt.recent
			bs := ev.Eval(Prerouting, env, pkt("203.0.113.2", "172.30.0.1", 80))
			if diff := cmp.Diff(tt.want, outcomes(bs)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			// --set recorded the client in the branch's copy, not in the input.
			for _, b := range bs {
				if len(b.Recent) == 0 {
					t.Errorf("branch %v: recent --set not applied", b.DNATs())
				}
			}
			if tt.recent == nil && env.Recent != nil {
				t.Errorf("input recent state was modified")
			}
		})
	}
}

func TestEvalMasqueradeMark(t *testing.T) {
	// kube-proxy's KUBE-MARK-MASQ / KUBE-POSTROUTING pair.
	tables := map[TableName][]chainSpec{NAT: {
		{name: "PREROUTING", rules: []*Rule{{Target: jump("KUBE-MARK-MASQ")}}},
		{name: "POSTROUTING", rules: []*Rule{{Target: jump("KUBE-POSTROUTING")}}},
		{name: "KUBE-MARK-MASQ", rules: []*Rule{{Target: &MarkTarget{Value: 0x4000, Mask: 0x4000}}}},
		{name: "KUBE-POSTROUTING", rules: []*Rule{
			{Matches: []Match{&Mark{Value: 0x4000, Mask: 0x4000, Invert: true}}, Target: verdict(VerdictReturn)},
			{Target: &MarkTarget{Value: 0x4000, Mask: 0}},
			{Target: &Masquerade{}},
		}},
	}}
	ev := mustEval(t, ruleset(t, tables))
	env := NewEnv(NewLocalAddrs())
	bs := ev.Eval(Prerouting, env, pkt("203.0.113.2", "10.0.0.1", 80))
	bs = ev.Hook(Postrouting, env, bs)
	if len(bs) != 1 {
		t.Fatalf("got %d branches, want 1", len(bs))
	}
	if !bs[0].Masqueraded() {
		t.Errorf("not masqueraded; events %+v", bs[0].Events)
	}
	if bs[0].Packet.Mark != 0 {
		t.Errorf("mark = %#x, want 0 (xor-mark cleared it)", bs[0].Packet.Mark)
	}
}

func TestEvalOpaqueIsReported(t *testing.T) {
	tables := map[TableName][]chainSpec{Filter: {{name: "INPUT", rules: []*Rule{
		{Line: 7, Matches: []Match{&Opaque{Name: "bpf", Args: []string{"--bytecode", "4,48 0 0 9"}}}, Target: verdict(VerdictDrop)},
	}}}}
	ev := mustEval(t, ruleset(t, tables))
	for _, assume := range []bool{true, false} {
		env := &Env{Local: NewLocalAddrs(), AssumeUnknown: assume}
		bs := ev.Eval(Input, env, pkt("10.0.0.2", "10.0.0.3", 80))
		want := DecisionAccept
		if assume {
			want = DecisionDrop
		}
		if bs[0].Verdict != want {
			t.Errorf("assume %v: verdict %s, want %s", assume, bs[0].Verdict, want)
		}
		wantA := []Assumption{{Hook: Input, Table: Filter, Chain: "INPUT", Num: 1, Line: 7, Match: "-m bpf --bytecode 4,48 0 0 9", Value: assume, Reason: "match not modelled"}}
		if diff := cmp.Diff(wantA, bs[0].Assumed); diff != "" {
			t.Errorf("assumed (-want +got):\n%s", diff)
		}
	}
}

func TestNewEvaluatorRefuses(t *testing.T) {
	tests := []struct {
		name    string
		tables  map[TableName][]chainSpec
		wantErr error
	}{{
		name: "jump loop is ELOOP",
		tables: map[TableName][]chainSpec{Filter: {
			{name: "INPUT", rules: []*Rule{{Target: jump("A")}}},
			{name: "A", rules: []*Rule{{Target: jump("B")}}},
			{name: "B", rules: []*Rule{{Target: gotoC("A")}}},
		}},
		wantErr: ErrLoop,
	}, {
		name: "jump to a missing chain",
		tables: map[TableName][]chainSpec{Filter: {
			{name: "INPUT", rules: []*Rule{{Target: jump("NOPE")}}},
		}},
		wantErr: ErrNoChain,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := ruleset(t, tt.tables)
			// the missing chain must really be missing
			if tt.wantErr == ErrNoChain {
				tb := rs.Table(Filter)
				tb.Chains = tb.Chains[:3]
				tb.Chain("INPUT").Rules = []*Rule{{Target: jump("NOPE"), Line: 3}}
			}
			_, err := NewEvaluator(rs)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestEvalTargets(t *testing.T) {
	local := NewLocalAddrs(netip.MustParseAddr("192.168.0.2"))
	tests := []struct {
		name   string
		tables map[TableName][]chainSpec
		hooks  []Hook
		pkt    Packet
		want   outcome
		check  func(t *testing.T, b *Branch)
	}{{
		name: "raw NOTRACK: the nat table never sees the packet",
		tables: map[TableName][]chainSpec{
			Raw: {{name: "PREROUTING", rules: []*Rule{{Target: &Notrack{}}}}},
			NAT: {{name: "PREROUTING", rules: []*Rule{{Target: dnat("10.0.0.9:80")}}}},
		},
		hooks: []Hook{Prerouting}, pkt: pkt("10.0.0.2", "10.96.0.1", 80),
		want: outcome{P: 1, Verdict: DecisionAccept, By: DecidedByPolicy},
		check: func(t *testing.T, b *Branch) {
			if b.Packet.State != CTUntracked {
				t.Errorf("state %v, want UNTRACKED", b.Packet.State.Names())
			}
		},
	}, {
		name: "CONNMARK --save-mark then --restore-mark round trip through the masks",
		tables: map[TableName][]chainSpec{Mangle: {{name: "PREROUTING", rules: []*Rule{
			{Target: &MarkTarget{Value: 0x4012, Mask: 0xffffffff}},
			{Target: &ConnmarkTarget{Mode: ConnmarkSave, NfMask: 0x00ff, CtMask: 0xffff}},
			{Target: &MarkTarget{Value: 0, Mask: 0xffffffff}},
			{Target: &ConnmarkTarget{Mode: ConnmarkRestore, NfMask: 0xffffffff, CtMask: 0xffffffff}},
		}}}},
		hooks: []Hook{Prerouting}, pkt: pkt("10.0.0.2", "10.96.0.1", 80),
		want: outcome{P: 1, Verdict: DecisionAccept, By: DecidedByPolicy, Mark: 0x12},
	}, {
		name: "REDIRECT at OUTPUT goes to the loopback address",
		tables: map[TableName][]chainSpec{NAT: {{name: "OUTPUT", rules: []*Rule{
			{Proto: ProtoMatch{Name: "tcp"}, Matches: []Match{tcpDport(80)}, Target: &Redirect{MinPort: 15001, MaxPort: 15001}},
		}}}},
		hooks: []Hook{Output}, pkt: pkt("192.168.0.2", "10.96.0.1", 80),
		want: outcome{P: 1, Verdict: DecisionAccept, By: DecidedByRule, DNAT: "127.0.0.1:15001"},
	}, {
		name: "SNAT at POSTROUTING rewrites the source and counts as masquerading",
		tables: map[TableName][]chainSpec{NAT: {{name: "POSTROUTING", rules: []*Rule{
			{Src: pfx("10.0.0.0/8"), Target: &SNAT{To: NATRange{MinAddr: netip.MustParseAddr("192.168.0.2"), MaxAddr: netip.MustParseAddr("192.168.0.2")}}},
		}}}},
		hooks: []Hook{Postrouting}, pkt: pkt("10.0.0.2", "1.1.1.1", 443),
		want: outcome{P: 1, Verdict: DecisionAccept, By: DecidedByRule},
		check: func(t *testing.T, b *Branch) {
			if b.Packet.Src != netip.MustParseAddr("192.168.0.2") || !b.Masqueraded() || !b.Packet.SNATed {
				t.Errorf("packet %+v masqueraded %v", b.Packet, b.Masqueraded())
			}
		},
	}, {
		name: "nth mode is a 1/N branch",
		tables: map[TableName][]chainSpec{Filter: {{name: "INPUT", rules: []*Rule{
			{Matches: []Match{&Statistic{Mode: StatisticNth, Every: 4}}, Target: verdict(VerdictDrop)},
		}}}},
		hooks: []Hook{Input}, pkt: pkt("10.0.0.2", "192.168.0.2", 80),
		want: outcome{P: 0.25, Verdict: DecisionDrop, By: DecidedByRule},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := mustEval(t, ruleset(t, tt.tables))
			bs := []*Branch{NewBranch(tt.pkt, nil)}
			for _, h := range tt.hooks {
				bs = ev.Hook(h, NewEnv(local), bs)
			}
			if diff := cmp.Diff(tt.want, outcomes(bs)[0]); diff != "" {
				t.Errorf("first outcome (-want +got):\n%s", diff)
			}
			if tt.check != nil {
				tt.check(t, bs[0])
			}
		})
	}
}
