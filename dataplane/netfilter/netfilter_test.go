package netfilter

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHookTables(t *testing.T) {
	want := map[Hook][]TableName{
		Prerouting:  {Raw, Mangle, NAT},
		Input:       {Mangle, Filter, Security, NAT},
		Forward:     {Mangle, Filter, Security},
		Output:      {Raw, Mangle, NAT, Filter, Security},
		Postrouting: {Mangle, NAT},
	}
	for _, h := range Hooks() {
		got := HookTables(h)
		if diff := cmp.Diff(want[h], got); diff != "" {
			t.Errorf("HookTables(%s) (-want +got):\n%s", h, diff)
		}
		// Kernel priority order: strictly increasing.
		last := -1 << 30
		for _, tb := range got {
			p, ok := Priority(tb, h)
			if !ok {
				t.Fatalf("Priority(%s, %s) not found", tb, h)
			}
			if p <= last {
				t.Errorf("%s: %s priority %d not after %d", h, tb, p, last)
			}
			last = p
			// Every table at a hook has that builtin chain.
			if !IsBuiltinChain(tb, string(h)) {
				t.Errorf("%s has no builtin chain %s", tb, h)
			}
		}
	}
	if p, _ := Priority(NAT, Prerouting); p != PriorityNATDst {
		t.Errorf("nat PREROUTING priority = %d, want %d (DNAT)", p, PriorityNATDst)
	}
	if p, _ := Priority(NAT, Postrouting); p != PriorityNATSrc {
		t.Errorf("nat POSTROUTING priority = %d, want %d (SNAT)", p, PriorityNATSrc)
	}
	if _, ok := Priority(Raw, Forward); ok {
		t.Error("raw has no FORWARD chain")
	}
}

func TestEnsureTableOrder(t *testing.T) {
	rs := &Ruleset{Family: IPv4}
	for _, n := range []TableName{NAT, Filter, Raw, Security, Mangle} {
		rs.EnsureTable(n)
	}
	var got []TableName
	for _, tb := range rs.Tables {
		got = append(got, tb.Name)
	}
	// iptables v1.8.9 (nf_tables) iptables-save order, verified against the real tool.
	if diff := cmp.Diff([]TableName{Mangle, Security, Raw, Filter, NAT}, got); diff != "" {
		t.Errorf("table order (-want +got):\n%s", diff)
	}
	if rs.EnsureTable(NAT) != rs.Table(NAT) {
		t.Error("EnsureTable created a second nat table")
	}
	var chains []string
	for _, c := range rs.Table(NAT).Chains {
		if !c.Builtin || c.Policy != PolicyAccept {
			t.Errorf("builtin chain %s: builtin=%v policy=%s", c.Name, c.Builtin, c.Policy)
		}
		chains = append(chains, c.Name)
	}
	if diff := cmp.Diff([]string{"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"}, chains); diff != "" {
		t.Errorf("nat builtin chains (-want +got):\n%s", diff)
	}
}

func TestChainLookupAndEdits(t *testing.T) {
	tb := NewTable(Filter)
	for i := 0; i < 40; i++ {
		if _, err := tb.AddChain("C" + itoa(uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	if tb.Chain("C39") == nil || tb.Chain("C40") != nil || tb.Chain("INPUT") == nil {
		t.Fatal("lookup after AddChain is wrong")
	}
	if _, err := tb.AddChain("C3"); !errors.Is(err, ErrChainExists) {
		t.Errorf("AddChain duplicate: err = %v, want ErrChainExists", err)
	}
	// Editing Chains directly must not leave a stale index behind.
	tb.Chains = append(tb.Chains[:5], tb.Chains[6:]...)
	tb.Chains = append(tb.Chains, &Chain{Name: "LATE", Policy: PolicyNone})
	if tb.Chain("LATE") == nil {
		t.Error("chain appended directly to Chains not found")
	}
	tb.Chain("C10").Append(&Rule{Target: &Jump{Chain: "C11"}})
	if err := tb.DeleteChain("C11"); !errors.Is(err, ErrChainInUse) {
		t.Errorf("DeleteChain referenced: err = %v, want ErrChainInUse", err)
	}
	if err := tb.DeleteChain("C10"); !errors.Is(err, ErrChainNotEmpty) {
		t.Errorf("DeleteChain non-empty: err = %v, want ErrChainNotEmpty", err)
	}
	if err := tb.DeleteChain("INPUT"); !errors.Is(err, ErrBuiltinChain) {
		t.Errorf("DeleteChain builtin: err = %v, want ErrBuiltinChain", err)
	}
	if err := tb.DeleteChain("C12"); err != nil || tb.Chain("C12") != nil {
		t.Errorf("DeleteChain C12: err = %v, still there = %v", err, tb.Chain("C12") != nil)
	}
	c := tb.Chain("C20")
	a, b, d := &Rule{Line: 1}, &Rule{Line: 2}, &Rule{Line: 3}
	c.Append(a)
	if err := c.Insert(1, b); err != nil {
		t.Fatal(err)
	}
	if err := c.Insert(3, d); err != nil {
		t.Fatal(err)
	}
	if err := c.Insert(5, d); !errors.Is(err, ErrIndexOutOfRange) {
		t.Errorf("Insert past end: err = %v", err)
	}
	if got := []int{c.Rules[0].Line, c.Rules[1].Line, c.Rules[2].Line}; !cmp.Equal(got, []int{2, 1, 3}) {
		t.Errorf("rule order after inserts = %v, want [2 1 3]", got)
	}
	if err := c.Delete(2); err != nil || len(c.Rules) != 2 || c.Rules[1].Line != 3 {
		t.Errorf("Delete(2): err = %v, rules = %d", err, len(c.Rules))
	}
}

func TestMatchHelpers(t *testing.T) {
	for _, tc := range []struct {
		m     IfaceMatch
		iface string
		want  bool
	}{
		{IfaceMatch{}, "eth0", true},
		{IfaceMatch{Name: "eth+"}, "eth0", true},
		{IfaceMatch{Name: "eth+"}, "veth0", false},
		{IfaceMatch{Name: "cali+", Invert: true}, "cali123", false},
		{IfaceMatch{Name: "docker0", Invert: true}, "eth0", true},
	} {
		if got := tc.m.Matches(tc.iface); got != tc.want {
			t.Errorf("%+v.Matches(%q) = %v, want %v", tc.m, tc.iface, got, tc.want)
		}
	}
	src := AddrMatch{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Invert: true}
	if src.Matches(netip.MustParseAddr("10.1.2.3")) || !src.Matches(netip.MustParseAddr("192.168.0.1")) {
		t.Error("! -s 10.0.0.0/8 matched wrongly")
	}
	for n, want := range map[uint8]string{6: "tcp", 17: "udp", 47: "gre", 58: "ipv6-icmp", 132: "sctp", 250: "250"} {
		if got := ProtoName(n); got != want {
			t.Errorf("ProtoName(%d) = %q, want %q", n, got, want)
		}
	}
	if n, ok := ProtoNumber("icmpv6"); !ok || n != 58 {
		t.Errorf("ProtoNumber(icmpv6) = %d, %v", n, ok)
	}
	if got := (&Statistic{Probability: 0x40000000}).ProbabilityFloat(); got != 0.5 {
		t.Errorf("ProbabilityFloat = %v, want 0.5", got)
	}
	if got := (CTRelated | CTEstablished | CTDNAT).Names(); !cmp.Equal(got, []string{"RELATED", "ESTABLISHED", "DNAT"}) {
		t.Errorf("CTState names = %v", got)
	}
}
