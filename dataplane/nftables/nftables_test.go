package nftables

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRule(t *testing.T) {
	for _, tc := range []struct {
		text string
		want string // statements' String() joined by " | "
	}{
		{"ip daddr 172.30.0.41 ip saddr != 10.0.0.0/8 jump mark-for-masquerade", "ip daddr 172.30.0.41 | ip saddr != 10.0.0.0/8 | jump mark-for-masquerade"},
		{"ip daddr . meta l4proto . th dport vmap @service-ips", "ip daddr . meta l4proto . th dport vmap @service-ips"},
		{"numgen random mod 2 vmap { 0 : goto a , 1 : goto b }", "numgen random mod 2 vmap { 0 : goto a, 1 : goto b }"},
		{"meta l4proto tcp dnat to 10.180.0.1:80", "meta l4proto tcp | dnat to 10.180.0.1:80"},
		{"mark and 0x4000 == 0 return", "mark and 0x4000 == 0 | return"},
		{"meta mark & 0x00004000 == 0x00000000 return", "meta mark and 0x00004000 == 0x00000000 | return"},
		{"mark set mark or 0x4000", "mark set mark or 0x00004000"},
		{"meta mark set meta mark ^ 0x00004000", "mark set mark xor 0x00004000"},
		{"ct state established,related accept", "ct state established,related | accept"},
		{"fib saddr type local goto svc comment \"short-circuit local traffic\"", "fib saddr type local | goto svc"},
		{"ip saddr != { 203.0.113.0/25 , 5.6.7.8 } drop", "ip saddr != { 203.0.113.0/25, 5.6.7.8 } | drop"},
		{"update @aff { ip saddr }", "update @aff { ip saddr }"},
		{"iifname \"cali*\" counter packets 3 bytes 180 accept", "iifname \"cali*\" | counter packets 3 bytes 180 | accept"},
		{"reject with icmp type host-unreachable", "reject with icmp type host-unreachable"},
		{"masquerade fully-random", "masquerade fully-random"},
	} {
		t.Run(tc.text, func(t *testing.T) {
			stmts, err := ParseRule(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range stmts {
				got = append(got, s.String())
			}
			if d := cmp.Diff(tc.want, strings.Join(got, " | ")); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
	for _, bad := range []string{"frobnicate 3", "jump", "numgen random mod x vmap { }", "ip daddr", "update aff { ip saddr }", `comment "unterminated`} {
		if _, err := ParseRule(bad); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseRule(%q) = %v, want a syntax error", bad, err)
		}
	}
}

func chain(name string, rules ...string) *Chain {
	c := &Chain{Name: name}
	for _, r := range rules {
		c.Rules = append(c.Rules, &Rule{Text: r})
	}
	return c
}

func base(name string, typ ChainType, hook Hook, prio int, policy string, rules ...string) *Chain {
	c := chain(name, rules...)
	c.Type, c.Hook, c.Priority, c.Policy = typ, hook, prio, policy
	return c
}

func local(addrs ...string) func(netip.Addr) bool {
	return func(a netip.Addr) bool {
		for _, s := range addrs {
			if a == netip.MustParseAddr(s) {
				return true
			}
		}
		return false
	}
}

func pkt(src, dst string, dport uint16) Packet {
	return Packet{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Proto: "tcp", SPort: 5555, DPort: dport}
}

func TestEvalSemantics(t *testing.T) {
	for _, tc := range []struct {
		name string
		rs   *Ruleset
		p    Packet
		want VerdictKind
		dnat string
		masq bool
		nOut int
	}{
		{
			name: "goto does not return to the caller, jump does",
			rs: &Ruleset{Tables: []*Table{{Family: FamilyIP, Name: "t", Chains: []*Chain{
				base("in", TypeFilter, HookForward, 0, "accept", "jump a", "drop"),
				chain("a", "goto b", "accept"),
				chain("b", "tcp dport 80 return"),
			}}}},
			p: pkt("10.0.0.1", "10.0.0.2", 80), want: VerdictDrop, nOut: 1,
		},
		{
			name: "return from a goto target ends the calling chain's caller frame",
			rs: &Ruleset{Tables: []*Table{{Family: FamilyIP, Name: "t", Chains: []*Chain{
				base("in", TypeFilter, HookForward, 0, "drop", "goto b", "accept"),
				chain("b", "return"),
			}}}},
			p: pkt("10.0.0.1", "10.0.0.2", 80), want: VerdictDrop, nOut: 1,
		},
		{
			name: "an accept in one base chain does not stop a later base chain at the same hook",
			rs: &Ruleset{Tables: []*Table{
				{Family: FamilyIP, Name: "a", Chains: []*Chain{base("f1", TypeFilter, HookForward, 10, "accept", "accept")}},
				{Family: FamilyInet, Name: "b", Chains: []*Chain{base("f2", TypeFilter, HookForward, 20, "accept", "ip daddr 10.0.0.2 drop")}},
			}},
			p: pkt("10.0.0.1", "10.0.0.2", 80), want: VerdictDrop, nOut: 1,
		},
		{
			name: "ip6 table does not see IPv4 packets",
			rs:   &Ruleset{Tables: []*Table{{Family: FamilyIP6, Name: "t", Chains: []*Chain{base("f", TypeFilter, HookForward, 0, "drop")}}}},
			p:    pkt("10.0.0.1", "10.0.0.2", 80), want: VerdictAccept, nOut: 1,
		},
		{
			name: "numgen splits into equally likely DNAT outcomes; masquerade by mark in postrouting",
			rs: &Ruleset{Tables: []*Table{{Family: FamilyIP, Name: "t", Chains: []*Chain{
				base("pre", TypeNAT, HookPrerouting, -100, "accept", "ip daddr 172.30.0.1 tcp dport 80 mark set mark or 0x4000", "numgen random mod 3 vmap { 0 : goto e0 , 1 : goto e1 , 2 : goto e2 }"),
				chain("e0", "meta l4proto tcp dnat to 10.1.0.1:8080"),
				chain("e1", "meta l4proto tcp dnat to 10.1.0.2:8080"),
				chain("e2", "meta l4proto tcp dnat to 10.1.0.3:8080"),
				base("post", TypeNAT, HookPostrouting, 100, "accept", "mark and 0x4000 == 0 return", "masquerade fully-random"),
			}}}},
			p: pkt("192.0.2.9", "172.30.0.1", 80), want: VerdictAccept, masq: true, nOut: 3, dnat: "10.1.0.1:8080",
		},
		{
			name: "vmap with an interval set key and an anonymous set",
			rs: &Ruleset{Tables: []*Table{{Family: FamilyIP, Name: "t",
				Sets: []*Set{{Name: "m", KeyType: []string{"ipv4_addr", "inet_service"}, DataType: "verdict", Flags: []string{"interval"},
					Elements: []*Element{{Key: []string{"10.0.0.0/8", "1000-2000"}, Value: []string{"drop"}}}}},
				Chains: []*Chain{base("f", TypeFilter, HookForward, 0, "accept", "ip saddr { 1.1.1.1, 2.2.2.2 } accept", "ip daddr . tcp dport vmap @m")}}}},
			p: pkt("192.0.2.9", "10.9.9.9", 1500), want: VerdictDrop, nOut: 1,
		},
		{
			name: "fib daddr type local sends the packet to INPUT",
			rs: &Ruleset{Tables: []*Table{{Family: FamilyIP, Name: "t", Chains: []*Chain{
				base("in", TypeFilter, HookInput, 0, "accept", "fib daddr type local tcp dport 22 reject"),
				base("fwd", TypeFilter, HookForward, 0, "drop"),
			}}}},
			p: pkt("192.0.2.9", "192.168.0.2", 22), want: VerdictReject, nOut: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outs, err := tc.rs.Trace(tc.p, local("192.168.0.2"), TraceOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(outs) != tc.nOut {
				t.Fatalf("%d outcomes, want %d: %+v", len(outs), tc.nOut, outs)
			}
			o := outs[0]
			if o.Verdict != tc.want || o.Masquerade != tc.masq || o.DNAT != tc.dnat {
				t.Errorf("got verdict=%s dnat=%q masq=%v, want %s %q %v\npath: %+v", o.Verdict, o.DNAT, o.Masquerade, tc.want, tc.dnat, tc.masq, o.Path)
			}
			sum := 0.0
			for _, o := range outs {
				sum += o.Probability
			}
			if sum < 0.999999 || sum > 1.000001 {
				t.Errorf("probabilities sum to %v", sum)
			}
		})
	}
}

func TestEvalLoopIsAnError(t *testing.T) {
	for _, rules := range [][]*Chain{
		{base("f", TypeFilter, HookForward, 0, "accept", "jump a"), chain("a", "jump a")},
		{base("f", TypeFilter, HookForward, 0, "accept", "jump a"), chain("a", "goto b"), chain("b", "goto a")},
	} {
		rs := &Ruleset{Tables: []*Table{{Family: FamilyIP, Name: "t", Chains: rules}}}
		if _, err := rs.Trace(pkt("1.1.1.1", "2.2.2.2", 1), nil, TraceOptions{}); err == nil || !strings.Contains(err.Error(), "loop") {
			t.Errorf("loop not reported: %v", err)
		}
	}
}

func FuzzParseRule(f *testing.F) {
	for _, s := range []string{
		"ip daddr . meta l4proto . th dport vmap @service-ips",
		"numgen random mod 2 vmap { 0 : goto a , 1 : goto b }",
		"meta mark & 0x00004000 == 0x00000000 return",
		`iifname "cali*" accept comment "x"`,
		"ct state established,related accept",
		"ip saddr != { 203.0.113.0/25 , 5.6.7.8 } drop",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		stmts, err := ParseRule(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error without ErrSyntax: %v", err)
			}
			return
		}
		for _, st := range stmts {
			_ = st.String()
		}
	})
}
